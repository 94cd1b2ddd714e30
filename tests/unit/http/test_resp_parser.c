/*
 * test_resp_parser.c - unit tests for the HTTP/1.1 response parser (src/http/resp_parser.c).
 *
 * Every case runs under each scanner flavour the CPU has. Real responses
 * (hotpath, nginx, h2o, chunked with extensions and trailers, 204, 304,
 * HEAD, 1xx, HTTP/1.0 close-delimited) are split at every byte offset of
 * the head and of the body and must give the same outcome as a whole
 * parse, and that outcome is checked against what the response means. Every
 * rejection is checked for its exact code, limits at and one past their
 * boundary, truncation through body_eof, pipelining with buffer
 * compaction, and inputs ending at a PROT_NONE guard page.
 */
#include "hotpath/alloc.h"
#include "hotpath/http_resp_parser.h"
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

#define CL HP_RESP_PARSER_F_CONTENT_LENGTH
#define CH HP_RESP_PARSER_F_CHUNKED
#define CLOSE HP_RESP_PARSER_F_CLOSE
#define NOB HP_RESP_PARSER_F_NO_BODY
#define UNTIL HP_RESP_PARSER_F_UNTIL_CLOSE

#define E_STATUS (-HP_RESP_PARSER_E_STATUS)
#define E_HEADER (-HP_RESP_PARSER_E_HEADER)
#define E_FRAMING (-HP_RESP_PARSER_E_FRAMING)
#define E_TRUNC (-HP_RESP_PARSER_E_TRUNCATED)

static int modes[3];
static int nmodes;

/* The flavours this CPU has: a mode is present when forcing it is not
 * refused by hp_http_parser_set_simd (same rules as the dispatcher). */
static void find_modes(void)
{
    nmodes = 0;
    for (int m = HP_HTTP_SIMD_SCALAR; m <= HP_HTTP_SIMD_AVX2; m++)
        if (hp_http_parser_set_simd(m) == m)
            modes[nmodes++] = m;
}

/* A fresh heap block of exactly n bytes: ASan reports reads past the end. */
static char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static int head_n(hp_resp_parser_t *r, const char *s, size_t n, int mode)
{
    char *p = dup_exact(s, n);
    int rc = hp_resp_parser_head_mode(r, p, n, mode);
    free(p);
    return rc;
}

/* What a client learns from one response. */
struct outcome {
    int head;        /* parse_head result */
    uint16_t status;
    uint8_t vminor;
    uint32_t flags, head_len;
    uint64_t cl;
    int body;        /* last hp_resp_parser_body result */
    size_t used;     /* body bytes consumed */
    int eof;         /* hp_resp_parser_body_eof afterwards */
};

/* Runs one response s[0..n) through a client: the head is fed as the
 * prefix [0..hs) and then all of it, the body as [0..bs) of what follows
 * the head and then the rest. Each call reads a fresh exact copy, the way
 * a compacting buffer would present the bytes. */
static void run(const char *s, size_t n, bool head_req, size_t hs, size_t bs, int mode,
                struct outcome *o)
{
    hp_resp_parser_t r;
    memset(o, 0, sizeof(*o));
    hp_resp_parser_init(&r, head_req);
    int rc = head_n(&r, s, hs < n ? hs : n, mode);
    if (rc == 0)
        rc = head_n(&r, s, n, mode);
    o->head = rc;
    if (rc <= 0)
        return;
    assert_int_equal(rc, (int)r.head_len);
    o->status = r.status;
    o->vminor = r.version_minor;
    o->flags = r.flags;
    o->head_len = r.head_len;
    o->cl = r.content_length;
    size_t pos = r.head_len;
    size_t split = pos + bs < n ? pos + bs : n;
    int b = 0;
    for (int round = 0; round < 2 && b == 0; round++) {
        size_t end = round == 0 ? split : n;
        char *p = dup_exact(s + pos, end - pos);
        size_t used = 12345;
        b = hp_resp_parser_body(&r, p, end - pos, &used);
        free(p);
        assert_true(used <= end - pos);
        if (b == 0)
            assert_int_equal(used, end - pos); /* need more: everything was taken */
        pos += used;
        o->used += used;
    }
    o->body = b;
    o->eof = hp_resp_parser_body_eof(&r);
}

static void assert_same(const struct outcome *a, const struct outcome *b)
{
    assert_int_equal(a->head, b->head);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->vminor, b->vminor);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->head_len, b->head_len);
    assert_int_equal(a->cl, b->cl);
    assert_int_equal(a->body, b->body);
    assert_int_equal(a->used, b->used);
    assert_int_equal(a->eof, b->eof);
}

/* Whole parse, then every head split and every body split, in every mode:
 * all must agree. A head prefix shorter than the head needs more. Returns
 * the whole outcome (scalar). */
static void check_splits(const char *s, size_t n, bool head_req, struct outcome *whole)
{
    run(s, n, head_req, n, n, HP_HTTP_SIMD_SCALAR, whole);
    for (int mi = 0; mi < nmodes; mi++) {
        struct outcome o;
        run(s, n, head_req, n, n, modes[mi], &o);
        assert_same(whole, &o);
        for (size_t k = 0; k <= n; k++) {
            if (whole->head > 0 && k < (size_t)whole->head) {
                hp_resp_parser_t r;
                hp_resp_parser_init(&r, head_req);
                assert_int_equal(head_n(&r, s, k, modes[mi]), 0);
            }
            run(s, n, head_req, k, n, modes[mi], &o);
            assert_same(whole, &o);
        }
        if (whole->head > 0) {
            for (size_t k = 0; k <= n - whole->head_len; k++) {
                run(s, n, head_req, n, k, modes[mi], &o);
                assert_same(whole, &o);
            }
        }
        /* A byte at a time through the head. */
        hp_resp_parser_t r;
        hp_resp_parser_init(&r, head_req);
        int rc = 0;
        for (size_t k = 0; k <= n && rc == 0; k++)
            rc = head_n(&r, s, k, modes[mi]);
        assert_int_equal(rc, whole->head);
    }
}

/* ------------------------------------------------------------------ */
/* Real responses                                                      */

#define DATE "Date: Mon, 12 Feb 2024 10:00:00 GMT\r\n"

struct real {
    const char *name, *text;
    bool head_req;
    uint16_t status;
    uint8_t vminor;
    uint32_t flags;
    uint64_t cl;
    int body, eof;
    long used; /* body bytes; -1: everything after the head */
};

static const struct real reals[] = {
    {"hotpath plaintext",
     "HTTP/1.1 200 OK\r\nServer: hotpath\r\n" DATE
     "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!",
     false, 200, 1, CL, 13, 1, 1, 13},
    {"hotpath json keep-alive",
     "HTTP/1.1 200 OK\r\nServer: hotpath\r\n" DATE "Content-Type: application/json\r\n"
     "Content-Length: 27\r\nConnection: keep-alive\r\n\r\n{\"message\":\"Hello, World!\"}",
     false, 200, 1, CL, 27, 1, 1, 27},
    {"hotpath 404 close",
     "HTTP/1.1 404 Not Found\r\nServer: hotpath\r\n" DATE "Content-Type: text/plain\r\n"
     "Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n",
     false, 404, 1, CL | CLOSE, 10, 1, 1, 10},
    {"nginx",
     "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n" DATE "Content-Type: text/html\r\n"
     "Content-Length: 45\r\nLast-Modified: Tue, 13 Jun 2023 15:08:10 GMT\r\n"
     "Connection: keep-alive\r\nETag: \"64888a1a-2d\"\r\nAccept-Ranges: bytes\r\n\r\n"
     "<html><body><h1>It works!</h1></body></html>\n",
     false, 200, 1, CL, 45, 1, 1, 45},
    {"h2o",
     "HTTP/1.1 200 OK\r\ndate: Mon, 12 Feb 2024 10:00:00 GMT\r\nserver: h2o/2.2.6\r\n"
     "content-type: text/plain\r\ncontent-length: 13\r\nlast-modified: Tue, 13 Jun 2023 "
     "15:08:10 GMT\r\netag: \"6488a1a-d\"\r\naccept-ranges: bytes\r\n\r\nHello, World!",
     false, 200, 1, CL, 13, 1, 1, 13},
    {"chunked ext trailers",
     "HTTP/1.1 200 OK\r\nServer: nginx\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
     "7;name=value\r\nMozilla\r\n9;a=\"q\" ; b\r\nDeveloper\r\n7\r\nNetwork\r\n"
     "0;last\r\nX-Sum: abc\r\nX-Other: 1\r\n\r\n",
     false, 200, 1, CH, 0, 1, 1, -1},
    {"chunked bare LF, mixed case",
     "HTTP/1.1 200 OK\nTransfer-Encoding:   Chunked \nConnection: Close\n\n"
     "A\nabcdefghij\n0\n\n",
     false, 200, 1, CH | CLOSE, 0, 1, 1, -1},
    {"204", "HTTP/1.1 204 No Content\r\nServer: hotpath\r\n" DATE "\r\n", false, 204, 1, NOB,
     0, 1, 1, 0},
    {"304 with Content-Length",
     "HTTP/1.1 304 Not Modified\r\nServer: nginx\r\n" DATE
     "Last-Modified: Tue, 13 Jun 2023 15:08:10 GMT\r\nConnection: keep-alive\r\n"
     "ETag: \"64888a1a-267\"\r\nContent-Length: 615\r\n\r\n",
     false, 304, 1, NOB | CL, 615, 1, 1, 0},
    {"HEAD with Content-Length",
     "HTTP/1.1 200 OK\r\nServer: hotpath\r\n" DATE
     "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\n",
     true, 200, 1, NOB | CL, 13, 1, 1, 0},
    {"HEAD with chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, 200, 1,
     NOB | CH, 0, 1, 1, 0},
    {"100 Continue", "HTTP/1.1 100 Continue\r\n\r\n", false, 100, 1, NOB, 0, 1, 1, 0},
    {"101 Switching", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\n\r\n", false, 101, 1, NOB, 0, 1, 1, 0},
    {"HTTP/1.0 close-delimited",
     "HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\n" DATE
     "Content-type: text/html\r\n\r\n<html><body>directory listing</body></html>\n",
     false, 200, 0, UNTIL | CLOSE, 0, 0, 1, -1},
    {"HTTP/1.0 keep-alive",
     "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 5\r\n\r\nhello", false, 200,
     0, CL, 5, 1, 1, 5},
    {"HTTP/1.0 with length, no keep-alive",
     "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 200, 0, CL | CLOSE, 5, 1, 1,
     5},
    {"1.1 no length", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil the end", false, 200, 1,
     UNTIL | CLOSE, 0, 0, 1, -1},
    {"no reason, CL 0", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, 200, 1, CL, 0, 1, 1,
     0},
    {"empty reason, HTTP/1.9, odd status", "HTTP/1.9 599 \r\nContent-Length: 1\r\n\r\nx", false,
     599, 1, CL, 1, 1, 1, 1},
    {"list CL, OWS, obs-text",
     "HTTP/1.1 200 \xc3\x9c\x62\x65r OK\r\nContent-Length: 3 , 3\r\nX-Empty:\r\n"
     "X-Tab:\tv\t\r\nX-Bin: \xff\xfe\r\nContent-Length:3\r\n\r\nabc",
     false, 200, 1, CL, 3, 1, 1, 3},
    {"long fields",
     "HTTP/1.1 200 OK\r\nSet-Cookie: session=0123456789abcdef0123456789abcdef0123456789abcdef"
     "0123456789abcdef0123456789abcdef; Path=/; HttpOnly; Secure; SameSite=Lax\r\n"
     "Content-Security-Policy: default-src 'self'; script-src 'self' https://cdn.example.com;"
     " style-src 'self' 'unsafe-inline'\r\nX-Very-Long-Header-Name-For-The-Token-Scanner-To-"
     "Cross-Blocks: v\r\nContent-Length: 2\r\n\r\nok",
     false, 200, 1, CL, 2, 1, 1, 2},
};

static void test_real_responses(void **state)
{
    (void)state;
    for (size_t i = 0; i < HP_ARRAY_LEN(reals); i++) {
        const struct real *t = &reals[i];
        size_t n = strlen(t->text);
        struct outcome o;
        check_splits(t->text, n, t->head_req, &o);
        const char *end = strstr(t->text, "\r\n\r\n");
        size_t hl = end ? (size_t)(end - t->text) + 4 : (size_t)(strstr(t->text, "\n\n") - t->text) + 2;
        if (o.head != (int)hl || o.status != t->status || o.flags != t->flags)
            print_message("case '%s': head %d status %u flags %#x\n", t->name, o.head, o.status,
                          o.flags);
        assert_int_equal(o.head, (int)hl);
        assert_int_equal(o.status, t->status);
        assert_int_equal(o.vminor, t->vminor);
        assert_int_equal(o.flags, t->flags);
        assert_int_equal(o.cl, t->cl);
        assert_int_equal(o.body, t->body);
        assert_int_equal(o.eof, t->eof);
        assert_int_equal(o.used, t->used < 0 ? n - hl : (size_t)t->used);
    }
}

/* The chunked body is decoded in place: the data ends up at the front. */
static void test_chunked_decoded_in_place(void **state)
{
    (void)state;
    char s[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5;x\r\nhello\r\n6\r\n world\r\n0\r\n\r\nHTTP/1.1";
    hp_resp_parser_t r;
    hp_resp_parser_init(&r, false);
    int h = hp_resp_parser_head(&r, s, strlen(s));
    assert_true(h > 0);
    size_t used;
    char *b = s + h;
    assert_int_equal(hp_resp_parser_body(&r, b, strlen(b), &used), 1);
    assert_int_equal(used, strlen(b) - 8);
    assert_memory_equal(b, "hello world", 11);
    assert_memory_equal(b + used, "HTTP/1.1", 8);
    /* Done stays done. */
    assert_int_equal(hp_resp_parser_body(&r, b + used, 8, &used), 1);
    assert_int_equal(used, 0);
    assert_int_equal(hp_resp_parser_head(&r, s, strlen(s)), h);
}

/* 100 Continue then 200 in one read: the 1xx is a response of its own. */
static void test_interim_then_final(void **state)
{
    (void)state;
    static const char s[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                            "Link: </s.css>; rel=preload\r\n\r\n"
                            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for (int mi = 0; mi < nmodes; mi++) {
        size_t off = 0, n = sizeof(s) - 1;
        static const uint16_t want[] = {100, 103, 200};
        for (int k = 0; k < 3; k++) {
            hp_resp_parser_t r;
            hp_resp_parser_init(&r, false);
            int h = head_n(&r, s + off, n - off, modes[mi]);
            assert_true(h > 0);
            assert_int_equal(r.status, want[k]);
            assert_int_equal(!!(r.flags & NOB), k < 2);
            off += (size_t)h;
            char *p = dup_exact(s + off, n - off);
            size_t used;
            assert_int_equal(hp_resp_parser_body(&r, p, n - off, &used), 1);
            free(p);
            assert_int_equal(used, k < 2 ? 0 : 2);
            off += used;
        }
        assert_int_equal(off, n);
    }
}

/* ------------------------------------------------------------------ */
/* Pipelining: a client buffer that compacts after every response        */

static void test_pipelined(void **state)
{
    (void)state;
    struct {
        const char *text;
        bool head_req;
    } seq[] = {
        {reals[0].text, false}, {reals[5].text, false}, {reals[7].text, false},
        {reals[8].text, false}, {reals[9].text, true},  {reals[11].text, false},
        {reals[3].text, false}, {reals[6].text, false}, {reals[4].text, false},
    };
    size_t total = 0;
    for (size_t i = 0; i < HP_ARRAY_LEN(seq); i++)
        total += strlen(seq[i].text);
    char *all = malloc(total);
    assert_non_null(all);
    size_t off = 0;
    for (size_t i = 0; i < HP_ARRAY_LEN(seq); i++) {
        memcpy(all + off, seq[i].text, strlen(seq[i].text));
        off += strlen(seq[i].text);
    }
    /* Reads of `step` bytes into a buffer that drops consumed bytes. */
    for (int mi = 0; mi < nmodes; mi++) {
        for (size_t step = 1; step <= total; step += step < 40 ? 1 : 97) {
            char buf[4096];
            size_t have = 0, fed = 0;
            size_t idx = 0;
            hp_resp_parser_t r;
            hp_resp_parser_init(&r, seq[0].head_req);
            bool in_body = false;
            while (idx < HP_ARRAY_LEN(seq)) {
                if (!in_body) {
                    int h = hp_resp_parser_head_mode(&r, buf, have, modes[mi]);
                    assert_true(h >= 0);
                    if (h > 0) {
                        memmove(buf, buf + h, have - (size_t)h);
                        have -= (size_t)h;
                        in_body = true;
                        continue;
                    }
                } else {
                    size_t used;
                    int b = hp_resp_parser_body(&r, buf, have, &used);
                    assert_true(b >= 0);
                    memmove(buf, buf + used, have - used);
                    have -= used;
                    if (b == 1) {
                        assert_true(r.flags & CL ? r.content_length <= 615 : 1);
                        if (++idx < HP_ARRAY_LEN(seq))
                            hp_resp_parser_init(&r, seq[idx].head_req);
                        in_body = false;
                        continue;
                    }
                }
                assert_true(fed < total); /* never stuck with all bytes in */
                size_t k = step < total - fed ? step : total - fed;
                assert_true(have + k <= sizeof(buf));
                memcpy(buf + have, all + fed, k);
                have += k;
                fed += k;
            }
            assert_int_equal(fed, total);
            assert_int_equal(have, 0);
        }
    }
    free(all);
}

/* ------------------------------------------------------------------ */
/* Rejections                                                          */

struct bad {
    const char *text;
    size_t n; /* the texts may hold NULs */
    bool head_req;
    int want;
};
#define BAD(s, h, w) {s, sizeof(s) - 1, h, w}

#define OK_LINE "HTTP/1.1 200 OK\r\n"

static const struct bad bads[] = {
    /* status line */
    BAD("HTTX/1.1 200 OK\r\n\r\n", false, E_STATUS),
    BAD("http/1.1 200 OK\r\n\r\n", false, E_STATUS),
    BAD("HTTP/2.0 200 OK\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.x 200 OK\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.1  200 OK\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.1 20 OK\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.1 2a0 OK\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.1 099 Low\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.1 000\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.1 2000 OK\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.1 200\tOK\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.1 200 O\0K\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.1 200 OK\rX\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.1 200 O\x7fK\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.1\r\n\r\n", false, E_STATUS),
    BAD("\r\nHTTP/1.1 200 OK\r\n\r\n", false, E_STATUS),
    BAD(" HTTP/1.1 200 OK\r\n\r\n", false, E_STATUS),
    BAD("GET / HTTP/1.1\r\n\r\n", false, E_STATUS),
    BAD("HTTP/1.", false, 0),
    BAD("HTTP/1.1 200 OK\r", false, 0),
    /* field lines */
    BAD(OK_LINE "Server : x\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE ": x\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE "Server x\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE "Server\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE "X\x80: y\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE "X(: y\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE "X: a\0b\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE "X: a\rb\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE "X: a\x7f\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE "X: a\x01\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE "X: a\r\n\rZ\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE "X: a\r\n\r\r\n", false, E_HEADER),
    BAD(OK_LINE "X: a\r\n b\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE "X: a\r\n\tb\r\n\r\n", false, E_HEADER),
    BAD(OK_LINE " X: a\r\n\r\n", false, E_HEADER),
    /* framing */
    BAD(OK_LINE "Content-Length: abc\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length:\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length: 1 2\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length: -1\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length: +5\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length: 0x10\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length: 5, 6\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length: 5,\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length: 18446744073709551616\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length: 99999999999999999999\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Transfer-Encoding: gzip\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Transfer-Encoding: gzip, chunked\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Transfer-Encoding: chunked, gzip\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Transfer-Encoding: chunked, chunked\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Transfer-Encoding:\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Transfer-Encoding: ,\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false, E_FRAMING),
    BAD("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, E_FRAMING),
    /* framing is checked even when no body follows */
    BAD("HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", true, E_FRAMING),
    /* the first error in byte order wins */
    BAD(OK_LINE "Content-Length: x\r\nX : y\r\n\r\n", false, E_FRAMING),
    BAD(OK_LINE "X : y\r\nContent-Length: x\r\n\r\n", false, E_HEADER),
    BAD("HTTP/1.1 200 O\0K\r\nX : y\r\n\r\n", false, E_STATUS),
};

static void test_rejections(void **state)
{
    (void)state;
    for (size_t i = 0; i < HP_ARRAY_LEN(bads); i++) {
        const struct bad *t = &bads[i];
        struct outcome o;
        check_splits(t->text, t->n, t->head_req, &o);
        if (o.head != t->want)
            print_message("bad case %zu: got %d want %d\n", i, o.head, t->want);
        assert_int_equal(o.head, t->want);
    }
}

/* Malformed chunked bodies are framing errors; the error sticks. */
static void test_chunked_malformed(void **state)
{
    (void)state;
    static const char *bodies[] = {
        "zz\r\n",
        "5\r\nhelloX\r\n0\r\n\r\n",
        "5\r\nhello\r\r\n",
        "\r\n",
        "10000000000000000\r\n",
        "5 x\r\n",
        "5\rx",
        "0\r\nX: \x01\r\n\r\n",
        "0\r\nX: y\rz",
    };
    static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (size_t i = 0; i < HP_ARRAY_LEN(bodies); i++) {
        size_t bn = strlen(bodies[i]);
        char *s = malloc(sizeof(head) - 1 + bn);
        memcpy(s, head, sizeof(head) - 1);
        memcpy(s + sizeof(head) - 1, bodies[i], bn);
        struct outcome o;
        check_splits(s, sizeof(head) - 1 + bn, false, &o);
        assert_int_equal(o.head, (int)sizeof(head) - 1);
        assert_int_equal(o.body, E_FRAMING);
        assert_int_equal(o.eof, E_TRUNC);
        free(s);
    }
    /* A trailer section beyond the decoder's limit. */
    size_t n = 20000;
    char *s = malloc(sizeof(head) - 1 + n);
    memcpy(s, head, sizeof(head) - 1);
    memcpy(s + sizeof(head) - 1, "0\r\nX: ", 6);
    memset(s + sizeof(head) - 1 + 6, 'a', n - 6);
    hp_resp_parser_t r;
    hp_resp_parser_init(&r, false);
    assert_int_equal(hp_resp_parser_head(&r, s, sizeof(head) - 1), (int)sizeof(head) - 1);
    size_t used;
    assert_int_equal(hp_resp_parser_body(&r, s + sizeof(head) - 1, n, &used), E_FRAMING);
    assert_int_equal(hp_resp_parser_body(&r, s + sizeof(head) - 1, n, &used), E_FRAMING);
    assert_int_equal(used, 0);
    free(s);
}

/* ------------------------------------------------------------------ */
/* Limits                                                              */

/* A head of exactly n bytes with nf fields "X-NNN: vvv", the last one
 * padded so the total comes out right. */
static size_t make_head(char *buf, size_t n, unsigned nf)
{
    size_t o = 0;
    o += (size_t)sprintf(buf, OK_LINE);
    for (unsigned i = 0; i < nf; i++)
        o += (size_t)sprintf(buf + o, "X-%03u: v\r\n", i);
    assert_true(o + 2 <= n);
    /* Pad the value of the last field. */
    size_t pad = n - 2 - o;
    memmove(buf + o - 2 + pad, buf + o - 2, 2);
    memset(buf + o - 2, 'p', pad);
    o += pad;
    memcpy(buf + o, "\r\n", 2);
    return o + 2;
}

static void test_limits(void **state)
{
    (void)state;
    static char buf[70000];
    for (int mi = 0; mi < nmodes; mi++) {
        int m = modes[mi];
        hp_resp_parser_t r;
        size_t n = make_head(buf, 2000, 100);
        hp_resp_parser_init(&r, false);
        assert_int_equal(head_n(&r, buf, n, m), (int)n);
        assert_int_equal(r.flags, UNTIL | CLOSE);
        n = make_head(buf, 2000, 101);
        hp_resp_parser_init(&r, false);
        assert_int_equal(head_n(&r, buf, n, m), E_HEADER);
        /* The head limit, exactly and one past. */
        n = make_head(buf, HP_RESP_PARSER_MAX_HEAD, 3);
        assert_int_equal(n, HP_RESP_PARSER_MAX_HEAD);
        hp_resp_parser_init(&r, false);
        assert_int_equal(head_n(&r, buf, n, m), (int)n);
        hp_resp_parser_init(&r, false);
        assert_int_equal(head_n(&r, buf, n + 1, m), (int)n); /* next byte is not read */
        n = make_head(buf, HP_RESP_PARSER_MAX_HEAD + 1, 3);
        hp_resp_parser_init(&r, false);
        assert_int_equal(head_n(&r, buf, HP_RESP_PARSER_MAX_HEAD, m), 0);
        assert_int_equal(head_n(&r, buf, n, m), E_HEADER);
        /* A status line that never ends. */
        memcpy(buf, "HTTP/1.1 200 ", 13);
        memset(buf + 13, 'r', sizeof(buf) - 13);
        hp_resp_parser_init(&r, false);
        assert_int_equal(head_n(&r, buf, HP_RESP_PARSER_MAX_HEAD, m), 0);
        assert_int_equal(head_n(&r, buf, sizeof(buf), m), E_HEADER);
        /* Content-Length at the top of uint64. */
        hp_resp_parser_init(&r, false);
        const char *s = OK_LINE "Content-Length: 18446744073709551615\r\n\r\n";
        assert_int_equal(head_n(&r, s, strlen(s), m), (int)strlen(s));
        assert_true(r.content_length == UINT64_MAX);
        size_t used;
        char body[64] = {0};
        assert_int_equal(hp_resp_parser_body(&r, body, sizeof(body), &used), 0);
        assert_int_equal(used, sizeof(body));
        assert_int_equal(hp_resp_parser_body_eof(&r), E_TRUNC);
    }
    /* Chunked sizes that add up beyond 4 GiB. */
    hp_resp_parser_t r;
    const char *s = OK_LINE "Transfer-Encoding: chunked\r\n\r\n";
    hp_resp_parser_init(&r, false);
    assert_true(hp_resp_parser_head(&r, s, strlen(s)) > 0);
    char sz[] = "ffffffffff\r\n";
    size_t used;
    assert_int_equal(hp_resp_parser_body(&r, sz, strlen(sz), &used), 0);
    assert_int_equal(used, strlen(sz));
    assert_int_equal(hp_resp_parser_body_eof(&r), E_TRUNC);
}

/* ------------------------------------------------------------------ */
/* Truncation, misuse, names                                           */

static void test_truncated(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t cut; /* bytes delivered before the close */
        int want;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!", 44, E_TRUNC},
        {"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!", 38, E_TRUNC},
        {"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!", 52, 1},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 60,
         E_TRUNC},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 62, 1},
        {"HTTP/1.1 200 OK\r\n\r\nabc", 19, 1},
        {"HTTP/1.1 200 OK\r\n\r\nabc", 22, 1},
        {"HTTP/1.1 204 No Content\r\n\r\n", 27, 1},
        {"HTTP/1.1 200 OK\r\nContent-Le", 27, E_TRUNC},
        {"", 0, E_TRUNC},
    };
    for (size_t i = 0; i < HP_ARRAY_LEN(cases); i++) {
        char buf[128];
        size_t n = cases[i].cut;
        assert_true(n <= strlen(cases[i].text));
        memcpy(buf, cases[i].text, n);
        hp_resp_parser_t r;
        hp_resp_parser_init(&r, false);
        int h = hp_resp_parser_head(&r, buf, n);
        if (h > 0) {
            size_t used;
            int b = hp_resp_parser_body(&r, buf + h, n - (size_t)h, &used);
            assert_true(b >= 0);
        } else {
            assert_int_equal(h, 0);
            /* A body call before the head is complete is refused. */
            size_t used = 99;
            assert_int_equal(hp_resp_parser_body(&r, buf, n, &used), E_FRAMING);
            assert_int_equal(used, 0);
        }
        assert_int_equal(hp_resp_parser_body_eof(&r), cases[i].want);
    }
}

static void test_misuse_and_names(void **state)
{
    (void)state;
    static const char s[] = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
    hp_resp_parser_t r;
    hp_resp_parser_init(&r, false);
    assert_int_equal(hp_resp_parser_head(&r, s, 20), 0);
    /* Fewer bytes than were already accepted. */
    assert_int_equal(hp_resp_parser_head(&r, s, 10), E_HEADER);
    /* Re-init clears everything, including a previous HEAD flag. */
    hp_resp_parser_init(&r, true);
    assert_int_equal(hp_resp_parser_head(&r, s, sizeof(s) - 1), (int)sizeof(s) - 1);
    assert_true(r.flags & NOB);
    hp_resp_parser_init(&r, false);
    assert_int_equal(hp_resp_parser_head(&r, s, sizeof(s) - 1), (int)sizeof(s) - 1);
    assert_false(r.flags & NOB);
    assert_string_equal(hp_resp_parser_strerror(E_STATUS), "status");
    assert_string_equal(hp_resp_parser_strerror(HP_RESP_PARSER_E_HEADER), "header");
    assert_string_equal(hp_resp_parser_strerror(E_FRAMING), "framing");
    assert_string_equal(hp_resp_parser_strerror(E_TRUNC), "truncated");
    assert_string_equal(hp_resp_parser_strerror(0), "?");
    assert_string_equal(hp_resp_parser_strerror(-77), "?");
}

/* ------------------------------------------------------------------ */
/* Guard page                                                          */

static void test_guard_page(void **state)
{
    (void)state;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + page, page, PROT_NONE), 0);
    for (int mi = 0; mi < nmodes; mi++) {
        for (size_t i = 0; i < HP_ARRAY_LEN(reals); i++) {
            const char *s = reals[i].text;
            size_t n = strlen(s);
            for (size_t k = 0; k <= n; k++) {
                char *p = map + page - k;
                memcpy(p, s, k);
                hp_resp_parser_t r;
                hp_resp_parser_init(&r, reals[i].head_req);
                int h = hp_resp_parser_head_mode(&r, p, k, modes[mi]);
                assert_true(h >= 0);
                if (h > 0) {
                    size_t used;
                    assert_true(hp_resp_parser_body(&r, p + h, k - (size_t)h, &used) >= 0);
                }
            }
        }
        /* Long runs of each class ending at the guard. */
        for (size_t k = 13; k < 200; k++) {
            char *p = map + page - k;
            hp_resp_parser_t r;
            memset(p, 'r', k);
            memcpy(p, "HTTP/1.1 200 ", 13);
            hp_resp_parser_init(&r, false);
            assert_int_equal(hp_resp_parser_head_mode(&r, p, k, modes[mi]), 0);
            if (k > 20) {
                memset(p, 'n', k);
                memcpy(p, OK_LINE, 17);
                hp_resp_parser_init(&r, false);
                assert_int_equal(hp_resp_parser_head_mode(&r, p, k, modes[mi]), 0);
                p[20] = ':';
                hp_resp_parser_init(&r, false);
                assert_int_equal(hp_resp_parser_head_mode(&r, p, k, modes[mi]), 0);
            }
        }
    }
    munmap(map, 2 * page);
}

/* ------------------------------------------------------------------ */
/* No allocation                                                       */

static void test_no_allocation(void **state)
{
    (void)state;
    uint64_t before = hp_alloc_count();
    /* Any allocation through the counted allocator would now fail. */
    hp_alloc_fail_after(0, 1);
    for (size_t i = 0; i < HP_ARRAY_LEN(reals); i++) {
        char buf[1024];
        size_t n = strlen(reals[i].text);
        memcpy(buf, reals[i].text, n);
        hp_resp_parser_t r;
        hp_resp_parser_init(&r, reals[i].head_req);
        int h = hp_resp_parser_head(&r, buf, n);
        assert_true(h > 0);
        size_t used;
        assert_true(hp_resp_parser_body(&r, buf + h, n - (size_t)h, &used) >= 0);
        assert_int_equal(hp_resp_parser_body_eof(&r), 1);
    }
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
        cmocka_unit_test(test_real_responses),
        cmocka_unit_test(test_chunked_decoded_in_place),
        cmocka_unit_test(test_interim_then_final),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_chunked_malformed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_misuse_and_names),
        cmocka_unit_test(test_guard_page),
        cmocka_unit_test(test_no_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
