/*
 * rest.c - a small in-memory CRUD API for notes on libhotpath: typed route
 * parameters, a query parameter, JSON in and out, status codes, Location.
 *
 *   POST   /notes           {"text": "..."} -> 201 {"id": N, "text": "..."}
 *                                              and Location: /notes/N
 *   GET    /notes[?limit=N]                  -> 200 [{"id": 1, "text": ...}, ...]
 *   GET    /notes/{id:int}                   -> 200 note, or 404
 *   PUT    /notes/{id:int}  {"text": "..."} -> 200 note, or 404
 *   DELETE /notes/{id:int}                   -> 204, or 404
 *   errors: 400 bad JSON or query, 413 text too long, 507 store full,
 *           always as {"error": "..."}
 *   GET    /metrics                          -> Prometheus text (the built-in)
 *
 * GET /notes/{id} answers come from the response cache while they are
 * fresh (60 s); a PUT or DELETE of the note drops its cached answer.
 *
 * Central data structure: one store_t, a fixed array of notes. Invariant:
 * notes[0..count) have strictly increasing ids, all below next_id (new
 * notes are appended with next_id++, deletions close the gap), so the list
 * comes out in creation order and an id is never reused.
 *
 * The JSON is deliberately minimal and written here (an example should not
 * need a library): a request body must be one object whose members are all
 * strings, one of them "text". Strings are decoded fully (escapes, \uXXXX,
 * surrogate pairs); other bytes are kept as received, UTF-8 unchecked.
 *
 *     cc -O2 -o rest examples/rest.c $(pkg-config --cflags --libs hotpath)
 *     ./rest 127.0.0.1:8080
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hotpath/app.h>

#define NOTES_MAX 256      /* a demo store: 507 once full */
#define NOTE_TEXT_MAX 1024 /* bytes of decoded text per note: 413 beyond */

typedef struct note {
    int64_t id;
    size_t len;
    char text[NOTE_TEXT_MAX]; /* decoded, not NUL-terminated */
} note_t;

typedef struct store {
    note_t notes[NOTES_MAX];
    size_t count;
    int64_t next_id;
} store_t;

/* ---- building responses ---- */

/* A growable output buffer; an allocation failure is remembered in `oom`
 * and checked once, when the response is sent. */
typedef struct buf {
    char *data; /* owned, malloc'd */
    size_t len, cap;
    bool oom;
} buf_t;

static void buf_put(buf_t *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void buf_str(buf_t *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* Appends s[0..n) as a JSON string literal: quote, backslash and control
 * characters escaped, everything else (UTF-8 included) as is. */
static void buf_json_string(buf_t *b, const char *s, size_t n)
{
    buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            buf_put(b, esc, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            buf_put(b, esc, 2);
        } else if (c < 0x20) { /* other control characters: \u00XX */
            snprintf(esc, sizeof esc, "\\u%04x", c);
            buf_put(b, esc, 6);
        } else {
            buf_put(b, &c, 1);
        }
    }
    buf_put(b, "\"", 1);
}

/* Appends {"id": N, "text": "..."}. */
static void buf_note(buf_t *b, const note_t *n)
{
    char id[40];
    snprintf(id, sizeof id, "{\"id\": %lld, \"text\": ", (long long)n->id);
    buf_str(b, id);
    buf_json_string(b, n->text, n->len);
    buf_str(b, "}");
}

/* Sends the buffer as an application/json body without copying it: the
 * server calls free(data) once the body is sent or dropped. */
static int reply(hp_ctx_t *ctx, int status, buf_t *b)
{
    buf_str(b, "\n");
    if (b->oom) {
        free(b->data);
        hp_ctx_send_status(ctx, 503);
        return HP_DONE;
    }
    hp_ctx_status(ctx, status);
    hp_ctx_send_ref(ctx, "application/json", b->data, b->len, free, b->data);
    return HP_DONE;
}

/* {"error": "msg"} with `status`. */
static int reply_error(hp_ctx_t *ctx, int status, const char *msg)
{
    buf_t b = {0};
    buf_str(&b, "{\"error\": ");
    buf_json_string(&b, msg, strlen(msg));
    buf_str(&b, "}");
    return reply(ctx, status, &b);
}

/* ---- parsing request bodies ---- */

typedef struct json {
    const char *p, *end; /* borrowed: the unread rest of the body */
} json_t;

static void json_ws(json_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Skips white space, then consumes `c` if it comes next. */
static bool json_eat(json_t *j, char c)
{
    json_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* Four hex digits of a \u escape; -1 when they are not. */
static long json_hex4(json_t *j)
{
    if (j->end - j->p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *j->p++;
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A code point as UTF-8 at out[*n..cap): like snprintf, bytes that do not
 * fit are counted but not stored. */
static void put_utf8(char *out, size_t cap, size_t *n, unsigned long cp)
{
    unsigned char u[4];
    size_t k;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp, k = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | cp >> 6), u[1] = (unsigned char)(0x80 | (cp & 0x3f)), k = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | cp >> 12), u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f)), k = 3;
    } else {
        u[0] = (unsigned char)(0xf0 | cp >> 18), u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f)), u[3] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 4;
    }
    for (size_t i = 0; i < k; i++, (*n)++)
        if (*n < cap)
            out[*n] = (char)u[i];
}

/* The code point of a \u escape (the "\u" already read), combining a
 * surrogate pair; -1 for bad hex or a lone surrogate. */
static long json_unicode(json_t *j)
{
    long cp = json_hex4(j);
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return -1;
    if (cp < 0xd800 || cp > 0xdbff)
        return cp;
    if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
        return -1;
    j->p += 2;
    long lo = json_hex4(j);
    if (lo < 0xdc00 || lo > 0xdfff)
        return -1;
    return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
}

/* Decodes the JSON string literal that comes next into out[0..cap) (out
 * may be NULL when cap is 0). Returns its full decoded length, which may
 * exceed cap (then only cap bytes were stored), or -1 when malformed. */
static long json_string(json_t *j, char *out, size_t cap)
{
    if (!json_eat(j, '"'))
        return -1;
    size_t n = 0;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        unsigned long cp = c;
        if (c == '"')
            return (long)n;
        if (c < 0x20)
            return -1; /* control characters must be escaped */
        if (c == '\\') {
            if (j->p == j->end)
                return -1;
            char e = *j->p++;
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *hit = e ? strchr(from, e) : NULL;
            if (hit) {
                cp = (unsigned char)to[hit - from];
            } else if (e == 'u') {
                long u = json_unicode(j);
                if (u < 0)
                    return -1;
                cp = (unsigned long)u;
            } else {
                return -1;
            }
            put_utf8(out, cap, &n, cp);
        } else {
            if (n < cap)
                out[n] = (char)c; /* raw byte, UTF-8 or not */
            n++;
        }
    }
    return -1; /* unterminated */
}

/* Parses a body {"text": "...", ...} whose members are all strings into
 * text[0..NOTE_TEXT_MAX). Returns the text's length, -400 when the JSON is
 * malformed or has no "text" member, -413 when the text is too long. */
static long parse_note(const char *body, size_t len, char *text)
{
    json_t j = {body, body + len};
    long tlen = -400;
    if (!json_eat(&j, '{'))
        return -400;
    if (json_eat(&j, '}'))
        goto end;
    do {
        char key[8];
        long klen = json_string(&j, key, sizeof key);
        if (klen < 0 || !json_eat(&j, ':'))
            return -400;
        bool is_text = klen == 4 && memcmp(key, "text", 4) == 0;
        long vlen = is_text ? json_string(&j, text, NOTE_TEXT_MAX) : json_string(&j, NULL, 0);
        if (vlen < 0)
            return -400;
        if (is_text)
            tlen = vlen > NOTE_TEXT_MAX ? -413 : vlen;
    } while (json_eat(&j, ','));
    if (!json_eat(&j, '}'))
        return -400;
end:
    json_ws(&j);
    return j.p == j.end ? tlen : -400; /* nothing may follow the object */
}

/* ---- the store ---- */

/* The note with `id`, or NULL. A linear scan: the store is small. */
static note_t *store_find(store_t *s, int64_t id)
{
    for (size_t i = 0; i < s->count; i++)
        if (s->notes[i].id == id)
            return &s->notes[i];
    return NULL;
}

/* Reads the body into a scratch note; on success copies its text into
 * `into`. Returns 0, or the HTTP status of the error it already sent. */
static int read_note_body(hp_ctx_t *ctx, note_t *into)
{
    static const char *const why[] = {"body must be {\"text\": string}", "text too long"};
    size_t len;
    const char *body = hp_ctx_body(ctx, &len);
    char text[NOTE_TEXT_MAX];
    long n = parse_note(body, len, text);
    if (n < 0) {
        reply_error(ctx, (int)-n, why[n == -413]);
        return (int)-n;
    }
    memcpy(into->text, text, (size_t)n);
    into->len = (size_t)n;
    return 0;
}

/* ---- handlers (udata is the store) ---- */

/* POST /notes */
static int note_create(hp_ctx_t *ctx, void *udata)
{
    store_t *s = udata;
    if (s->count == NOTES_MAX)
        return reply_error(ctx, 507, "store full");
    note_t *n = &s->notes[s->count];
    if (read_note_body(ctx, n) != 0)
        return HP_DONE;
    n->id = s->next_id++;
    s->count++;
    char loc[40];
    snprintf(loc, sizeof loc, "/notes/%lld", (long long)n->id);
    hp_ctx_set_header(ctx, "Location", loc);
    buf_t b = {0};
    buf_note(&b, n);
    return reply(ctx, 201, &b);
}

/* GET /notes[?limit=N] (HEAD too: the server drops the body). */
static int note_list(hp_ctx_t *ctx, void *udata)
{
    store_t *s = udata;
    size_t limit = s->count;
    char q[24], *end;
    int qlen = hp_ctx_query(ctx, "limit", q, sizeof q - 1);
    if (qlen != -1) { /* present: must be a plain non-negative number */
        if (qlen <= 0 || q[0] < '0' || q[0] > '9')
            return reply_error(ctx, 400, "limit must be a non-negative integer");
        q[qlen] = '\0';
        unsigned long long v = strtoull(q, &end, 10);
        if (*end != '\0')
            return reply_error(ctx, 400, "limit must be a non-negative integer");
        if (v < limit)
            limit = (size_t)v;
    }
    buf_t b = {0};
    buf_str(&b, "[");
    for (size_t i = 0; i < limit; i++) {
        if (i > 0)
            buf_str(&b, ", ");
        buf_note(&b, &s->notes[i]);
    }
    buf_str(&b, "]");
    return reply(ctx, 200, &b);
}

/* GET /notes/{id:int}: the router matched only a valid int64, so the
 * fallback of hp_ctx_param_int is never used. */
static int note_get(hp_ctx_t *ctx, void *udata)
{
    note_t *n = store_find(udata, hp_ctx_param_int(ctx, "id", 0));
    if (!n)
        return reply_error(ctx, 404, "no such note");
    buf_t b = {0};
    buf_note(&b, n);
    return reply(ctx, 200, &b);
}

/* PUT /notes/{id:int}: replaces the text; the note is untouched on error. */
static int note_update(hp_ctx_t *ctx, void *udata)
{
    note_t *n = store_find(udata, hp_ctx_param_int(ctx, "id", 0));
    if (!n)
        return reply_error(ctx, 404, "no such note");
    if (read_note_body(ctx, n) != 0)
        return HP_DONE;
    buf_t b = {0};
    buf_note(&b, n);
    return reply(ctx, 200, &b);
}

/* DELETE /notes/{id:int}: 204 and no body. */
static int note_delete(hp_ctx_t *ctx, void *udata)
{
    store_t *s = udata;
    note_t *n = store_find(s, hp_ctx_param_int(ctx, "id", 0));
    if (!n)
        return reply_error(ctx, 404, "no such note");
    size_t i = (size_t)(n - s->notes);
    memmove(&s->notes[i], &s->notes[i + 1], (s->count - i - 1) * sizeof *n);
    s->count--;
    hp_ctx_status(ctx, 204);
    return HP_DONE;
}

int main(int argc, char **argv)
{
    static const struct {
        uint32_t methods;
        const char *pattern;
        hp_handler_fn fn;
    } routes[] = {
        {HP_ROUTER_GET, "/notes", note_list},
        {HP_ROUTER_POST, "/notes", note_create},
        {HP_ROUTER_GET, "/notes/{id:int}", note_get},
        {HP_ROUTER_PUT, "/notes/{id:int}", note_update},
        {HP_ROUTER_DELETE, "/notes/{id:int}", note_delete},
    };
    char err[256];
    hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
    if (argc > 1)
        cfg.listen = argv[1];
    /* One worker thread: the store is plain mutable memory with no lock,
     * and every handler runs on the worker that owns its connection. With
     * several workers, each request could land on a different thread;
     * sharing the store would need a lock or routing every change to one
     * owner through the cross-worker messaging, which this example does
     * not show. */
    cfg.workers = 1;
    cfg.http.cache.enabled = true;
    cfg.http.cache.ttl_ms = 60000;
    store_t *store = calloc(1, sizeof *store);
    hp_app_t *app = store ? hp_app_new(&cfg, err, sizeof err) : NULL;
    if (!app) {
        fprintf(stderr, "rest: %s\n", store ? err : "out of memory");
        free(store);
        return 1;
    }
    store->next_id = 1;
    int rc = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && rc == 0; i++)
        rc = hp_app_route(app, routes[i].methods, routes[i].pattern, routes[i].fn, store, err,
                          sizeof err);
    if (rc == 0)
        rc = hp_app_cache_route(app, "/notes/{id:int}", 0);
    if (rc == 0)
        rc = hp_app_builtin_routes(app, HP_APP_BUILTIN_METRICS, "/metrics", err, sizeof err);
    if (rc == 0 && (rc = hp_app_run(app)) < 0) /* until SIGINT/SIGTERM */
        snprintf(err, sizeof err, "%s", hp_app_error(app));
    if (rc < 0)
        fprintf(stderr, "rest: %s\n", err);
    hp_app_free(app); /* before the store: handlers may hold pointers into it */
    free(store);
    return rc < 0 ? 1 : 0;
}
