/*
 * test_static_path.c - unit tests for the path helpers of
 * src/http/static.c that need no file system: percent-decoding
 * (hp_static_decode_path), dot-segment removal (hp_static_normalize) and
 * the built-in content types (hp_static_mime). Resolving against a real
 * tree is test_static.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http/static_int.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ---- hp_static_decode_path ------------------------------------------------ */

static void test_decode(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out; /* NULL: error */
        int rc;
    } cases[] = {
        {"/plain/path.txt", "/plain/path.txt", 15},
        {"/a%20b", "/a b", 4},
        {"/%41%4a%4A%7e", "/AJJ~", 5},
        {"/a+b", "/a+b", 4},          /* '+' is not a space in paths */
        {"/100%25.txt", "/100%.txt", 9},
        {"/%252e", "/%2e", 4},         /* decoded once, not twice */
        {"/x?y=%zz", "/x", 2},         /* the query is not looked at */
        {"/x#frag%", "/x", 2},
        {"/?", "/", 1},
        {"", "", 0},
        {"/%5c", "/\\", 2},
        {"/%2e%2E", "/..", 3},
        {"/%c3%a9", "/\xc3\xa9", 3},
        {"/%", NULL, -400},
        {"/%2", NULL, -400},
        {"/%zz", NULL, -400},
        {"/%2g", NULL, -400},
        {"/%g2", NULL, -400},
        {"/% 2", NULL, -400},
        {"/%00", NULL, -400},
        {"/%2f", NULL, -400},
        {"/%2F", NULL, -400},
        {"/a%2Fb", NULL, -400},
    };
    char dst[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = hp_static_decode_path(cases[i].in, strlen(cases[i].in), dst, sizeof dst);
        if (rc != cases[i].rc)
            fail_msg("decode(\"%s\") = %d, want %d", cases[i].in, rc, cases[i].rc);
        if (cases[i].out)
            assert_memory_equal(dst, cases[i].out, (size_t)rc);
    }

    /* A raw NUL inside the given length is malformed, not a terminator. */
    assert_int_equal(hp_static_decode_path("/a\0b", 4, dst, sizeof dst), -400);
    /* Only len bytes are read: the trailing "%" is outside it. */
    assert_int_equal(hp_static_decode_path("/ab%", 3, dst, sizeof dst), 3);
    /* An escape cut by len is malformed even if the bytes follow. */
    assert_int_equal(hp_static_decode_path("/%41", 3, dst, sizeof dst), -400);

    /* Capacity: exact fit works, one byte short is -414. */
    assert_int_equal(hp_static_decode_path("/abcd", 5, dst, 5), 5);
    assert_int_equal(hp_static_decode_path("/abcd", 5, dst, 4), -414);
    assert_int_equal(hp_static_decode_path("/%41%42", 7, dst, 3), 3);
    assert_int_equal(hp_static_decode_path("/%41%42", 7, dst, 2), -414);
    assert_int_equal(hp_static_decode_path("/a", 2, dst, 0), -414);
    /* Bytes after '?' do not count against the capacity. */
    assert_int_equal(hp_static_decode_path("/a?bcdefgh", 10, dst, 2), 2);
}

/* ---- hp_static_normalize -------------------------------------------------- */

static void test_normalize(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out; /* NULL: -404 */
        bool dir;
    } cases[] = {
        {"/", "", true},
        {"/a", "a", false},
        {"/a/", "a", true},
        {"/a/b/c", "a/b/c", false},
        {"//a//b//", "a/b", true},
        {"/./a/./b", "a/b", false},
        {"/a/.", "a", true},
        {"/a/..", "", true},
        {"/a/../b", "b", false},
        {"/a/b/../../c", "c", false},
        {"/a/b/../c/./d/..", "a/c", true},
        {"/.hidden/..x/x..", ".hidden/..x/x..", false},
        {"/.../....", ".../....", false},
        {"/a/b/..", "a", true},
        {"/.", "", true},
        {"///", "", true},
        {"/..", NULL, false},
        {"/../a", NULL, false},
        {"/a/../..", NULL, false},
        {"/a/../../b", NULL, false},
        {"/./../x", NULL, false},
        {"//..", NULL, false},
        {"/a/b/../../../c", NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        size_t len = strlen(cases[i].in);
        memcpy(buf, cases[i].in, len);
        bool dir = !cases[i].dir;
        int rc = hp_static_normalize(buf, len, &dir);
        if (!cases[i].out) {
            if (rc != -404)
                fail_msg("normalize(\"%s\") = %d, want -404", cases[i].in, rc);
            continue;
        }
        if (rc < 0 || (size_t)rc != strlen(cases[i].out) ||
            memcmp(buf, cases[i].out, (size_t)rc) != 0 || dir != cases[i].dir)
            fail_msg("normalize(\"%s\") = %d \"%.*s\" dir=%d, want \"%s\" dir=%d", cases[i].in,
                     rc, rc > 0 ? rc : 0, buf, dir, cases[i].out, cases[i].dir);
        assert_true((size_t)rc < len);
    }
}

/* ---- hp_static_mime ------------------------------------------------------- */

static void test_mime_table(void **state)
{
    (void)state;
    static const struct {
        const char *ext, *mime;
    } cases[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"txt", "text/plain; charset=utf-8"},
        {"md", "text/markdown; charset=utf-8"},
        {"xml", "application/xml"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"avif", "image/avif"},
        {"ico", "image/x-icon"},
        {"wasm", "application/wasm"},
        {"pdf", "application/pdf"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ttf", "font/ttf"},
        {"otf", "font/otf"},
        {"mp4", "video/mp4"},
        {"webm", "video/webm"},
        {"mp3", "audio/mpeg"},
        {"ogg", "audio/ogg"},
        {"gz", "application/gzip"},
        {"zip", "application/zip"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char p[64], up[64];
        int n = snprintf(p, sizeof p, "/dir/file.%s", cases[i].ext);
        assert_string_equal(hp_static_mime(p, (size_t)n), cases[i].mime);
        /* Upper case, and mixed case, map the same. */
        for (int k = 0; k <= n; k++)
            up[k] = (char)(p[k] >= 'a' && p[k] <= 'z' ? p[k] - 32 : p[k]);
        assert_string_equal(hp_static_mime(up, (size_t)n), cases[i].mime);
        up[n - 1] = p[n - 1];
        assert_string_equal(hp_static_mime(up, (size_t)n), cases[i].mime);
        /* A relative path (what the resolver passes) too. */
        n = snprintf(p, sizeof p, "x.%s", cases[i].ext);
        assert_string_equal(hp_static_mime(p, (size_t)n), cases[i].mime);
    }
}

static void test_mime_edges(void **state)
{
    (void)state;
    static const char *const octet[] = {
        "",           "/",          "/file",       "/file.",     "/dir.html/file",
        "/a.woff22",  "/a.xhtml",   "/a.html5",    "/a.h",       "/a.ht",
        "/a.jsx",     "/a.tar",     "/.bashrc",    "/a.mp5",     "/a.HTm1",
        "/a.j\x01s",  "/a.\x10p3",  "/a.m\x10\x33", "/a.c\x13s",  "/a.htmlhtml",
    };
    const char *o = "application/octet-stream";
    for (size_t i = 0; i < sizeof octet / sizeof octet[0]; i++)
        if (strcmp(hp_static_mime(octet[i], strlen(octet[i])), o) != 0)
            fail_msg("mime(\"%s\") should be octet-stream", octet[i]);

    /* Only len bytes count: "a.css" cut to "a.cs" is unknown, "a.html" cut
     * to "a.htm" is still HTML. */
    assert_string_equal(hp_static_mime("a.css", 4), o);
    assert_string_equal(hp_static_mime("a.html", 5), "text/html; charset=utf-8");
    assert_string_equal(hp_static_mime("a.jsXXXX", 4), "text/javascript; charset=utf-8");
    /* The last dot wins; a dotfile with a known extension is typed by it. */
    assert_string_equal(hp_static_mime("/a.txt.gz", 9), "application/gzip");
    assert_string_equal(hp_static_mime("/.html", 6), "text/html; charset=utf-8");
    assert_string_equal(hp_static_mime("index.html", 10), "text/html; charset=utf-8");
    assert_string_equal(hp_static_mime("/x/Y.PnG", 8), "image/png");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_mime_table),
        cmocka_unit_test(test_mime_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
