/*
 * test_parser.c - unit tests for the HTTP/1.1 request parser and the
 * chunked decoder (src/http/parser.c).
 *
 * Every case runs under each scanner flavour the CPU has (scalar, SSE4.2,
 * AVX2). Valid requests are split at every byte offset and must give the
 * same outcome, spans, fields and flags as a whole parse; every rejection
 * is checked for its exact status, every limit at and one past its
 * boundary, and inputs are placed against a PROT_NONE guard page so a
 * scanner that reads one byte too far faults under any build.
 */
#include "hotpath/alloc.h"
#include "hotpath/http_parser.h"
#include "http/parser_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#define MAXF 256

static int modes[3];
static int nmodes;

static void find_modes(void)
{
    nmodes = 0;
    for (int m = HP_HTTP_SIMD_SCALAR; m <= HP_HTTP_SIMD_AVX2; m++)
        if (hp_http_parser_set_simd(m) == m)
            modes[nmodes++] = m;
}

#define FOR_EACH_MODE(m)                                                       \
    for (int mi_ = 0, m = 0; mi_ < nmodes && ((m = modes[mi_]), hp_http_parser_set_simd(m), 1); \
         mi_++)

/* The bytes in a fresh heap block of exactly n bytes: ASan reports any
 * read past the end. */
static char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static int parse_n(hp_http_req_t *req, hp_http_field_t *f, const char *s, size_t n,
                   const hp_http_limits_t *lim)
{
    char *p = dup_exact(s, n);
    int r = hp_http_parse(req, f, p, n, lim);
    free(p);
    return r;
}

static int parse_str(const char *s, const hp_http_limits_t *lim)
{
    hp_http_req_t req;
    hp_http_field_t f[MAXF];
    hp_http_req_init(&req);
    return parse_n(&req, f, s, strlen(s), lim);
}

static void assert_same_req(const hp_http_req_t *a, const hp_http_field_t *fa,
                            const hp_http_req_t *b, const hp_http_field_t *fb)
{
    assert_int_equal(a->method.off, b->method.off);
    assert_int_equal(a->method.len, b->method.len);
    assert_int_equal(a->target.off, b->target.off);
    assert_int_equal(a->target.len, b->target.len);
    assert_int_equal(a->method_id, b->method_id);
    assert_int_equal(a->version_minor, b->version_minor);
    assert_int_equal(a->nfields, b->nfields);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->head_len, b->head_len);
    assert_int_equal(a->content_length, b->content_length);
    assert_memory_equal(fa, fb, a->nfields * sizeof(*fa));
}

/* Parses s whole, then every split into two calls (and a byte-at-a-time
 * feed), each time from a fresh copy so the parser cannot keep pointers.
 * Returns the whole-parse result; *out/fo receive the whole parse. */
static int check_splits(const char *s, size_t n, const hp_http_limits_t *lim, hp_http_req_t *out,
                        hp_http_field_t *fo)
{
    hp_http_req_init(out);
    int whole = parse_n(out, fo, s, n, lim);
    for (size_t k = 0; k <= n; k++) {
        hp_http_req_t req;
        hp_http_field_t f[MAXF];
        hp_http_req_init(&req);
        int r1 = parse_n(&req, f, s, k, lim);
        if (whole > 0 && (size_t)k < (size_t)whole)
            assert_int_equal(r1, 0);
        if (r1 == 0)
            r1 = parse_n(&req, f, s, n, lim);
        assert_int_equal(r1, whole);
        if (whole > 0)
            assert_same_req(out, fo, &req, f);
    }
    hp_http_req_t req;
    hp_http_field_t f[MAXF];
    hp_http_req_init(&req);
    int r = 0;
    for (size_t k = 1; k <= n && r == 0; k++)
        r = parse_n(&req, f, s, k, lim);
    assert_int_equal(r, whole);
    if (whole > 0)
        assert_same_req(out, fo, &req, f);
    return whole;
}

static bool span_is(const char *buf, hp_http_span_t sp, const char *want)
{
    return sp.len == strlen(want) && !memcmp(buf + sp.off, want, sp.len);
}

static const char *field_value(const hp_http_req_t *req, const hp_http_field_t *f, const char *buf,
                               const char *name, char *tmp)
{
    int i = hp_http_find_field(req, f, buf, name, strlen(name));
    if (i < 0)
        return NULL;
    memcpy(tmp, buf + f[i].value.off, f[i].value.len);
    tmp[f[i].value.len] = 0;
    return tmp;
}

/* ------------------------------------------------------------------ */

struct real_req {
    const char *name, *text;
    int method_id, minor, nfields;
    uint32_t flags;
    uint64_t cl;
    const char *target;
    bool keep_alive;
};

static const struct real_req reals[] = {
    {"curl GET",
     "GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\n"
     "Accept: */*\r\n\r\n",
     HP_METHOD_GET, 1, 3, 0, 0, "/index.html", true},
    {"browser GET",
     "GET /articles/2024/simd-parsing?page=2&sort=desc HTTP/1.1\r\n"
     "Host: www.example.org\r\n"
     "Connection: keep-alive\r\n"
     "Cache-Control: max-age=0\r\n"
     "sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n"
     "sec-ch-ua-mobile: ?0\r\n"
     "sec-ch-ua-platform: \"Linux\"\r\n"
     "Upgrade-Insecure-Requests: 1\r\n"
     "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36\r\n"
     "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
     "*/*;q=0.8\r\n"
     "Sec-Fetch-Site: same-origin\r\n"
     "Sec-Fetch-Mode: navigate\r\n"
     "Sec-Fetch-User: ?1\r\n"
     "Sec-Fetch-Dest: document\r\n"
     "Referer: https://www.example.org/articles/2024/\r\n"
     "Accept-Encoding: gzip, deflate, br, zstd\r\n"
     "Accept-Language: en-GB,en;q=0.9,fr;q=0.8\r\n"
     "Cookie: session=4f2a9c1e8b7d6a5f; theme=dark; _ga=GA1.2.1234567890.1700000000\r\n"
     "\r\n",
     HP_METHOD_GET, 1, 17, HP_HTTP_F_CONN_KEEP_ALIVE, 0,
     "/articles/2024/simd-parsing?page=2&sort=desc", true},
    {"POST content-length",
     "POST /api/v1/items HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\n"
     "Content-Length: 27\r\nConnection: close\r\n\r\n{\"name\":\"widget\",\"qty\":42}",
     HP_METHOD_POST, 1, 4, HP_HTTP_F_CONTENT_LENGTH | HP_HTTP_F_CONN_CLOSE, 27, "/api/v1/items",
     false},
    {"chunked POST",
     "POST /upload HTTP/1.1\r\nHost: up.example.com\r\nTransfer-Encoding: chunked\r\n"
     "Content-Type: text/plain\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     HP_METHOD_POST, 1, 3, HP_HTTP_F_CHUNKED, 0, "/upload", true},
    {"HTTP/1.0 keep-alive",
     "GET /old HTTP/1.0\r\nConnection: Keep-Alive\r\nUser-Agent: ApacheBench/2.3\r\n\r\n",
     HP_METHOD_GET, 0, 2, HP_HTTP_F_CONN_KEEP_ALIVE, 0, "/old", true},
    {"HTTP/1.0 plain", "HEAD / HTTP/1.0\r\n\r\n", HP_METHOD_HEAD, 0, 0, 0, 0, "/", false},
    {"absolute-form",
     "GET http://example.com:8080/a/b?c=d#frag HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
     HP_METHOD_GET, 1, 1, 0, 0, "http://example.com:8080/a/b?c=d#frag", true},
    {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: example.com\r\nMax-Forwards: 0\r\n\r\n",
     HP_METHOD_OPTIONS, 1, 2, 0, 0, "*", true},
    {"CONNECT authority",
     "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
     "Proxy-Connection: keep-alive\r\n\r\n",
     HP_METHOD_CONNECT, 1, 2, 0, 0, "example.com:443", true},
    {"PUT expect",
     "PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\nExpect: 100-Continue\r\n\r\n",
     HP_METHOD_PUT, 1, 3, HP_HTTP_F_CONTENT_LENGTH | HP_HTTP_F_EXPECT_CONTINUE, 1048576, "/f",
     true},
    {"bare LF and leading empty lines",
     "\r\n\nDELETE /x/1 HTTP/1.1\nHost: h\nConnection: foo, CLOSE , bar\n\n", HP_METHOD_DELETE, 1,
     2, HP_HTTP_F_CONN_CLOSE, 0, "/x/1", false},
    {"HTTP/1.9 ows obs-text",
     "PATCH /p HTTP/1.9\r\nHost:h\r\nX-Empty:\r\nX-Pad: \t v a l \t \r\nX-Obs: caf\xc3\xa9\r\n\r\n",
     HP_METHOD_PATCH, 1, 4, 0, 0, "/p", true},
    {"TRACE content-length dup",
     "TRACE / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n",
     HP_METHOD_TRACE, 1, 3, HP_HTTP_F_CONTENT_LENGTH, 5, "/", true},
};

static void test_real_requests(void **state)
{
    (void)state;
    const hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
    uint64_t allocs = hp_alloc_count();
    FOR_EACH_MODE(m) {
        for (size_t i = 0; i < HP_ARRAY_LEN(reals); i++) {
            const struct real_req *rr = &reals[i];
            hp_http_req_t req;
            hp_http_field_t f[MAXF];
            size_t n = strlen(rr->text);
            int r = check_splits(rr->text, n, &lim, &req, f);
            if (r <= 0)
                fail_msg("%s (%s): %d", rr->name, hp_http_simd_name(m), r);
            /* The head ends at the first "\n\r\n" or "\n\n" after the
             * leading empty lines. */
            size_t st = strspn(rr->text, "\r\n"), hl = 0;
            for (size_t k = st; k + 1 < n && !hl; k++) {
                if (rr->text[k] == '\n' && rr->text[k + 1] == '\n')
                    hl = k + 2;
                else if (rr->text[k] == '\n' && rr->text[k + 1] == '\r')
                    hl = k + 3;
            }
            assert_int_equal(r, hl);
            assert_int_equal(req.head_len, hl);
            assert_int_equal(req.method_id, rr->method_id);
            assert_int_equal(req.version_minor, rr->minor);
            assert_int_equal(req.nfields, rr->nfields);
            assert_int_equal(req.flags, rr->flags);
            assert_int_equal(req.content_length, rr->cl);
            assert_true(span_is(rr->text, req.target, rr->target));
            assert_int_equal(hp_http_req_keep_alive(&req), rr->keep_alive);
        }
    }
    assert_int_equal(hp_alloc_count(), allocs);
}

static void test_field_spans(void **state)
{
    (void)state;
    const hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
    FOR_EACH_MODE(m) {
        const char *s = reals[11].text;
        hp_http_req_t req;
        hp_http_field_t f[MAXF];
        char tmp[256];
        assert_true(check_splits(s, strlen(s), &lim, &req, f) > 0);
        assert_true(span_is(s, req.method, "PATCH"));
        assert_true(span_is(s, f[0].name, "Host"));
        assert_string_equal(field_value(&req, f, s, "host", tmp), "h");
        assert_string_equal(field_value(&req, f, s, "X-EMPTY", tmp), "");
        assert_string_equal(field_value(&req, f, s, "x-pad", tmp), "v a l");
        assert_string_equal(field_value(&req, f, s, "x-obs", tmp), "caf\xc3\xa9");
        assert_null(field_value(&req, f, s, "x-missing", tmp));
        assert_int_equal(hp_http_find_field(&req, f, s, "X-Pa", 4), -1);

        s = reals[0].text;
        assert_true(check_splits(s, strlen(s), &lim, &req, f) > 0);
        assert_int_equal(req.method.off, 0);
        assert_string_equal(field_value(&req, f, s, "user-agent", tmp), "curl/7.88.1");
        assert_string_equal(field_value(&req, f, s, "ACCEPT", tmp), "*/*");
        (void)m;
    }
}

static void test_pipelined(void **state)
{
    (void)state;
    const hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
    const char *s = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                    "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                    "GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
    FOR_EACH_MODE(m) {
        hp_http_req_t req;
        hp_http_field_t f[MAXF];
        size_t n = strlen(s), off = 0;
        const char *targets[] = {"/a", "/b", "/c"};
        for (int k = 0; k < 3; k++) {
            int r = check_splits(s + off, n - off, &lim, &req, f);
            assert_true(r > 0);
            assert_true(span_is(s + off, req.target, targets[k]));
            off += (size_t)r + req.content_length;
        }
        assert_int_equal(off, n);
        (void)m;
    }
}

struct bad {
    const char *text;
    int status;
};

static const struct bad bads[] = {
    /* framing */
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n", -413},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n", -413},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", -501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", -501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", -501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n",
     -501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: Chunked\r\n\r\n",
     -400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", -400},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
    /* field syntax */
    {"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\tfolded\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\n Host: h\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX\x80: 1\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: \x1b[0m\r\n\r\n", -400},
    {"GET / HTTP/1.1\rHost: h\r\n\r\n", -400},
    {"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0}, /* placeholder replaced below: NUL cases */
    /* request line */
    {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", -400},
    {"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", -400},
    {" GET / HTTP/1.1\r\nHost: h\r\n\r\n", -400},
    {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", -400},
    {"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", -400},
    {"GET /\tx HTTP/1.1\r\nHost: h\r\n\r\n", -400},
    {"GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", -400},
    {"GET /\xe9 HTTP/1.1\r\nHost: h\r\n\r\n", -400},
    {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", -400},
    {"GET /\r\nHost: h\r\n\r\n", -400},
    {"GET / \r\nHost: h\r\n\r\n", -400},
    {"GET\r\n\r\n", -400},
    {"GET / HTTX/1.1\r\nHost: h\r\n\r\n", -400},
    {"GET / HTTP/1.10\r\nHost: h\r\n\r\n", -400},
    {"GET / HTTP/11\r\nHost: h\r\n\r\n", -400},
    {"GET / HTTP/1.x\r\nHost: h\r\n\r\n", -400},
    {"GET / http/1.1\r\nHost: h\r\n\r\n", -400},
    {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", -505},
    {"GET / HTTP/0.9\r\nHost: h\r\n\r\n", -505},
    {"GET / HTTP/3.1\r\nHost: h\r\n\r\n", -505},
    {"FOO / HTTP/1.1\r\nHost: h\r\n\r\n", -501},
    {"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", -501},
    {"get / HTTP/1.1\r\nHost: h\r\n\r\n", -501},
    {"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", -400},
    /* Host and Expect */
    {"GET / HTTP/1.1\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nX: y\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", -400},
    {"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", -417},
    {"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, x\r\n\r\n", -417},
};

static void test_rejections(void **state)
{
    (void)state;
    const hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
    uint64_t allocs = hp_alloc_count();
    FOR_EACH_MODE(m) {
        for (size_t i = 0; i < HP_ARRAY_LEN(bads); i++) {
            if (bads[i].status == 0)
                continue;
            hp_http_req_t req;
            hp_http_field_t f[MAXF];
            int r = check_splits(bads[i].text, strlen(bads[i].text), &lim, &req, f);
            if (r != bads[i].status)
                fail_msg("case %zu (%s): got %d want %d: %s", i, hp_http_simd_name(m), r,
                         bads[i].status, bads[i].text);
        }
        /* NUL bytes cannot live in the string table. */
        static const char nul1[] = "GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n";
        static const char nul2[] = "GET / HTTP/1.1\r\nHost: h\0\r\n\r\n";
        static const char nul3[] = "GET / HTTP/1.1\r\nHo\0st: h\r\n\r\n";
        static const char nul4[] = "G\0T / HTTP/1.1\r\nHost: h\r\n\r\n";
        hp_http_req_t req;
        hp_http_field_t f[MAXF];
        assert_int_equal(check_splits(nul1, sizeof(nul1) - 1, &lim, &req, f), -400);
        assert_int_equal(check_splits(nul2, sizeof(nul2) - 1, &lim, &req, f), -400);
        assert_int_equal(check_splits(nul3, sizeof(nul3) - 1, &lim, &req, f), -400);
        assert_int_equal(check_splits(nul4, sizeof(nul4) - 1, &lim, &req, f), -400);
    }
    assert_int_equal(hp_alloc_count(), allocs);
}

/* Builds "GET /aaa...a HTTP/1.1" of exactly `line` bytes. */
static size_t make_line(char *out, size_t line)
{
    size_t t = line - strlen("GET  HTTP/1.1");
    size_t n = 0;
    n += (size_t)sprintf(out, "GET /");
    memset(out + n, 'a', t - 1);
    n += t - 1;
    n += (size_t)sprintf(out + n, " HTTP/1.1");
    return n;
}

static void test_limit_request_line(void **state)
{
    (void)state;
    static char buf[80000];
    FOR_EACH_MODE(m) {
        hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
        for (size_t max = 20; max <= 200; max += 37) {
            lim.max_request_line = (uint32_t)max;
            for (size_t line = max - 1; line <= max + 1; line++) {
                size_t n = make_line(buf, line);
                assert_int_equal(n, line);
                n += (size_t)sprintf(buf + n, "\r\nHost: h\r\n\r\n");
                int want = line <= max ? (int)n : -414;
                assert_int_equal(parse_str(buf, &lim), want);
                /* bare LF terminator too */
                hp_http_req_t req;
                hp_http_field_t f[MAXF];
                if (line <= max)
                    assert_int_equal(check_splits(buf, n, &lim, &req, f), want);
            }
            /* Detected as soon as max+1 line bytes arrived, with no end. */
            size_t n = make_line(buf, max + 40);
            hp_http_req_t req;
            hp_http_field_t f[MAXF];
            hp_http_req_init(&req);
            assert_int_equal(parse_n(&req, f, buf, max, &lim), 0);
            assert_int_equal(parse_n(&req, f, buf, max + 1, &lim), -414);
            hp_http_req_init(&req);
            assert_int_equal(parse_n(&req, f, buf, max + 1, &lim), -414);
            (void)n;
            /* An over-long method or target is a 414 as well. */
            memset(buf, 'G', max + 1);
            hp_http_req_init(&req);
            assert_int_equal(parse_n(&req, f, buf, max + 1, &lim), -414);
        }
        /* Default limit, with leading empty lines not counted. */
        lim = HP_HTTP_LIMITS_DEFAULT;
        size_t n = (size_t)sprintf(buf, "\r\n");
        n += make_line(buf + n, 8192);
        n += (size_t)sprintf(buf + n, "\r\nHost: h\r\n\r\n");
        assert_int_equal(parse_str(buf, &lim), (int)n);
        n = make_line(buf, 8193);
        sprintf(buf + n, "\r\nHost: h\r\n\r\n");
        assert_int_equal(parse_str(buf, &lim), -414);
        (void)m;
    }
}

/* A head whose header section (after the request line) is exactly hbytes
 * bytes: one Host field, then X fields padded to size. */
static size_t make_head(char *out, size_t hbytes, size_t *nfields)
{
    size_t n = (size_t)sprintf(out, "GET / HTTP/1.1\r\n");
    size_t start = n, nf = 0;
    n += (size_t)sprintf(out + n, "Host: h\r\n");
    nf++;
    while (hbytes - (n - start) > 2) {
        size_t left = hbytes - (n - start) - 2; /* room before the final CRLF */
        size_t take = left > 1000 ? 900 : left;
        if (take < 5) {
            /* Too small for a field: grow the previous one by take. */
            n -= 2;
            memset(out + n, 'v', take);
            n += take;
            n += (size_t)sprintf(out + n, "\r\n");
            continue;
        }
        /* "X:" + value + CRLF = take */
        n += (size_t)sprintf(out + n, "X:");
        memset(out + n, 'v', take - 4);
        n += take - 4;
        n += (size_t)sprintf(out + n, "\r\n");
        nf++;
    }
    n += (size_t)sprintf(out + n, "\r\n");
    *nfields = nf;
    return n;
}

static void test_limit_header_bytes(void **state)
{
    (void)state;
    static char buf[80000];
    FOR_EACH_MODE(m) {
        hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
        size_t nf;
        const size_t sizes[] = {11, 12, 50, 333, 16384};
        for (size_t k = 0; k < HP_ARRAY_LEN(sizes); k++) {
            size_t hb = sizes[k];
            lim.max_header_bytes = (uint32_t)(k == 4 ? 16384 : hb);
            size_t n = make_head(buf, hb, &nf);
            assert_int_equal(n - strlen("GET / HTTP/1.1\r\n"), hb);
            assert_int_equal(parse_str(buf, &lim), (int)n);
            lim.max_header_bytes--;
            assert_int_equal(parse_str(buf, &lim), -431);
            /* detected as soon as exceeded */
            hp_http_req_t req;
            hp_http_field_t f[MAXF];
            hp_http_req_init(&req);
            assert_int_equal(parse_n(&req, f, buf, n - 1, &lim), 0);
            assert_int_equal(parse_n(&req, f, buf, n, &lim), -431);
            lim.max_header_bytes++;
        }
        /* A header section that never ends is refused once it passes the
         * limit, without waiting for the end. */
        lim = HP_HTTP_LIMITS_DEFAULT;
        size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nX: ");
        memset(buf + n, 'z', 20000);
        hp_http_req_t req;
        hp_http_field_t f[MAXF];
        hp_http_req_init(&req);
        assert_int_equal(parse_n(&req, f, buf, 16 + 16384, &lim), 0);
        assert_int_equal(parse_n(&req, f, buf, 16 + 16385, &lim), -431);
        (void)m;
    }
}

static void test_limit_fields(void **state)
{
    (void)state;
    static char buf[8192];
    FOR_EACH_MODE(m) {
        for (uint32_t maxf = 1; maxf <= 100; maxf += 33) {
            hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
            lim.max_fields = maxf;
            for (uint32_t nf = maxf; nf <= maxf + 1; nf++) {
                size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: h\r\n");
                for (uint32_t i = 1; i < nf; i++)
                    n += (size_t)sprintf(buf + n, "X-%u: %u\r\n", i, i);
                n += (size_t)sprintf(buf + n, "\r\n");
                hp_http_req_t req;
                hp_http_field_t *f = calloc(maxf, sizeof(*f)); /* exactly max_fields */
                hp_http_req_init(&req);
                char *p = dup_exact(buf, n);
                int r = hp_http_parse(&req, f, p, n, &lim);
                free(p);
                free(f);
                assert_int_equal(r, nf <= maxf ? (int)n : -431);
                if (r > 0)
                    assert_int_equal(req.nfields, nf);
            }
        }
        (void)m;
    }
}

static void test_limit_body(void **state)
{
    (void)state;
    FOR_EACH_MODE(m) {
        hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
        lim.max_body = 100;
        assert_true(parse_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n", &lim) > 0);
        assert_int_equal(parse_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", &lim),
                         -413);
        assert_true(parse_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &lim) > 0);
        lim = HP_HTTP_LIMITS_DEFAULT;
        assert_true(
            parse_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n", &lim) > 0);
        assert_int_equal(
            parse_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n", &lim), -413);
        (void)m;
    }
}

/* Limits big enough to let a head pass 64 KiB: spans are 16-bit, so the
 * parser refuses with 431 at HP_HTTP_MAX_HEAD bytes. */
static void test_limit_span_cap(void **state)
{
    (void)state;
    static char buf[140000];
    FOR_EACH_MODE(m) {
        hp_http_limits_t lim = {200000, 200000, 100000, 1};
        size_t nf;
        size_t n = make_head(buf, HP_HTTP_MAX_HEAD - 16, &nf);
        assert_int_equal(n, HP_HTTP_MAX_HEAD);
        hp_http_req_t req;
        hp_http_field_t *f = calloc(lim.max_fields, sizeof(*f));
        hp_http_req_init(&req);
        assert_int_equal(parse_n(&req, f, buf, n, &lim), (int)n);
        n = make_head(buf, HP_HTTP_MAX_HEAD - 15, &nf);
        hp_http_req_init(&req);
        assert_int_equal(parse_n(&req, f, buf, n, &lim), -431);
        hp_http_req_init(&req);
        assert_int_equal(parse_n(&req, f, buf, HP_HTTP_MAX_HEAD, &lim), 0);
        assert_int_equal(parse_n(&req, f, buf, HP_HTTP_MAX_HEAD + 1, &lim), -431);
        /* and in the request line */
        n = make_line(buf, 70000);
        hp_http_req_init(&req);
        assert_int_equal(parse_n(&req, f, buf, n, &lim), -431);
        free(f);
        (void)m;
    }
}

/* ------------------------------------------------------------------ */
/* Guard page                                                          */

static char *guard_map(size_t *page)
{
    *page = (size_t)sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 2 * *page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    assert_int_equal(mprotect(p + *page, *page, PROT_NONE), 0);
    return p;
}

static void test_guard_page(void **state)
{
    (void)state;
    size_t page;
    char *map = guard_map(&page);
    const hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
    FOR_EACH_MODE(m) {
        for (size_t i = 0; i < HP_ARRAY_LEN(reals); i++) {
            const char *s = reals[i].text;
            size_t n = strlen(s);
            for (size_t k = 0; k <= n; k++) {
                char *p = map + page - k;
                memcpy(p, s, k);
                hp_http_req_t req;
                hp_http_field_t f[MAXF];
                hp_http_req_init(&req);
                int r = hp_http_parse(&req, f, p, k, &lim);
                assert_true(r >= 0);
            }
        }
        /* Long runs of each class ending at the guard, so the 16- and
         * 32-byte loops run right up to it. */
        for (size_t k = 1; k < 200; k++) {
            char *p = map + page - k;
            hp_http_req_t req;
            hp_http_field_t f[MAXF];
            memset(p, 'A', k);
            hp_http_req_init(&req);
            assert_int_equal(hp_http_parse(&req, f, p, k, &lim), 0);
            if (k > 2) {
                memcpy(p, "G /", 3);
                hp_http_req_init(&req);
                assert_int_equal(hp_http_parse(&req, f, p, k, &lim), 0);
            }
            static const char pre[] = "GET / HTTP/1.1\r\nX:";
            if (k > sizeof(pre)) {
                memset(p, 'v', k);
                memcpy(p, pre, sizeof(pre) - 1);
                hp_http_req_init(&req);
                assert_int_equal(hp_http_parse(&req, f, p, k, &lim), 0);
                memset(p, 'n', k);
                memcpy(p, pre, sizeof(pre) - 3);
                hp_http_req_init(&req);
                assert_int_equal(hp_http_parse(&req, f, p, k, &lim), 0);
            }
        }
    }
    /* The chunked decoder against the guard, too. */
    static const char body[] = "1a;x=y\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: v\r\n\r\n";
    for (size_t k = 0; k < sizeof(body); k++) {
        char *p = map + page - k;
        memcpy(p, body, k);
        hp_http_chunked_t c;
        size_t used, out;
        hp_http_chunked_init(&c, 1000);
        int r = hp_http_chunked_decode(&c, p, k, &used, &out);
        assert_int_equal(r, k == sizeof(body) - 1 ? 1 : 0);
    }
    munmap(map, 2 * page);
}

/* The three scanner flavours agree on every prefix of random bytes. */
static void test_scanners_agree(void **state)
{
    (void)state;
    unsigned seed = 12345;
    char buf[300];
    for (int round = 0; round < 3000; round++) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            seed = seed * 1103515245u + 12345u;
            /* mostly class bytes, with a rare stop byte */
            int r = (int)(seed >> 16) % 64;
            buf[i] = r == 0 ? (char)(seed >> 8) : (char)"aZ09-!|~/ :\t\x80"[(seed >> 20) % 14];
        }
        size_t pos = (size_t)(seed >> 4) % 40, end = pos + (size_t)(seed >> 10) % 250;
        size_t t = scan_token_scalar(buf, pos, end);
        size_t v = scan_vchar_scalar(buf, pos, end);
        size_t w = scan_value_scalar(buf, pos, end);
        (void)t, (void)v, (void)w; /* unused when no SIMD flavour is built */
#if HP_HAVE_SSE42_TARGET
        if (__builtin_cpu_supports("sse4.2")) {
            assert_int_equal(scan_token_sse42(buf, pos, end), t);
            assert_int_equal(scan_vchar_sse42(buf, pos, end), v);
            assert_int_equal(scan_value_sse42(buf, pos, end), w);
        }
#endif
#if HP_HAVE_AVX2_TARGET
        if (__builtin_cpu_supports("avx2")) {
            assert_int_equal(scan_token_avx2(buf, pos, end), t);
            assert_int_equal(scan_vchar_avx2(buf, pos, end), v);
            assert_int_equal(scan_value_avx2(buf, pos, end), w);
        }
#endif
    }
    /* every single byte value as the stop candidate */
    for (int b = 0; b < 256; b++) {
        char s[64];
        memset(s, 'a', sizeof(s));
        s[37] = (char)b;
        size_t t = scan_token_scalar(s, 0, 64), v = scan_vchar_scalar(s, 0, 64),
               w = scan_value_scalar(s, 0, 64);
        assert_int_equal(t == 37, !tchar_tbl[b]);
        assert_int_equal(v == 37, !(b > 0x20 && b < 0x7f));
        assert_int_equal(w == 37, !(b == '\t' || (b >= 0x20 && b != 0x7f)));
#if HP_HAVE_SSE42_TARGET
        assert_int_equal(scan_token_sse42(s, 0, 64), t);
        assert_int_equal(scan_vchar_sse42(s, 0, 64), v);
        assert_int_equal(scan_value_sse42(s, 0, 64), w);
#endif
#if HP_HAVE_AVX2_TARGET
        if (__builtin_cpu_supports("avx2")) {
            assert_int_equal(scan_token_avx2(s, 0, 64), t);
            assert_int_equal(scan_vchar_avx2(s, 0, 64), v);
            assert_int_equal(scan_value_avx2(s, 0, 64), w);
        }
#endif
    }
}

static void test_simd_select(void **state)
{
    (void)state;
    assert_string_equal(hp_http_simd_name(HP_HTTP_SIMD_SCALAR), "scalar");
    assert_string_equal(hp_http_simd_name(HP_HTTP_SIMD_SSE42), "sse42");
    assert_string_equal(hp_http_simd_name(HP_HTTP_SIMD_AVX2), "avx2");
    assert_string_equal(hp_http_simd_name(9), "?");
    assert_int_equal(hp_http_parser_set_simd(HP_HTTP_SIMD_SCALAR), HP_HTTP_SIMD_SCALAR);
    int best = modes[nmodes - 1];
    setenv("HOTPATH_SIMD", "scalar", 1);
    assert_int_equal(hp_http_parser_init(), HP_HTTP_SIMD_SCALAR);
    setenv("HOTPATH_SIMD", "sse42", 1);
    assert_int_equal(hp_http_parser_init(), best >= HP_HTTP_SIMD_SSE42 ? HP_HTTP_SIMD_SSE42 : best);
    setenv("HOTPATH_SIMD", "avx2", 1);
    assert_int_equal(hp_http_parser_init(), best);
    unsetenv("HOTPATH_SIMD");
    assert_int_equal(hp_http_parser_init(), best);
    assert_int_equal(hp_http_parser_set_simd(42), best);
    assert_true(sizeof(hp_http_req_t) <= 64);
}

static void test_keep_alive_and_done(void **state)
{
    (void)state;
    const hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
    hp_http_req_t req;
    hp_http_field_t f[MAXF];
    const char *s = "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\nGET";
    hp_http_req_init(&req);
    int r = parse_n(&req, f, s, strlen(s), &lim);
    assert_int_equal(r, (int)strlen(s) - 3);
    assert_false(hp_http_req_keep_alive(&req));
    /* a completed parse stays complete */
    assert_int_equal(parse_n(&req, f, s, strlen(s), &lim), r);
    s = "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    hp_http_req_init(&req);
    assert_true(parse_n(&req, f, s, strlen(s), &lim) > 0);
    assert_true(hp_http_req_keep_alive(&req));
    assert_int_equal(req.flags, 0);
    /* A caller that hands back fewer bytes than were accepted is refused
     * rather than scanned with a wrapped length. */
    hp_http_req_init(&req);
    assert_int_equal(parse_n(&req, f, s, 20, &lim), 0);
    assert_int_equal(parse_n(&req, f, s, 10, &lim), -400);
}

/* ------------------------------------------------------------------ */
/* Chunked decoder                                                     */

/* Decodes raw[0..n) fed as two pieces split at k; returns the status and
 * the decoded bytes in out, the raw bytes used in *used. */
static int chunked_split(const char *raw, size_t n, size_t k, uint64_t max, char *out,
                         size_t *out_n, size_t *used)
{
    hp_http_chunked_t c;
    hp_http_chunked_init(&c, max);
    size_t got = 0, off = 0;
    int r = 0;
    size_t cuts[2] = {k, n};
    for (int piece = 0; piece < 2 && r == 0; piece++) {
        size_t len = cuts[piece] - off;
        char *p = dup_exact(raw + off, len);
        size_t cons, ol;
        r = hp_http_chunked_decode(&c, p, len, &cons, &ol);
        assert_true(ol <= cons);
        memcpy(out + got, p, ol);
        got += ol;
        free(p);
        if (r == 0)
            assert_int_equal(cons, len);
        off += cons;
    }
    *out_n = got;
    *used = off;
    return r;
}

struct chunk_case {
    const char *raw;
    const char *data;
    int status;
    size_t tail; /* bytes after the body, left unconsumed */
};

static const struct chunk_case chunk_ok[] = {
    {"5\r\nhello\r\n0\r\n\r\n", "hello", 1, 0},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 1, 0},
    {"0\r\n\r\n", "", 1, 0},
    {"A\r\n0123456789\r\n0\r\n\r\n", "0123456789", 1, 0},
    {"00a\r\n0123456789\r\n000\r\n\r\n", "0123456789", 1, 0},
    {"3;name=value;flag\r\nabc\r\n0;last\r\n\r\n", "abc", 1, 0},
    {"3 ;ext=\"quoted \\\" str\"\r\nabc\r\n0\r\n\r\n", "abc", 1, 0},
    {"3\r\nabc\r\n0\r\nExpires: never\r\nX-Checksum: 1234\r\n\r\n", "abc", 1, 0},
    {"3\nabc\n0\n\n", "abc", 1, 0},
    {"1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", "\r\n", 1, 0},
    {"4\r\nwiki\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "wiki", 1, 27},
    {"2\r\nab\r\n0\r\nT: x\r\n\r\nPOST", "ab", 1, 4},
};

static void test_chunked_valid(void **state)
{
    (void)state;
    uint64_t allocs = hp_alloc_count();
    for (size_t i = 0; i < HP_ARRAY_LEN(chunk_ok); i++) {
        const struct chunk_case *cc = &chunk_ok[i];
        size_t n = strlen(cc->raw);
        for (size_t k = 0; k <= n; k++) {
            char out[256];
            size_t on, used;
            int r = chunked_split(cc->raw, n, k, 1000, out, &on, &used);
            if (r != cc->status || used != n - cc->tail)
                fail_msg("chunk case %zu split %zu: %d used %zu", i, k, r, used);
            assert_int_equal(on, strlen(cc->data));
            assert_memory_equal(out, cc->data, on);
            assert_int_equal(used, n - cc->tail);
        }
        /* byte at a time */
        hp_http_chunked_t c;
        hp_http_chunked_init(&c, 1000);
        char out[256];
        size_t got = 0, k = 0;
        int r = 0;
        for (; k < n && r == 0; k++) {
            char b = cc->raw[k];
            size_t cons, ol;
            r = hp_http_chunked_decode(&c, &b, 1, &cons, &ol);
            assert_int_equal(cons, 1);
            if (ol)
                out[got++] = b;
        }
        assert_int_equal(r, 1);
        assert_int_equal(k, n - cc->tail);
        assert_int_equal(got, strlen(cc->data));
        assert_memory_equal(out, cc->data, got);
        /* after the end, nothing more is consumed */
        char more[4] = "abc";
        size_t cons, ol;
        assert_int_equal(hp_http_chunked_decode(&c, more, 3, &cons, &ol), 1);
        assert_int_equal(cons, 0);
        assert_int_equal(ol, 0);
    }
    assert_int_equal(hp_alloc_count(), allocs);
}

static const struct chunk_case chunk_bad[] = {
    {"\r\nhello\r\n0\r\n\r\n", "", -400, 0},
    {"g\r\n", "", -400, 0},
    {"5x\r\nhello\r\n0\r\n\r\n", "", -400, 0},
    {"-5\r\n", "", -400, 0},
    {"+5\r\n", "", -400, 0},
    {"0x5\r\n", "", -400, 0},
    {"5\rhello\r\n0\r\n\r\n", "", -400, 0},
    {"5\r\nhelloX\r\n0\r\n\r\n", "", -400, 0},
    {"5\r\nhello\rX0\r\n\r\n", "", -400, 0},
    {"5\r\nhello0\r\n\r\n", "", -400, 0},
    {"5 6\r\nhello\r\n0\r\n\r\n", "", -400, 0},
    {"5;a\x01\r\nhello\r\n0\r\n\r\n", "", -400, 0},
    {"10000000000000000\r\n", "", -400, 0},
    {"0\r\nT: a\rb\r\n\r\n", "", -400, 0},
    {"0\r\nT: a\x01\r\n\r\n", "", -400, 0},
    {"0\r\n\rX", "", -400, 0},
    {"5\r\nhello\r\n0\r\n\r\n", "", -413, 0}, /* with max_body 4 */
};

static void test_chunked_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < HP_ARRAY_LEN(chunk_bad); i++) {
        const struct chunk_case *cc = &chunk_bad[i];
        size_t n = strlen(cc->raw);
        uint64_t max = cc->status == -413 ? 4 : 1000;
        for (size_t k = 0; k <= n; k++) {
            char out[256];
            size_t on, used;
            int r = chunked_split(cc->raw, n, k, max, out, &on, &used);
            if (r != cc->status)
                fail_msg("chunk case %zu split %zu: got %d want %d", i, k, r, cc->status);
        }
    }
    /* 2^64-1 fits; the digit after it does not */
    char out[64];
    size_t on, used;
    assert_int_equal(chunked_split("ffffffffffffffff\r\n", 18, 5, UINT64_MAX, out, &on, &used), 0);
    assert_int_equal(chunked_split("ffffffffffffffff0\r\n", 19, 5, UINT64_MAX, out, &on, &used),
                     -400);
}

static void test_chunked_limits(void **state)
{
    (void)state;
    char out[64];
    size_t on, used;
    /* max_body exactly reached across chunks is fine; one past is not */
    static const char two[] = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    assert_int_equal(chunked_split(two, sizeof(two) - 1, 0, 5, out, &on, &used), 1);
    assert_int_equal(on, 5);
    assert_int_equal(chunked_split(two, sizeof(two) - 1, 9, 4, out, &on, &used), -413);
    assert_int_equal(chunked_split("0\r\n\r\n", 5, 2, 0, out, &on, &used), 1);
    assert_int_equal(chunked_split("1\r\nx\r\n0\r\n\r\n", 11, 2, 0, out, &on, &used), -413);

    /* size line (with extension) of exactly 4096 bytes, and 4097 */
    static char big[40000];
    for (size_t line = HP_HTTP_CHUNK_LINE_MAX; line <= HP_HTTP_CHUNK_LINE_MAX + 1; line++) {
        size_t n = 0;
        big[n++] = '1';
        big[n++] = ';';
        memset(big + n, 'e', line - 2);
        n += line - 2;
        n += (size_t)sprintf(big + n, "\r\nz\r\n0\r\n\r\n");
        int want = line <= HP_HTTP_CHUNK_LINE_MAX ? 1 : -400;
        for (size_t k = 0; k <= n; k += 511) {
            assert_int_equal(chunked_split(big, n, k, 100, out, &on, &used), want);
            if (want == 1) {
                assert_int_equal(on, 1);
                assert_int_equal(out[0], 'z');
            }
        }
    }
    /* leading zeros count towards the line too */
    memset(big, '0', HP_HTTP_CHUNK_LINE_MAX + 1);
    assert_int_equal(chunked_split(big, HP_HTTP_CHUNK_LINE_MAX + 1, 7, 100, out, &on, &used),
                     -400);

    /* trailers: exactly 16 KiB including the final CRLF, then one more */
    for (size_t tb = HP_HTTP_TRAILER_MAX; tb <= HP_HTTP_TRAILER_MAX + 1; tb++) {
        size_t n = (size_t)sprintf(big, "0\r\n");
        size_t fill = tb - 2 - 2 - 3; /* "T: " + fill + CRLF + CRLF */
        n += (size_t)sprintf(big + n, "T: ");
        memset(big + n, 't', fill);
        n += fill;
        n += (size_t)sprintf(big + n, "\r\n\r\n");
        assert_int_equal(n - 3, tb);
        int want = tb <= HP_HTTP_TRAILER_MAX ? 1 : -431;
        for (size_t k = 0; k <= n; k += 1001)
            assert_int_equal(chunked_split(big, n, k, 100, out, &on, &used), want);
    }
}

/* How far each error stops, decoding the whole input in one call: a bad
 * size-line or data-end byte, and the byte over a limit, are not consumed;
 * a bad trailer byte is (the trailer step counts and takes every byte
 * before it looks at it). The data before the error is output. */
static void test_chunked_error_consumed(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        uint64_t max;
        int status;
        size_t used, out;
    } t[] = {
        {"g\r\n", 100, -400, 0, 0},                 /* no digits */
        {"5x\r\n", 100, -400, 1, 0},                /* bad byte after the digits */
        {"10000000000000000\r\n", UINT64_MAX, -400, 16, 0}, /* overflow */
        {"5\r\n", 4, -413, 1, 0},                   /* over max_body at the line's end */
        {"5\rX", 100, -400, 2, 0},                  /* CR without LF in the size line */
        {"5\r\nhelloX", 100, -400, 8, 5},           /* no CRLF after the data */
        {"5\r\nhello\rX", 100, -400, 9, 5},         /* CR without LF after the data */
        {"0\r\nT: a\rb\r\n\r\n", 100, -400, 9, 0},  /* bare CR in a trailer */
        {"0\r\nT: a\x01\r\n\r\n", 100, -400, 8, 0}, /* bad trailer byte */
        {"0\r\n\rX", 100, -400, 5, 0},              /* bare CR in the final line */
    };
    for (size_t i = 0; i < HP_ARRAY_LEN(t); i++) {
        size_t n = strlen(t[i].raw), used = 99, on = 99;
        char *p = dup_exact(t[i].raw, n);
        hp_http_chunked_t c;
        hp_http_chunked_init(&c, t[i].max);
        int r = hp_http_chunked_decode(&c, p, n, &used, &on);
        free(p);
        if (r != t[i].status || used != t[i].used || on != t[i].out)
            fail_msg("case %zu: %d used %zu out %zu", i, r, used, on);
    }
    /* The byte past a limit is the first not consumed. */
    static char big[HP_HTTP_TRAILER_MAX + 64];
    size_t n = 0, used, on;
    big[n++] = '1';
    big[n++] = ';';
    memset(big + n, 'e', HP_HTTP_CHUNK_LINE_MAX);
    n += HP_HTTP_CHUNK_LINE_MAX;
    hp_http_chunked_t c;
    hp_http_chunked_init(&c, 100);
    assert_int_equal(hp_http_chunked_decode(&c, big, n, &used, &on), -400);
    assert_int_equal(used, HP_HTTP_CHUNK_LINE_MAX);
    n = (size_t)sprintf(big, "0\r\n");
    memset(big + n, 't', HP_HTTP_TRAILER_MAX + 1);
    n += HP_HTTP_TRAILER_MAX + 1;
    hp_http_chunked_init(&c, 100);
    assert_int_equal(hp_http_chunked_decode(&c, big, n, &used, &on), -431);
    assert_int_equal(used, 3 + HP_HTTP_TRAILER_MAX);
}

/* A full chunked request: head, decoded body, pipelined request after. */
static void test_chunked_request(void **state)
{
    (void)state;
    const hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
    static const char s[] = "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "7;ext\r\nchunked\r\n8\r\n request\r\n0\r\nTrailer: 1\r\n\r\n"
                            "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    char buf[sizeof(s)];
    memcpy(buf, s, sizeof(s));
    FOR_EACH_MODE(m) {
        memcpy(buf, s, sizeof(s));
        hp_http_req_t req;
        hp_http_field_t f[MAXF];
        hp_http_req_init(&req);
        int hl = hp_http_parse(&req, f, buf, sizeof(s) - 1, &lim);
        assert_true(hl > 0);
        assert_true(req.flags & HP_HTTP_F_CHUNKED);
        hp_http_chunked_t c;
        hp_http_chunked_init(&c, lim.max_body);
        size_t used, on;
        assert_int_equal(
            hp_http_chunked_decode(&c, buf + hl, sizeof(s) - 1 - (size_t)hl, &used, &on), 1);
        assert_int_equal(on, 15);
        assert_memory_equal(buf + hl, "chunked request", 15);
        const char *next = buf + hl + used;
        assert_memory_equal(next, "GET /next", 9);
        hp_http_req_init(&req);
        assert_true(hp_http_parse(&req, f, next, strlen(next), &lim) > 0);
        assert_true(span_is(next, req.target, "/next"));
        (void)m;
    }
}

/* The parser and decoder allocate nothing: with every allocation armed
 * to fail they still succeed, and the allocation count does not move. */
static void test_no_allocation(void **state)
{
    (void)state;
    const hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
    uint64_t before = hp_alloc_count();
    hp_alloc_fail_after(1, 1);
    FOR_EACH_MODE(m) {
        for (size_t i = 0; i < HP_ARRAY_LEN(reals); i++) {
            hp_http_req_t req;
            hp_http_field_t f[MAXF];
            hp_http_req_init(&req);
            assert_true(hp_http_parse(&req, f, reals[i].text, strlen(reals[i].text), &lim) > 0);
        }
        (void)m;
    }
    char body[] = "5\r\nhello\r\n0\r\n\r\n";
    hp_http_chunked_t c;
    size_t used, on;
    hp_http_chunked_init(&c, 100);
    assert_int_equal(hp_http_chunked_decode(&c, body, strlen(body), &used, &on), 1);
    hp_alloc_fail_after(0, 0);
    assert_int_equal(hp_alloc_count(), before);
}

int main(void)
{
    find_modes();
    printf("scanner modes:");
    for (int i = 0; i < nmodes; i++)
        printf(" %s", hp_http_simd_name(modes[i]));
    printf("\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_requests),
        cmocka_unit_test(test_field_spans),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_limit_request_line),
        cmocka_unit_test(test_limit_header_bytes),
        cmocka_unit_test(test_limit_fields),
        cmocka_unit_test(test_limit_body),
        cmocka_unit_test(test_limit_span_cap),
        cmocka_unit_test(test_guard_page),
        cmocka_unit_test(test_scanners_agree),
        cmocka_unit_test(test_simd_select),
        cmocka_unit_test(test_keep_alive_and_done),
        cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_malformed),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_chunked_error_consumed),
        cmocka_unit_test(test_chunked_request),
        cmocka_unit_test(test_no_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
