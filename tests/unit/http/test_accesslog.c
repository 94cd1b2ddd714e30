/*
 * test_accesslog.c - unit tests for the access log (src/http/accesslog.c):
 * the exact combined-format line, nginx escaping, "-" for missing fields,
 * the time field against gmtime_r, flushing only whole lines when the
 * buffer fills, explicit flush and its fault paths (short write, EAGAIN,
 * hard error), rotation by rename + reopen, two workers on two threads
 * sharing one file (with and without a concurrent reopen), no allocation
 * per line, destroy flushing, and out-of-memory sweeps of the constructors.
 *
 * Expected lines are built by an independent, deliberately naive formatter
 * (snprintf and a byte-at-a-time escaper) so a bug in the module's fast
 * path cannot hide behind the same code in the test.
 */
#include "hotpath/accesslog.h"
#include "hotpath/alloc.h"
#include "hotpath/common.h"
#include "core/sys_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define T_NOV2026 1795653676LL /* 26/Nov/2026:00:41:16 +0000 */

/* ---- helpers ------------------------------------------------------------- */

struct tdir {
    char dir[64];
    char path[128];
};

static void tdir_make(struct tdir *t)
{
    strcpy(t->dir, "/tmp/hp_accesslog_XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/access.log", t->dir);
}

static void tdir_rm(struct tdir *t)
{
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
}

/* Whole file as a NUL-terminated malloc'd string (plain malloc: test-side). */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t r;
    while ((r = fread(s + n, 1, cap - n - 1, fp)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            s = realloc(s, cap);
            assert_non_null(s);
        }
    }
    fclose(fp);
    s[n] = '\0';
    if (len)
        *len = n;
    return s;
}

static void assert_file_eq(const char *path, const char *want)
{
    char *got = slurp(path, NULL);
    assert_string_equal(got, want);
    free(got);
}

/* Naive reference escaper: one byte at a time, via snprintf. */
static size_t ref_esc(char *dst, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            o += (size_t)sprintf(dst + o, "\\x%02X", c);
        else
            dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return o;
}

static const char *short_time(void)
{
    return "26/Nov/2026:00:41:16 +0000";
}

/* One hp_accesslog_line with NUL-terminated strings (NULL stays NULL). */
static void line_s(hp_accesslog_t *l, const char *addr, const char *m, const char *t, int minor,
                   int status, uint64_t bytes, const char *ref, const char *ua)
{
    hp_accesslog_line(l, addr, short_time(), m, m ? strlen(m) : 0, t, t ? strlen(t) : 0, minor, status,
                 bytes, ref, ref ? strlen(ref) : 0, ua, ua ? strlen(ua) : 0);
    assert_int_equal(hp_accesslog_validate(l), 0);
}

/* ---- syscall fault injection -------------------------------------------- */

/* Modes for the fake writev; the default passes through and records. */
static struct {
    int mode;          /* 0 pass, 1 short (half), 2 EAGAIN, 3 EIO, 4 zero bytes */
    int calls;         /* writev calls seen */
    bool partial_line; /* some write did not end on '\n' */
} fk;

static ssize_t fake_writev(int fd, const struct iovec *iov, int iovcnt)
{
    fk.calls++;
    assert_int_equal(iovcnt, 1);
    size_t n = iov[0].iov_len;
    switch (fk.mode) {
    case 1:
        n = n / 2 ? n / 2 : 1;
        break;
    case 2:
        errno = EAGAIN;
        return -1;
    case 3:
        errno = EIO;
        return -1;
    case 4:
        return 0;
    default:
        break;
    }
    const char *b = iov[0].iov_base;
    if (b[n - 1] != '\n')
        fk.partial_line = true;
    struct iovec one = {.iov_base = iov[0].iov_base, .iov_len = n};
    return hp_sys_real.writev(fd, &one, 1);
}

static void install_fake(void)
{
    static hp_sys_ops_t ops;
    ops = hp_sys_real;
    ops.writev = fake_writev;
    memset(&fk, 0, sizeof(fk));
    hp_sys_set_ops(&ops);
}

static void remove_fake(void)
{
    hp_sys_set_ops(NULL);
}

/* ---- time ---------------------------------------------------------------- */

static void test_time(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(hp_accesslog_time(out, T_NOV2026), HP_ACCESSLOG_TIME_LEN);
    assert_string_equal(out, "26/Nov/2026:00:41:16 +0000");
    hp_accesslog_time(out, 0);
    assert_string_equal(out, "01/Jan/1970:00:00:00 +0000");
    hp_accesslog_time(out, -1);
    assert_string_equal(out, "31/Dec/1969:23:59:59 +0000");
    hp_accesslog_time(out, 951782400); /* leap day 2000 */
    assert_string_equal(out, "29/Feb/2000:00:00:00 +0000");
    hp_accesslog_time(out, INT64_MAX);
    assert_string_equal(out, "31/Dec/9999:23:59:59 +0000");
    hp_accesslog_time(out, INT64_MIN);
    assert_string_equal(out, "01/Jan/0000:00:00:00 +0000");

    /* Against the C library over a wide spread, both signs, every field. */
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t t = (int64_t)(x % 253402300800ULL) - (i & 1 ? 62135596800LL : 0);
        if (i < 1000)
            t = (int64_t)i * 86399 * 13; /* dense near the epoch */
        time_t tt = (time_t)t;
        struct tm tm;
        assert_non_null(gmtime_r(&tt, &tm));
        /* strftime's %Y does not pad years below 1000; the log field is
         * fixed-width, so build the reference by hand. */
        char mon[8], want[64];
        strftime(mon, sizeof(mon), "%b", &tm);
        snprintf(want, sizeof(want), "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday, mon,
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        assert_int_equal(hp_accesslog_time(out, t), HP_ACCESSLOG_TIME_LEN);
        if (strcmp(out, want) != 0)
            fail_msg("t=%lld got %s want %s", (long long)t, out, want);
    }
}

/* ---- line format --------------------------------------------------------- */

static void test_typical_line(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    hp_accesslog_file_t *f;
    assert_int_equal(hp_accesslog_file_open(&f, t.path), 0);
    struct stat st;
    assert_int_equal(fstat(hp_accesslog_file_fd(f), &st), 0);
    mode_t um = umask(0);
    umask(um);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0644 & ~um);
    assert_true(fcntl(hp_accesslog_file_fd(f), F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(hp_accesslog_file_fd(f), F_GETFL) & O_APPEND);

    hp_accesslog_t l;
    assert_int_equal(hp_accesslog_init(&l, f, 0), 0);
    assert_int_equal(hp_accesslog_validate(&l), 0);
    char ts[32];
    hp_accesslog_time(ts, T_NOV2026);
    hp_accesslog_line(&l, "127.0.0.1", ts, "GET", 3, "/x", 2, 1, 200, 13, "referer", 7,
                 "user agent", 10);
    hp_accesslog_line(&l, "::1", ts, "POST", 4, "/api/v1?a=b&c=d", 15, 0, 404, 0, NULL, 0, "curl/7.88",
                 9);
    hp_accesslog_line(&l, "10.0.0.2", ts, "HEAD", 4, "/big", 4, 1, 206, UINT64_MAX, "", 0, NULL, 0);
    assert_int_equal(hp_accesslog_validate(&l), 0);
    assert_int_equal(hp_accesslog_flush(&l), 0);
    assert_file_eq(t.path,
                   "127.0.0.1 - - [26/Nov/2026:00:41:16 +0000] \"GET /x HTTP/1.1\" 200 13 "
                   "\"referer\" \"user agent\"\n"
                   "::1 - - [26/Nov/2026:00:41:16 +0000] \"POST /api/v1?a=b&c=d HTTP/1.0\" 404 0 "
                   "\"-\" \"curl/7.88\"\n"
                   "10.0.0.2 - - [26/Nov/2026:00:41:16 +0000] \"HEAD /big HTTP/1.1\" 206 "
                   "18446744073709551615 \"-\" \"-\"\n");
    assert_int_equal(hp_accesslog_dropped(&l), 0);
    hp_accesslog_destroy(&l);
    hp_accesslog_file_close(f);
    tdir_rm(&t);
}

static void test_missing_fields(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    hp_accesslog_file_t *f;
    assert_int_equal(hp_accesslog_file_open(&f, t.path), 0);
    hp_accesslog_t l;
    assert_int_equal(hp_accesslog_init(&l, f, 1024), 0);
    /* No request line at all (e.g. a 400 on garbage), no address. */
    line_s(&l, NULL, NULL, NULL, 1, 400, 0, NULL, NULL);
    line_s(&l, "", "", "", 1, 408, 0, "", "");
    /* No version (negative minor), empty referer vs present agent. */
    line_s(&l, "1.2.3.4", "GET", "/", -1, 200, 5, "", "ua");
    hp_accesslog_line(&l, "1.2.3.4", NULL, "GET", 3, "/", 1, 1, 200, 5, NULL, 0, NULL, 0);
    assert_int_equal(hp_accesslog_flush(&l), 0);
    assert_file_eq(t.path, "- - - [26/Nov/2026:00:41:16 +0000] \"-\" 400 0 \"-\" \"-\"\n"
                           "- - - [26/Nov/2026:00:41:16 +0000] \"-\" 408 0 \"-\" \"-\"\n"
                           "1.2.3.4 - - [26/Nov/2026:00:41:16 +0000] \"GET /\" 200 5 \"-\" \"ua\"\n"
                           "1.2.3.4 - - [-] \"GET / HTTP/1.1\" 200 5 \"-\" \"-\"\n");
    hp_accesslog_destroy(&l);
    hp_accesslog_file_close(f);
    tdir_rm(&t);
}

static void test_escaping(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    hp_accesslog_file_t *f;
    assert_int_equal(hp_accesslog_file_open(&f, t.path), 0);
    hp_accesslog_t l;
    assert_int_equal(hp_accesslog_init(&l, f, 0), 0);

    /* Fixed cases, spelled out. */
    const char tgt[] = "/a\"b\\c\x01\n\x7f\xff~ ";
    const char ref[] = "x\"\r\n1.2.3.4 - - [forged";
    const char ua[] = "Mozilla \xc3\xa9 \t\\\"";
    hp_accesslog_line(&l, "127.0.0.1", short_time(), "G\"T", 3, tgt, sizeof(tgt) - 1, 1, 200, 1, ref,
                 sizeof(ref) - 1, ua, sizeof(ua) - 1);
    /* Embedded NUL bytes: lengths, not NULs, delimit. */
    hp_accesslog_line(&l, "127.0.0.1", short_time(), "GET", 3, "/n\0x", 4, 1, 200, 1, "\0", 1, "a\0", 2);
    assert_int_equal(hp_accesslog_flush(&l), 0);
    assert_file_eq(t.path,
                   "127.0.0.1 - - [26/Nov/2026:00:41:16 +0000] "
                   "\"G\\x22T /a\\x22b\\x5Cc\\x01\\x0A\\x7F\\xFF~  HTTP/1.1\" 200 1 "
                   "\"x\\x22\\x0D\\x0A1.2.3.4 - - [forged\" "
                   "\"Mozilla \\xC3\\xA9 \\x09\\x5C\\x22\"\n"
                   "127.0.0.1 - - [26/Nov/2026:00:41:16 +0000] \"GET /n\\x00x HTTP/1.1\" 200 1 "
                   "\"\\x00\" \"a\\x00\"\n");

    /* Every byte value in every escaped field, against the reference. */
    assert_int_equal(ftruncate(hp_accesslog_file_fd(f), 0), 0);
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    hp_accesslog_line(&l, "h", short_time(), "M", 1, all, 256, 1, 200, 0, all, 256, all, 256);
    assert_int_equal(hp_accesslog_flush(&l), 0);
    char e[1100], want[4096];
    ref_esc(e, all, 256);
    snprintf(want, sizeof(want), "h - - [%s] \"M %s HTTP/1.1\" 200 0 \"%s\" \"%s\"\n",
             short_time(), e, e, e);
    assert_file_eq(t.path, want);
    assert_int_equal(hp_accesslog_dropped(&l), 0);
    hp_accesslog_destroy(&l);
    hp_accesslog_file_close(f);
    tdir_rm(&t);
}

/* ---- buffering ----------------------------------------------------------- */

/* Builds the reference text of line i of the varying-size series. */
static size_t series_line(char *dst, size_t cap, int i, char *tgt, size_t *tlen, char *ua,
                          size_t *ualen)
{
    /* Sizes from a few bytes to a few hundred, some with escapes (which
     * quadruple), so lines end at every position relative to the buffer. */
    size_t tl = (size_t)(i * 37 % 230);
    for (size_t k = 0; k < tl; k++)
        tgt[k] = (char)(k % 29 == 7 ? '"' : 'a' + (int)((k + (size_t)i) % 26));
    tgt[0] = '/';
    if (tl == 0)
        tl = 1;
    size_t ul = (size_t)(i * 11 % 50);
    for (size_t k = 0; k < ul; k++)
        ua[k] = (char)(k == 3 ? '\x80' : 'A' + (int)(k % 26));
    *tlen = tl;
    *ualen = ul;
    char et[1024], eu[256];
    ref_esc(et, tgt, tl);
    ref_esc(eu, ua, ul);
    int n = snprintf(dst, cap, "10.0.%d.%d - - [%s] \"GET %s HTTP/1.1\" %d %d \"-\" \"%s\"\n",
                     i / 256 % 256, i % 256, short_time(), et, 200 + i % 300, i * 7,
                     ul ? eu : "-");
    assert_true(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static void series_emit(hp_accesslog_t *l, int i)
{
    char tgt[256], ua[64], ref[2048], addr[32];
    size_t tl, ul;
    series_line(ref, sizeof(ref), i, tgt, &tl, ua, &ul);
    snprintf(addr, sizeof(addr), "10.0.%d.%d", i / 256 % 256, i % 256);
    hp_accesslog_line(l, addr, short_time(), "GET", 3, tgt, tl, 1, 200 + i % 300, (uint64_t)i * 7, NULL,
                 0, ua, ul);
}

static void test_flush_on_full_whole_lines(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    hp_accesslog_file_t *f;
    assert_int_equal(hp_accesslog_file_open(&f, t.path), 0);
    install_fake();
    const int N = 3000;
    size_t sizes[] = {HP_ACCESSLOG_MIN_BUFSIZE, 1024, 1500, 4096};
    for (size_t s = 0; s < HP_ARRAY_LEN(sizes); s++) {
        assert_int_equal(ftruncate(hp_accesslog_file_fd(f), 0), 0);
        memset(&fk, 0, sizeof(fk));
        hp_accesslog_t l;
        assert_int_equal(hp_accesslog_init(&l, f, sizes[s]), 0);
        size_t total = 0;
        int expect_drop = 0;
        bool *kept = calloc((size_t)N, sizeof(bool));
        for (int i = 0; i < N; i++) {
            char ref[2048], tgt[256], ua[64];
            size_t tl, ul;
            size_t n = series_line(ref, sizeof(ref), i, tgt, &tl, ua, &ul);
            size_t len_before = l.len;
            int calls_before = fk.calls;
            series_emit(&l, i);
            assert_int_equal(hp_accesslog_validate(&l), 0);
            if (fk.calls != calls_before) {
                /* It wrote only because this line did not fit. */
                assert_true(len_before + n > sizes[s]);
                assert_int_equal(fk.calls, calls_before + 1);
            } else if (n <= sizes[s]) {
                /* Otherwise the line was appended whole, nothing else. */
                assert_int_equal(l.len, len_before + n);
            }
            /* The buffer never holds more than it can. */
            assert_true(l.len <= sizes[s]);
            if (n > sizes[s]) {
                expect_drop++;
            } else {
                kept[i] = true;
                total += n;
            }
        }
        assert_int_equal(hp_accesslog_dropped(&l), (uint64_t)expect_drop);
        hp_accesslog_destroy(&l);
        /* Every write was whole lines; writes happened only when full. */
        assert_false(fk.partial_line);
        assert_true(fk.calls > (int)(total / sizes[s]));

        size_t flen;
        char *got = slurp(t.path, &flen);
        assert_int_equal(flen, total);
        char *p = got;
        for (int i = 0; i < N; i++) {
            if (!kept[i])
                continue;
            char ref[2048], tgt[256], ua[64];
            size_t tl, ul;
            size_t n = series_line(ref, sizeof(ref), i, tgt, &tl, ua, &ul);
            if (memcmp(p, ref, n) != 0)
                fail_msg("bufsize %zu line %d differs:\n got %.*s\nwant %s", sizes[s], i, (int)n,
                         p, ref);
            p += n;
        }
        assert_ptr_equal(p, got + flen);
        free(got);
        free(kept);
    }
    remove_fake();
    hp_accesslog_file_close(f);
    tdir_rm(&t);
}

static void test_explicit_flush(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    hp_accesslog_file_t *f;
    assert_int_equal(hp_accesslog_file_open(&f, t.path), 0);
    install_fake();
    hp_accesslog_t l;
    assert_int_equal(hp_accesslog_init(&l, f, 0), 0);
    /* Empty flush makes no syscall. */
    assert_int_equal(hp_accesslog_flush(&l), 0);
    assert_int_equal(fk.calls, 0);
    line_s(&l, "a", "GET", "/1", 1, 200, 1, NULL, NULL);
    line_s(&l, "b", "GET", "/2", 1, 200, 2, NULL, NULL);
    /* Buffered: nothing in the file, no syscall yet. */
    assert_int_equal(fk.calls, 0);
    assert_file_eq(t.path, "");
    assert_int_equal(hp_accesslog_flush(&l), 0);
    assert_int_equal(fk.calls, 1); /* both lines in one write */
    const char *l1 = "a - - [26/Nov/2026:00:41:16 +0000] \"GET /1 HTTP/1.1\" 200 1 \"-\" \"-\"\n";
    const char *l2 = "b - - [26/Nov/2026:00:41:16 +0000] \"GET /2 HTTP/1.1\" 200 2 \"-\" \"-\"\n";
    char want[512];
    snprintf(want, sizeof(want), "%s%s", l1, l2);
    assert_file_eq(t.path, want);
    assert_int_equal(hp_accesslog_flush(&l), 0);
    assert_int_equal(fk.calls, 1);

    /* EAGAIN keeps the data. */
    assert_int_equal(ftruncate(hp_accesslog_file_fd(f), 0), 0);
    line_s(&l, "a", "GET", "/1", 1, 200, 1, NULL, NULL);
    fk.mode = 2;
    assert_int_equal(hp_accesslog_flush(&l), -EAGAIN);
    assert_int_equal(l.len, strlen(l1));
    /* A write of zero bytes keeps it too. */
    fk.mode = 4;
    assert_int_equal(hp_accesslog_flush(&l), 0);
    assert_int_equal(l.len, strlen(l1));
    /* A short write keeps the rest, and the next flush finishes it. */
    line_s(&l, "b", "GET", "/2", 1, 200, 2, NULL, NULL);
    fk.mode = 1;
    assert_int_equal(hp_accesslog_flush(&l), 0);
    assert_int_equal(l.len, (strlen(l1) + strlen(l2)) - (strlen(l1) + strlen(l2)) / 2);
    assert_int_equal(hp_accesslog_validate(&l), 0);
    fk.mode = 0;
    assert_int_equal(hp_accesslog_flush(&l), 0);
    assert_int_equal(l.len, 0);
    assert_file_eq(t.path, want);
    assert_int_equal(hp_accesslog_dropped(&l), 0);

    /* A hard error drops the buffered lines and counts them. */
    line_s(&l, "a", "GET", "/1", 1, 200, 1, NULL, NULL);
    line_s(&l, "b", "GET", "/2", 1, 200, 2, NULL, NULL);
    line_s(&l, "c", "GET", "/3", 1, 200, 3, NULL, NULL);
    fk.mode = 3;
    assert_int_equal(hp_accesslog_flush(&l), -EIO);
    assert_int_equal(l.len, 0);
    assert_int_equal(hp_accesslog_dropped(&l), 3);
    fk.mode = 0;
    assert_file_eq(t.path, want);

    /* A line that fills the buffer while the file says EAGAIN is dropped;
     * the buffered ones stay. */
    hp_accesslog_destroy(&l);
    assert_int_equal(hp_accesslog_init(&l, f, HP_ACCESSLOG_MIN_BUFSIZE), 0);
    line_s(&l, "a", "GET", "/1", 1, 200, 1, NULL, NULL);
    line_s(&l, "b", "GET", "/2", 1, 200, 2, NULL, NULL);
    line_s(&l, "a", "GET", "/1", 1, 200, 1, NULL, NULL);
    size_t held = l.len;
    fk.mode = 2;
    line_s(&l, "b", "GET", "/2", 1, 200, 2, NULL, NULL);
    assert_int_equal(l.len, held);
    assert_int_equal(hp_accesslog_dropped(&l), 1);
    /* A line longer than the whole buffer is dropped even when writable. */
    fk.mode = 0;
    char big[HP_ACCESSLOG_MIN_BUFSIZE];
    memset(big, 'x', sizeof(big));
    hp_accesslog_line(&l, "a", short_time(), "GET", 3, big, sizeof(big), 1, 200, 0, NULL, 0, NULL, 0);
    assert_int_equal(hp_accesslog_dropped(&l), 2);
    assert_int_equal(l.len, 0); /* it flushed trying to make room */
    hp_accesslog_destroy(&l);
    /* The three lines that fitted reached the file, whole, in order. */
    char tail[1024];
    snprintf(tail, sizeof(tail), "%s%s%s%s", want, l1, l2, l1);
    assert_file_eq(t.path, tail);
    remove_fake();
    hp_accesslog_file_close(f);
    tdir_rm(&t);
}

static void test_destroy_flushes(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    hp_accesslog_file_t *f;
    assert_int_equal(hp_accesslog_file_open(&f, t.path), 0);
    hp_accesslog_t l;
    assert_int_equal(hp_accesslog_init(&l, f, 0), 0);
    line_s(&l, "a", "GET", "/bye", 1, 200, 1, NULL, NULL);
    assert_file_eq(t.path, "");
    hp_accesslog_destroy(&l);
    assert_null(l.buf);
    assert_file_eq(t.path,
                   "a - - [26/Nov/2026:00:41:16 +0000] \"GET /bye HTTP/1.1\" 200 1 \"-\" \"-\"\n");
    hp_accesslog_destroy(&l); /* twice is harmless */

    /* Destroy finishes a short-written buffer too. */
    install_fake();
    assert_int_equal(ftruncate(hp_accesslog_file_fd(f), 0), 0);
    assert_int_equal(hp_accesslog_init(&l, f, 0), 0);
    for (int i = 0; i < 50; i++)
        series_emit(&l, i);
    fk.mode = 1;
    hp_accesslog_destroy(&l);
    assert_true(fk.calls > 3);
    remove_fake();
    size_t flen;
    char *got = slurp(t.path, &flen);
    char *p = got;
    for (int i = 0; i < 50; i++) {
        char ref[2048], tgt[256], ua[64];
        size_t tl, ul;
        size_t n = series_line(ref, sizeof(ref), i, tgt, &tl, ua, &ul);
        assert_memory_equal(p, ref, n);
        p += n;
    }
    assert_ptr_equal(p, got + flen);
    free(got);
    hp_accesslog_file_close(f);
    tdir_rm(&t);
}

/* ---- rotation ------------------------------------------------------------ */

static void test_reopen_after_rename(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    hp_accesslog_file_t *f;
    assert_int_equal(hp_accesslog_file_open(&f, t.path), 0);
    int fd = hp_accesslog_file_fd(f);
    hp_accesslog_t l;
    assert_int_equal(hp_accesslog_init(&l, f, 0), 0);
    line_s(&l, "a", "GET", "/old1", 1, 200, 1, NULL, NULL);
    assert_int_equal(hp_accesslog_flush(&l), 0);
    line_s(&l, "a", "GET", "/old2", 1, 200, 1, NULL, NULL);
    assert_int_equal(hp_accesslog_flush(&l), 0);

    char old[160];
    snprintf(old, sizeof(old), "%s.1", t.path);
    assert_int_equal(rename(t.path, old), 0);
    /* Until the reopen, lines still follow the renamed file (logrotate's
     * window between rename and SIGUSR1). */
    line_s(&l, "a", "GET", "/old3", 1, 200, 1, NULL, NULL);
    assert_int_equal(hp_accesslog_flush(&l), 0);
    assert_int_equal(access(t.path, F_OK), -1);

    assert_int_equal(hp_accesslog_file_reopen(f), 0);
    assert_int_equal(hp_accesslog_file_fd(f), fd); /* same number, new file */
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(fd, F_GETFL) & O_APPEND);
    line_s(&l, "a", "GET", "/new1", 1, 200, 1, NULL, NULL);
    hp_accesslog_destroy(&l);

    assert_file_eq(old,
                   "a - - [26/Nov/2026:00:41:16 +0000] \"GET /old1 HTTP/1.1\" 200 1 \"-\" \"-\"\n"
                   "a - - [26/Nov/2026:00:41:16 +0000] \"GET /old2 HTTP/1.1\" 200 1 \"-\" \"-\"\n"
                   "a - - [26/Nov/2026:00:41:16 +0000] \"GET /old3 HTTP/1.1\" 200 1 \"-\" \"-\"\n");
    assert_file_eq(t.path,
                   "a - - [26/Nov/2026:00:41:16 +0000] \"GET /new1 HTTP/1.1\" 200 1 \"-\" \"-\"\n");

    /* A failed reopen (the directory is gone) keeps the old file in use. */
    char moved[96];
    snprintf(moved, sizeof(moved), "%s.moved", t.dir);
    assert_int_equal(rename(t.dir, moved), 0);
    assert_int_equal(hp_accesslog_file_reopen(f), -ENOENT);
    assert_int_equal(hp_accesslog_file_fd(f), fd);
    assert_int_equal(hp_accesslog_init(&l, f, 0), 0);
    line_s(&l, "a", "GET", "/kept", 1, 200, 1, NULL, NULL);
    assert_int_equal(hp_accesslog_flush(&l), 0);
    hp_accesslog_destroy(&l);
    assert_int_equal(rename(moved, t.dir), 0);
    assert_file_eq(t.path,
                   "a - - [26/Nov/2026:00:41:16 +0000] \"GET /new1 HTTP/1.1\" 200 1 \"-\" \"-\"\n"
                   "a - - [26/Nov/2026:00:41:16 +0000] \"GET /kept HTTP/1.1\" 200 1 \"-\" \"-\"\n");
    hp_accesslog_file_close(f);
    tdir_rm(&t);
}

/* ---- two workers --------------------------------------------------------- */

#define WLINES 10000

struct worker_arg {
    hp_accesslog_file_t *f;
    int id;
    size_t bufsize;
};

/* Each worker logs WLINES lines of varying length (some longer than a
 * pipe's PIPE_BUF, so atomicity comes from the file, not luck), flushing
 * when full and every 97 lines like a loop tick would. */
static void *worker_main(void *p)
{
    struct worker_arg *a = p;
    hp_accesslog_t l;
    if (hp_accesslog_init(&l, a->f, a->bufsize) != 0)
        return (void *)1;
    char tgt[1200];
    for (int i = 0; i < WLINES; i++) {
        int tl = snprintf(tgt, sizeof(tgt), "/w%d/%d/", a->id, i);
        int pad = (i * 131) % 1100;
        memset(tgt + tl, 'a' + a->id, (size_t)pad);
        hp_accesslog_line(&l, "127.0.0.1", short_time(), "GET", 3, tgt, (size_t)(tl + pad), 1, 200,
                     (uint64_t)pad, NULL, 0, "w", 1);
        if (i % 97 == 0)
            hp_accesslog_flush(&l);
    }
    uint64_t dropped = hp_accesslog_dropped(&l);
    hp_accesslog_destroy(&l);
    return dropped ? (void *)2 : NULL;
}

struct reopen_arg {
    hp_accesslog_file_t *f;
    _Atomic int stop;
    int count;
};

static void *reopener_main(void *p)
{
    struct reopen_arg *a = p;
    while (!a->stop) {
        if (hp_accesslog_file_reopen(a->f) != 0)
            return (void *)1;
        a->count++;
        usleep(200);
    }
    return NULL;
}

static void check_worker_file(const char *path, int nworkers)
{
    size_t flen;
    char *got = slurp(path, &flen);
    int *next = calloc((size_t)nworkers, sizeof(int));
    int lines = 0;
    for (char *p = got; p < got + flen;) {
        char *nl = memchr(p, '\n', (size_t)(got + flen - p));
        assert_non_null(nl);
        *nl = '\0';
        int w, i, tl, n = 0;
        unsigned long long b;
        if (sscanf(p, "127.0.0.1 - - [26/Nov/2026:00:41:16 +0000] \"GET /w%d/%d/%n", &w, &i, &n) !=
                2 ||
            n == 0)
            fail_msg("mangled line %d: %.80s", lines, p);
        assert_true(w >= 0 && w < nworkers);
        /* Each worker's lines appear in its own order, none missing. */
        if (i != next[w])
            fail_msg("worker %d: line %d where %d was expected", w, i, next[w]);
        next[w]++;
        int pad = (i * 131) % 1100;
        char *q = p + n;
        for (int k = 0; k < pad; k++)
            if (q[k] != 'a' + w)
                fail_msg("worker %d line %d: pad byte %d is %c", w, i, k, q[k]);
        q += pad;
        tl = 0;
        if (sscanf(q, " HTTP/1.1\" 200 %llu \"-\" \"w\"%n", &b, &tl) != 1 || q[tl] != '\0')
            fail_msg("worker %d line %d: bad tail %s", w, i, q);
        assert_int_equal(b, (unsigned long long)pad);
        lines++;
        p = nl + 1;
    }
    for (int w = 0; w < nworkers; w++)
        assert_int_equal(next[w], WLINES);
    assert_int_equal(lines, nworkers * WLINES);
    free(next);
    free(got);
}

static void run_workers(bool with_reopen)
{
    struct tdir t;
    tdir_make(&t);
    hp_accesslog_file_t *f;
    assert_int_equal(hp_accesslog_file_open(&f, t.path), 0);
    pthread_t th[2], rt;
    struct worker_arg a[2] = {{f, 0, 8192}, {f, 1, HP_ACCESSLOG_BUFSIZE}};
    struct reopen_arg ra = {.f = f};
    if (with_reopen)
        assert_int_equal(pthread_create(&rt, NULL, reopener_main, &ra), 0);
    for (int w = 0; w < 2; w++)
        assert_int_equal(pthread_create(&th[w], NULL, worker_main, &a[w]), 0);
    for (int w = 0; w < 2; w++) {
        void *rv;
        assert_int_equal(pthread_join(th[w], &rv), 0);
        assert_null(rv);
    }
    if (with_reopen) {
        ra.stop = 1;
        void *rv;
        assert_int_equal(pthread_join(rt, &rv), 0);
        assert_null(rv);
        assert_true(ra.count > 0);
    }
    hp_accesslog_file_close(f);
    check_worker_file(t.path, 2);
    tdir_rm(&t);
}

static void test_two_workers(void **state)
{
    (void)state;
    run_workers(false);
}

/* Reopening the same path (no rename) while both write: the dup3 swap must
 * lose and mangle nothing. */
static void test_two_workers_concurrent_reopen(void **state)
{
    (void)state;
    run_workers(true);
}

/* ---- allocation ---------------------------------------------------------- */

static void test_no_allocation_per_line(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    hp_accesslog_file_t *f;
    assert_int_equal(hp_accesslog_file_open(&f, t.path), 0);
    hp_accesslog_t l;
    assert_int_equal(hp_accesslog_init(&l, f, 4096), 0);
    uint64_t before = hp_alloc_count();
    hp_alloc_fail_after(1, 1); /* any allocation now fails and is not counted */
    char ts[32];
    for (int i = 0; i < 5000; i++) {
        if (i % 100 == 0)
            hp_accesslog_time(ts, T_NOV2026 + i);
        series_emit(&l, i);
        if (i % 500 == 0)
            assert_int_equal(hp_accesslog_flush(&l), 0);
    }
    assert_int_equal(hp_accesslog_flush(&l), 0);
    assert_int_equal(hp_accesslog_file_reopen(f), 0);
    hp_alloc_fail_after(0, 0);
    assert_int_equal(hp_alloc_count(), before);
    assert_int_equal(hp_accesslog_dropped(&l), 0);
    hp_accesslog_destroy(&l);
    hp_accesslog_file_close(f);
    tdir_rm(&t);
}

static void test_oom_and_args(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    hp_accesslog_file_t *f = NULL;
    /* Constructor sweep: every allocation failing in turn. */
    int n;
    for (n = 1;; n++) {
        hp_accesslog_file_t *g = (hp_accesslog_file_t *)&n; /* must stay untouched */
        hp_alloc_fail_after((uint64_t)n, 0);
        int rc = hp_accesslog_file_open(&g, t.path);
        hp_alloc_fail_after(0, 0);
        if (rc == 0) {
            f = g;
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_ptr_equal(g, (hp_accesslog_file_t *)&n);
    }
    assert_true(n > 1);
    hp_accesslog_t l;
    for (n = 1;; n++) {
        hp_alloc_fail_after((uint64_t)n, 0);
        int rc = hp_accesslog_init(&l, f, 0);
        hp_alloc_fail_after(0, 0);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
    }
    assert_int_equal(hp_accesslog_validate(&l), 0);
    hp_accesslog_destroy(&l);

    assert_int_equal(hp_accesslog_init(&l, f, HP_ACCESSLOG_MIN_BUFSIZE - 1), -EINVAL);
    assert_int_equal(hp_accesslog_init(&l, NULL, 0), -EINVAL);
    assert_int_equal(hp_accesslog_init(NULL, f, 0), -EINVAL);
    assert_int_equal(hp_accesslog_validate(NULL), -EINVAL);
    hp_accesslog_file_t *g;
    assert_int_equal(hp_accesslog_file_open(&g, NULL), -EINVAL);
    assert_int_equal(hp_accesslog_file_open(&g, ""), -EINVAL);
    assert_int_equal(hp_accesslog_file_open(&g, "/nonexistent-dir-hp/x.log"), -ENOENT);
    assert_int_equal(hp_accesslog_file_reopen(NULL), -EINVAL);
    hp_accesslog_file_close(NULL);
    hp_accesslog_destroy(NULL);
    hp_accesslog_file_close(f);
    tdir_rm(&t);
}

/* A failed assertion leaves a test midway; restore the real syscalls so
 * the next test is not judged by the previous one's fake. */
static int restore_sys(void **state)
{
    (void)state;
    hp_alloc_fail_after(0, 0);
    remove_fake();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_time, restore_sys),
        cmocka_unit_test_teardown(test_typical_line, restore_sys),
        cmocka_unit_test_teardown(test_missing_fields, restore_sys),
        cmocka_unit_test_teardown(test_escaping, restore_sys),
        cmocka_unit_test_teardown(test_flush_on_full_whole_lines, restore_sys),
        cmocka_unit_test_teardown(test_explicit_flush, restore_sys),
        cmocka_unit_test_teardown(test_destroy_flushes, restore_sys),
        cmocka_unit_test_teardown(test_reopen_after_rename, restore_sys),
        cmocka_unit_test_teardown(test_two_workers, restore_sys),
        cmocka_unit_test_teardown(test_two_workers_concurrent_reopen, restore_sys),
        cmocka_unit_test_teardown(test_no_allocation_per_line, restore_sys),
        cmocka_unit_test_teardown(test_oom_and_args, restore_sys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
