/*
 * server.c - the HTTP/1.1 protocol on hp_conn: request loop, bodies,
 * timeouts, dispatch to the router's handlers and static files, upgrades.
 * The accounting of responses and the access log are in server_log.c, the
 * per-worker state (caches, Date, reload) in server_worker.c.
 *
 * Central structure: http_state_t (server_int.h), kept at the head of the
 * connection's read chunk while a request is in progress: the resumable
 * parser, the body decoder, the header field slices and the handler
 * context. Static files are served by files.c.
 *
 * Invariants: responses go out in request order (everything is appended
 * to one queue); while a request lives, its head stays at the front of
 * the unconsumed bytes (body bytes are cut out behind it), so the slices
 * and the context's offsets stay valid; after a framing error nothing
 * more is parsed and the connection closes when the error response is out.
 */
#include "hotpath/http_server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hotpath/alloc.h"
#include "hotpath/http_method.h"
#include "resp_writer_int.h"
#include "net/worker_int.h"
#include "server_int.h"
#include "target_int.h"

/* Room checked before a request is dispatched, so that its response head
 * always fits and a full queue pauses parsing instead of failing midway. */
#define HTTP_DISPATCH_ROOM 1024

static const char CT_TEXT[] = "text/plain";


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
    case 503: return HP_HTTP_REJ_503;
    default: return HP_HTTP_REJ_400;
    }
}

static http_state_t *state_of(hp_conn_t *c)
{
    http_state_t *st = hp_conn_state(c);
    if (!(c->flags & HP_CONN_F_STATE_INIT)) {
        /* A fresh chunk holds garbage: set what the request loop reads
         * before writing (the rest is set when its phase begins). */
        hp_http_req_init(&st->req);
        st->phase = PH_HEAD;
        st->head_len = 0;
        st->head_deadline = 0;
        st->body = NULL;
        st->body_len = st->body_cap = 0;
        st->ctx.abort_fn = NULL;
        st->ctx.body_kind = BODY_NONE;
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
    int n = snprintf(body, sizeof body, "%d %s\n", status, hp_resp_writer_reason(status));
    hp_worker_stat_add(&http_worker(c)->stats.rejected[rejection_index(status)], 1);
    http_count_response(c, status, (uint64_t)n);
    hp_resp_writer_respond(c, http_date(c), status, CT_TEXT, body, (uint32_t)n, NULL, HP_RESP_WRITER_F_CLOSE);
    hp_conn_close_after_write(c);
}

/* A complete response to the current request with a small error body but
 * without closing (404, 405 ...), honouring the request's flags. */
void http_respond_status(hp_conn_t *c, http_state_t *st, int status, const char *extra)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, hp_resp_writer_reason(status));
    http_count_response(c, status, st->head_only ? 0 : (uint64_t)n);
    hp_resp_writer_respond(c, http_date(c), status, CT_TEXT, body, (uint32_t)n, extra, st->resp_flags);
}

static void process(hp_conn_t *c);

/* ---- request bodies ----
 *
 * A body for a route's handler is gathered whole before the handler runs.
 * It starts in a spare read-pool chunk, so a body that fits one costs no
 * allocation; a larger one moves to the heap (bounded by max_body, which
 * the parser and the chunked decoder enforce). Nothing is sent before the
 * body is complete, so framing errors, limits and stalls still get their
 * status. A body nobody wants is read and discarded after the response,
 * keeping the connection usable. Body bytes are cut out behind the
 * request head, which stays in place for the handler. */

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

static HP_COLD void body_oom(hp_conn_t *c)
{
    hp_worker_stat_add(&c->worker->stats.oom_closed, 1);
    reject(c, 503);
}

/* Runs the request's handler (through the middleware) once the head, and
 * the body if any, are in. */
static void run_handler(hp_conn_t *c, http_state_t *st)
{
    hp_ctx_t *ctx = &st->ctx;
    if (http_ctx_run(ctx) == HP_PENDING) {
        st->phase = PH_PENDING;
        hp_conn_set_busy(c, true);
        hp_conn_hold(c, true);
        return;
    }
    http_ctx_complete(ctx);
    http_request_done(c, st);
    if (HP_UNLIKELY(ctx->upgrade))
        http_upgrade(c, st);
}

static void body_done(hp_conn_t *c, http_state_t *st)
{
    if (st->sink == SINK_HANDLER) {
        /* The head may have moved while the body came in (compaction):
         * match again so the parameters point at it where it is now. */
        hp_ctx_t *ctx = &st->ctx;
        size_t plen;
        const char *path = hp_ctx_path(ctx, &plen);
        hp_router_match(http_worker(c)->cfg->routes->router, ctx->match_method, path, plen,
                        &ctx->match);
        st->phase = PH_HEAD;
        run_handler(c, st);
        return;
    }
    body_free(c, st);
    if (st->resp_flags & HP_RESP_WRITER_F_CLOSE)
        hp_conn_close_after_write(c);
    next_request(c, st);
}

/* Feeds buffered bytes (behind the kept head) to the body being read. */
static void body_feed(hp_conn_t *c, http_state_t *st)
{
    uint32_t off = st->head_len;
    char *buf = hp_conn_data(c) + off;
    uint32_t len = hp_conn_data_len(c) - off;
    bool keep = st->sink == SINK_HANDLER;
    if (st->req.flags & HP_HTTP_F_CHUNKED) {
        size_t used = 0, out = 0;
        int r = hp_http_chunked_decode(&st->chunked, buf, len, &used, &out);
        if (r < 0) {
            reject(c, -r);
            return;
        }
        if (keep && out && !body_append(c, st, buf, out)) {
            body_oom(c);
            return;
        }
        hp_conn_cut(c, off, (uint32_t)used);
        if (r == 1)
            body_done(c, st);
        return;
    }
    uint32_t n = st->body_left < len ? (uint32_t)st->body_left : len;
    if (keep && !body_append(c, st, buf, n)) {
        body_oom(c);
        return;
    }
    st->body_left -= n;
    hp_conn_cut(c, off, n);
    if (st->body_left == 0)
        body_done(c, st);
}

/* Sends "100 Continue" at once when the client waits for it before
 * sending the body. */
static void send_continue(hp_conn_t *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    http_count_response(c, 100, 0);
    if (hp_conn_write(c, cont, sizeof cont - 1) == 0)
        hp_conn_flush(c);
}

/* Enters the body phase (or finishes at once for an empty body). For the
 * handler's sink the head stays; a discarded body's head goes now. */
static void start_body(hp_conn_t *c, http_state_t *st, int sink)
{
    const hp_http_req_t *req = &st->req;
    st->sink = (uint8_t)sink;
    if (sink == SINK_DISCARD) {
        hp_conn_consume(c, st->head_len);
        st->head_len = 0;
    } else if (!body_begin(c, st)) {
        body_oom(c);
        return;
    }
    if (req->flags & HP_HTTP_F_CHUNKED) {
        hp_http_chunked_init(&st->chunked, http_worker(c)->cfg->limits.max_body);
    } else {
        st->body_left = req->content_length;
        if (st->body_left == 0) {
            body_done(c, st);
            return;
        }
    }
    st->phase = PH_BODY;
    hp_conn_set_busy(c, true);
    if (sink == SINK_HANDLER && (req->flags & HP_HTTP_F_EXPECT_CONTINUE) &&
        hp_conn_data_len(c) == st->head_len && req->version_minor >= 1)
        send_continue(c);
}

void http_request_done(hp_conn_t *c, http_state_t *st)
{
    hp_conn_consume(c, st->head_len);
    st->head_len = 0;
    body_free(c, st);
    if (st->resp_flags & HP_RESP_WRITER_F_CLOSE)
        hp_conn_close_after_write(c);
    next_request(c, st);
}

bool http_upgrade(hp_conn_t *c, http_state_t *st)
{
    const hp_proto_t *proto = st->ctx.upgrade;
    void *udata = st->ctx.upgrade_udata;
    st->ctx.upgrade = NULL;
    /* Middleware may have answered something else after all; a connection
     * on its way out goes nowhere. */
    if (st->ctx.status != 101 || (c->flags & (HP_CONN_F_CLOSED | HP_CONN_F_CLOSE_AFTER)))
        return false;
    hp_worker_stat_add(&http_worker(c)->stats.upgrades, 1);
    hp_conn_switch(c, proto, udata); /* closes the connection if it fails */
    return true;
}

enum { TO_STATUS = 0, TO_FILE, TO_HANDLER };

/* Answers a request no handler takes (a static file, or a status such as
 * 404, 405 or the answer to OPTIONS *) and deals with a body it carries. */
static void answer_plain(hp_conn_t *c, http_state_t *st, int to, int status, const char *extra,
                         const char *target, uint32_t tlen, bool has_body, bool keep)
{
    if (to == TO_FILE)
        http_serve_file(c, st, target, tlen);
    else
        http_respond_status(c, st, status, extra);
    if (has_body && keep) {
        start_body(c, st, SINK_DISCARD);
        return;
    }
    http_request_done(c, st);
}

static void dispatch(hp_conn_t *c, http_state_t *st, uint32_t head_len)
{
    const hp_http_req_t *req = &st->req;
    const char *start = hp_conn_data(c);
    const char *target = start + req->target.off;
    uint32_t tlen = req->target.len;
    int m = req->method_id;
    const hp_http_config_t *cfg = http_worker(c)->cfg;

    hp_worker_stat_add(&http_worker(c)->stats.requests, 1);
    st->head_len = head_len;
    bool keep = hp_http_req_keep_alive(req) && !c->worker->draining && cfg->keepalive &&
                (cfg->max_requests == 0 || ++c->nreq < cfg->max_requests);
    bool has_body = (req->flags & HP_HTTP_F_CHUNKED) || req->content_length > 0;
    /* The target's form and grammar (target.c): anything else is a 400,
     * and a well-formed CONNECT is a method this server does not
     * implement, answered and closed like any other (RFC 9110 §9.1). */
    hp_target_t tg;
    if (HP_UNLIKELY(hp_target_parse(target, tlen, m, &tg) < 0)) {
        reject(c, 400);
        return;
    }
    if (HP_UNLIKELY(tg.form == HP_TARGET_AUTHORITY)) {
        reject(c, 501);
        return;
    }
    bool asterisk = tg.form == HP_TARGET_ASTERISK;
    /* Route and serve by the path and what follows it. An absolute-form
     * target's authority is not consulted (there are no virtual hosts),
     * and one without a path means "/" (RFC 9110 §4.2.3), which is not in
     * the buffer. */
    uint32_t plen = tg.path.len;
    if (HP_UNLIKELY(tg.form == HP_TARGET_ABSOLUTE)) {
        if (plen) {
            target += tg.path.off;
            tlen -= tg.path.off;
        } else {
            target = "/";
            tlen = plen = 1;
        }
    }
    st->head_only = m == HP_METHOD_HEAD;

    /* Where the request goes: a handler, a static file, or a status. */
    hp_ctx_t *ctx = &st->ctx;
    int to = TO_STATUS, status = 404;
    const char *extra = NULL;
    char allow[96];
    if (asterisk) { /* OPTIONS *: what the server as a whole supports */
        status = 200;
        extra = "Allow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\n";
    } else if (cfg->routes && cfg->routes->router) {
        int r = hp_router_match(cfg->routes->router, hp_method_router_bit(m), target, plen, &ctx->match);
        if (r == 200) {
            to = TO_HANDLER;
        } else if (r == 405) {
            status = 405;
            memcpy(allow, "Allow: ", 7);
            size_t n = hp_router_allow_str(ctx->match.allow, allow + 7, sizeof allow - 10);
            memcpy(allow + 7 + n, "\r\n", 3);
            extra = allow;
        }
    }
    if (to == TO_STATUS && status == 404 && (cfg->root_fd >= 0 || cfg->nlocations)) {
        if (m == HP_METHOD_GET || m == HP_METHOD_HEAD) {
            to = TO_FILE;
        } else {
            status = 405;
            extra = "Allow: GET, HEAD\r\n";
        }
    }

    /* A client that waits for "100 Continue" before sending a body nobody
     * wants will never send it: answer and close instead of waiting. */
    if (has_body && to != TO_HANDLER && (req->flags & HP_HTTP_F_EXPECT_CONTINUE))
        keep = false;
    st->resp_flags = (keep ? (req->version_minor == 0 ? HP_RESP_WRITER_F_KEEP_ALIVE : 0)
                           : HP_RESP_WRITER_F_CLOSE) |
                     (st->head_only ? HP_RESP_WRITER_F_NO_BODY : 0);

    if (to != TO_HANDLER) {
        answer_plain(c, st, to, status, extra, target, tlen, has_body, keep);
        return;
    }
    ctx->match_method = hp_method_router_bit(m);
    /* An absolute-form target without a path ("http://host") routes as
     * "/", which is not in the buffer: HTTP_PATH_ROOT stands for it. */
    ctx->path_off = tg.path.len ? (uint16_t)(req->target.off + tg.path.off) : HTTP_PATH_ROOT;
    ctx->path_len = (uint16_t)plen;
    /* The query comes from the target as received: an absolute-form one
     * without a path ("http://h?q") still has it. */
    ctx->query_off = tg.query.off ? (uint16_t)(req->target.off + tg.query.off) : 0;
    ctx->query_len = tg.query.len;
    http_ctx_start(ctx, c, st);
    if (has_body) {
        start_body(c, st, SINK_HANDLER);
        return;
    }
    run_handler(c, st);
}

void http_resume(hp_conn_t *c)
{
    http_state_t *st = hp_conn_state(c);
    hp_conn_hold(c, false);
    if (st->phase == PH_PENDING)
        return;
    /* Answer what was pipelined behind, then send and read on as a normal
     * turn would. */
    process(c);
    hp_conn_serve(c);
}

/* Arms the connection's one timer for the phase it is in. The header
 * timeout counts from the request's first byte, not from the latest one,
 * so a head trickled in byte by byte still runs out (slowloris); it is
 * re-armed with what is left each time, which also restores it after the
 * write timer held the slot. */
static void set_timer(hp_conn_t *c, http_state_t *st, const hp_http_config_t *cfg)
{
    if (st->phase == PH_PENDING) {
        hp_conn_set_timer(c, 0); /* the handler owns the deadline */
    } else if (st->phase == PH_BODY) {
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
    const hp_http_config_t *cfg = http_worker(c)->cfg;
    http_worker(c)->batch_ns = 0; /* responses completed in this call share one clock read */
    while (!(c->flags & (HP_CONN_F_CLOSED | HP_CONN_F_CLOSE_AFTER | HP_CONN_F_PAUSED |
                         HP_CONN_F_SWITCHED)) &&
           st->phase != PH_PENDING) {
        uint32_t len = hp_conn_data_len(c);
        if (st->phase == PH_BODY) {
            /* The request head stays in front of the body bytes. */
            if (len == st->head_len)
                break;
            body_feed(c, st);
            continue;
        }
        if (len == 0)
            break;
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
    /* Upgraded: the state area is the new protocol's now. */
    if (c->flags & (HP_CONN_F_CLOSED | HP_CONN_F_CLOSE_AFTER | HP_CONN_F_SWITCHED))
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
        hp_conn_set_timer(c, http_worker(c)->cfg->keepalive_timeout_ms);
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
    if (!(c->flags & HP_CONN_F_STATE_INIT))
        return;
    http_state_t *st = hp_conn_state(c);
    if (st->phase == PH_PENDING && st->ctx.abort_fn)
        st->ctx.abort_fn(&st->ctx, st->ctx.abort_arg);
    if (st->phase == PH_PENDING)
        http_ctx_release(&st->ctx);
    body_free(c, st);
}

static void on_open(hp_conn_t *c)
{
    /* A connection that never sends a request is idle from the start. */
    hp_conn_set_timer(c, http_worker(c)->cfg->keepalive_timeout_ms);
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
        .name = "http",
        .on_data = on_data,
        .on_drain = on_drain,
        .on_timeout = on_timeout,
        .on_open = on_open,
        .on_close = on_close,
        .worker_init = http_worker_init,
        .worker_fini = http_worker_fini,
        .state_size = (uint32_t)state,
    };
    return 0;
}
