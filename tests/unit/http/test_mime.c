/*
 * test_mime.c - unit tests for src/http/mime.c: the built-in types, parsing
 * and loading mime.types files (comments, odd spacing, CRLF, duplicates,
 * upper case, very long and malformed lines), the merge with the built-ins,
 * missing and unusable files, zero allocations per lookup, and an
 * out-of-memory sweep over hp_mime_load. Leaks are left to ASan: every
 * table built here is freed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hotpath/alloc.h"
#include "http/mime_int.h"
#include "http/static_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const OCT = "application/octet-stream";

/* ---- helpers -------------------------------------------------------------- */

static char tmpdir[64];

static void path_of(char *p, size_t cap, const char *name)
{
    snprintf(p, cap, "%s/%s", tmpdir, name);
}

static void write_file(const char *name, const char *text, size_t len)
{
    char p[128];
    path_of(p, sizeof p, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static const char *look(const hp_mime_t *t, const char *path)
{
    return hp_mime_lookup(t, path, strlen(path));
}

static hp_mime_t *parse_str(const char *text)
{
    hp_mime_t *t = NULL;
    assert_int_equal(hp_mime_parse(&t, text, strlen(text)), 0);
    assert_non_null(t);
    assert_int_equal(hp_mime_validate(t), 0);
    return t;
}

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/hp_mime_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const names[] = {"mime.types", "empty.types", "big.types", "fifo"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[128];
        path_of(p, sizeof p, names[i]);
        unlink(p);
    }
    char p[128];
    path_of(p, sizeof p, "dir");
    rmdir(p);
    return rmdir(tmpdir);
}

/* ---- built-ins ------------------------------------------------------------ */

static void test_builtin_null_table(void **state)
{
    (void)state;
    assert_string_equal(look(NULL, "/a.html"), "text/html; charset=utf-8");
    assert_string_equal(look(NULL, "/A.CSS"), "text/css; charset=utf-8");
    assert_string_equal(look(NULL, "x.woff2"), "font/woff2");
    assert_string_equal(look(NULL, "x.woff22"), OCT);
    assert_string_equal(look(NULL, "x.docx"), OCT);
    assert_string_equal(look(NULL, "noext"), OCT);
    assert_string_equal(look(NULL, "dir.html/x"), OCT);
    assert_string_equal(look(NULL, ""), OCT);
    assert_int_equal(hp_mime_count(NULL), 0);
    assert_int_equal(hp_mime_validate(NULL), 0);
    hp_mime_free(NULL);
    /* hp_static_mime is the same lookup. */
    assert_ptr_equal(hp_static_mime("/a.png", 6), look(NULL, "/a.png"));
}

/* ---- parsing -------------------------------------------------------------- */

static const char sample[] =
    "# A comment line\n"
    "   # an indented comment\n"
    "\n"
    "text/html\t\t\thtml htm shtml\n"
    "application/x-thing   THING  Thg2   # trailing comment: notext\n"
    "  image/x-foo \t foo\r\n"                 /* CRLF, leading blanks */
    "application/one dup\n"
    "application/two dup\n"                    /* later line wins */
    "application/json-seq\n"                   /* a type with no extensions */
    "text/x-custom cust\n"
    "TEXT/X-Upper upp\n"                       /* type case kept, still text */
    "image/png png\n"                          /* overrides nothing: same */
    "application/x-ico ico\n"                  /* overrides the built-in */
    "application/sarif-external-properties+json sarif-external-properties.json sarif\n"
    "application/x-long abcdefghijklmnopqrstuvwxyz012345 "
    "abcdefghijklmnopqrstuvwxyz0123456\n"      /* 32 kept, 33 skipped */
    "badtype bad1\n"                           /* no slash */
    "a/b/c bad2\n"                             /* two slashes */
    "/x bad3\n"
    "x/ bad4\n"
    "app\"lication/x bad5\n"
    "application/x-ok bad6 ba/d7\n"            /* a '/' in an extension */
    "application/x-ok bad8 b\x01" "d\n"        /* a control byte */
    "application/x-ok bad9 \xc3\xa9t\xc3\xa9\n" /* non-ASCII */
    "application/x-hash h#x\n"                 /* '#' inside a token is a byte */
    "\t \r\n"
    "application/x-last last";                 /* no final newline */

static void test_parse_sample(void **state)
{
    (void)state;
    hp_mime_t *t = parse_str(sample);

    assert_string_equal(look(t, "/a.html"), "text/html; charset=utf-8");
    assert_string_equal(look(t, "/a.SHTML"), "text/html; charset=utf-8");
    assert_string_equal(look(t, "/a.thing"), "application/x-thing");
    assert_string_equal(look(t, "/a.THING"), "application/x-thing");
    assert_string_equal(look(t, "/a.tHg2"), "application/x-thing");
    assert_string_equal(look(t, "/a.notext"), OCT); /* it was in a comment */
    assert_string_equal(look(t, "/a.foo"), "image/x-foo");
    assert_string_equal(look(t, "/a.dup"), "application/two");
    assert_string_equal(look(t, "/a.cust"), "text/x-custom; charset=utf-8");
    assert_string_equal(look(t, "/a.upp"), "TEXT/X-Upper; charset=utf-8");
    assert_string_equal(look(t, "/a.ico"), "application/x-ico");
    assert_string_equal(look(t, "/a.sarif"), "application/sarif-external-properties+json");
    assert_string_equal(look(t, "/a.abcdefghijklmnopqrstuvwxyz012345"), "application/x-long");
    assert_string_equal(look(t, "/a.abcdefghijklmnopqrstuvwxyz0123456"), OCT);
    assert_string_equal(look(t, "/a.h#x"), "application/x-hash");
    assert_string_equal(look(t, "/a.last"), "application/x-last");
    /* "json" is on the sarif line only inside a dotted extension: the
     * built-in answers. */
    assert_string_equal(look(t, "/a.json"), "application/json");
    /* Malformed lines contributed nothing, not even their good tokens. */
    static const char *const bad[] = {"bad1", "bad2", "bad3", "bad4", "bad5",
                                      "bad6", "bad8", "bad9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char p[32];
        snprintf(p, sizeof p, "/x.%s", bad[i]);
        if (strcmp(look(t, p), OCT) != 0)
            fail_msg("%s should be unknown", p);
    }
    /* Built-ins remain for extensions the file lacks. */
    assert_string_equal(look(t, "/a.css"), "text/css; charset=utf-8");
    assert_string_equal(look(t, "/a.woff2"), "font/woff2");
    assert_string_equal(look(t, "/a.PNG"), "image/png");
    /* Still bounded by the last segment and the last dot. */
    assert_string_equal(look(t, "/a.thing/b"), OCT);
    assert_string_equal(look(t, "/a.thing."), OCT);
    assert_string_equal(look(t, "/a.css.thing"), "application/x-thing");
    assert_string_equal(hp_mime_lookup(t, "/a.thingXX", 8), "application/x-thing");

    /* html htm shtml thing thg2 foo dup cust upp png ico sarif
     * abc..345 h#x last: 15 distinct. */
    assert_int_equal(hp_mime_count(t), 15);
    hp_mime_free(t);
}

static void test_parse_edges(void **state)
{
    (void)state;
    /* Empty and comment-only texts give an empty, valid table. */
    static const char *const empty[] = {"", "\n\n\n", "# only\n#comments", "   \t\r\n",
                                        "application/json-seq\n", "bad line\n"};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        hp_mime_t *t = parse_str(empty[i]);
        assert_int_equal(hp_mime_count(t), 0);
        assert_string_equal(look(t, "/a.html"), "text/html; charset=utf-8");
        assert_string_equal(look(t, "/a.zzz"), OCT);
        hp_mime_free(t);
    }

    /* Only len bytes are read: the cut line's last extension is "ab". */
    hp_mime_t *t = NULL;
    const char *s = "application/x-a abc";
    assert_int_equal(hp_mime_parse(&t, s, strlen(s) - 1), 0);
    assert_string_equal(look(t, "x.ab"), "application/x-a");
    assert_string_equal(look(t, "x.abc"), OCT);
    hp_mime_free(t);

    /* A NUL inside the text is just a bad byte: that line goes. */
    static const char nul[] = "application/x-a a\0b\napplication/x-b bb\n";
    assert_int_equal(hp_mime_parse(&t, nul, sizeof nul - 1), 0);
    assert_string_equal(look(t, "x.a"), OCT);
    assert_string_equal(look(t, "x.bb"), "application/x-b");
    hp_mime_free(t);

    /* Many duplicates of one extension: one entry, the last type. */
    char buf[8192];
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "application/v%d same SAME Same\n", i);
    t = parse_str(buf);
    assert_int_equal(hp_mime_count(t), 1);
    assert_string_equal(look(t, "x.same"), "application/v199");
    hp_mime_free(t);

    /* A type at the length limit is kept, one byte more drops the line. */
    char line[600];
    memset(line, 'a', sizeof line);
    memcpy(line, "application/", 12);
    n = HP_MIME_TYPE_MAX;
    memcpy(line + n, " ok\n", 4);
    t = NULL;
    assert_int_equal(hp_mime_parse(&t, line, n + 4), 0);
    assert_int_equal(strlen(look(t, "x.ok")), HP_MIME_TYPE_MAX);
    hp_mime_free(t);
    memset(line, 'a', sizeof line);
    memcpy(line, "application/", 12);
    n = HP_MIME_TYPE_MAX + 1;
    memcpy(line + n, " ok\n", 4);
    assert_int_equal(hp_mime_parse(&t, line, n + 4), 0);
    assert_string_equal(look(t, "x.ok"), OCT);
    hp_mime_free(t);
}

/* Many extensions: the table grows past several powers of two and every
 * one of them is found, under either case. */
static void test_parse_many(void **state)
{
    (void)state;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    /* One very long line with 3000 extensions, then 3000 short lines. */
    n += (size_t)snprintf(buf + n, cap - n, "application/x-long-line");
    for (int i = 0; i < 3000; i++)
        n += (size_t)snprintf(buf + n, cap - n, " L%d", i);
    buf[n++] = '\n';
    for (int i = 0; i < 3000; i++)
        n += (size_t)snprintf(buf + n, cap - n, "application/x-%d e%dX\n", i, i);
    hp_mime_t *t = NULL;
    assert_int_equal(hp_mime_parse(&t, buf, n), 0);
    assert_int_equal(hp_mime_validate(t), 0);
    assert_int_equal(hp_mime_count(t), 6000);
    for (int i = 0; i < 3000; i++) {
        char p[64], want[64];
        snprintf(p, sizeof p, "/d/f.l%d", i);
        assert_string_equal(look(t, p), "application/x-long-line");
        snprintf(p, sizeof p, "f.E%dx", i);
        snprintf(want, sizeof want, "application/x-%d", i);
        assert_string_equal(look(t, p), want);
    }
    hp_mime_free(t);
    free(buf);
}

/* ---- loading files -------------------------------------------------------- */

static void test_load_file(void **state)
{
    (void)state;
    write_file("mime.types", sample, sizeof sample - 1);
    char p[128];
    path_of(p, sizeof p, "mime.types");
    hp_mime_t *t = NULL;
    assert_int_equal(hp_mime_load(&t, p), 0);
    assert_non_null(t);
    assert_int_equal(hp_mime_validate(t), 0);
    assert_int_equal(hp_mime_count(t), 15);
    assert_string_equal(look(t, "/a.dup"), "application/two");
    assert_string_equal(look(t, "/a.css"), "text/css; charset=utf-8");
    hp_mime_free(t);

    write_file("empty.types", "", 0);
    path_of(p, sizeof p, "empty.types");
    t = NULL;
    assert_int_equal(hp_mime_load(&t, p), 0);
    assert_non_null(t);
    assert_int_equal(hp_mime_count(t), 0);
    hp_mime_free(t);
}

static void test_load_missing_and_bad(void **state)
{
    (void)state;
    char p[128];
    hp_mime_t *t = (hp_mime_t *)&t; /* must be overwritten with NULL */
    path_of(p, sizeof p, "nope.types");
    assert_int_equal(hp_mime_load(&t, p), 0);
    assert_null(t);
    t = (hp_mime_t *)&t;
    path_of(p, sizeof p, "nodir/mime.types");
    assert_int_equal(hp_mime_load(&t, p), 0);
    assert_null(t);
    /* A file used as a directory is "missing" as well (ENOTDIR). */
    write_file("mime.types", "text/plain txt\n", 15);
    t = (hp_mime_t *)&t;
    path_of(p, sizeof p, "mime.types/x");
    assert_int_equal(hp_mime_load(&t, p), 0);
    assert_null(t);

    /* Errors leave *out alone. */
    hp_mime_t *sentinel = (hp_mime_t *)&sentinel;
    t = sentinel;
    path_of(p, sizeof p, "dir");
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(hp_mime_load(&t, p), -EISDIR);
    assert_ptr_equal(t, sentinel);
    path_of(p, sizeof p, "fifo");
    assert_int_equal(mkfifo(p, 0644), 0);
    alarm(10); /* a FIFO must not block the load */
    assert_int_equal(hp_mime_load(&t, p), -EINVAL);
    alarm(0);
    assert_ptr_equal(t, sentinel);
    if (geteuid() != 0) {
        path_of(p, sizeof p, "mime.types");
        assert_int_equal(chmod(p, 0), 0);
        assert_int_equal(hp_mime_load(&t, p), -EACCES);
        assert_ptr_equal(t, sentinel);
        chmod(p, 0644);
    }
    /* Over the size cap: a sparse file costs no disk. */
    path_of(p, sizeof p, "big.types");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)HP_MIME_FILE_MAX + 1), 0);
    close(fd);
    assert_int_equal(hp_mime_load(&t, p), -EFBIG);
    assert_ptr_equal(t, sentinel);
}

/* The system's own file, when there is one: it parses, validates, and the
 * common web types come out right. */
static void test_load_system(void **state)
{
    (void)state;
    hp_mime_t *t = NULL;
    assert_int_equal(hp_mime_load(&t, "/etc/mime.types"), 0);
    if (!t)
        skip();
    assert_int_equal(hp_mime_validate(t), 0);
    assert_true(hp_mime_count(t) > 100);
    assert_string_equal(look(t, "/index.html"), "text/html; charset=utf-8");
    assert_string_equal(look(t, "/a.txt"), "text/plain; charset=utf-8");
    assert_string_equal(look(t, "/a.png"), "image/png");
    assert_string_equal(look(t, "/a.xyzzy-nothing"), OCT);
    hp_mime_free(t);
}

/* ---- cost ------------------------------------------------------------------ */

static void test_lookup_no_alloc(void **state)
{
    (void)state;
    hp_mime_t *t = parse_str(sample);
    static const char *const paths[] = {"/a.html", "/a.THING", "/a.css", "/a.zz", "/noext",
                                        "/a.dup",  "x.foo",    "",       "/.",    "/a.b/c"};
    uint64_t before = hp_alloc_count();
    size_t hits = 0;
    for (int round = 0; round < 1000; round++)
        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
            hits += strcmp(look(t, paths[i]), OCT) != 0;
            hits += strcmp(look(NULL, paths[i]), OCT) != 0;
        }
    assert_int_equal(hp_alloc_count(), before);
    assert_int_equal(hits, 1000 * (5 + 2));
    hp_mime_free(t);
}

/* ---- out of memory --------------------------------------------------------- */

static void test_load_oom(void **state)
{
    (void)state;
    write_file("mime.types", sample, sizeof sample - 1);
    char p[128];
    path_of(p, sizeof p, "mime.types");
    int failures = 0;
    for (uint64_t n = 1;; n++) {
        hp_mime_t *sentinel = (hp_mime_t *)&sentinel, *t = sentinel;
        hp_alloc_fail_after(n, 0);
        int rc = hp_mime_load(&t, p);
        hp_alloc_fail_after(0, 0);
        if (rc == 0) {
            assert_int_equal(hp_mime_validate(t), 0);
            assert_int_equal(hp_mime_count(t), 15);
            hp_mime_free(t);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_ptr_equal(t, sentinel);
        failures++;
        assert_true(n < 100);
    }
    /* The file buffer, then the table. */
    assert_int_equal(failures, 2);

    for (uint64_t n = 1;; n++) {
        hp_mime_t *sentinel = (hp_mime_t *)&sentinel, *t = sentinel;
        hp_alloc_fail_after(n, 1);
        int rc = hp_mime_parse(&t, sample, sizeof sample - 1);
        hp_alloc_fail_after(0, 0);
        if (rc == 0) {
            hp_mime_free(t);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_ptr_equal(t, sentinel);
        assert_true(n < 100);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_null_table),
        cmocka_unit_test(test_parse_sample),
        cmocka_unit_test(test_parse_edges),
        cmocka_unit_test(test_parse_many),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_missing_and_bad),
        cmocka_unit_test(test_load_system),
        cmocka_unit_test(test_lookup_no_alloc),
        cmocka_unit_test(test_load_oom),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
