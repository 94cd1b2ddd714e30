/*
 * test_fcache.c - unit tests for the per-worker open-file cache
 * (src/http/fcache.c), on real files in a mkdtemp directory.
 *
 * Covered: a second get is a hit that makes no syscall (shown by renaming,
 * deleting and rewriting the file behind the cache: within revalidate_ms
 * the old entry is still served, after it the change shows); the query is
 * not part of the key; modified files are picked up on revalidation while
 * a held entry keeps its old descriptor; failures (-301, -404, -400) are
 * not cached; .gz/.br siblings found, stale ones ignored, new ones noticed,
 * names with '%', '?', '#' handled; LRU order and the entry bound;
 * referenced entries survive eviction, clear and free until released;
 * hp_fcache_select; gzip and brotli bodies that decompress to the file,
 * refused for random data, non-text types and small files, remembered,
 * and bounded by max_bytes; out-of-memory sweeps of new, get and
 * compressed. Every test checks hp_fcache_validate after each mutation,
 * and at the end that the heap and the descriptor table are as they were.
 */
#include "hotpath/alloc.h"
#include "http/encoding_int.h"
#include "http/accept_int.h"
#include "hotpath/http_cond.h"
#include "http/fcache_int.h"
#include "http/static_int.h"

#include <brotli/decode.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

/* ---- fixture ---- */

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FC_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FC_ASAN 1
#endif

#ifdef FC_ASAN
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/* Bytes of heap in use now, to prove a test gave back all it took. Only
 * the sanitizer's count is exact: glibc's mallinfo2 counts chunks parked
 * in its per-thread cache as in use. Without ASan the check is skipped
 * (run under valgrind for the same proof). */
static size_t heap_in_use(void)
{
#ifdef FC_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    return 0;
#endif
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static struct {
    char dir[64];
    int root;
    int fds;
    size_t heap;
    hp_fcache_t *fc;
    char scratch[PATH_MAX];
} fx;

static void put(const char *rel, const void *data, size_t len)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", fx.dir, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void puts_(const char *rel, const char *s)
{
    put(rel, s, strlen(s));
}

/* Sets a file's mtime to sec (nanoseconds 0). */
static void set_mtime(const char *rel, time_t sec)
{
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};
    assert_int_equal(utimensat(fx.root, rel, ts, 0), 0);
}

static void mkdir_(const char *rel)
{
    assert_int_equal(mkdirat(fx.root, rel, 0755), 0);
}

static int rm_cb(const char *p, const struct stat *sb, int type, struct FTW *f)
{
    (void)sb, (void)type, (void)f;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof fx);
    fx.fds = count_fds();
    fx.heap = heap_in_use();
    strcpy(fx.dir, "/tmp/hp_test_fcache_XXXXXX");
    assert_non_null(mkdtemp(fx.dir));
    fx.root = hp_static_open_root(fx.dir);
    assert_true(fx.root >= 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hp_alloc_fail_after(0, 0);
    if (fx.fc) {
        assert_int_equal(hp_fcache_validate(fx.fc), 0);
        hp_fcache_free(fx.fc);
    }
    close(fx.root);
    nftw(fx.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    assert_int_equal(count_fds(), fx.fds);
    assert_int_equal(heap_in_use(), fx.heap);
    return 0;
}

static void new_cache(uint32_t max_entries, uint64_t max_bytes, uint64_t reval_ms)
{
    assert_int_equal(hp_fcache_new(&fx.fc, max_entries, max_bytes, reval_ms), 0);
    assert_int_equal(hp_fcache_validate(fx.fc), 0);
}

/* hp_fcache_get of a NUL-terminated target at time now. */
static int get(const char *target, uint64_t now, hp_fcache_entry_t **e)
{
    int rc = hp_fcache_get(fx.fc, fx.root, NULL, target, strlen(target), now, fx.scratch,
                           sizeof fx.scratch, e);
    assert_int_equal(hp_fcache_validate(fx.fc), 0);
    return rc;
}

static void release(hp_fcache_entry_t *e)
{
    hp_fcache_release(e);
    if (fx.fc)
        assert_int_equal(hp_fcache_validate(fx.fc), 0);
}

static hp_fcache_stats_t stats(void)
{
    hp_fcache_stats_t s;
    hp_fcache_stats(fx.fc, &s);
    return s;
}

/* The whole content behind a variant's descriptor, checked against s. */
static void assert_content(const hp_fcache_variant_t *v, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(v->size, n);
    char buf[4096];
    assert_true(n < sizeof buf);
    assert_int_equal(pread(v->fd, buf, sizeof buf, 0), (ssize_t)n);
    assert_memory_equal(buf, s, n);
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* ---- construction ---- */

static void test_new_args_and_oom(void **state)
{
    (void)state;
    hp_fcache_t *fc = (hp_fcache_t *)&fx;
    assert_int_equal(hp_fcache_new(&fc, 0, 0, 0), -EINVAL);
    assert_ptr_equal(fc, (hp_fcache_t *)&fx);
    for (uint64_t n = 1;; n++) {
        hp_alloc_fail_after(n, 0);
        int rc = hp_fcache_new(&fc, 100, 1 << 20, 1000);
        hp_alloc_fail_after(0, 0);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
        assert_true(n < 10);
    }
    assert_int_equal(hp_fcache_validate(fc), 0);
    hp_fcache_free(fc);
    hp_fcache_free(NULL);
}

/* ---- hits, misses, revalidation ---- */

static void test_hit_makes_no_syscall(void **state)
{
    (void)state;
    puts_("a.txt", "hello");
    new_cache(16, 0, 1000);
    hp_fcache_entry_t *e, *e2;
    assert_int_equal(get("/a.txt", 5000, &e), 0);
    assert_content(&e->v[0], "hello");
    assert_string_equal(e->mime, "text/plain; charset=utf-8");
    assert_int_equal(e->v[1].fd, -1);
    assert_int_equal(e->v[2].fd, -1);
    char tag[HP_ETAG_MAX];
    hp_cond_etag_make(tag, sizeof tag, 5, e->v[0].mtime_sec, e->v[0].mtime_nsec);
    assert_string_equal(e->v[0].etag, tag);
    char lm[HP_CLOCK_DATE_LEN + 1];
    hp_clock_date_format(e->v[0].mtime_sec, lm);
    assert_string_equal(e->last_modified, lm);
    int fd = e->v[0].fd;
    release(e);
    assert_int_equal(stats().misses, 1);
    assert_int_equal(stats().entries, 1);
    assert_true(fd_open(fd)); /* the cache keeps it */

    /* Gone from the disk, yet served: the hit looked at nothing but the
     * table. */
    assert_int_equal(renameat(fx.root, "a.txt", fx.root, "b.txt"), 0);
    assert_int_equal(get("/a.txt?x=1", 5999, &e2), 0); /* the query is no key */
    assert_ptr_equal(e2, e);
    assert_int_equal(e2->v[0].fd, fd);
    assert_content(&e2->v[0], "hello");
    release(e2);
    hp_fcache_stats_t s = stats();
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.revalidations, 0);

    /* revalidate_ms later the file system is asked: gone, so -404, and
     * the entry (with its descriptor) is dropped. */
    assert_int_equal(get("/a.txt", 6000, &e2), -404);
    s = stats();
    assert_int_equal(s.revalidations, 1);
    assert_int_equal(s.replaced, 1);
    assert_int_equal(s.entries, 0);
    assert_false(fd_open(fd));
    /* Failures are not cached: the next get resolves again. */
    assert_int_equal(get("/a.txt", 6001, &e2), -404);
    assert_int_equal(stats().misses, 2);
    assert_int_equal(stats().entries, 0);
}

static void test_modified_file_picked_up(void **state)
{
    (void)state;
    puts_("f.html", "version one");
    set_mtime("f.html", 1000000);
    new_cache(16, 0, 1000);
    hp_fcache_entry_t *old, *e;
    assert_int_equal(get("/f.html", 0, &old), 0); /* held, as if being sent */
    assert_string_equal(old->mime, "text/html; charset=utf-8");
    char old_tag[HP_ETAG_MAX];
    strcpy(old_tag, old->v[0].etag);

    /* Rewritten in place, same mtime restored (cp -p): size and ctime
     * differ. Within the window the old entry still answers. */
    puts_("f.html", "version two, longer");
    set_mtime("f.html", 1000000);
    assert_int_equal(get("/f.html", 999, &e), 0);
    assert_ptr_equal(e, old);
    release(e);
    assert_int_equal(get("/f.html", 1000, &e), 0);
    assert_ptr_not_equal(e, old);
    assert_content(&e->v[0], "version two, longer");
    assert_string_not_equal(e->v[0].etag, old_tag);
    assert_int_equal(stats().replaced, 1);
    assert_int_equal(stats().entries, 1);
    /* The held entry lives on, detached, with its descriptor. */
    assert_true(fd_open(old->v[0].fd));
    int ofd = old->v[0].fd;
    release(old);
    assert_false(fd_open(ofd));
    release(e);

    /* Replaced by rename (new inode), same size and mtime: still seen. */
    puts_("g.html", "version two, LONGER");
    set_mtime("g.html", 1000000);
    assert_int_equal(renameat(fx.root, "g.html", fx.root, "f.html"), 0);
    assert_int_equal(get("/f.html", 1500, &e), 0); /* not yet */
    assert_content(&e->v[0], "version two, longer");
    release(e);
    assert_int_equal(get("/f.html", 2000, &e), 0);
    assert_content(&e->v[0], "version two, LONGER");
    release(e);
    /* Unchanged: revalidated, kept, and the clock restarts. */
    assert_int_equal(get("/f.html", 3000, &e), 0);
    release(e);
    hp_fcache_stats_t s = stats();
    assert_int_equal(s.replaced, 2);
    assert_int_equal(s.revalidations, 3);
    assert_int_equal(s.misses, 1);
}

static void test_zero_revalidate_checks_every_hit(void **state)
{
    (void)state;
    puts_("a.css", "body{}");
    new_cache(4, 0, 0);
    hp_fcache_entry_t *e;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(get("/a.css", 7, &e), 0);
        release(e);
    }
    assert_int_equal(stats().revalidations, 2);
    assert_int_equal(stats().hits, 2);
    unlinkat(fx.root, "a.css", 0);
    assert_int_equal(get("/a.css", 7, &e), -404);
}

static void test_failures_not_cached(void **state)
{
    (void)state;
    mkdir_("d");
    puts_("d/index.html", "<p>index</p>");
    new_cache(8, 0, 1000);
    hp_fcache_entry_t *e;
    assert_int_equal(get("/d", 0, &e), -301);
    assert_int_equal(get("/d/", 0, &e), 0);
    assert_content(&e->v[0], "<p>index</p>");
    assert_string_equal(e->mime, "text/html; charset=utf-8");
    release(e);
    assert_int_equal(get("/d/?q", 1, &e), 0);
    release(e);
    assert_int_equal(get("/../etc/passwd", 0, &e), -404);
    assert_int_equal(get("/%2e%2e/x", 0, &e), -404);
    assert_int_equal(get("/a%2Fb", 0, &e), -400);
    assert_int_equal(get("nope", 0, &e), -400);
    assert_int_equal(get("/missing", 0, &e), -404);
    hp_fcache_stats_t s = stats();
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 7);
}

/* ---- siblings ---- */

static void test_siblings(void **state)
{
    (void)state;
    puts_("app.js", "console.log(1)");
    puts_("app.js.gz", "GZ");
    puts_("app.js.br", "BR-stale");
    set_mtime("app.js", 2000000);
    set_mtime("app.js.gz", 2000000); /* same time: fine */
    set_mtime("app.js.br", 1999999); /* older than the file: stale */
    puts_("x.txt", "x");
    mkdir_("x.txt.gz"); /* a directory named like a sibling */
    puts_("x.txt.br", "xbr");
    new_cache(8, 0, 1000);

    hp_fcache_entry_t *e;
    assert_int_equal(get("/app.js", 0, &e), 0);
    assert_string_equal(e->mime, "text/javascript; charset=utf-8");
    assert_content(&e->v[HP_FCACHE_V_IDENTITY], "console.log(1)");
    assert_content(&e->v[HP_FCACHE_V_GZIP], "GZ");
    assert_int_equal(e->v[HP_FCACHE_V_BR].fd, -1);
    assert_string_equal(e->v[HP_FCACHE_V_BR].etag, "");
    /* each variant its own ETag */
    assert_string_not_equal(e->v[0].etag, e->v[1].etag);
    unsigned enc;
    assert_int_equal(hp_fcache_select(e, HP_ENC_BR | HP_ENC_GZIP, &enc), HP_FCACHE_V_GZIP);
    assert_int_equal(enc, HP_ENC_GZIP);
    assert_int_equal(hp_fcache_select(e, HP_ENC_BR | HP_ENC_IDENTITY, &enc),
                     HP_FCACHE_V_IDENTITY);
    assert_int_equal(enc, HP_ENC_IDENTITY);
    release(e);

    /* The .br is refreshed: noticed on revalidation, with both kept. */
    puts_("app.js.br", "BR");
    set_mtime("app.js.br", 2000001);
    assert_int_equal(get("/app.js", 500, &e), 0);
    assert_int_equal(e->v[HP_FCACHE_V_BR].fd, -1);
    release(e);
    assert_int_equal(get("/app.js", 1000, &e), 0);
    assert_content(&e->v[HP_FCACHE_V_BR], "BR");
    assert_content(&e->v[HP_FCACHE_V_GZIP], "GZ");
    assert_int_equal(hp_fcache_select(e, HP_ENC_BR | HP_ENC_GZIP, &enc), HP_FCACHE_V_BR);
    assert_int_equal(enc, HP_ENC_BR);
    assert_int_equal(hp_fcache_select(e, HP_ENC_BR | HP_ENC_GZIP | HP_STATIC_GZIP_FIRST, &enc),
                     HP_FCACHE_V_GZIP);
    release(e);
    assert_int_equal(stats().replaced, 1);

    /* A sibling removed: noticed too. */
    unlinkat(fx.root, "app.js.gz", 0);
    assert_int_equal(get("/app.js", 2000, &e), 0);
    assert_int_equal(e->v[HP_FCACHE_V_GZIP].fd, -1);
    assert_content(&e->v[HP_FCACHE_V_BR], "BR");
    release(e);

    /* A directory is no sibling; the .br next to it is. Unchanged on
     * revalidation, the entry is kept. */
    assert_int_equal(get("/x.txt", 0, &e), 0);
    assert_int_equal(e->v[HP_FCACHE_V_GZIP].fd, -1);
    assert_content(&e->v[HP_FCACHE_V_BR], "xbr");
    release(e);
    hp_fcache_entry_t *e2;
    assert_int_equal(get("/x.txt", 5000, &e2), 0);
    assert_ptr_equal(e2, e);
    release(e2);
    assert_int_equal(stats().replaced, 2);
}

/* Names with the bytes the target decoder treats specially: the sibling
 * is still found (its target is re-encoded) and it is the right file. */
static void test_sibling_of_odd_name(void **state)
{
    (void)state;
    puts_("a%b?c#d.txt", "odd");
    puts_("a%b?c#d.txt.gz", "odd-gz");
    puts_("a%b?c#d.txt.gz.gz", "wrong");
    new_cache(8, 0, 1000);
    hp_fcache_entry_t *e;
    assert_int_equal(get("/a%25b%3Fc%23d.txt", 0, &e), 0);
    assert_content(&e->v[0], "odd");
    assert_content(&e->v[HP_FCACHE_V_GZIP], "odd-gz");
    release(e);
    /* The directory index has siblings too. */
    mkdir_("s");
    puts_("s/index.html", "idx");
    puts_("s/index.html.br", "idx-br");
    assert_int_equal(get("/s/", 0, &e), 0);
    assert_content(&e->v[HP_FCACHE_V_BR], "idx-br");
    release(e);
}

/* ---- bounds ---- */

static void test_lru_eviction_order(void **state)
{
    (void)state;
    const char *names[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++)
        puts_(names[i], names[i]);
    new_cache(3, 0, 1000000);
    hp_fcache_entry_t *e;
    assert_int_equal(get("/a", 0, &e), 0), release(e);
    assert_int_equal(get("/b", 0, &e), 0), release(e);
    assert_int_equal(get("/c", 0, &e), 0), release(e);
    assert_int_equal(get("/a", 0, &e), 0), release(e); /* a is now the most recent */
    assert_int_equal(stats().hits, 1);
    assert_int_equal(get("/d", 0, &e), 0), release(e); /* evicts b */
    assert_int_equal(stats().evictions, 1);
    assert_int_equal(stats().entries, 3);
    /* a, c and d are hits; b is not */
    uint64_t hits = stats().hits;
    assert_int_equal(get("/a", 0, &e), 0), release(e);
    assert_int_equal(get("/c", 0, &e), 0), release(e);
    assert_int_equal(get("/d", 0, &e), 0), release(e);
    assert_int_equal(stats().hits, hits + 3);
    assert_int_equal(get("/b", 0, &e), 0), release(e); /* evicts a, the LRU now */
    assert_int_equal(stats().hits, hits + 3);
    assert_int_equal(stats().evictions, 2);
    assert_int_equal(get("/c", 0, &e), 0), release(e);
    assert_int_equal(stats().hits, hits + 4);
    assert_int_equal(get("/a", 0, &e), 0), release(e); /* a miss again: evicts d */
    assert_int_equal(stats().hits, hits + 4);
    assert_int_equal(stats().entries, 3);
    /* Descriptors: 3 entries, no siblings -> exactly 3 more than at start
     * (the root is open in both counts). */
    assert_int_equal(count_fds(), fx.fds + 1 + 3);
}

static void test_referenced_entries_survive(void **state)
{
    (void)state;
    puts_("a", "A");
    puts_("b", "B");
    puts_("c", "C");
    new_cache(2, 0, 1000000);
    hp_fcache_entry_t *a, *b, *c, *x;
    assert_int_equal(get("/a", 0, &a), 0); /* held */
    assert_int_equal(get("/b", 0, &b), 0), release(b);
    assert_int_equal(get("/c", 0, &c), 0); /* evicts b, not the held a */
    assert_int_equal(stats().evictions, 1);
    assert_int_equal(get("/a", 0, &x), 0);
    assert_ptr_equal(x, a);
    release(x);
    /* Both held: b cannot go in the table, so it is a one-off. */
    assert_int_equal(get("/b", 0, &b), 0);
    assert_content(&b->v[0], "B");
    assert_int_equal(stats().uncached, 1);
    assert_int_equal(stats().entries, 2);
    int bfd = b->v[0].fd;
    hp_fcache_ref(b); /* two queued segments */
    release(b);
    assert_true(fd_open(bfd));
    release(b);
    assert_false(fd_open(bfd));

    /* Clear with a held: c goes at once, a when released. */
    int afd = a->v[0].fd, cfd = c->v[0].fd;
    release(c);
    hp_fcache_clear(fx.fc);
    assert_int_equal(hp_fcache_validate(fx.fc), 0);
    assert_int_equal(stats().entries, 0);
    assert_false(fd_open(cfd));
    assert_true(fd_open(afd));
    assert_content(&a->v[0], "A");
    /* A new get makes a new entry; the held one stays apart. */
    assert_int_equal(get("/a", 0, &x), 0);
    assert_ptr_not_equal(x, a);
    release(x);
    hp_fcache_release_cb(a);
    assert_int_equal(hp_fcache_validate(fx.fc), 0);
    assert_false(fd_open(afd));

    /* Freeing the cache under a held entry: the entry outlives it. */
    assert_int_equal(get("/a", 0, &a), 0);
    afd = a->v[0].fd;
    hp_fcache_free(fx.fc);
    fx.fc = NULL;
    assert_true(fd_open(afd));
    release(a);
    assert_false(fd_open(afd));
}

/* ---- on-the-fly compression ---- */

static char *text_body(size_t n)
{
    char *p = malloc(n + 1);
    assert_non_null(p);
    static const char *const w[] = {"static ", "file ", "cache ", "hotpath ", "<div>", "</div>\n",
                                    "lorem ", "ipsum "};
    size_t o = 0;
    unsigned x = 7;
    while (o < n) {
        x = x * 1103515245u + 12345u;
        const char *s = w[(x >> 16) % 8];
        size_t l = strlen(s);
        if (l > n - o)
            l = n - o;
        memcpy(p + o, s, l);
        o += l;
    }
    p[n] = '\0';
    return p;
}

static void check_gunzip(const void *z, uint64_t zn, const char *want, size_t wn)
{
    char *back = malloc(wn + 1);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(inflateInit2(&zs, 16 + 15), Z_OK);
    zs.next_in = (Bytef *)z;
    zs.avail_in = (uInt)zn;
    zs.next_out = (Bytef *)back;
    zs.avail_out = (uInt)(wn + 1);
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.total_out, wn);
    inflateEnd(&zs);
    assert_memory_equal(back, want, wn);
    free(back);
}

static void check_unbrotli(const void *z, uint64_t zn, const char *want, size_t wn)
{
    char *back = malloc(wn + 1);
    size_t bn = wn + 1;
    assert_int_equal(BrotliDecoderDecompress(zn, z, &bn, (uint8_t *)back),
                     BROTLI_DECODER_RESULT_SUCCESS);
    assert_int_equal(bn, wn);
    assert_memory_equal(back, want, wn);
    free(back);
}

static void test_compressed_bodies(void **state)
{
    (void)state;
    enum { N = 50000 };
    char *body = text_body(N);
    put("page.html", body, N);
    new_cache(8, 1 << 20, 1000);
    hp_fcache_entry_t *e;
    assert_int_equal(get("/page.html", 0, &e), 0);
    const void *gz, *br, *again;
    uint64_t gzn, brn, n;
    char tag[HP_ETAG_MAX], tag2[HP_ETAG_MAX];
    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_GZIP, 6, 1024, &gz, &gzn, tag), 0);
    assert_int_equal(hp_fcache_validate(fx.fc), 0);
    assert_true(gzn < N * 9 / 10);
    check_gunzip(gz, gzn, body, N);
    /* the identity tag with -gz inside the quotes */
    size_t il = strlen(e->v[0].etag);
    assert_int_equal(strlen(tag), il + 3);
    assert_memory_equal(tag, e->v[0].etag, il - 1);
    assert_string_equal(tag + il - 1, "-gz\"");

    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_BR, 5, 1024, &br, &brn, tag2), 0);
    check_unbrotli(br, brn, body, N);
    assert_string_equal(tag2 + il - 1, "-br\"");
    hp_fcache_stats_t s = stats();
    assert_int_equal(s.bytes, gzn + brn);
    assert_int_equal(s.compressions, 2);

    /* Made once: the same buffer again, whatever the level, no work. */
    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_GZIP, 1, 1024, &again, &n, tag), 0);
    assert_ptr_equal(again, gz);
    assert_int_equal(n, gzn);
    assert_int_equal(stats().compressions, 2);
    /* A location with a larger minimum does not compress this file. */
    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_GZIP, 6, N + 1, &again, &n, tag),
                     -ENOENT);
    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_IDENTITY, 6, 0, &again, &n, tag),
                     -EINVAL);
    release(e);

    /* The file changes: a new entry, new bodies, the old bytes are gone. */
    char *body2 = text_body(N / 2);
    put("page.html", body2, N / 2);
    assert_int_equal(get("/page.html", 1000, &e), 0);
    assert_int_equal(stats().bytes, 0);
    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_GZIP, 6, 0, &gz, &gzn, tag), 0);
    check_gunzip(gz, gzn, body2, N / 2);
    assert_int_equal(stats().bytes, gzn);
    release(e);
    free(body);
    free(body2);
}

static void test_compression_refused(void **state)
{
    (void)state;
    enum { N = 20000 };
    uint8_t *rnd = malloc(N);
    unsigned x = 99;
    for (size_t i = 0; i < N; i++)
        rnd[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 23);
    put("noise.txt", rnd, N);
    char *body = text_body(N);
    put("pic.png", body, N);
    put("small.css", body, 400);
    new_cache(8, 1 << 20, 1000);
    const void *b;
    uint64_t n;
    char tag[HP_ETAG_MAX];
    hp_fcache_entry_t *e;

    /* Random bytes do not save 10 %: -ENOENT, and remembered. */
    assert_int_equal(get("/noise.txt", 0, &e), 0);
    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_GZIP, 6, 0, &b, &n, tag), -ENOENT);
    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_BR, 5, 0, &b, &n, tag), -ENOENT);
    assert_int_equal(stats().compressions, 2);
    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_GZIP, 6, 0, &b, &n, tag), -ENOENT);
    assert_int_equal(stats().compressions, 2);
    release(e);
    /* A type not worth compressing: never read. */
    assert_int_equal(get("/pic.png", 0, &e), 0);
    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_GZIP, 6, 0, &b, &n, tag), -ENOENT);
    release(e);
    /* Under the location's minimum: not even tried. */
    assert_int_equal(get("/small.css", 0, &e), 0);
    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_GZIP, 6, 1024, &b, &n, tag),
                     -ENOENT);
    assert_int_equal(stats().compressions, 2);
    assert_int_equal(hp_fcache_compressed(fx.fc, e, HP_ENC_GZIP, 6, 0, &b, &n, tag), 0);
    check_gunzip(b, n, body, 400);
    release(e);
    assert_int_equal(stats().bytes, n);
    free(rnd);
    free(body);
}

static void test_compressed_byte_bound(void **state)
{
    (void)state;
    enum { N = 40000 };
    char *body = text_body(N);
    put("a.txt", body, N);
    put("b.txt", body, N);
    put("c.txt", body, N);
    /* Learn how big one body is, then allow room for one and a half. */
    new_cache(8, 1 << 20, 1000);
    hp_fcache_entry_t *a, *b, *c;
    const void *p;
    uint64_t one, n;
    char tag[HP_ETAG_MAX];
    assert_int_equal(get("/a.txt", 0, &a), 0);
    assert_int_equal(hp_fcache_compressed(fx.fc, a, HP_ENC_GZIP, 6, 0, &p, &one, tag), 0);
    release(a);
    hp_fcache_free(fx.fc);
    new_cache(8, one + one / 2, 1000);

    assert_int_equal(get("/a.txt", 0, &a), 0);
    assert_int_equal(hp_fcache_compressed(fx.fc, a, HP_ENC_GZIP, 6, 0, &p, &n, tag), 0);
    release(a);
    /* b's body pushes out a's (a is unreferenced). */
    assert_int_equal(get("/b.txt", 0, &b), 0);
    assert_int_equal(hp_fcache_compressed(fx.fc, b, HP_ENC_GZIP, 6, 0, &p, &n, tag), 0);
    assert_int_equal(hp_fcache_validate(fx.fc), 0);
    assert_int_equal(stats().bytes, one);
    assert_int_equal(stats().body_drops, 1);
    /* b is held: c's body cannot be kept, -ENOENT, and nothing changes. */
    assert_int_equal(get("/c.txt", 0, &c), 0);
    assert_int_equal(hp_fcache_compressed(fx.fc, c, HP_ENC_GZIP, 6, 0, &p, &n, tag), -ENOENT);
    assert_int_equal(stats().bytes, one);
    release(b);
    /* Once b is released there is room: tried again, and kept. */
    assert_int_equal(hp_fcache_compressed(fx.fc, c, HP_ENC_GZIP, 6, 0, &p, &n, tag), 0);
    check_gunzip(p, n, body, N);
    assert_int_equal(stats().bytes, one);
    assert_int_equal(stats().body_drops, 2);
    release(c);
    /* a was dropped, not forgotten: it is made again on demand. */
    assert_int_equal(get("/a.txt", 0, &a), 0);
    assert_int_equal(hp_fcache_compressed(fx.fc, a, HP_ENC_GZIP, 6, 0, &p, &n, tag), 0);
    release(a);
    assert_true(stats().bytes <= one + one / 2);
    hp_fcache_free(fx.fc);

    /* A budget smaller than any body: never kept. */
    new_cache(8, one / 2, 1000);
    assert_int_equal(get("/a.txt", 0, &a), 0);
    assert_int_equal(hp_fcache_compressed(fx.fc, a, HP_ENC_GZIP, 6, 0, &p, &n, tag), -ENOENT);
    assert_int_equal(stats().bytes, 0);
    release(a);
    free(body);
}

/* ---- out of memory ---- */

static void test_get_and_compress_oom(void **state)
{
    (void)state;
    enum { N = 30000 };
    char *body = text_body(N);
    put("a.txt", body, N);
    put("a.txt.gz", "gz", 2); /* so the sibling path allocates too */
    new_cache(4, 1 << 20, 1000);
    int base = count_fds();
    hp_fcache_entry_t *e;
    for (uint64_t k = 1;; k++) {
        hp_alloc_fail_after(k, 0);
        int rc = get("/a.txt", 0, &e);
        hp_alloc_fail_after(0, 0);
        if (rc == 0 && e->v[HP_FCACHE_V_GZIP].fd >= 0)
            break;
        assert_true(k < 10);
        if (rc == 0) {
            /* the sibling was left out for want of memory; the entry is
             * rebuilt at the next revalidation */
            release(e);
            hp_fcache_clear(fx.fc);
            continue;
        }
        assert_int_equal(rc, -503);
        assert_int_equal(stats().entries, 0);
        assert_int_equal(count_fds(), base);
    }
    assert_int_equal(count_fds(), base + 2);
    const void *p;
    uint64_t n;
    char tag[HP_ETAG_MAX];
    for (uint64_t k = 1;; k++) {
        hp_alloc_fail_after(k, 1);
        int rc = hp_fcache_compressed(fx.fc, e, HP_ENC_BR, 5, 0, &p, &n, tag);
        hp_alloc_fail_after(0, 0);
        assert_int_equal(hp_fcache_validate(fx.fc), 0);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(stats().bytes, 0);
        assert_true(k < 1000);
    }
    check_unbrotli(p, n, body, N);
    release(e);
    /* A sibling missed for want of memory is picked up on revalidation. */
    hp_fcache_clear(fx.fc);
    for (uint64_t k = 1;; k++) {
        hp_alloc_fail_after(k, 0);
        int rc = get("/a.txt", 0, &e);
        hp_alloc_fail_after(0, 0);
        if (rc == 0 && e->v[HP_FCACHE_V_GZIP].fd < 0) {
            release(e);
            assert_int_equal(get("/a.txt", 1000, &e), 0);
            assert_content(&e->v[HP_FCACHE_V_GZIP], "gz");
            release(e);
            break;
        }
        if (rc == 0)
            release(e);
        hp_fcache_clear(fx.fc);
        assert_true(k < 10);
    }
    free(body);
}

/* Small files in memory: the bytes, the bound, a change seen through a
 * new entry, and memory given back with the entry. */
static void test_small_file_body(void **state)
{
    (void)state;
    puts_("s.txt", "small body");
    char *big = text_body(HP_FCACHE_MEM_MAX + 1);
    put("big.txt", big, HP_FCACHE_MEM_MAX + 1);
    free(big);
    put("empty.txt", "", 0);
    new_cache(16, 1024, 1000);
    hp_fcache_entry_t *e;
    const void *buf;
    assert_int_equal(get("/s.txt", 0, &e), 0);
    assert_int_equal(hp_fcache_body(fx.fc, e, &buf), 0);
    assert_memory_equal(buf, "small body", 10);
    const void *again;
    assert_int_equal(hp_fcache_body(fx.fc, e, &again), 0);
    assert_ptr_equal(again, buf); /* read once */
    assert_int_equal(stats().bytes, 10);
    assert_int_equal(hp_fcache_validate(fx.fc), 0);
    release(e);

    assert_int_equal(get("/big.txt", 0, &e), 0);
    assert_int_equal(hp_fcache_body(fx.fc, e, &buf), -ENOENT); /* too large */
    release(e);
    assert_int_equal(get("/empty.txt", 0, &e), 0);
    assert_int_equal(hp_fcache_body(fx.fc, e, &buf), -ENOENT);
    release(e);

    /* Replaced on disk: the next entry reads the new bytes. */
    puts_("s.tmp", "a new small body");
    assert_int_equal(renameat(fx.root, "s.tmp", fx.root, "s.txt"), 0);
    assert_int_equal(get("/s.txt", 1000, &e), 0);
    assert_int_equal(hp_fcache_body(fx.fc, e, &buf), 0);
    assert_memory_equal(buf, "a new small body", 16);
    assert_int_equal(stats().bytes, 16);
    release(e);

    /* No room under max_bytes: the file is sent from its descriptor. */
    hp_fcache_free(fx.fc);
    new_cache(16, 4, 1000);
    assert_int_equal(get("/s.txt", 0, &e), 0);
    assert_int_equal(hp_fcache_body(fx.fc, e, &buf), -ENOENT);
    release(e);
}

int main(void)
{
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_new_args_and_oom),
        T_(test_hit_makes_no_syscall),
        T_(test_modified_file_picked_up),
        T_(test_zero_revalidate_checks_every_hit),
        T_(test_failures_not_cached),
        T_(test_siblings),
        T_(test_sibling_of_odd_name),
        T_(test_lru_eviction_order),
        T_(test_referenced_entries_survive),
        T_(test_compressed_bodies),
        T_(test_compression_refused),
        T_(test_compressed_byte_bound),
        T_(test_get_and_compress_oom),
        T_(test_small_file_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
