/*
 * test_files.c - unit tests for static file responses on the server path
 * (src/http/files.c through server.c): 200 with the file's type, length,
 * validators and bytes, from memory and by sendfile; HEAD; index.html for
 * a directory and 301 for one named without its slash; 404, 405, and
 * paths that try to leave the root; 304 and 412 from the preconditions;
 * Range (206 single and multipart, 416); the open-file cache answering a
 * second request without opening the file again, with no allocation; and
 * every descriptor given back when the worker goes.
 *
 * One real worker runs HTTP on the test's thread (http_harness.h) with a
 * temporary document root made with mkdtemp, holding a few files, a
 * directory, a symlink out of the root and a secret beside the root.
 * Resolving paths in detail is test_static.c's; here it is what the client
 * receives.
 */
#include "hotpath/alloc.h"
#include "hotpath/http_server.h"
#include "http/static_int.h"
#include "hotpath/log.h"
#include "core/sys_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_harness.h"

#define BIG_SIZE (100u * 1024) /* past HP_FCACHE_MEM_MAX: goes by sendfile */

static const char DATA[] = "0123456789abcdef";
static const char SECRET[] = "top secret";

static struct {
    char base[64];  /* mkdtemp: secret.txt and root/ */
    char root[96];
    int root_fd;
    int fds_before; /* before the root was opened */
    char *big;      /* big.bin's bytes */
    int sendfiles;  /* sendfile calls while counting */
} F;

static ssize_t counting_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    F.sendfiles++;
    return hp_sys_real.sendfile(out_fd, in_fd, offset, count);
}

/* The real table with sendfile counted (filled in by main). */
static hp_sys_ops_t ops;

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void put_file(const char *rel, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", F.base, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    F.fds_before = count_fds();
    snprintf(F.base, sizeof F.base, "/tmp/test_files_XXXXXX");
    assert_non_null(mkdtemp(F.base));
    snprintf(F.root, sizeof F.root, "%s/root", F.base);
    assert_int_equal(mkdir(F.root, 0755), 0);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", F.root);
    assert_int_equal(mkdir(sub, 0755), 0);
    put_file("secret.txt", SECRET, sizeof SECRET - 1);
    put_file("root/data.txt", DATA, sizeof DATA - 1);
    put_file("root/index.html", "<h1>home</h1>\n", 14);
    put_file("root/style.css", "p{}", 3);
    put_file("root/empty.txt", "", 0);
    put_file("root/sub/index.html", "sub", 3);
    F.big = malloc(BIG_SIZE);
    assert_non_null(F.big);
    for (size_t i = 0; i < BIG_SIZE; i++)
        F.big[i] = (char)('A' + (i * 7 + i / 251) % 26);
    put_file("root/big.bin", F.big, BIG_SIZE);
    char link[128];
    snprintf(link, sizeof link, "%s/out.txt", F.root);
    assert_int_equal(symlink("../secret.txt", link), 0);

    hh_reset();
    F.root_fd = hp_static_open_root(F.root);
    assert_true(F.root_fd >= 0);
    HH.hcfg.root_fd = F.root_fd;
    hh_start();
    return 0;
}

static void rm(const char *rel)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", F.base, rel);
    assert_int_equal(remove(path), 0);
}

static int teardown(void **state)
{
    (void)state;
    hp_sys_set_ops(NULL);
    hh_teardown(); /* the open-file cache goes with the worker */
    close(F.root_fd);
    static const char *const files[] = {"root/sub/index.html", "root/sub", "root/data.txt",
                                        "root/index.html", "root/style.css", "root/empty.txt",
                                        "root/big.bin", "root/out.txt", "root", "secret.txt"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        rm(files[i]);
    assert_int_equal(rmdir(F.base), 0);
    free(F.big);
    assert_int_equal(count_fds(), F.fds_before);
    return 0;
}

static void get(cli_t *k, const char *method, const char *target, const char *headers,
                resp_t *r)
{
    char req[1024];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: h\r\n%s\r\n", method, target,
             headers ? headers : "");
    request(k, req, r);
}

static void assert_body(const resp_t *r, const void *want, size_t len)
{
    assert_int_equal(r->body_len, len);
    assert_memory_equal(r->body, want, len);
}

/* ---- 200 ---- */

static void test_serves_file(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    resp_t r = {0};
    get(k, "GET", "/data.txt", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type"), "text/plain; charset=utf-8");
    assert_string_equal(hdr(&r, "Content-Length"), "16");
    assert_string_equal(hdr(&r, "Accept-Ranges"), "bytes");
    assert_string_equal(hdr(&r, "Vary"), "Accept-Encoding");
    const char *etag = hdr(&r, "ETag");
    assert_true(etag && etag[0] == '"' && etag[strlen(etag) - 1] == '"');
    /* Last-Modified is the file's mtime in IMF-fixdate. */
    struct stat sb;
    assert_int_equal(fstatat(F.root_fd, "data.txt", &sb, 0), 0);
    char want[HP_CLOCK_DATE_LEN + 1];
    hp_clock_date_format(sb.st_mtime, want);
    assert_string_equal(hdr(&r, "Last-Modified"), want);
    assert_body(&r, DATA, 16);

    get(k, "GET", "/style.css?v=3", NULL, &r);
    assert_string_equal(hdr(&r, "Content-Type"), "text/css; charset=utf-8");
    assert_body(&r, "p{}", 3);
    get(k, "GET", "/empty.txt", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Length"), "0");
    /* Absolute form and percent-encoding reach the same file. */
    get(k, "GET", "http://h/%64ata.txt", NULL, &r);
    assert_body(&r, DATA, 16);
    resp_free(&r);
}

/* A file larger than the in-memory bound goes by sendfile: every byte. */
static void test_serves_big_file(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    resp_t r = {0};
    hp_sys_set_ops(&ops);
    for (int i = 0; i < 2; i++) {
        F.sendfiles = 0;
        get(k, "GET", "/big.bin", NULL, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(hdr(&r, "Content-Type"), "application/octet-stream");
        assert_body(&r, F.big, BIG_SIZE);
        assert_true(F.sendfiles > 0);
    }
    get(k, "GET", "/big.bin", "Range: bytes=70000-70099\r\n", &r);
    assert_int_equal(r.status, 206);
    assert_body(&r, F.big + 70000, 100);
    /* A small file goes from memory with its head. */
    F.sendfiles = 0;
    get(k, "GET", "/data.txt", NULL, &r);
    assert_body(&r, DATA, 16);
    assert_int_equal(F.sendfiles, 0);
    resp_free(&r);
}

static void test_head(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    resp_t r = {0};
    get(k, "HEAD", "/data.txt", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Length"), "16");
    assert_non_null(hdr(&r, "ETag"));
    get(k, "HEAD", "/big.bin", NULL, &r);
    assert_string_equal(hdr(&r, "Content-Length"), "102400");
    get(k, "HEAD", "/big.bin", "Range: bytes=0-9\r\n", &r); /* ranges are for GET */
    assert_int_equal(r.status, 200);
    get(k, "HEAD", "/missing", NULL, &r);
    assert_int_equal(r.status, 404);
    pump_for(20);
    assert_int_equal(k->rxlen, 0); /* no body after any of them */
    get(k, "GET", "/data.txt", NULL, &r); /* and the connection goes on */
    assert_body(&r, DATA, 16);
    resp_free(&r);
}

/* ---- directories ---- */

static void test_directories(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    resp_t r = {0};
    get(k, "GET", "/", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type"), "text/html; charset=utf-8");
    assert_body(&r, "<h1>home</h1>\n", 14);
    get(k, "GET", "/sub/", NULL, &r);
    assert_body(&r, "sub", 3);

    get(k, "GET", "/sub", NULL, &r);
    assert_int_equal(r.status, 301);
    assert_string_equal(hdr(&r, "Location"), "/sub/");
    get(k, "GET", "/sub?a=1&b=2", NULL, &r);
    assert_int_equal(r.status, 301);
    assert_string_equal(hdr(&r, "Location"), "/sub/?a=1&b=2");
    get(k, "HEAD", "/sub", NULL, &r);
    assert_int_equal(r.status, 301);
    assert_false(k->eof);
    resp_free(&r);
}

/* ---- errors ---- */

static void test_not_found_and_method(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    resp_t r = {0};
    get(k, "GET", "/missing.txt", NULL, &r);
    assert_int_equal(r.status, 404);
    get(k, "GET", "/data.txt/", NULL, &r); /* a file is no directory */
    assert_int_equal(r.status, 404);
    get(k, "POST", "/data.txt", "Content-Length: 3\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(hdr(&r, "Allow"), "GET, HEAD");
    /* The body, sent after the answer, is read and dropped: the
     * connection is still usable. */
    cli_sends(k, "abc");
    get(k, "DELETE", "/data.txt", NULL, &r);
    assert_int_equal(r.status, 405);
    get(k, "GET", "/data.txt", NULL, &r);
    assert_body(&r, DATA, 16);
    resp_free(&r);
}

/* Nothing outside the root comes back, however the path is spelt. */
static void test_escapes_refused(void **state)
{
    (void)state;
    static const char *const targets[] = {
        "/../secret.txt",      "/sub/../../secret.txt", "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt", "/..%2fsecret.txt",     "/out.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt", "/./../secret.txt", "/%00/secret.txt",
        "//..//secret.txt",
    };
    resp_t r = {0};
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        cli_t *k = cli_open(0);
        get(k, "GET", targets[i], NULL, &r);
        if (r.status != 400 && r.status != 403 && r.status != 404)
            fail_msg("%s: status %d", targets[i], r.status);
        assert_null(strstr(r.body, SECRET));
        cli_close(k);
        PUMP_UNTIL(H.w.nconns == 0, 1000);
    }
    /* Dot segments that stay inside the root are fine. */
    cli_t *k = cli_open(0);
    get(k, "GET", "/sub/../data.txt", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_body(&r, DATA, 16);
    resp_free(&r);
}

/* ---- preconditions ---- */

static void test_conditional(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    resp_t r = {0};
    get(k, "GET", "/data.txt", NULL, &r);
    char etag[128], lastmod[64], h[256];
    snprintf(etag, sizeof etag, "%s", hdr(&r, "ETag"));
    snprintf(lastmod, sizeof lastmod, "%s", hdr(&r, "Last-Modified"));

    snprintf(h, sizeof h, "If-None-Match: %s\r\n", etag);
    get(k, "GET", "/data.txt", h, &r);
    assert_int_equal(r.status, 304);
    assert_string_equal(hdr(&r, "ETag"), etag);
    assert_string_equal(hdr(&r, "Last-Modified"), lastmod);
    assert_null(hdr(&r, "Content-Length"));
    pump_for(20);
    assert_int_equal(r.body_len + k->rxlen, 0);
    snprintf(h, sizeof h, "If-None-Match: \"other\", %s\r\n", etag);
    get(k, "HEAD", "/data.txt", h, &r);
    assert_int_equal(r.status, 304);
    get(k, "GET", "/data.txt", "If-None-Match: \"other\"\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_body(&r, DATA, 16);
    get(k, "GET", "/data.txt", "If-None-Match: *\r\n", &r);
    assert_int_equal(r.status, 304);

    snprintf(h, sizeof h, "If-Modified-Since: %s\r\n", lastmod);
    get(k, "GET", "/data.txt", h, &r);
    assert_int_equal(r.status, 304);
    get(k, "GET", "/data.txt", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n", &r);
    assert_int_equal(r.status, 200);

    get(k, "GET", "/data.txt", "If-Match: \"other\"\r\n", &r);
    assert_int_equal(r.status, 412);
    snprintf(h, sizeof h, "If-Match: %s\r\n", etag);
    get(k, "GET", "/data.txt", h, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

/* ---- ranges ---- */

static void test_ranges(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    resp_t r = {0};
    get(k, "GET", "/data.txt", "Range: bytes=2-5\r\n", &r);
    assert_int_equal(r.status, 206);
    assert_string_equal(hdr(&r, "Content-Range"), "bytes 2-5/16");
    assert_string_equal(hdr(&r, "Content-Type"), "text/plain; charset=utf-8");
    assert_body(&r, "2345", 4);
    get(k, "GET", "/data.txt", "Range: bytes=-3\r\n", &r);
    assert_string_equal(hdr(&r, "Content-Range"), "bytes 13-15/16");
    assert_body(&r, "def", 3);
    get(k, "GET", "/data.txt", "Range: bytes=10-\r\n", &r);
    assert_body(&r, "abcdef", 6);

    get(k, "GET", "/data.txt", "Range: bytes=100-200\r\n", &r);
    assert_int_equal(r.status, 416);
    assert_string_equal(hdr(&r, "Content-Range"), "bytes */16");

    /* Two ranges: multipart/byteranges, each part with its own range. */
    get(k, "GET", "/data.txt", "Range: bytes=0-1,14-15\r\n", &r);
    assert_int_equal(r.status, 206);
    const char *ct = hdr(&r, "Content-Type");
    assert_true(strncmp(ct, "multipart/byteranges; boundary=", 31) == 0);
    char boundary[96];
    snprintf(boundary, sizeof boundary, "--%s", ct + 31);
    char want[512];
    int n = snprintf(want, sizeof want,
                     "\r\n%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Range: bytes 0-1/16\r\n\r\n01"
                     "\r\n%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Range: bytes 14-15/16\r\n\r\nef"
                     "\r\n%s--\r\n",
                     boundary, boundary, boundary);
    assert_body(&r, want, (size_t)n);

    /* If-Range with a validator that no longer holds: the whole file. */
    get(k, "GET", "/data.txt", "Range: bytes=2-5\r\nIf-Range: \"stale\"\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_body(&r, DATA, 16);
    /* A Range that does not parse is ignored. */
    get(k, "GET", "/data.txt", "Range: lines=1-2\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

/* ---- the open-file cache ---- */

/* The second request is a hit on the open descriptor; once warm, serving
 * files allocates nothing. */
static void test_cached_no_allocation(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    resp_t r = {0};
    hp_http_worker_t *hw = hh_worker();
    get(k, "GET", "/data.txt", NULL, &r);
    uint64_t hits = hw->stats.file_hits, misses = hw->stats.file_misses;
    get(k, "GET", "/data.txt", NULL, &r);
    assert_int_equal(hw->stats.file_hits, hits + 1);
    assert_int_equal(hw->stats.file_misses, misses);
    assert_int_equal(hw->stats.file_entries, 1);

    static const char *const targets[] = {"/data.txt", "/big.bin", "/", "/style.css"};
    for (int round = 0; round < 2; round++) {
        uint64_t a0 = hp_alloc_count();
        for (int i = 0; i < 20; i++) {
            get(k, "GET", targets[i % 4], NULL, &r);
            assert_int_equal(r.status, 200);
            get(k, "GET", "/data.txt", "Range: bytes=1-2\r\n", &r);
            get(k, "HEAD", "/big.bin", NULL, &r);
        }
        if (round == 1) /* the first round filled the cache */
            assert_int_equal(hp_alloc_count(), a0);
    }
    /* Every descriptor the cache holds is a file beneath the root, and
     * each response handed its reference back. */
    assert_int_equal(hw->stats.file_entries, 4);
    PUMP_UNTIL(hp_pool_in_use(&H.w.wpool) == 0, 1000);
    assert_int_equal(hp_pool_in_use(&H.w.wpool), 0);
    resp_free(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
    hp_http_parser_init();
    ops = hp_sys_real;
    ops.sendfile = counting_sendfile;
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_serves_file),
        T_(test_serves_big_file),
        T_(test_head),
        T_(test_directories),
        T_(test_not_found_and_method),
        T_(test_escapes_refused),
        T_(test_conditional),
        T_(test_ranges),
        T_(test_cached_no_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
