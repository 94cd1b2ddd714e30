/*
 * server_log.c - the HTTP server's accounting of responses: counts by
 * status class and, when an access log is configured, one combined-format
 * line per response into the worker's buffer, flushed within a second
 * (accesslog.c writes the lines and owns the file).
 *
 * Invariant: a worker's buffer is non-empty only while its flush timer is
 * armed, so no line waits longer than a second for the file.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <sys/socket.h>

#include "hotpath/accesslog.h"
#include "net/worker_int.h"
#include "server_int.h"

/* The client's address as text, for the access log. */
static void peer_text(hp_conn_t *c, char *out, size_t len)
{
    if (c->peer_v4) {
        inet_ntop(AF_INET, &c->peer_v4, out, (socklen_t)len);
        return;
    }
    /* IPv6 (rare enough to pay a syscall per logged line). */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(c->io.fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)len);
    else
        snprintf(out, len, "-");
}

/* One combined-format line for the request in progress. */
static HP_COLD void access_log(hp_conn_t *c, int status, uint64_t bytes)
{
    hp_http_worker_t *hw = http_worker(c);
    http_state_t *st = c->rbuf && (c->flags & HP_CONN_F_STATE_INIT) ? hp_conn_state(c) : NULL;
    const char *base = c->rbuf ? hp_conn_data(c) : NULL;
    const char *ref = NULL, *agent = NULL, *method = NULL, *target = NULL;
    size_t rlen = 0, alen = 0, mlen = 0, tlen = 0;
    int minor = -1;
    if (st && st->req.method.len && st->req.target.len) {
        method = base + st->req.method.off;
        mlen = st->req.method.len;
        target = base + st->req.target.off;
        tlen = st->req.target.len;
        minor = st->req.version_minor;
    }
    if (st && st->head_len) { /* the head is complete: its fields are valid */
        int i = hp_http_find_field(&st->req, st->fields, base, "referer", 7);
        if (i >= 0) {
            ref = base + st->fields[i].value.off;
            rlen = st->fields[i].value.len;
        }
        i = hp_http_find_field(&st->req, st->fields, base, "user-agent", 10);
        if (i >= 0) {
            agent = base + st->fields[i].value.off;
            alen = st->fields[i].value.len;
        }
    }
    http_date(c); /* brings date_sec up to this second */
    if (hw->alog_sec != hw->date_sec) {
        hw->alog_sec = hw->date_sec;
        hp_accesslog_time(hw->alog_time, hw->date_sec);
    }
    char addr[INET6_ADDRSTRLEN];
    peer_text(c, addr, sizeof addr);
    bool was_empty = hw->alog.len == 0;
    hp_accesslog_line(&hw->alog, addr, hw->alog_time, method, mlen, target, tlen, minor, status,
                 bytes, ref, rlen, agent, alen);
    /* Lines reach the file within a second: the first line after a flush
     * arms the flush. */
    if (was_empty && hw->alog.len && !hp_timer_armed(&hw->alog_timer))
        hp_loop_timer_arm(&c->worker->loop, &hw->alog_timer, 1000);
}

void http_count_response(hp_conn_t *c, int status, uint64_t bytes)
{
    int cls = status / 100;
    hp_http_worker_t *hw = http_worker(c);
    hp_worker_stat_add(&hw->stats.responses[cls >= 1 && cls <= 5 ? cls : 5], 1);
    if (HP_UNLIKELY(hw->alog_on) && status >= 200)
        access_log(c, status, bytes);
}

static void flush_cb(hp_timer_t *t)
{
    hp_http_worker_t *hw = HP_CONTAINER_OF(t, hp_http_worker_t, alog_timer);
    hp_accesslog_flush(&hw->alog);
}

/* Starts writing access-log lines to the configuration's file, if it has
 * one. */
int http_log_start(hp_http_worker_t *hw)
{
    hp_timer_init(&hw->alog_timer, flush_cb);
    if (!hw->cfg->access_log)
        return 0;
    int r = hp_accesslog_init(&hw->alog, hw->cfg->access_log, 0);
    hw->alog_on = r == 0;
    return r;
}

void http_log_stop(hp_worker_t *w, hp_http_worker_t *hw)
{
    if (!hw->alog_on)
        return;
    hp_loop_timer_cancel(&w->loop, &hw->alog_timer);
    hp_accesslog_destroy(&hw->alog); /* flushes */
    hw->alog_on = false;
}
