/*
 * fuzz_http_parser.c - libFuzzer target for the HTTP request parser and the
 * chunked decoder (src/http/parser.c).
 *
 * For each input, under two sets of limits (the defaults and tiny ones that
 * make every limit reachable): parse it whole with the scalar scanners and
 * with the best SIMD scanners, then again fed in pieces whose sizes come
 * from a hash of the data (deterministic, so a crash replays). Every way
 * must give the same outcome, head_len, spans, fields and flags; spans must
 * lie inside the head. When the head is complete and chunked, the rest is
 * decoded whole and in pieces and must give the same bytes and status.
 * Every parse reads from a heap copy of exactly the bytes it is given, so
 * ASan catches any read past the end.
 */
#include "hotpath/http_parser.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAXF 128 /* >= every max_fields used below */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
    int r;
    hp_http_req_t req;
    hp_http_field_t f[MAXF];
};

static uint64_t hash64(const uint8_t *d, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 0x100000001b3ull;
    return h;
}

/* xorshift step: the next piece size source. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int parse_copy(hp_http_req_t *req, hp_http_field_t *f, const uint8_t *d, size_t n,
                      const hp_http_limits_t *lim)
{
    char *p = malloc(n ? n : 1);
    if (!p)
        abort();
    memcpy(p, d, n);
    int r = hp_http_parse(req, f, p, n, lim);
    free(p);
    return r;
}

static void parse_whole(struct result *res, const uint8_t *d, size_t n, const hp_http_limits_t *lim)
{
    memset(res->f, 0, sizeof(res->f));
    hp_http_req_init(&res->req);
    res->r = parse_copy(&res->req, res->f, d, n, lim);
}

static void parse_split(struct result *res, const uint8_t *d, size_t n, const hp_http_limits_t *lim,
                        uint64_t seed)
{
    memset(res->f, 0, sizeof(res->f));
    hp_http_req_init(&res->req);
    size_t k = 0;
    res->r = 0;
    while (res->r == 0) {
        size_t step = (size_t)(next_rand(&seed) % 24);
        if (next_rand(&seed) % 8 == 0)
            step += (size_t)(next_rand(&seed) % 400);
        k = k + step > n ? n : k + step;
        res->r = parse_copy(&res->req, res->f, d, k, lim);
        if (k == n)
            break;
    }
}

static void same(const struct result *a, const struct result *b)
{
    if (a->r != b->r)
        abort();
    if (a->r <= 0)
        return;
    const hp_http_req_t *x = &a->req, *y = &b->req;
    if (x->method.off != y->method.off || x->method.len != y->method.len ||
        x->target.off != y->target.off || x->target.len != y->target.len ||
        x->method_id != y->method_id || x->version_minor != y->version_minor ||
        x->nfields != y->nfields || x->flags != y->flags || x->head_len != y->head_len ||
        x->content_length != y->content_length)
        abort();
    if (memcmp(a->f, b->f, x->nfields * sizeof(a->f[0])))
        abort();
}

static void check_spans(const struct result *a, size_t n, const hp_http_limits_t *lim)
{
    if (a->r <= 0)
        return;
    const hp_http_req_t *x = &a->req;
    uint32_t hl = x->head_len;
    if ((size_t)a->r != hl || hl > n || hl > HP_HTTP_MAX_HEAD || x->nfields > lim->max_fields)
        abort();
    if (x->method.off + x->method.len > hl || x->target.off + x->target.len > hl ||
        x->method.len == 0 || x->target.len == 0 || x->version_minor > 1 ||
        x->method_id == HP_METHOD_UNKNOWN)
        abort();
    for (int i = 0; i < x->nfields; i++) {
        const hp_http_field_t *f = &a->f[i];
        if (f->name.len == 0 || f->name.off + f->name.len > hl || f->value.off + f->value.len > hl)
            abort();
    }
    if ((x->flags & HP_HTTP_F_CHUNKED) && (x->flags & HP_HTTP_F_CONTENT_LENGTH))
        abort();
    if ((x->flags & HP_HTTP_F_CONTENT_LENGTH) && x->content_length > lim->max_body)
        abort();
}

/* Decodes body[0..n) in pieces (or whole when seed is 0); the decoded bytes
 * go to out. Returns the status; *used = raw bytes consumed. */
static int decode(const uint8_t *body, size_t n, uint64_t max, uint64_t seed, uint8_t *out,
                  size_t *out_n, size_t *used)
{
    hp_http_chunked_t c;
    hp_http_chunked_init(&c, max);
    size_t off = 0, got = 0;
    int r = 0;
    do {
        size_t step = seed ? (size_t)(next_rand(&seed) % 40) : n;
        if (step > n - off)
            step = n - off;
        char *p = malloc(step ? step : 1);
        if (!p)
            abort();
        memcpy(p, body + off, step);
        size_t cons, ol;
        r = hp_http_chunked_decode(&c, p, step, &cons, &ol);
        if (ol > cons || cons > step || (r == 0 && cons != step))
            abort();
        memcpy(out + got, p, ol);
        got += ol;
        off += cons;
        free(p);
    } while (r == 0 && off < n);
    *out_n = got;
    *used = off;
    return r;
}

static void check_chunked(const uint8_t *body, size_t n, uint64_t max, uint64_t seed)
{
    uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
    if (!a || !b)
        abort();
    size_t an, bn, au, bu;
    int ra = decode(body, n, max, 0, a, &an, &au);
    int rb = decode(body, n, max, seed | 1, b, &bn, &bu);
    if (ra != rb || (ra >= 0 && (an != bn || memcmp(a, b, an))) || (ra == 1 && au != bu))
        abort();
    if (an > max)
        abort();
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int best = -1;
    if (best < 0)
        best = hp_http_parser_init();
    static const hp_http_limits_t lims[2] = {HP_HTTP_LIMITS_DEFAULT, {40, 120, 4, 64}};
    uint64_t h = hash64(data, size);
    static struct result whole, other;

    for (int li = 0; li < 2; li++) {
        const hp_http_limits_t *lim = &lims[li];
        hp_http_parser_set_simd(HP_HTTP_SIMD_SCALAR);
        parse_whole(&whole, data, size, lim);
        check_spans(&whole, size, lim);
        parse_split(&other, data, size, lim, h + (uint64_t)li);
        same(&whole, &other);
        for (int m = HP_HTTP_SIMD_SSE42; m <= best; m++) {
            if (hp_http_parser_set_simd(m) != m)
                continue;
            parse_whole(&other, data, size, lim);
            same(&whole, &other);
            parse_split(&other, data, size, lim, h * 31 + (uint64_t)m);
            same(&whole, &other);
        }
        if (whole.r > 0 && (whole.req.flags & HP_HTTP_F_CHUNKED))
            check_chunked(data + whole.r, size - (size_t)whole.r, lim->max_body, h);
    }
    /* The decoder on its own, over the raw input too. */
    check_chunked(data, size, 1 + (h % 4096), h ^ 0x9e3779b97f4a7c15ull);
    hp_http_parser_set_simd(best);
    return 0;
}
