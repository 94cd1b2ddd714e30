/*
 * server.c - the HTTP/1.1 protocol on hp_conn: request loop, bodies,
 * timeouts, built-in endpoints and static files.
 *
 * Central structure: http_state_t, kept at the head of the connection's
 * read chunk while a request is in progress: the resumable parser, the
 * body decoder and the header field slices (offsets relative to the first
 * unconsumed byte, so compaction of the buffer never invalidates them).
 *
 * Invariants: responses go out in request order (everything is appended
 * to one queue); a request head is consumed only once its response (or
 * its body phase) has begun; after a framing error nothing more is parsed
 * and the connection closes when the error response is out.
 */
#include "hotpath/http_server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "hotpath/engine.h"
#include "hotpath/http_response.h"
#include "hotpath/http_static.h"
#include "hotpath/worker.h"

enum { PH_HEAD = 0, PH_BODY };
enum { SINK_DISCARD = 0, SINK_ECHO };

typedef struct http_state {
    hp_http_req_t req;
    hp_http_chunked_t chunked;
    uint8_t phase;         /* PH_* */
    uint8_t sink;          /* SINK_*: where body bytes go */
    bool head_only;        /* HEAD request: no body in the response */
    bool body_pooled;      /* body is a pool chunk, not heap memory */
    uint32_t resp_flags;   /* HP_HTTP_R_* for this request's response */
    uint64_t body_left;    /* Content-Length bytes still to read */
    uint64_t head_deadline; /* loop ms by which the head must be complete; 0: not started */
    char *body;            /* owned: the /echo body being gathered */
    uint64_t body_len, body_cap;
    hp_http_field_t fields[]; /* cfg->limits.max_fields */
} http_state_t;

/* Room checked before a request is dispatched, so that its response head
 * always fits and a full queue pauses parsing instead of failing midway. */
#define HTTP_DISPATCH_ROOM 1024

static const char PLAINTEXT[] = "Hello, World!";
static const char CT_TEXT[] = "text/plain";
static const char CT_JSON[] = "application/json";

static inline hp_http_worker_t *hw_of(hp_conn_t *c)
{
    return c->worker->proto_data;
}

/* Keeps the Date header current: formatted at most once a second. */
static inline const hp_date_t *date_of(hp_conn_t *c)
{
    hp_http_worker_t *hw = hw_of(c);
    uint64_t now = hp_conn_now(c);
    if (HP_UNLIKELY(now >= hw->date_next_ms)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        hp_date_update(&hw->date, ts.tv_sec);
        hw->date_next_ms = now + 1000 - (uint64_t)(ts.tv_nsec / 1000000);
    }
    return &hw->date;
}

static inline void stat_add(uint64_t *counter)
{
    __atomic_store_n(counter, *counter + 1, __ATOMIC_RELAXED);
}

static void count_response(hp_conn_t *c, int status)
{
    int cls = status / 100;
    stat_add(&hw_of(c)->stats.responses[cls >= 1 && cls <= 5 ? cls : 5]);
}

static int rejection_index(int status)
{
    switch (status) {
    case 408: return HP_HTTP_REJ_408;
    case 413: return HP_HTTP_REJ_413;
    case 414: return HP_HTTP_REJ_414;
    case 417: return HP_HTTP_REJ_417;
    case 431: return HP_HTTP_REJ_431;
    case 501: return HP_HTTP_REJ_501;
    case 505: return HP_HTTP_REJ_505;
    default: return HP_HTTP_REJ_400;
    }
}

static http_state_t *state_of(hp_conn_t *c)
{
    http_state_t *st = hp_conn_state(c);
    if (!(c->flags & HP_CONN_F_STATE_INIT)) {
        hp_http_req_init(&st->req);
        c->flags |= HP_CONN_F_STATE_INIT;
    }
    return st;
}

/* Ready for the next request on this connection. */
static void next_request(hp_conn_t *c, http_state_t *st)
{
    hp_http_req_init(&st->req);
    st->phase = PH_HEAD;
    st->head_deadline = 0;
    hp_conn_set_busy(c, false);
}

/* An error response with a short text body; closes afterwards. */
static HP_COLD void reject(hp_conn_t *c, int status)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, hp_http_reason(status));
    stat_add(&hw_of(c)->stats.rejected[rejection_index(status)]);
    count_response(c, status);
    hp_http_respond(c, date_of(c), status, CT_TEXT, body, (uint32_t)n, NULL, HP_HTTP_R_CLOSE);
    hp_conn_close_after_write(c);
}

/* A complete response to the current request with a small error body but
 * without closing (404, 405 ...), honouring the request's flags. */
static void respond_status(hp_conn_t *c, http_state_t *st, int status, const char *extra)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, hp_http_reason(status));
    count_response(c, status);
    hp_http_respond(c, date_of(c), status, CT_TEXT, body, (uint32_t)n, extra, st->resp_flags);
}

static void respond_ok(hp_conn_t *c, http_state_t *st, const char *ctype, const void *body,
                       uint32_t len)
{
    count_response(c, 200);
    hp_http_respond(c, date_of(c), 200, ctype, body, len, NULL, st->resp_flags);
}

/* ---- built-in endpoints ---- */

/* Appends `s` as a JSON string (quotes, escapes per RFC 8259 §7). `out`
 * needs room for 6 * n + 2 bytes. Returns the bytes written. */
static uint32_t json_string(char *out, const char *s, uint32_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    *p++ = '"';
    for (uint32_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = (char)ch;
        } else if (ch < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[ch >> 4];
            p[5] = hex[ch & 15];
            p += 6;
        } else {
            *p++ = (char)ch;
        }
    }
    *p++ = '"';
    return (uint32_t)(p - out);
}

static void serve_json(hp_conn_t *c, http_state_t *st)
{
    /* A fresh object serialized per request, as the TechEmpower rules
     * ask, rather than a canned body. */
    static const char key[] = "message";
    char body[6 * (sizeof key + sizeof PLAINTEXT) + 8];
    char *p = body;
    *p++ = '{';
    p += json_string(p, key, sizeof key - 1);
    *p++ = ':';
    p += json_string(p, PLAINTEXT, sizeof PLAINTEXT - 1);
    *p++ = '}';
    respond_ok(c, st, CT_JSON, body, (uint32_t)(p - body));
}

static uint32_t metric(char *p, const char *name, const char *labels, uint64_t v)
{
    return (uint32_t)sprintf(p, "%s%s %llu\n", name, labels ? labels : "", (unsigned long long)v);
}

/* Prometheus text, summed over every worker's shard. Each shard is
 * written only by its worker and read here with relaxed loads. */
static void serve_metrics(hp_conn_t *c, http_state_t *st)
{
    static const char *const reasons[HP_HTTP_REJ_COUNT] = {
        "bad_request", "timeout", "body_too_large", "uri_too_long",
        "expectation_failed", "headers_too_large", "not_implemented", "version_not_supported"};
    hp_engine_t *e = hw_of(c)->cfg->engine;
    hp_worker_t *one = c->worker;
    hp_worker_t *ws = e ? e->workers : one;
    uint32_t nw = e ? e->nworkers : 1;

    uint64_t req = 0, resp[6] = {0}, rej[HP_HTTP_REJ_COUNT] = {0}, acc = 0, closed = 0;
    uint64_t chunks = 0, bin = 0, bout = 0, tmo = 0;
    for (uint32_t i = 0; i < nw; i++) {
        hp_worker_t *w = &ws[i];
        hp_http_worker_t *hw = w->proto_data;
        req += hp_worker_stat(&hw->stats.requests);
        for (int k = 1; k <= 5; k++)
            resp[k] += hp_worker_stat(&hw->stats.responses[k]);
        for (int k = 0; k < HP_HTTP_REJ_COUNT; k++)
            rej[k] += hp_worker_stat(&hw->stats.rejected[k]);
        acc += hp_worker_stat(&w->stats.accepted);
        closed += hp_worker_stat(&w->stats.closed);
        bin += hp_worker_stat(&w->stats.bytes_in);
        bout += hp_worker_stat(&w->stats.bytes_out);
        tmo += hp_worker_stat(&w->stats.timeouts);
        /* Pool counters are the owner's plain fields: approximate when
         * read from another worker, exact for our own. */
        chunks += hp_pool_in_use(&w->rpool) + hp_pool_in_use(&w->wpool);
    }

    char *body = hw_of(c)->scratch;
    char *p = body;
    p += metric(p, "hotpath_requests_total", NULL, req);
    static const char *const classes[6] = {"", "{class=\"1xx\"}", "{class=\"2xx\"}",
                                           "{class=\"3xx\"}", "{class=\"4xx\"}", "{class=\"5xx\"}"};
    for (int k = 1; k <= 5; k++)
        p += metric(p, "hotpath_responses_total", classes[k], resp[k]);
    p += metric(p, "hotpath_connections_open", NULL, acc - closed);
    p += metric(p, "hotpath_connections_accepted_total", NULL, acc);
    /* Per-worker lines stop where the scratch would overflow: a machine
     * with hundreds of workers gets the totals and the first workers. */
    for (uint32_t i = 0; i < nw && p - body < HP_HTTP_SCRATCH - 2048; i++) {
        char label[32];
        snprintf(label, sizeof label, "{worker=\"%u\"}", i);
        p += metric(p, "hotpath_worker_connections_accepted_total", label,
                    hp_worker_stat(&ws[i].stats.accepted));
    }
    p += metric(p, "hotpath_heap_allocations_total", NULL, hp_alloc_count());
    p += metric(p, "hotpath_pool_chunks_in_use", NULL, chunks);
    p += metric(p, "hotpath_bytes_received_total", NULL, bin);
    p += metric(p, "hotpath_bytes_sent_total", NULL, bout);
    p += metric(p, "hotpath_connection_timeouts_total", NULL, tmo);
    for (int k = 0; k < HP_HTTP_REJ_COUNT; k++) {
        char label[48];
        snprintf(label, sizeof label, "{reason=\"%s\"}", reasons[k]);
        p += metric(p, "hotpath_rejected_total", label, rej[k]);
    }
    /* Copied into the queue: the scratch is reused by the next request. */
    count_response(c, 200);
    if (hp_http_write_head(c, date_of(c), 200, "text/plain; version=0.0.4", (uint64_t)(p - body),
                           NULL, st->resp_flags) < 0 ||
        (!st->head_only && hp_conn_write(c, body, (uint32_t)(p - body)) < 0))
        hp_conn_close(c);
}

/* ---- static files ---- */

static void serve_file(hp_conn_t *c, http_state_t *st, const char *target, uint32_t len)
{
    hp_http_worker_t *hw = hw_of(c);
    if (hw->cfg->root_fd < 0) {
        respond_status(c, st, 404, NULL);
        return;
    }
    hp_static_file_t f;
    int r = hp_static_resolve(hw->cfg->root_fd, target, len, hw->path, sizeof hw->path, &f);
    if (r == -301) {
        /* Location: the path with a slash added before any query. */
        char extra[HP_HTTP_INLINE_BODY];
        uint32_t plen = 0;
        while (plen < len && target[plen] != '?' && target[plen] != '#')
            plen++;
        int n = snprintf(extra, sizeof extra, "Location: %.*s/%.*s\r\n", (int)plen, target,
                         (int)(len - plen), target + plen);
        if (n <= 0 || (size_t)n >= sizeof extra) {
            respond_status(c, st, 414, NULL);
            return;
        }
        respond_status(c, st, 301, extra);
        return;
    }
    if (r < 0) {
        respond_status(c, st, -r, NULL);
        return;
    }
    count_response(c, 200);
    if (hp_http_write_head(c, date_of(c), 200, f.mime, f.size, NULL, st->resp_flags) < 0) {
        close(f.fd);
        hp_conn_close(c);
        return;
    }
    if (st->head_only)
        close(f.fd);
    else
        hp_conn_write_file(c, f.fd, 0, f.size);
}

/* ---- request dispatch ---- */

enum { R_STATIC = 0, R_PLAINTEXT, R_JSON, R_HEALTH, R_METRICS, R_ECHO, R_ASTERISK };

static int route_of(const char *path, uint32_t len)
{
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(path, lit, sizeof(lit) - 1) == 0)
    if (IS("/plaintext"))
        return R_PLAINTEXT;
    if (IS("/json"))
        return R_JSON;
    if (IS("/health"))
        return R_HEALTH;
    if (IS("/metrics"))
        return R_METRICS;
    if (IS("/echo"))
        return R_ECHO;
    return R_STATIC;
#undef IS
}

/* ---- request bodies ----
 *
 * /echo gathers the body, then answers with it. The body starts in a spare
 * read-pool chunk, so a body that fits one costs no allocation; a larger
 * one moves to the heap (bounded by max_body, which the parser and the
 * chunked decoder enforce). Nothing is sent before the body is complete,
 * so framing errors, limits and stalls still get their status. Other
 * routes answer at once and read and discard the body, keeping the
 * connection usable. */

/* Drops whatever body buffer the request holds. */
static void body_free(hp_conn_t *c, http_state_t *st)
{
    if (st->body && st->body_pooled)
        hp_conn_chunk_put(c, st->body);
    else
        hp_free(st->body);
    st->body = NULL;
    st->body_len = st->body_cap = 0;
}

static HP_COLD bool body_grow(hp_conn_t *c, http_state_t *st, uint64_t need)
{
    uint64_t cap = st->body_cap * 2;
    while (cap < need)
        cap *= 2;
    char *nb = hp_malloc(cap);
    if (!nb)
        return false;
    memcpy(nb, st->body, st->body_len);
    uint64_t len = st->body_len;
    body_free(c, st);
    st->body = nb;
    st->body_len = len;
    st->body_cap = cap;
    st->body_pooled = false;
    return true;
}

static bool body_append(hp_conn_t *c, http_state_t *st, const char *p, uint64_t n)
{
    if (st->body_len + n > st->body_cap && !body_grow(c, st, st->body_len + n))
        return false;
    memcpy(st->body + st->body_len, p, n);
    st->body_len += n;
    return true;
}

static void body_done(hp_conn_t *c, http_state_t *st)
{
    if (st->sink == SINK_ECHO) {
        count_response(c, 200);
        if (hp_http_write_head(c, date_of(c), 200, "application/octet-stream", st->body_len,
                               NULL, st->resp_flags) < 0) {
            hp_conn_close(c);
            return;
        }
        if (st->body_len == 0)
            body_free(c, st);
        else if (st->body_pooled)
            hp_conn_write_chunk(c, st->body, st->body, st->body_len);
        else
            hp_conn_write_ref(c, st->body, st->body_len, true);
        st->body = NULL; /* ownership went to the output queue */
    }
    if (st->resp_flags & HP_HTTP_R_CLOSE)
        hp_conn_close_after_write(c);
    next_request(c, st);
}

static HP_COLD void body_oom(hp_conn_t *c)
{
    hp_worker_stat_add(&c->worker->stats.oom_closed, 1);
    reject(c, 503);
}

/* Feeds buffered bytes to the body being read. */
static void body_feed(hp_conn_t *c, http_state_t *st)
{
    char *buf = hp_conn_data(c);
    uint32_t len = hp_conn_data_len(c);
    bool echo = st->sink == SINK_ECHO;
    if (st->req.flags & HP_HTTP_F_CHUNKED) {
        size_t used = 0, out = 0;
        int r = hp_http_chunked_decode(&st->chunked, buf, len, &used, &out);
        if (r < 0) {
            reject(c, -r);
            return;
        }
        if (echo && out && !body_append(c, st, buf, out)) {
            body_oom(c);
            return;
        }
        hp_conn_consume(c, (uint32_t)used);
        if (r == 1)
            body_done(c, st);
        return;
    }
    uint32_t n = st->body_left < len ? (uint32_t)st->body_left : len;
    if (echo && !body_append(c, st, buf, n)) {
        body_oom(c);
        return;
    }
    st->body_left -= n;
    hp_conn_consume(c, n);
    if (st->body_left == 0)
        body_done(c, st);
}

/* Takes the first body buffer: a pool chunk when the body fits one (or
 * its size is not known yet), else the heap. */
static bool body_begin(hp_conn_t *c, http_state_t *st)
{
    const hp_http_req_t *req = &st->req;
    uint64_t want = (req->flags & HP_HTTP_F_CHUNKED) ? 0 : req->content_length;
    st->body_len = 0;
    if (want <= hp_conn_chunk_size(c) && (st->body = hp_conn_chunk_get(c))) {
        st->body_cap = hp_conn_chunk_size(c);
        st->body_pooled = true;
        return true;
    }
    st->body_pooled = false;
    st->body_cap = want ? want : 4096;
    st->body = hp_malloc(st->body_cap);
    return st->body != NULL;
}

/* Sends "100 Continue" at once when the client waits for it before
 * sending the body. */
static void send_continue(hp_conn_t *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    count_response(c, 100);
    if (hp_conn_write(c, cont, sizeof cont - 1) == 0)
        hp_conn_flush(c);
}

/* Consumes the head and enters the body phase (or finishes at once for
 * an empty body). */
static void start_body(hp_conn_t *c, http_state_t *st, uint32_t head_len, int sink)
{
    const hp_http_req_t *req = &st->req;
    hp_conn_consume(c, head_len);
    st->sink = (uint8_t)sink;
    if (sink == SINK_ECHO && !body_begin(c, st)) {
        body_oom(c);
        return;
    }
    if (req->flags & HP_HTTP_F_CHUNKED) {
        hp_http_chunked_init(&st->chunked, hw_of(c)->cfg->limits.max_body);
    } else {
        st->body_left = req->content_length;
        if (st->body_left == 0) {
            body_done(c, st);
            return;
        }
    }
    st->phase = PH_BODY;
    hp_conn_set_busy(c, true);
    if (sink == SINK_ECHO && (req->flags & HP_HTTP_F_EXPECT_CONTINUE) &&
        hp_conn_data_len(c) == 0 && req->version_minor >= 1)
        send_continue(c);
}

/* Absolute-form ("http://host/path?q", RFC 9112 §3.2.2) is routed by its
 * path. Returns false for a target that is neither origin- nor
 * absolute-form ("*" is handled by the caller). */
static HP_COLD bool origin_form(const char **target, uint32_t *len)
{
    const char *t = *target;
    uint32_t n = *len, i;
    if (n >= 7 && strncasecmp(t, "http://", 7) == 0)
        i = 7;
    else if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
        i = 8;
    else
        return false;
    uint32_t host = i;
    while (i < n && t[i] != '/' && t[i] != '?' && t[i] != '#')
        i++;
    if (i == host)
        return false; /* no authority */
    if (i == n || t[i] != '/') {
        *target = "/";
        *len = 1;
        return true;
    }
    *target = t + i;
    *len = n - i;
    return true;
}

static void dispatch(hp_conn_t *c, http_state_t *st, uint32_t head_len)
{
    const hp_http_req_t *req = &st->req;
    const char *target = hp_conn_data(c) + req->target.off;
    uint32_t tlen = req->target.len;
    int m = req->method_id;

    stat_add(&hw_of(c)->stats.requests);
    bool keep = hp_http_req_keep_alive(req) && !c->worker->draining;
    bool has_body = (req->flags & HP_HTTP_F_CHUNKED) || req->content_length > 0;
    bool asterisk = tlen == 1 && target[0] == '*';
    if (HP_UNLIKELY(target[0] != '/') && !asterisk && !origin_form(&target, &tlen)) {
        reject(c, 400);
        return;
    }
    uint32_t plen = 0;
    while (plen < tlen && target[plen] != '?')
        plen++;
    int route = asterisk ? R_ASTERISK : route_of(target, plen);
    st->head_only = m == HP_HTTP_M_HEAD;

    /* A client that waits for "100 Continue" before sending a body we do
     * not want will never send it: answer and close instead of waiting. */
    bool wants_body = route == R_ECHO && m == HP_HTTP_M_POST;
    if (has_body && !wants_body && (req->flags & HP_HTTP_F_EXPECT_CONTINUE))
        keep = false;
    st->resp_flags = (keep ? (req->version_minor == 0 ? HP_HTTP_R_KEEP_ALIVE : 0)
                           : HP_HTTP_R_CLOSE) |
                     (st->head_only ? HP_HTTP_R_NO_BODY : 0);
    if (wants_body) {
        start_body(c, st, head_len, SINK_ECHO);
        return;
    }

    bool get = m == HP_HTTP_M_GET || m == HP_HTTP_M_HEAD;
    if (route == R_ASTERISK) {
        if (m == HP_HTTP_M_OPTIONS)
            respond_status(c, st, 200, "Allow: GET, HEAD, POST, OPTIONS\r\n");
        else
            respond_status(c, st, 400, NULL);
    } else if (route == R_ECHO) {
        respond_status(c, st, 405, "Allow: POST\r\n");
    } else if (!get) {
        respond_status(c, st, 405, "Allow: GET, HEAD\r\n");
    } else {
        switch (route) {
        case R_PLAINTEXT:
            respond_ok(c, st, CT_TEXT, PLAINTEXT, sizeof PLAINTEXT - 1);
            break;
        case R_JSON:
            serve_json(c, st);
            break;
        case R_HEALTH:
            respond_ok(c, st, CT_JSON, "{\"status\":\"ok\"}", 15);
            break;
        case R_METRICS:
            serve_metrics(c, st);
            break;
        default:
            serve_file(c, st, target, tlen);
            break;
        }
    }
    if (has_body && keep) {
        start_body(c, st, head_len, SINK_DISCARD);
        return;
    }
    hp_conn_consume(c, head_len);
    if (!keep)
        hp_conn_close_after_write(c);
    next_request(c, st);
}

/* Arms the connection's one timer for the phase it is in. The header
 * timeout counts from the request's first byte, not from the latest one,
 * so a head trickled in byte by byte still runs out (slowloris); it is
 * re-armed with what is left each time, which also restores it after the
 * write timer held the slot. */
static void set_timer(hp_conn_t *c, http_state_t *st, const hp_http_config_t *cfg)
{
    if (st->phase == PH_BODY) {
        hp_conn_set_timer(c, cfg->body_timeout_ms);
    } else if (hp_conn_data_len(c) > 0) {
        uint64_t now = hp_conn_now(c);
        if (!st->head_deadline)
            st->head_deadline = now + cfg->header_timeout_ms;
        hp_conn_set_timer(c, st->head_deadline > now ? st->head_deadline - now : 1);
    } else {
        hp_conn_set_timer(c, cfg->keepalive_timeout_ms);
    }
}

/* Parses and answers as many buffered requests as the output queue takes. */
static void process(hp_conn_t *c)
{
    http_state_t *st = state_of(c);
    const hp_http_config_t *cfg = hw_of(c)->cfg;
    while (!(c->flags & (HP_CONN_F_CLOSED | HP_CONN_F_CLOSE_AFTER | HP_CONN_F_PAUSED))) {
        uint32_t len = hp_conn_data_len(c);
        if (len == 0)
            break;
        if (st->phase == PH_BODY) {
            body_feed(c, st);
            continue;
        }
        /* Backpressure: stop parsing while the queue is past the high
         * watermark or has no room for one more response head. */
        if (hp_conn_pending(c) > c->worker->cfg->high_water ||
            !hp_conn_reserve(c, HTTP_DISPATCH_ROOM)) {
            if (HP_UNLIKELY(hp_conn_pending(c) == 0)) {
                /* Nothing queued and still no room: no output chunk can
                 * be had. Waiting would never end; drop the connection. */
                hp_worker_stat_add(&c->worker->stats.oom_closed, 1);
                hp_conn_close(c);
                return;
            }
            hp_conn_pause(c);
            break;
        }
        int r = hp_http_parse(&st->req, st->fields, hp_conn_data(c), len, &cfg->limits);
        if (r == 0)
            break;
        if (r < 0) {
            reject(c, -r);
            break;
        }
        dispatch(c, st, (uint32_t)r);
    }
    if (c->flags & (HP_CONN_F_CLOSED | HP_CONN_F_CLOSE_AFTER))
        return;
    set_timer(c, st, cfg);
}

static void on_data(hp_conn_t *c)
{
    process(c);
}

static void on_drain(hp_conn_t *c)
{
    if (c->rbuf) {
        process(c);
    } else {
        hp_conn_set_timer(c, hw_of(c)->cfg->keepalive_timeout_ms);
    }
}

static void on_timeout(hp_conn_t *c)
{
    hp_worker_stat_add(&c->worker->stats.timeouts, 1);
    /* A request in progress hears why; an idle keep-alive connection is
     * simply closed, as clients expect. */
    bool in_request = c->rbuf && (hp_conn_data_len(c) > 0 || (c->flags & HP_CONN_F_BUSY));
    if (in_request) {
        reject(c, 408);
        hp_conn_flush(c);
    }
    hp_conn_close(c);
}

static void on_close(hp_conn_t *c)
{
    if (c->flags & HP_CONN_F_STATE_INIT)
        body_free(c, hp_conn_state(c));
}

static void on_open(hp_conn_t *c)
{
    /* A connection that never sends a request is idle from the start. */
    hp_conn_set_timer(c, hw_of(c)->cfg->keepalive_timeout_ms);
}

static int worker_init(hp_worker_t *w, void *arg)
{
    hp_http_worker_t *hw = hp_calloc_aligned(sizeof *hw);
    if (!hw)
        return -ENOMEM;
    hw->cfg = arg;
    hw->date = (hp_date_t)HP_DATE_INIT;
    hw->date_next_ms = 0;
    w->proto_data = hw;
    return 0;
}

static void worker_fini(hp_worker_t *w)
{
    hp_free(w->proto_data);
    w->proto_data = NULL;
}

uint32_t hp_http_rbuf_size(const hp_http_config_t *cfg)
{
    uint64_t state = sizeof(http_state_t) + (uint64_t)cfg->limits.max_fields * sizeof(hp_http_field_t);
    uint64_t head = (uint64_t)cfg->limits.max_request_line + cfg->limits.max_header_bytes;
    /* Leading empty lines and the line ends the limits do not count. */
    uint64_t size = ((state + 63) & ~63ull) + head + 1024;
    size = (size + 4095) & ~4095ull;
    return size < 32768 ? 32768 : (uint32_t)size;
}

int hp_http_proto_init(hp_proto_t *proto, const hp_http_config_t *cfg, uint32_t rbuf_size)
{
    uint64_t state = sizeof(http_state_t) + (uint64_t)cfg->limits.max_fields * sizeof(hp_http_field_t);
    if (rbuf_size < hp_http_rbuf_size(cfg) || state > UINT32_MAX)
        return -EINVAL;
    *proto = (hp_proto_t){
        .on_data = on_data,
        .on_drain = on_drain,
        .on_timeout = on_timeout,
        .on_open = on_open,
        .on_close = on_close,
        .worker_init = worker_init,
        .worker_fini = worker_fini,
        .state_size = (uint32_t)state,
    };
    return 0;
}
