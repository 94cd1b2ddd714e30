/*
 * middleware.c - ready-made middleware: request IDs, CORS, and a handler
 * for plain OPTIONS requests.
 *
 * Central data: none per request beyond the response headers in the
 * context; the request ID generator keeps a per-process random prefix and
 * thread sequence (written once, lock-free) and a per-thread counter.
 *
 * Invariant: a generated request ID is unique within the process. Each
 * thread that generates IDs takes a distinct sequence number once and
 * counts in its own range (sequence << ID_SEQ_SHIFT), so no two threads,
 * not even workers with the same id in apps run one after another, ever
 * produce the same counter value; the worker id in the ID is there for
 * people reading logs, not for uniqueness.
 */
#include "hotpath/middleware.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "hotpath/common.h"
#include "hotpath/router.h"
#include "net/worker_int.h"
#include "server_int.h"

/* ---- request ID ---- */

/* A thread counts 2^40 IDs (a million a second for twelve days) in its own
 * range before it would run into the next thread's. */
#define ID_SEQ_SHIFT 40
#define ID_PREFIX_SET (UINT64_C(1) << 32)

/* The process-wide parts. These are the only globals of the module and
 * they are process identity, not state: the prefix is written once (the
 * first thread to publish wins, the others adopt its value), the sequence
 * only ever hands out numbers. Neither takes a lock. */
static _Atomic uint64_t g_prefix;   /* ID_PREFIX_SET | 32 random bits; 0: not yet */
static _Atomic uint32_t g_threads;  /* thread sequence numbers handed out */

/* This thread's next counter value; 0: the thread has not started. Worker
 * threads own one connection's requests end to end, so a thread-local
 * counter is per-worker state without a slot in the worker. */
static _Thread_local uint64_t t_next;

static HP_COLD uint32_t prefix_init(void)
{
    uint32_t r = 0;
    ssize_t n;
    do {
        n = getrandom(&r, sizeof r, GRND_NONBLOCK);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof r) {
        /* No entropy yet (very early boot) or no getrandom: the time and
         * pid still tell processes apart in practice. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec * 2654435761u ^ (uint32_t)getpid() << 16;
    }
    uint64_t want = ID_PREFIX_SET | r, expect = 0;
    if (!atomic_compare_exchange_strong(&g_prefix, &expect, want))
        return (uint32_t)expect; /* another thread was first */
    return r;
}

static inline uint32_t prefix_get(void)
{
    uint64_t p = atomic_load_explicit(&g_prefix, memory_order_relaxed);
    return HP_LIKELY(p) ? (uint32_t)p : prefix_init();
}

static const char hexdig[] = "0123456789abcdef";

/* Writes "<prefix>-w<worker>-<counter>" and a NUL into out (at most
 * 8 + 2 + 10 + 1 + 16 + 1 = 38 bytes). Returns the length. */
static size_t id_make(const hp_ctx_t *ctx, char *out)
{
    if (HP_UNLIKELY(t_next == 0))
        t_next = ((uint64_t)atomic_fetch_add(&g_threads, 1) << ID_SEQ_SHIFT) + 1;
    uint64_t n = t_next++;
    uint32_t prefix = prefix_get();
    const struct hp_worker *w = hp_ctx_worker(ctx);
    uint32_t wid = w ? w->id : 0;

    char *p = out;
    for (int s = 28; s >= 0; s -= 4)
        *p++ = hexdig[prefix >> s & 0xf];
    *p++ = '-';
    *p++ = 'w';
    char dec[10];
    int nd = 0;
    do {
        dec[nd++] = (char)('0' + wid % 10);
        wid /= 10;
    } while (wid);
    while (nd)
        *p++ = dec[--nd];
    *p++ = '-';
    /* At least 12 digits so IDs line up in logs; more once a counter
     * outgrows 48 bits. */
    int digits = 12;
    while (digits < 16 && n >> (4 * digits))
        digits++;
    for (int s = 4 * (digits - 1); s >= 0; s -= 4)
        *p++ = hexdig[n >> s & 0xf];
    *p = '\0';
    return (size_t)(p - out);
}

/* 1..HP_MIDDLEWARE_REQUEST_ID_MAX bytes of [A-Za-z0-9._-]: safe to echo into a
 * header and into logs without quoting. */
static bool id_sane(const char *s, size_t len)
{
    if (len == 0 || len > HP_MIDDLEWARE_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

int hp_middleware_request_id(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    char id[HP_MIDDLEWARE_REQUEST_ID_MAX + 1];
    size_t len;
    const char *in = hp_ctx_header(ctx, "X-Request-Id", &len);
    if (in && id_sane(in, len)) {
        memcpy(id, in, len);
        id[len] = '\0';
    } else {
        id_make(ctx, id);
    }
    /* Only -ENOSPC can fail here (the value is sane), when earlier
     * middleware filled the header space: the request goes on without an
     * ID rather than failing. */
    (void)hp_ctx_set_header(ctx, "X-Request-Id", id);
    return HP_NEXT;
}

/* The value of response header `name` (lower case, with its ": ") in the
 * context's "Name: value\r\n" list, or NULL. */
static const char *resp_header(const hp_ctx_t *ctx, const char *name, size_t nlen, size_t *len)
{
    const char *p = ctx->hdrs, *end = ctx->hdrs + ctx->hdr_len;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) >= nlen && strncasecmp(p, name, nlen) == 0) {
            *len = (size_t)(eol - p) - nlen;
            return p + nlen;
        }
        p = eol + 2;
    }
    return NULL;
}

const char *hp_middleware_request_id_of(const hp_ctx_t *ctx, size_t *len)
{
    static const char name[] = "x-request-id: ";
    return resp_header(ctx, name, sizeof name - 1, len);
}

/* ---- CORS ---- */

static bool str_safe(const char *s)
{
    return !s || strpbrk(s, "\r\n") == NULL;
}

int hp_middleware_cors_check(const hp_cors_config_t *cfg)
{
    if (!cfg || !cfg->origins || !cfg->origins[0])
        return -EINVAL;
    for (const char *const *o = cfg->origins; *o; o++)
        if (!**o || !str_safe(*o))
            return -EINVAL;
    if (!str_safe(cfg->methods) || !str_safe(cfg->headers) || !str_safe(cfg->expose))
        return -EINVAL;
    return 0;
}

/* How a request's Origin fares against the configuration. */
enum { ORIGIN_NONE, ORIGIN_DENIED, ORIGIN_ALLOWED };

typedef struct origin_check {
    int verdict;            /* ORIGIN_* */
    const char *value;      /* Access-Control-Allow-Origin to send (NUL-terminated) */
    bool varies;            /* the answer depends on the Origin: send Vary */
} origin_check_t;

/* Longest Origin echoed from the request itself ("*" with credentials);
 * real origins are scheme://host:port, far shorter. */
#define CORS_ORIGIN_MAX 256

/* Decides for the request's Origin; `buf` (CORS_ORIGIN_MAX + 1 bytes)
 * holds the echoed origin when no configured string can stand for it. */
static origin_check_t origin_check(const hp_ctx_t *ctx, const hp_cors_config_t *cfg, char *buf)
{
    origin_check_t oc = {ORIGIN_NONE, NULL, cfg->allow_credentials};
    bool any = false;
    const char *match = NULL;
    size_t olen = 0;
    const char *origin = hp_ctx_header(ctx, "Origin", &olen);
    for (const char *const *o = cfg->origins; o && *o; o++) {
        if ((*o)[0] == '*' && (*o)[1] == '\0')
            any = true;
        else if (origin && !match && strlen(*o) == olen && strncasecmp(*o, origin, olen) == 0)
            match = *o;
    }
    if (!any)
        oc.varies = true;
    if (!origin)
        return oc;
    oc.verdict = ORIGIN_DENIED;
    if (match) {
        /* The configured spelling: the browser compares it byte for byte
         * with its own serialization, which the list is meant to hold. */
        oc.verdict = ORIGIN_ALLOWED;
        oc.value = match;
        if (any && !cfg->allow_credentials) {
            oc.value = "*";
        }
    } else if (any) {
        oc.verdict = ORIGIN_ALLOWED;
        if (!cfg->allow_credentials) {
            oc.value = "*";
        } else if (olen > 0 && olen <= CORS_ORIGIN_MAX && !memchr(origin, '\0', olen)) {
            memcpy(buf, origin, olen);
            buf[olen] = '\0';
            oc.value = buf;
        } else {
            oc.verdict = ORIGIN_DENIED; /* cannot be echoed */
        }
    }
    return oc;
}

static bool is_preflight(const hp_ctx_t *ctx)
{
    size_t len;
    return hp_ctx_method_bit(ctx) == HP_ROUTER_OPTIONS &&
           hp_ctx_header(ctx, "Origin", &len) &&
           hp_ctx_header(ctx, "Access-Control-Request-Method", &len);
}

/* Writes "%u" of v into buf (at least 11 bytes). */
static void u32_str(uint32_t v, char *buf)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *buf++ = tmp[--n];
    *buf = '\0';
}

int hp_middleware_cors_before(hp_ctx_t *ctx, void *udata)
{
    const hp_cors_config_t *cfg = udata;
    if (!is_preflight(ctx))
        return HP_NEXT;
    char buf[CORS_ORIGIN_MAX + 1];
    origin_check_t oc = origin_check(ctx, cfg, buf);
    /* Header space (HP_CTX_HEADER_BYTES) holds every header below for any
     * sane configuration; a failure leaves the browser to refuse the
     * preflight, which is the safe side. */
    if (oc.verdict != ORIGIN_ALLOWED) {
        hp_ctx_send_status(ctx, 403);
        (void)hp_ctx_set_header(ctx, "Vary", "Origin");
        return HP_DONE;
    }
    hp_ctx_status(ctx, 204);
    (void)hp_ctx_set_header(ctx, "Access-Control-Allow-Origin", oc.value);
    if (cfg->methods) {
        (void)hp_ctx_set_header(ctx, "Access-Control-Allow-Methods", cfg->methods);
    } else {
        char allow[96];
        hp_router_allow_str(ctx->match.allow, allow, sizeof allow);
        (void)hp_ctx_set_header(ctx, "Access-Control-Allow-Methods", allow);
    }
    if (cfg->headers)
        (void)hp_ctx_set_header(ctx, "Access-Control-Allow-Headers", cfg->headers);
    if (cfg->max_age) {
        char age[11];
        u32_str(cfg->max_age, age);
        (void)hp_ctx_set_header(ctx, "Access-Control-Max-Age", age);
    }
    if (cfg->allow_credentials)
        (void)hp_ctx_set_header(ctx, "Access-Control-Allow-Credentials", "true");
    /* Always, even for "*": a preflight answer is cached per URL by
     * intermediaries that do not know CORS. */
    (void)hp_ctx_set_header(ctx, "Vary", "Origin");
    return HP_DONE;
}

int hp_middleware_cors_after(hp_ctx_t *ctx, void *udata)
{
    const hp_cors_config_t *cfg = udata;
    /* Every `after` runs, also when our own `before` answered a preflight:
     * that answer is complete. */
    if (is_preflight(ctx))
        return HP_NEXT;
    char buf[CORS_ORIGIN_MAX + 1];
    origin_check_t oc = origin_check(ctx, cfg, buf);
    if (oc.verdict == ORIGIN_ALLOWED) {
        (void)hp_ctx_set_header(ctx, "Access-Control-Allow-Origin", oc.value);
        if (cfg->allow_credentials)
            (void)hp_ctx_set_header(ctx, "Access-Control-Allow-Credentials", "true");
        if (cfg->expose)
            (void)hp_ctx_set_header(ctx, "Access-Control-Expose-Headers", cfg->expose);
    }
    if (oc.varies)
        (void)hp_ctx_set_header(ctx, "Vary", "Origin");
    return HP_NEXT;
}

int hp_middleware_options_handler(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    char allow[96];
    hp_router_allow_str(ctx->match.allow, allow, sizeof allow);
    hp_ctx_status(ctx, 204);
    (void)hp_ctx_set_header(ctx, "Allow", allow);
    return HP_DONE;
}
