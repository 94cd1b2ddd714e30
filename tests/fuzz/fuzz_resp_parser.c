/*
 * fuzz_resp_parser.c - libFuzzer target for the HTTP response parser
 * (src/http/resp_parser.c).
 *
 * The first input byte says which responses answer a HEAD request (bit i
 * for the i-th response); the rest is a stream of pipelined responses. A
 * simulated client reads the stream into a compacting buffer, parses each
 * head, frames each body (chunked ones through the in-place decoder) and
 * goes on with the next response, until an error or the end of the input,
 * where it reports the close through body_eof. It runs with the whole input
 * in one read, then with reads whose sizes come from a hash of the data
 * (deterministic, so a crash replays), with the scalar and the best SIMD
 * scanners; every run must produce the same transcript of outcomes. Each
 * parser call reads from a heap copy of exactly the bytes it is given, so
 * ASan catches any read past the end. Invariants of each complete head are
 * checked as well.
 */
#include "hotpath/http_resp_parser.h"
#include "http/parser_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RESP 32 /* responses followed per input */
#define REC 10      /* transcript words per response */
#define BYTEWISE UINT64_MAX /* client() seed: reads of one byte each */

struct transcript {
    size_t n;
    int64_t w[MAX_RESP * REC + 4];
};

static uint64_t hash64(const uint8_t *d, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 0x100000001b3ull;
    return h == BYTEWISE ? 1 : h | 1;
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void put(struct transcript *t, int64_t v)
{
    if (t->n < sizeof(t->w) / sizeof(t->w[0]))
        t->w[t->n++] = v;
}

static char *copy_exact(const char *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (!c)
        abort();
    memcpy(c, p, n);
    return c;
}

static void check_head(const hp_resp_parser_t *r, int h)
{
    uint32_t f = r->flags;
    if ((uint32_t)h != r->head_len || r->status < 100 || r->status > 999 || r->version_minor > 1)
        abort();
    if ((f & HP_RESP_PARSER_F_CHUNKED) && (f & HP_RESP_PARSER_F_CONTENT_LENGTH))
        abort();
    if ((f & HP_RESP_PARSER_F_UNTIL_CLOSE) &&
        (!(f & HP_RESP_PARSER_F_CLOSE) ||
         (f & (HP_RESP_PARSER_F_CHUNKED | HP_RESP_PARSER_F_CONTENT_LENGTH | HP_RESP_PARSER_F_NO_BODY))))
        abort();
    bool nob = r->status < 200 || r->status == 204 || r->status == 304;
    if (nob && !(f & HP_RESP_PARSER_F_NO_BODY))
        abort();
}

/* Runs the client over d[0..n) with reads of sizes drawn from `seed` (0:
 * one read of everything; BYTEWISE: one byte at a time), recording what it
 * sees in *t. */
static void client(const uint8_t *d, size_t n, unsigned head_bits, uint64_t seed, int mode,
                   struct transcript *t)
{
    char *buf = malloc(n ? n : 1);
    if (!buf)
        abort();
    size_t have = 0, fed = 0, used_total = 0;
    int nresp = 0;
    bool in_body = false;
    hp_resp_parser_t r;
    hp_resp_parser_init(&r, head_bits & 1);
    t->n = 0;
    for (;;) {
        if (!in_body) {
            char *c = copy_exact(buf, have);
            int h = hp_resp_parser_head_mode(&r, c, have, mode);
            free(c);
            if (h < 0) {
                put(t, h);
                break;
            }
            if (h > 0) {
                check_head(&r, h);
                put(t, h);
                put(t, r.status);
                put(t, r.version_minor);
                put(t, r.flags);
                put(t, (int64_t)r.content_length);
                memmove(buf, buf + h, have - (size_t)h);
                have -= (size_t)h;
                in_body = true;
                used_total = 0;
                continue;
            }
        } else {
            char *c = copy_exact(buf, have);
            size_t used = SIZE_MAX;
            int b = hp_resp_parser_body(&r, c, have, &used);
            free(c);
            if (used > have || (b == 0 && used != have))
                abort();
            used_total += used;
            memmove(buf, buf + used, have - used);
            have -= used;
            if (b < 0) {
                put(t, b);
                put(t, (int64_t)used_total);
                break;
            }
            if (b == 1) {
                if ((r.flags & HP_RESP_PARSER_F_CONTENT_LENGTH) &&
                    !(r.flags & HP_RESP_PARSER_F_NO_BODY) && used_total != r.content_length)
                    abort();
                if ((r.flags & HP_RESP_PARSER_F_NO_BODY) && used_total)
                    abort();
                put(t, 1000 + b);
                put(t, (int64_t)used_total);
                if (hp_resp_parser_body_eof(&r) != 1)
                    abort();
                if (++nresp >= MAX_RESP)
                    break;
                hp_resp_parser_init(&r, (head_bits >> (nresp % 8)) & 1);
                in_body = false;
                continue;
            }
        }
        if (fed == n) {
            /* The peer closed: a clean end between responses, or the
             * verdict of body_eof. */
            put(t, !in_body && have == 0 ? 7777 : hp_resp_parser_body_eof(&r));
            if (in_body)
                put(t, (int64_t)used_total);
            break;
        }
        size_t step = n - fed;
        if (seed == BYTEWISE) {
            step = 1;
        } else if (seed) {
            step = (size_t)(next_rand(&seed) % 24) + 1;
            if (next_rand(&seed) % 8 == 0)
                step += (size_t)(next_rand(&seed) % 600);
            if (step > n - fed)
                step = n - fed;
        }
        memcpy(buf + have, d + fed, step);
        have += step;
        fed += step;
    }
    free(buf);
}

static void same(const struct transcript *a, const struct transcript *b)
{
    if (a->n != b->n || memcmp(a->w, b->w, a->n * sizeof(a->w[0])))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned head_bits = data[0];
    data++;
    size--;
    static struct transcript whole, other;
    uint64_t seed = hash64(data, size);
    client(data, size, head_bits, 0, HP_HTTP_SIMD_SCALAR, &whole);
    client(data, size, head_bits, 0, HP_HTTP_SIMD_AVX2, &other);
    same(&whole, &other);
    client(data, size, head_bits, seed, HP_HTTP_SIMD_AVX2, &other);
    same(&whole, &other);
    client(data, size, head_bits, seed * 0x9e3779b97f4a7c15ull | 1, HP_HTTP_SIMD_SSE42, &other);
    same(&whole, &other);
    /* One byte at a time, for small inputs. */
    if (size <= 512) {
        client(data, size, head_bits, BYTEWISE, HP_HTTP_SIMD_SCALAR, &other);
        same(&whole, &other);
    }
    return 0;
}
