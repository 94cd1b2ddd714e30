/*
 * ctx.c - the handler context: request accessors, the response being
 * built, middleware and handler calls, and writing the response.
 *
 * Central structure: hp_ctx_t (server_int.h), part of the request state in
 * the connection's read chunk. Request strings are offsets from the
 * request's first byte, which stays at the front of the connection's
 * unconsumed bytes for the request's life; the response is assembled in
 * the context and written in one go by http_ctx_complete.
 *
 * Invariant: at most one body is set; setting another releases the first
 * (a body reference's done callback runs exactly once, whatever happens).
 */
#include "hotpath/ctx.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "hotpath/clock.h"
#include "accept_int.h"
#include "encoding_int.h"
#include "hotpath/http_method.h"
#include "rcache_int.h"
#include "resp_writer_int.h"
#include "static_int.h"
#include "net/worker_int.h"
#include "server_int.h"
#include "tchar_int.h"

static inline const char *req_base(const hp_ctx_t *ctx)
{
    return hp_conn_data(ctx->conn);
}

/* ---- the request ---- */

const char *hp_ctx_method(const hp_ctx_t *ctx, size_t *len)
{
    *len = ctx->st->req.method.len;
    return req_base(ctx) + ctx->st->req.method.off;
}

uint32_t hp_ctx_method_bit(const hp_ctx_t *ctx)
{
    return ctx->match_method;
}

const char *hp_ctx_path(const hp_ctx_t *ctx, size_t *len)
{
    *len = ctx->path_len;
    return ctx->path_off == HTTP_PATH_ROOT ? "/" : req_base(ctx) + ctx->path_off;
}

const char *hp_ctx_query_string(const hp_ctx_t *ctx, size_t *len)
{
    *len = ctx->query_len;
    return req_base(ctx) + ctx->query_off;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes a query component ('+' is a space, %XX a byte) into out. */
static int query_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return -EINVAL;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o == cap)
            return -ENOSPC;
        out[o++] = ch;
    }
    return (int)o;
}

int hp_ctx_query(const hp_ctx_t *ctx, const char *name, char *out, size_t cap)
{
    size_t qlen, nlen = strlen(name);
    const char *q = hp_ctx_query_string(ctx, &qlen);
    size_t i = 0;
    while (i < qlen) {
        size_t end = i;
        while (end < qlen && q[end] != '&' && q[end] != ';')
            end++;
        const char *eq = memchr(q + i, '=', end - i);
        size_t klen = eq ? (size_t)(eq - (q + i)) : end - i;
        /* Names compare as given; a name needing escapes is rare enough
         * that callers pass it the way clients send it. */
        if (klen == nlen && memcmp(q + i, name, nlen) == 0) {
            if (!eq)
                return 0;
            return query_decode(eq + 1, (size_t)(q + end - eq - 1), out, cap);
        }
        i = end + 1;
    }
    return -1;
}

const char *hp_ctx_header(const hp_ctx_t *ctx, const char *name, size_t *len)
{
    const http_state_t *st = ctx->st;
    const char *base = req_base(ctx);
    int i = hp_http_find_field(&st->req, st->fields, base, name, strlen(name));
    if (i < 0)
        return NULL;
    *len = st->fields[i].value.len;
    return base + st->fields[i].value.off;
}

static const hp_route_param_t *find_param(const hp_ctx_t *ctx, const char *name)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < ctx->match.nparams; i++) {
        const hp_route_param_t *p = &ctx->match.params[i];
        if (p->name_len == n && memcmp(p->name, name, n) == 0)
            return p;
    }
    return NULL;
}

const char *hp_ctx_param(const hp_ctx_t *ctx, const char *name, size_t *len)
{
    const hp_route_param_t *p = find_param(ctx, name);
    if (!p)
        return NULL;
    *len = p->len;
    return p->value;
}

int64_t hp_ctx_param_int(const hp_ctx_t *ctx, const char *name, int64_t fallback)
{
    const hp_route_param_t *p = find_param(ctx, name);
    return p && p->type == HP_ROUTE_PARAM_INT ? p->i : fallback;
}

const char *hp_ctx_body(const hp_ctx_t *ctx, size_t *len)
{
    *len = ctx->st->body_len;
    return ctx->st->body;
}

const char *hp_ctx_route(const hp_ctx_t *ctx)
{
    return ctx->match.pattern;
}

struct hp_worker *hp_ctx_worker(const hp_ctx_t *ctx)
{
    return ctx->conn->worker;
}

/* ---- the response ---- */

void hp_ctx_status(hp_ctx_t *ctx, int status)
{
    ctx->status = status;
}

static bool header_safe(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* A field name is a token (RFC 9110 §5.1). */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    while (*s && tchar_tbl[(uint8_t)*s])
        s++;
    return !*s;
}

/* The fields that frame the message belong to the server. */
static bool is_framing(const char *name)
{
    return !strcasecmp(name, "content-length") || !strcasecmp(name, "transfer-encoding") ||
           !strcasecmp(name, "connection");
}

/* Appends "name: value\r\n" to the response's headers. */
static int add_header(hp_ctx_t *ctx, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    if (ctx->hdr_len + nl + vl + 4 > HP_CTX_HEADER_BYTES)
        return -ENOSPC;
    char *p = ctx->hdrs + ctx->hdr_len;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 3); /* keeps the NUL */
    ctx->hdr_len = (uint16_t)(ctx->hdr_len + nl + vl + 4);
    return 0;
}

int hp_ctx_set_header(hp_ctx_t *ctx, const char *name, const char *value)
{
    if (!is_token(name) || is_framing(name) || !header_safe(value))
        return -EINVAL;
    return add_header(ctx, name, value);
}

/* True when a `name` field of the request lists `token` among its
 * comma-separated elements (case-insensitive; with `versioned`, an element
 * "token/version" matches too, as Upgrade's protocol names have them). */
static bool request_lists(const hp_ctx_t *ctx, const char *name, const char *token,
                          bool versioned)
{
    const http_state_t *st = ctx->st;
    const char *base = req_base(ctx);
    size_t nlen = strlen(name), tlen = strlen(token);
    for (uint32_t i = 0; i < st->req.nfields; i++) {
        const hp_http_field_t *f = &st->fields[i];
        if (f->name.len != nlen || strncasecmp(base + f->name.off, name, nlen) != 0)
            continue;
        const char *v = base + f->value.off, *end = v + f->value.len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
                v++;
            const char *e = v;
            while (e < end && *e != ',')
                e++;
            size_t n = (size_t)(e - v);
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            if ((n == tlen || (versioned && n > tlen && v[tlen] == '/')) &&
                strncasecmp(v, token, tlen) == 0)
                return true;
            v = e;
        }
    }
    return false;
}

int hp_ctx_upgrade(hp_ctx_t *ctx, const char *token, const struct hp_proto *proto, void *udata)
{
    if (!proto || !proto->on_data || !is_token(token))
        return -EINVAL;
    const http_state_t *st = ctx->st;
    /* An upgrade is an HTTP/1.1 affair (RFC 9110 §7.8): the client asks
     * with Upgrade naming the protocol and Connection naming Upgrade, on a
     * connection that stays open, and HEAD cannot switch anything. */
    if (st->req.version_minor < 1 || st->head_only || (st->resp_flags & HP_RESP_WRITER_F_CLOSE) ||
        !request_lists(ctx, "connection", "upgrade", false) ||
        !request_lists(ctx, "upgrade", token, true))
        return -EPERM;
    int r = add_header(ctx, "Connection", "upgrade");
    if (r == 0)
        r = add_header(ctx, "Upgrade", token);
    if (r < 0)
        return r;
    ctx->status = 101;
    ctx->upgrade = proto;
    ctx->upgrade_udata = udata;
    return 0;
}

/* Lets go of the body set so far, on every path. */
static void body_drop(hp_ctx_t *ctx)
{
    switch (ctx->body_kind) {
    case BODY_CHUNK:
        hp_conn_chunk_put(ctx->conn, ctx->done_arg);
        break;
    case BODY_HEAP:
        hp_free(ctx->done_arg);
        break;
    case BODY_REF:
        if (ctx->done)
            ctx->done(ctx->done_arg);
        break;
    case BODY_FILE:
        close(ctx->fd);
        break;
    default:
        break;
    }
    ctx->body_kind = BODY_NONE;
    ctx->body_len = 0;
}

int hp_ctx_send(hp_ctx_t *ctx, const char *ctype, const void *data, size_t len)
{
    body_drop(ctx);
    ctx->ctype = ctype;
    ctx->body_len = len;
    if (len <= HTTP_CTX_INLINE) {
        if (len)
            memcpy(ctx->inline_body, data, len);
        ctx->body = ctx->inline_body;
        ctx->body_kind = BODY_INLINE;
        return 0;
    }
    void *buf = NULL;
    if (len <= hp_conn_chunk_size(ctx->conn) && (buf = hp_conn_chunk_get(ctx->conn))) {
        ctx->body_kind = BODY_CHUNK;
    } else if ((buf = hp_malloc(len))) {
        ctx->body_kind = BODY_HEAP;
    } else {
        ctx->body_len = 0;
        return -ENOMEM;
    }
    memcpy(buf, data, len);
    ctx->body = buf;
    ctx->done_arg = buf;
    return 0;
}

int hp_ctx_send_ref(hp_ctx_t *ctx, const char *ctype, const void *data, size_t len,
                    void (*done)(void *arg), void *arg)
{
    body_drop(ctx);
    ctx->ctype = ctype;
    ctx->body = data;
    ctx->body_len = len;
    ctx->done = done;
    ctx->done_arg = arg;
    ctx->body_kind = BODY_REF;
    return 0;
}

int hp_ctx_send_file(hp_ctx_t *ctx, const char *ctype, int fd, uint64_t offset, uint64_t len)
{
    body_drop(ctx);
    ctx->ctype = ctype;
    ctx->fd = fd;
    ctx->file_off = offset;
    ctx->body_len = len;
    ctx->body_kind = BODY_FILE;
    return 0;
}

void hp_ctx_send_status(hp_ctx_t *ctx, int status)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, hp_resp_writer_reason(status));
    ctx->status = status;
    hp_ctx_send(ctx, "text/plain", body, (size_t)n);
}

void hp_ctx_on_abort(hp_ctx_t *ctx, void (*fn)(hp_ctx_t *ctx, void *arg), void *arg)
{
    ctx->abort_fn = fn;
    ctx->abort_arg = arg;
}

/* ---- running and writing ---- */

/* Counts the response in its route's shard and records its latency: from
 * the start of the loop iteration that dispatched the request (read once
 * per iteration) to now (one clock read per batch of responses). */
static void http_ctx_record(hp_ctx_t *ctx)
{
    hp_http_worker_t *hw = http_worker(ctx->conn);
    const hp_http_routes_t *routes = hw->cfg->routes;
    if (!hw->routes)
        return;
    uint32_t pid = routes->regs[(uintptr_t)ctx->match.udata].pattern_id;
    hp_http_route_stats_t *rs = &hw->routes[pid];
    int cls = ctx->status / 100;
    uint8_t m = ctx->st->req.method_id < HP_METHOD_ROUTED ? ctx->st->req.method_id : 0;
    uint64_t *slot = &rs->responses[m][cls >= 1 && cls <= 5 ? cls : 5];
    __atomic_store_n(slot, *slot + 1, __ATOMIC_RELAXED);
    /* One clock read per batch of responses (hw->batch_ns is cleared
     * whenever a new batch starts): pipelined responses completed together
     * share it. The loop's clock, as for start_ns, so that both ends of
     * the interval come from the same source when a test sets one. */
    if (!hw->batch_ns)
        hw->batch_ns = hp_loop_clock_ns(&ctx->conn->worker->loop);
    uint64_t now = hw->batch_ns;
    hp_hist_record(&rs->latency, now > ctx->start_ns ? now - ctx->start_ns : 0);
}

void http_ctx_start(hp_ctx_t *ctx, hp_conn_t *c, http_state_t *st)
{
    /* Only what a response needs is reset: the context is kilobytes and
     * this runs for every request. */
    ctx->conn = c;
    ctx->st = st;
    ctx->start_ns = c->worker->loop.now_ns;
    ctx->status = 200;
    ctx->ctype = NULL;
    ctx->body_kind = BODY_NONE;
    ctx->body_len = 0;
    ctx->hdr_len = 0;
    ctx->hdrs[0] = '\0';
    ctx->abort_fn = NULL;
    ctx->cache = CACHE_NONE;
    ctx->compressed = false;
    ctx->upgrade = NULL;
}

static bool cache_lookup(hp_ctx_t *ctx, hp_http_worker_t *hw, const hp_http_reg_t *reg);

int http_ctx_run(hp_ctx_t *ctx)
{
    const hp_http_routes_t *routes = http_worker(ctx->conn)->cfg->routes;
    /* Onion order: the `after` of a middleware runs only if its `before`
     * let the request through, so one that answers early does not also
     * decorate its own answer. */
    ctx->mw_passed = 0;
    for (uint32_t i = 0; i < routes->nmw; i++) {
        const hp_http_mw_t *mw = &routes->mw[i];
        if (mw->before && mw->before(ctx, mw->udata) == HP_DONE)
            return HP_DONE;
        ctx->mw_passed = (uint8_t)(i + 1);
    }
    const hp_http_reg_t *reg = &routes->regs[(uintptr_t)ctx->match.udata];
    hp_http_worker_t *hw = http_worker(ctx->conn);
    if (HP_UNLIKELY(hw->rcache != NULL) && cache_lookup(ctx, hw, reg))
        return HP_DONE;
    return reg->fn(ctx, reg->udata) == HP_PENDING ? HP_PENDING : HP_DONE;
}

/* The value of a response header the handler set (its length in *len),
 * or NULL. */
static const char *resp_header(const hp_ctx_t *ctx, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (const char *p = ctx->hdrs; *p;) {
        const char *e = strstr(p, "\r\n");
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            *len = e ? (size_t)(e - v) : strlen(v);
            return v;
        }
        if (!e)
            break;
        p = e + 2;
    }
    return NULL;
}

static bool has_header(const hp_ctx_t *ctx, const char *name)
{
    size_t len;
    return resp_header(ctx, name, &len) != NULL;
}

/* Compresses a compressible body on the fly (gzip, or brotli when the
 * client prefers it), keeping the result only if it saves 10 %. */
static HP_COLD void compress_body(hp_ctx_t *ctx, const hp_http_config_t *cfg)
{
    ctx->compressed = true; /* once per response: before caching it, or on a cache hit */
    if (ctx->body_kind == BODY_FILE || ctx->body_kind == BODY_NONE || !ctx->ctype ||
        !hp_encoding_type_ok(ctx->ctype) || has_header(ctx, "Content-Encoding"))
        return;
    /* The answer depends on Accept-Encoding from here on, whatever it is. */
    if (hp_ctx_set_header(ctx, "Vary", "Accept-Encoding") < 0)
        return;
    size_t aelen = 0;
    const char *ae = hp_ctx_header(ctx, "Accept-Encoding", &aelen);
    unsigned enc = ae ? hp_accept_encoding(ae, aelen, HP_ENC_GZIP | HP_ENC_BR) : HP_ENC_IDENTITY;
    if (enc != HP_ENC_GZIP && enc != HP_ENC_BR)
        return;
    size_t cap = hp_encoding_bound(enc, ctx->body_len);
    bool pooled = cap <= hp_conn_chunk_size(ctx->conn);
    void *out = pooled ? hp_conn_chunk_get(ctx->conn) : NULL;
    if (!out) {
        pooled = false;
        if (!(out = hp_malloc(cap ? cap : 1)))
            return;
    }
    ssize_t n = hp_encoding_compress(enc, cfg->compress_level, ctx->body, ctx->body_len, out, cap);
    if (n <= 0) {
        if (pooled)
            hp_conn_chunk_put(ctx->conn, out);
        else
            hp_free(out);
        return;
    }
    const char *ctype = ctx->ctype;
    body_drop(ctx);
    ctx->ctype = ctype;
    ctx->body = out;
    ctx->body_len = (uint64_t)n;
    ctx->done_arg = out;
    ctx->body_kind = pooled ? BODY_CHUNK : BODY_HEAP;
    hp_ctx_set_header(ctx, "Content-Encoding", enc == HP_ENC_BR ? "br" : "gzip");
}

/* The cheap tests inline: most bodies are small. */
static inline void maybe_compress(hp_ctx_t *ctx)
{
    const hp_http_config_t *cfg = http_worker(ctx->conn)->cfg;
    if (!ctx->compressed && cfg->compress_level && ctx->body_len >= cfg->compress_min)
        compress_body(ctx, cfg);
}

/* ---- response cache ----
 *
 * The cache sits between the middleware and the handler: `before`
 * middleware runs for every request (an authorisation check cannot be
 * skipped by a cached answer), then a hit answers instead of the handler,
 * and `after` middleware decorates hits and misses alike. What is stored is
 * the handler's response, compressed already, without what `after` adds. */

/* Room for a key: the method, the path and query the request line limit
 * allows, framing. Longer targets are simply not cached. */
#define CACHE_KEY_MAX 4096

/* The key: method, path, query and the coding Accept-Encoding picks (the
 * one header our responses vary on). */
static ssize_t cache_key(const hp_ctx_t *ctx, char *buf, size_t cap, const char *method,
                         size_t mlen, char coding)
{
    size_t plen, qlen;
    const char *path = hp_ctx_path(ctx, &plen);
    const char *query = hp_ctx_query_string(ctx, &qlen);
    const char *vary[1] = {&coding};
    size_t vlen[1] = {1};
    return hp_rcache_key(buf, cap, method, mlen, path, plen, query, qlen, vary, vlen, 1);
}

static char request_coding(const hp_ctx_t *ctx)
{
    size_t aelen = 0;
    const char *ae = hp_ctx_header(ctx, "Accept-Encoding", &aelen);
    unsigned enc = ae ? hp_accept_encoding(ae, aelen, HP_ENC_GZIP | HP_ENC_BR) : HP_ENC_IDENTITY;
    return enc == HP_ENC_BR ? 'b' : enc == HP_ENC_GZIP ? 'g' : enc == HP_ENC_IDENTITY ? 'i' : '-';
}

/* Answers from the cache when it can: requests of routes that opted in
 * or whose answers came with a max-age before. Returns true on a hit. */
static HP_COLD bool cache_lookup(hp_ctx_t *ctx, hp_http_worker_t *hw, const hp_http_reg_t *reg)
{
    int m = ctx->st->req.method_id;
    if (m != HP_METHOD_GET && m != HP_METHOD_HEAD) {
        if (m != HP_METHOD_OPTIONS)
            ctx->cache = CACHE_UNSAFE;
        return false;
    }
    /* A route never seen cacheable is offered to the cache (its answer
     * may say max-age) but not looked up, so it counts no misses. */
    ctx->cache = CACHE_MISS;
    if (!reg->cache && !(hw->routes && hw->routes[reg->pattern_id].max_age_seen))
        return false;
    hp_rcache_t *rc = hw->rcache;
    char key[CACHE_KEY_MAX];
    size_t mlen;
    const char *method = hp_ctx_method(ctx, &mlen);
    ssize_t klen = cache_key(ctx, key, sizeof key, method, mlen, request_coding(ctx));
    if (klen < 0)
        return false;
    hp_rcache_entry_t *e = hp_rcache_get(rc, key, (size_t)klen, hp_conn_now(ctx->conn));
    http_cache_publish(hw);
    if (!e)
        return false;
    ctx->cache = CACHE_HIT;
    ctx->status = e->status;
    ctx->ctype = e->ctype[0] ? e->ctype : NULL;
    memcpy(ctx->hdrs, e->headers, e->headers_len + 1); /* stored only if it fit */
    ctx->hdr_len = (uint16_t)e->headers_len;
    ctx->body = e->body;
    ctx->body_len = e->body_len;
    ctx->body_kind = BODY_REF;
    ctx->done = hp_rcache_release_cb; /* the reference goes with the body */
    ctx->done_arg = e;
    ctx->compressed = true;
    return true;
}

/* Offers a missed request's response to the cache: a 200 of a route that
 * opted in or that says Cache-Control: max-age, and nothing that forbids
 * it (no-store, private, no-cache, Set-Cookie). */
static HP_COLD void cache_store(hp_ctx_t *ctx, hp_rcache_t *rc, const hp_http_reg_t *reg)
{
    if (ctx->status != 200 || ctx->body_kind == BODY_FILE || has_header(ctx, "Set-Cookie"))
        return;
    size_t cclen = 0;
    const char *cc = resp_header(ctx, "Cache-Control", &cclen);
    int64_t max_age = cc ? hp_rcache_max_age_ms(cc, cclen) : 0;
    if (max_age < 0 || (max_age == 0 && !reg->cache))
        return;
    uint64_t ttl = max_age > 0 ? (uint64_t)max_age : reg->cache_ttl_ms;
    hp_http_worker_t *hw = http_worker(ctx->conn);
    if (max_age > 0 && hw->routes)
        hw->routes[reg->pattern_id].max_age_seen = true;
    maybe_compress(ctx); /* the compressed form is what hits will send */
    char key[CACHE_KEY_MAX];
    size_t mlen;
    const char *method = hp_ctx_method(ctx, &mlen);
    ssize_t klen = cache_key(ctx, key, sizeof key, method, mlen, request_coding(ctx));
    if (klen < 0)
        return;
    const char *ctype = ctx->ctype ? ctx->ctype : "";
    hp_rcache_put(rc, key, (size_t)klen, 200, ctype, ctx->hdrs, ctx->hdr_len,
                  ctx->body_len ? ctx->body : "", ctx->body_len, ttl, hp_conn_now(ctx->conn));
    http_cache_publish(hw);
}

/* A successful unsafe request (POST, PUT, DELETE, PATCH) invalidates what
 * is cached for its path (RFC 9111 §4.4): every method and coding of the
 * query-less target. */
static HP_COLD void cache_invalidate(hp_ctx_t *ctx, hp_rcache_t *rc)
{
    if (ctx->status >= 400)
        return;
    static const uint8_t methods[] = {HP_METHOD_GET, HP_METHOD_HEAD};
    static const char codings[] = {'i', 'g', 'b', '-'};
    size_t plen;
    const char *path = hp_ctx_path(ctx, &plen);
    for (size_t m = 0; m < 2; m++)
        for (size_t c = 0; c < sizeof codings; c++) {
            char key[CACHE_KEY_MAX];
            const char *vary[1] = {&codings[c]};
            size_t vlen[1] = {1};
            const hp_method_info_t *mi = &hp_method_table[methods[m]];
            ssize_t klen = hp_rcache_key(key, sizeof key, mi->name, mi->len, path, plen, "", 0,
                                         vary, vlen, 1);
            if (klen > 0)
                hp_rcache_remove(rc, key, (size_t)klen);
        }
}

void http_ctx_complete(hp_ctx_t *ctx)
{
    hp_conn_t *c = ctx->conn;
    http_state_t *st = ctx->st;
    hp_http_worker_t *hw = http_worker(c);
    const hp_http_routes_t *routes = hw->cfg->routes;
    if (HP_UNLIKELY(ctx->cache == CACHE_MISS) && hw->rcache)
        cache_store(ctx, hw->rcache, &routes->regs[(uintptr_t)ctx->match.udata]);
    else if (HP_UNLIKELY(ctx->cache == CACHE_UNSAFE) && hw->rcache)
        cache_invalidate(ctx, hw->rcache);
    for (uint32_t i = ctx->mw_passed; i-- > 0;) {
        const hp_http_mw_t *mw = &routes->mw[i];
        if (mw->after)
            mw->after(ctx, mw->udata);
    }
    maybe_compress(ctx);
    http_count_response(c, ctx->status, st->head_only ? 0 : ctx->body_len);
    http_ctx_record(ctx);
    if (hp_resp_writer_head(c, http_date(c), ctx->status, ctx->ctype, ctx->body_len,
                           ctx->hdr_len ? ctx->hdrs : NULL, st->resp_flags) < 0) {
        body_drop(ctx);
        hp_conn_close(c);
        return;
    }
    int r = 0;
    if (st->head_only || ctx->body_len == 0) {
        body_drop(ctx);
        return;
    }
    /* Ownership of the body passes to the output queue on every path. */
    switch (ctx->body_kind) {
    case BODY_INLINE:
        r = hp_conn_write(c, ctx->body, (uint32_t)ctx->body_len);
        break;
    case BODY_CHUNK:
        r = hp_conn_write_chunk(c, ctx->done_arg, ctx->body, ctx->body_len);
        break;
    case BODY_HEAP:
        r = hp_conn_write_ref(c, ctx->body, ctx->body_len, true);
        break;
    case BODY_REF:
        r = hp_conn_write_ref_cb(c, ctx->body, ctx->body_len, ctx->done, ctx->done_arg);
        break;
    case BODY_FILE:
        r = hp_conn_write_file(c, ctx->fd, ctx->file_off, ctx->body_len);
        break;
    default:
        break;
    }
    ctx->body_kind = BODY_NONE;
    if (r < 0)
        hp_conn_close(c);
}

void http_ctx_release(hp_ctx_t *ctx)
{
    body_drop(ctx);
}

void hp_ctx_finish(hp_ctx_t *ctx)
{
    hp_conn_t *c = ctx->conn;
    http_state_t *st = ctx->st;
    if (st->phase != PH_PENDING)
        return;
    st->phase = PH_HEAD;
    http_worker(c)->batch_ns = 0; /* a new batch: this response alone */
    http_ctx_complete(ctx);
    if (c->flags & HP_CONN_F_CLOSED)
        return;
    http_request_done(c, st);
    if (HP_UNLIKELY(ctx->upgrade) && http_upgrade(c, st)) {
        hp_conn_serve(c); /* the new protocol hears what waits, if anything */
        return;
    }
    http_resume(c);
}
