/*
 * http_harness.h - HTTP on top of the net harness (../net/net_harness.h),
 * shared by test_server.c and test_files.c: one real worker running the
 * HTTP protocol on the test's thread, and helpers that read whole
 * responses from a harness client.
 *
 * How a test uses it:
 *   - include it after <cmocka.h>;
 *   - in its setup: hh_reset() (the harness' h_reset, the default HTTP
 *     configuration in HH.hcfg, pools sized for it); adjust HH.hcfg and
 *     H.cfg in the test, then hh_start();
 *   - resp_next(k, head_only, &r) pumps until a complete response is at
 *     the front of k->rx, parses it into r (status, head, body) and drops
 *     it from rx; hdr(&r, "Name") gives a header's value;
 *   - in its teardown: hh_teardown() (the harness' teardown: every
 *     connection closed, pools empty, worker destroyed with worker_fini).
 * Response bodies are plain malloc (not counted by hp_alloc_count()).
 */
#ifndef HP_TEST_HTTP_HARNESS_H
#define HP_TEST_HTTP_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hotpath/alloc.h"
#include "hotpath/http_server.h"
#include "http/server_int.h"

#include "../net/net_harness.h"

static struct {
    hp_http_config_t hcfg;
    hp_proto_t proto;
} HH;

typedef struct resp {
    int status;
    char head[8192];  /* status line and headers, NUL-terminated */
    char *body;       /* malloc'd, NUL-terminated; NULL when none */
    size_t body_len;
} resp_t;

static NH_UNUSED void hh_reset(void)
{
    h_reset();
    HH.hcfg = HP_HTTP_CONFIG_DEFAULT;
}

/* The worker with HTTP for HH.hcfg, its read chunk sized for the limits. */
static NH_UNUSED void hh_start(void)
{
    H.cfg.rbuf_size = hp_http_rbuf_size(&HH.hcfg);
    H.cfg.wbuf_size = 16384;
    H.cfg.high_water = 256 * 1024;
    H.cfg.low_water = 64 * 1024;
    assert_int_equal(hp_http_proto_init(&HH.proto, &HH.hcfg, H.cfg.rbuf_size), 0);
    h_start_proto(&HH.proto, &HH.hcfg, 0);
    assert_non_null(hp_worker_proto_data(&H.w, &HH.proto));
}

static NH_UNUSED hp_http_worker_t *hh_worker(void)
{
    return hp_worker_proto_data(&H.w, &HH.proto);
}

static NH_UNUSED void resp_free(resp_t *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

static NH_UNUSED void hh_teardown(void)
{
    hp_alloc_fail_after(0, 0);
    h_teardown();
}

/* The value of header `name` in r's head, or NULL; in a static buffer
 * that the next call overwrites. Names are matched as the server sends
 * them. */
static NH_UNUSED const char *hdr(const resp_t *r, const char *name)
{
    static char val[1024];
    char want[128];
    int n = snprintf(want, sizeof want, "\r\n%s: ", name);
    const char *p = strstr(r->head, want);
    if (!p)
        return NULL;
    p += n;
    const char *e = strstr(p, "\r\n");
    size_t len = (size_t)(e - p) < sizeof val - 1 ? (size_t)(e - p) : sizeof val - 1;
    memcpy(val, p, len);
    val[len] = '\0';
    return val;
}

/* Length of the complete response at the front of k->rx, 0 when it has
 * not all arrived. Without Content-Length (304) the body is empty; after
 * HEAD it is empty whatever the header says. */
static NH_UNUSED size_t resp_avail(const cli_t *k, bool head_only, size_t *head_len)
{
    if (!k->rx)
        return 0;
    const char *end = memmem(k->rx, k->rxlen, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t hl = (size_t)(end + 4 - k->rx);
    const char *p = memmem(k->rx, hl, "\r\nContent-Length: ", 18);
    size_t cl = p && !head_only ? strtoul(p + 18, NULL, 10) : 0;
    *head_len = hl;
    return k->rxlen >= hl + cl ? hl + cl : 0;
}

/* Pumps until the next response is complete and moves it from k->rx to r
 * (whose previous body is freed). */
static NH_UNUSED void resp_next(cli_t *k, bool head_only, resp_t *r)
{
    size_t hl = 0;
    PUMP_UNTIL(resp_avail(k, head_only, &hl) > 0 || k->eof, 5000);
    size_t n = resp_avail(k, head_only, &hl);
    if (n == 0)
        fail_msg("no complete response (eof %d); got %zu bytes: '%.*s'", k->eof, k->rxlen,
                 (int)(k->rxlen < 300 ? k->rxlen : 300), k->rx ? k->rx : "");
    assert_true(hl < sizeof r->head);
    resp_free(r);
    memcpy(r->head, k->rx, hl);
    r->head[hl] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    r->body_len = n - hl;
    r->body = malloc(r->body_len + 1);
    assert_non_null(r->body);
    memcpy(r->body, k->rx + hl, r->body_len);
    r->body[r->body_len] = '\0';
    memmove(k->rx, k->rx + n, k->rxlen - n);
    k->rxlen -= n;
}

/* Sends req and reads its response. */
static NH_UNUSED void request(cli_t *k, const char *req, resp_t *r)
{
    cli_sends(k, req);
    resp_next(k, strncmp(req, "HEAD ", 5) == 0, r);
}

/* Pumps until the server has closed k; true when it did. */
static NH_UNUSED bool closed_by_server(cli_t *k)
{
    PUMP_UNTIL(k->eof, 5000);
    return k->eof;
}

#endif
