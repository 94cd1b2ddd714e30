/*
 * test_static.c - unit tests for src/http/static.c: resolving request
 * targets against a real temporary tree that contains traps (symlinks out of the root, a
 * FIFO, a socket, an unreadable file, a file just outside the root).
 *
 * Every resolve runs twice where it matters: once through openat2 and once
 * through the O_NOFOLLOW fallback walk (HP_STATIC_NO_OPENAT2). The last test
 * checks that the process holds exactly the descriptors it held before the
 * suite started. The path helpers (decoding, dot segments, types) are
 * in test_static_path.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "hotpath/alloc.h"
#include "http/accept_int.h"
#include "http/static_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Both resolver paths; tests that must hold for either loop over these. */
static const unsigned modes[] = {0, HP_STATIC_NO_OPENAT2};

#define MAX_INODES 64

typedef struct fixture {
    char base[64];  /* mkdtemp directory; holds secret.txt and root/ */
    char root[96];  /* the document root */
    int root_fd;
    int fds_before; /* open descriptors once the fixture is built */
    size_t n_inodes;
    ino_t inodes[MAX_INODES]; /* every regular file beneath the root */
    dev_t dev;
    ino_t secret_ino;
} fixture_t;

/* ---- helpers -------------------------------------------------------------- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static void put_file(const char *dir, const char *name, const char *content, mode_t mode)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    size_t len = strlen(content);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    assert_int_equal(chmod(p, mode), 0);
}

static void put_dir(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    assert_int_equal(mkdir(p, 0755), 0);
}

static void put_link(const char *dir, const char *name, const char *to)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    assert_int_equal(symlink(to, p), 0);
}

/* Sets a file's mtime (atime too) to sec.nsec, without following a
 * symlink at the end. */
static void set_mtime(const char *dir, const char *name, time_t sec, long nsec)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct timespec ts[2] = {{.tv_sec = sec, .tv_nsec = nsec}, {.tv_sec = sec, .tv_nsec = nsec}};
    assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Originals under enc/ all have this mtime; siblings are FRESH, STALE or
 * exactly the same. */
#define T0 ((time_t)1000000000)
#define FRESH (T0 + 10)
#define STALE (T0 - 10)

/* root/enc/: originals with every kind of precompressed sibling. */
static int put_encoded_tree(const char *r)
{
    char e[160];
    snprintf(e, sizeof e, "%s/enc", r);
    put_dir(r, "enc");
    static const struct {
        const char *name, *body;
        time_t mtime;
    } files[] = {
        /* both siblings fresh */
        {"a.css", "body{}\n", T0},      {"a.css.br", "BR:a.css", FRESH},
        {"a.css.gz", "GZ:a.css!", FRESH},
        /* only gzip */
        {"b.js", "x=1;\n", T0},         {"b.js.gz", "GZ:b.js", FRESH},
        /* br stale, gzip fresh */
        {"c.txt", "c plain\n", T0},     {"c.txt.br", "BR:old", STALE},
        {"c.txt.gz", "GZ:c.txt", FRESH},
        /* gzip is a directory */
        {"d.html", "<p>d</p>\n", T0},
        /* br points outside the root, gzip is a symlink that stays inside */
        {"e.txt", "e plain\n", T0},     {"e_gz_target", "GZ:e.txt", FRESH},
        /* gzip is a FIFO */
        {"f.txt", "f plain\n", T0},
        /* no sibling at all */
        {"g.txt", "g plain\n", T0},
        /* same mtime to the nanosecond: not older, so used */
        {"h.svg", "<svg/>", T0},         {"h.svg.gz", "GZ:h.svg", T0},
        /* a sibling without its original */
        {"noorig.txt.gz", "GZ:noorig", FRESH},
        /* only br, and both stale */
        {"i.json", "{}", T0},            {"i.json.br", "BR:i.json", FRESH},
        {"j.txt", "j plain\n", T0},     {"j.txt.br", "BR:old", STALE},
        {"j.txt.gz", "GZ:old", STALE},
        /* one nanosecond older than the original: stale */
        {"k.txt", "k plain\n", T0},     {"k.txt.gz", "GZ:old", T0},
        /* a sibling for a directory index */
        {"sub/index.html", "<h1>enc sub</h1>\n", T0},
        {"sub/index.html.br", "BR:index", FRESH},
        {"sub/index.html.gz", "GZ:index", FRESH},
        /* a sibling the server may not read */
        {"m.txt", "m plain\n", T0},     {"m.txt.br", "BR:m.txt", FRESH},
    };
    put_dir(e, "sub");
    put_dir(e, "d.html.gz");
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        put_file(e, files[i].name, files[i].body, 0644);
        set_mtime(e, files[i].name, files[i].mtime, 5000);
    }
    set_mtime(e, "k.txt", T0, 5001);
    set_mtime(e, "d.html.gz", FRESH, 0);
    char p[256];
    snprintf(p, sizeof p, "%s/m.txt.br", e);
    assert_int_equal(chmod(p, 0), 0);
    put_link(e, "e.txt.br", "../../secret.txt");
    put_link(e, "e.txt.gz", "e_gz_target");
    snprintf(p, sizeof p, "%s/f.txt.gz", e);
    return mkfifo(p, 0644);
}

static int resolve_mode(fixture_t *fx, const char *target, unsigned mode, hp_static_file_t *out)
{
    char scratch[PATH_MAX];
    return hp_static_resolve_ex(fx->root_fd, target, strlen(target), scratch, sizeof scratch, out,
                                mode);
}

/* Reads the whole (small) file behind fd from offset 0. */
static void read_all(int fd, char *buf, size_t cap)
{
    ssize_t n = pread(fd, buf, cap - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
}

/* Resolves a target that must succeed, checks the descriptor and metadata,
 * compares the body with `want`, and closes the descriptor. */
static void expect_file(fixture_t *fx, const char *target, unsigned mode, const char *want,
                        const char *mime)
{
    hp_static_file_t f = {.fd = -7};
    int rc = resolve_mode(fx, target, mode, &f);
    if (rc != 0)
        fail_msg("%s (mode %u): got %d, want 0", target, mode, rc);
    assert_true(f.fd >= 0);

    struct stat st;
    assert_int_equal(fstat(f.fd, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(f.size, (uint64_t)st.st_size);
    assert_int_equal(f.mtime_sec, (int64_t)st.st_mtim.tv_sec);
    assert_int_equal(fcntl(f.fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    assert_true(fcntl(f.fd, F_GETFD) & FD_CLOEXEC);
    assert_string_equal(f.mime, mime);

    char buf[256];
    read_all(f.fd, buf, sizeof buf);
    assert_string_equal(buf, want);
    assert_int_equal(f.size, strlen(want));
    assert_int_equal(close(f.fd), 0);
}

/* Resolves a target that must fail with `want` and leave *out untouched. */
static void expect_status(fixture_t *fx, const char *target, size_t len, unsigned mode, int want)
{
    char scratch[PATH_MAX];
    hp_static_file_t f = {.fd = -7, .size = 77, .mtime_sec = 7, .mime = NULL};
    int rc = hp_static_resolve_ex(fx->root_fd, target, len, scratch, sizeof scratch, &f, mode);
    if (rc == 0)
        close(f.fd);
    if (rc != want)
        fail_msg("%.*s (mode %u): got %d, want %d", (int)(len > 80 ? 80 : len), target, mode, rc,
                 want);
    assert_int_equal(f.fd, -7);
    assert_int_equal(f.size, 77);
    assert_null(f.mime);
}

static void expect_status_all(fixture_t *fx, const char *target, int want)
{
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
        expect_status(fx, target, strlen(target), modes[m], want);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

static int note_inode(fixture_t *fx, const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    if (fx->n_inodes == MAX_INODES)
        return -1;
    fx->inodes[fx->n_inodes++] = st.st_ino;
    fx->dev = st.st_dev;
    return 0;
}

/* ---- fixture -------------------------------------------------------------- */

static int group_setup(void **state)
{
    static fixture_t fx;
    memset(&fx, 0, sizeof fx);
    strcpy(fx.base, "/tmp/hp_static_XXXXXX");
    if (!mkdtemp(fx.base))
        return -1;
    /* World-searchable so the unprivileged child in test_permission can
     * walk to the root; mkdtemp creates it 0700. */
    chmod(fx.base, 0755);
    snprintf(fx.root, sizeof fx.root, "%s/root", fx.base);
    char *r = fx.root;

    /* A file just outside the root: every traversal test aims at it. */
    put_file(fx.base, "secret.txt", "SECRET\n", 0644);
    put_dir(fx.base, "root");
    put_file(r, "index.html", "<h1>root</h1>\n", 0644);
    put_file(r, "hello.txt", "hello\n", 0644);
    put_file(r, "hello world.txt", "spaces\n", 0644);
    put_file(r, ".hidden", "hidden\n", 0644);
    put_file(r, "UPPER.HTML", "upper\n", 0644);
    put_file(r, "a+b.txt", "plus\n", 0644);
    put_file(r, "100%.txt", "percent\n", 0644);
    put_file(r, "noperm.txt", "nope\n", 0000);
    put_dir(r, "sub");
    put_file(r, "sub/index.html", "sub index\n", 0644);
    put_file(r, "sub/page.css", "body{}\n", 0644);
    put_dir(r, "sub/deeper");
    put_file(r, "sub/deeper/app.js", "x=1\n", 0644);
    put_dir(r, "empty");
    put_dir(r, "dirindex");
    put_dir(r, "dirindex/index.html");
    put_link(r, "link.txt", "hello.txt");
    put_link(r, "sublink", "sub");
    put_link(r, "sub/uplink.txt", "../hello.txt"); /* climbs, but stays inside */
    put_link(r, "escape", "../secret.txt");
    char abs[160];
    snprintf(abs, sizeof abs, "%s/secret.txt", fx.base);
    put_link(r, "abs_escape", abs);
    put_link(r, "passwd_link", "/etc/passwd");
    put_link(r, "etcdir", "/etc");
    put_link(r, "updir", "..");
    put_link(r, "selfloop", "selfloop");
    put_link(r, "proclink", "/proc/self/root/etc/passwd");
    put_link(r, "sub/deep_escape", "../../secret.txt");
    if (put_encoded_tree(r) != 0)
        return -1;

    char p[256];
    snprintf(p, sizeof p, "%s/fifo", r);
    if (mkfifo(p, 0644) != 0)
        return -1;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/sock", r);
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa) != 0)
        return -1;
    close(s);

    /* The inodes a successful resolve may ever return. */
    static const char *const files[] = {
        "index.html", "hello.txt", "hello world.txt", ".hidden", "UPPER.HTML", "a+b.txt",
        "100%.txt", "noperm.txt", "sub/index.html", "sub/page.css", "sub/deeper/app.js",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", r, files[i]);
        if (note_inode(&fx, p) != 0)
            return -1;
    }
    struct stat st;
    snprintf(p, sizeof p, "%s/secret.txt", fx.base);
    if (stat(p, &st) != 0)
        return -1;
    fx.secret_ino = st.st_ino;

    fx.root_fd = hp_static_open_root(fx.root);
    if (fx.root_fd < 0)
        return -1;
    fx.fds_before = count_fds();
    *state = &fx;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_t *fx = *state;
    close(fx->root_fd);
    return nftw(fx->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- hp_static_open_root -------------------------------------------------- */

static void test_open_root(void **state)
{
    fixture_t *fx = *state;
    int fd = hp_static_open_root(fx->root);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(fd, F_GETFL) & O_PATH);
    close(fd);

    char p[256];
    snprintf(p, sizeof p, "%s/missing", fx->root);
    assert_int_equal(hp_static_open_root(p), -ENOENT);
    snprintf(p, sizeof p, "%s/hello.txt", fx->root);
    assert_int_equal(hp_static_open_root(p), -ENOTDIR);
    /* A symlink to a directory is fine for the root itself. */
    snprintf(p, sizeof p, "%s/sublink", fx->root);
    fd = hp_static_open_root(p);
    assert_true(fd >= 0);
    close(fd);
}

/* ---- hp_static_resolve: files that must be served -------------------------- */

static void test_resolve_serves(void **state)
{
    fixture_t *fx = *state;
    const char *html = "text/html; charset=utf-8", *txt = "text/plain; charset=utf-8";
    const char *css = "text/css; charset=utf-8";
    const char *oct = "application/octet-stream";

    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        unsigned mode = modes[m];
        expect_file(fx, "/hello.txt", mode, "hello\n", txt);
        expect_file(fx, "/", mode, "<h1>root</h1>\n", html);
        expect_file(fx, "/index.html", mode, "<h1>root</h1>\n", html);
        expect_file(fx, "/sub/", mode, "sub index\n", html);
        expect_file(fx, "/sub/page.css", mode, "body{}\n", css);
        expect_file(fx, "/sub/deeper/app.js", mode, "x=1\n", "text/javascript; charset=utf-8");
        /* Query strings and fragments are ignored, even malformed ones. */
        expect_file(fx, "/hello.txt?x=1", mode, "hello\n", txt);
        expect_file(fx, "/hello.txt?%zz&a=/../", mode, "hello\n", txt);
        expect_file(fx, "/hello.txt#top", mode, "hello\n", txt);
        expect_file(fx, "/?x=1", mode, "<h1>root</h1>\n", html);
        expect_file(fx, "/sub/?q", mode, "sub index\n", html);
        /* Percent-decoded names. */
        expect_file(fx, "/hello%20world.txt", mode, "spaces\n", txt);
        expect_file(fx, "/%68%65llo.txt", mode, "hello\n", txt);
        expect_file(fx, "/100%25.txt", mode, "percent\n", txt);
        expect_file(fx, "/a+b.txt", mode, "plus\n", txt);
        expect_file(fx, "/a%2bb.txt", mode, "plus\n", txt);
        /* Dotfiles are allowed; only "." and ".." are special. */
        expect_file(fx, "/.hidden", mode, "hidden\n", oct);
        expect_file(fx, "/UPPER.HTML", mode, "upper\n", html);
        /* Dot-segments and empty segments inside the root normalise. */
        expect_file(fx, "/sub/../hello.txt", mode, "hello\n", txt);
        expect_file(fx, "/sub/%2e%2e/hello.txt", mode, "hello\n", txt);
        expect_file(fx, "/./sub/./deeper/../page.css", mode, "body{}\n", css);
        expect_file(fx, "//hello.txt", mode, "hello\n", txt);
        expect_file(fx, "/sub//deeper///app.js", mode, "x=1\n", "text/javascript; charset=utf-8");
        expect_file(fx, "/sub/.", mode, "sub index\n", html);
        expect_file(fx, "/sub/..", mode, "<h1>root</h1>\n", html);
        expect_file(fx, "/nope/../hello.txt", mode, "hello\n", txt); /* lexical, as in URLs */
    }
}

static void test_resolve_redirect(void **state)
{
    fixture_t *fx = *state;
    expect_status_all(fx, "/sub", -301);
    expect_status_all(fx, "/sub?x=1", -301);
    expect_status_all(fx, "/empty", -301);
    expect_status_all(fx, "/sub/deeper", -301);
    expect_status_all(fx, "/hello.txt/../sub", -301);
    expect_status_all(fx, "/dirindex", -301);
}

static void test_resolve_missing(void **state)
{
    fixture_t *fx = *state;
    /* A guard: if opening the FIFO ever blocked, the test dies instead of
     * hanging the suite. */
    alarm(10);
    expect_status_all(fx, "/nope", -404);
    expect_status_all(fx, "/nope/", -404);
    expect_status_all(fx, "/empty/", -404);          /* directory without index */
    expect_status_all(fx, "/dirindex/", -404);       /* index.html is a directory */
    expect_status_all(fx, "/hello.txt/", -404);      /* a file used as a directory */
    expect_status_all(fx, "/hello.txt/x", -404);
    expect_status_all(fx, "/fifo", -404);
    expect_status_all(fx, "/fifo/", -404);
    expect_status_all(fx, "/sock", -404);
    expect_status_all(fx, "/HELLO.TXT", -404);       /* names are case-sensitive */
    expect_status_all(fx, "/hello.txt%20", -404);
    expect_status_all(fx, "/hello.txt+", -404);
    alarm(0);
}

static void test_resolve_symlinks(void **state)
{
    fixture_t *fx = *state;
    const char *txt = "text/plain; charset=utf-8";
#if HP_HAVE_OPENAT2
    /* openat2 follows symlinks that stay beneath the root. */
    expect_file(fx, "/link.txt", 0, "hello\n", txt);
    expect_file(fx, "/sublink/page.css", 0, "body{}\n", "text/css; charset=utf-8");
    expect_file(fx, "/sublink/", 0, "sub index\n", "text/html; charset=utf-8");
    expect_file(fx, "/sub/uplink.txt", 0, "hello\n", txt);
    expect_status(fx, "/sublink", 8, 0, -301);
#else
    (void)txt;
#endif
    /* The fallback cannot check where a symlink leads, so it refuses all. */
    expect_status(fx, "/link.txt", 9, HP_STATIC_NO_OPENAT2, -404);
    expect_status(fx, "/sublink/page.css", 17, HP_STATIC_NO_OPENAT2, -404);
    expect_status(fx, "/sublink/", 9, HP_STATIC_NO_OPENAT2, -404);
    expect_status(fx, "/sub/uplink.txt", 15, HP_STATIC_NO_OPENAT2, -404);

    /* Symlinks that leave the root are refused either way. */
    expect_status_all(fx, "/escape", -404);
    expect_status_all(fx, "/abs_escape", -404);
    expect_status_all(fx, "/passwd_link", -404);
    expect_status_all(fx, "/etcdir/passwd", -404);
    expect_status_all(fx, "/etcdir/", -404);
    expect_status_all(fx, "/updir/secret.txt", -404);
    expect_status_all(fx, "/updir/root/hello.txt", -404); /* out and back in */
    expect_status_all(fx, "/selfloop", -404);
    expect_status_all(fx, "/proclink", -404);
    expect_status_all(fx, "/sub/deep_escape", -404);
    expect_status_all(fx, "/sublink/deep_escape", -404);
}

/* ---- traversal attempts --------------------------------------------------- */

static void test_traversal_table(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *target;
        int want;
    } cases[] = {
        {"/../etc/passwd", -404},
        {"/%2e%2e/etc/passwd", -404},
        {"/%2E%2E%2Fetc/passwd", -400},
        {"/..%2fetc/passwd", -400},
        {"/a/../../etc/passwd", -404},
        {"/./../etc/passwd", -404},
        {"//etc/passwd", -404},             /* <root>/etc/passwd: absent */
        {"/%00", -400},
        {"/index.html%00.txt", -400},
        {"/..\\..\\etc\\passwd", -404},     /* backslash is an ordinary byte */
        {"/%252e%252e/", -404},             /* a directory literally named %2e%2e */
        {"/%252e%252e/secret.txt", -404},
        {"/../secret.txt", -404},
        {"/..", -404},
        {"/../", -404},
        {"/%2e%2e", -404},
        {"/.%2e/secret.txt", -404},
        {"/%2e./secret.txt", -404},
        {"/sub/../../secret.txt", -404},
        {"/sub/%2e%2e/%2e%2e/secret.txt", -404},
        {"/sub/deeper/../../../secret.txt", -404},
        {"/sub/./../.././secret.txt", -404},
        {"/%2e%2e%2f%2e%2e%2fetc%2fpasswd", -400},
        {"/..%2F..%2Fsecret.txt", -400},
        {"/..%5c..%5csecret.txt", -404},
        {"/%2e%2e%5csecret.txt", -404},
        {"/..;/secret.txt", -404},
        {"/%c0%ae%c0%ae/secret.txt", -404}, /* overlong UTF-8 dots are just bytes */
        {"/%c0%af../secret.txt", -404},
        {"/.../secret.txt", -404},
        {"/sub/.../secret.txt", -404},
        {"/%", -400},
        {"/%2", -400},
        {"/%%32%65%%32%65/secret.txt", -400},
        {"/%u002e%u002e/secret.txt", -400},
        {"../secret.txt", -400},            /* not origin-form */
        {"secret.txt", -400},
        {"", -400},
        {"*", -400},
        {"http://localhost/secret.txt", -400},
        {"\\..\\secret.txt", -400},
        {"/etc/passwd", -404},
        {"/proc/self/root/etc/passwd", -404},
        {"/escape/", -404},
        {"/updir/", -404},
        {"/updir/../secret.txt", -404},     /* lexically "/secret.txt": absent */
    };
    size_t n = sizeof cases / sizeof cases[0];
    assert_true(n >= 25);
    for (size_t i = 0; i < n; i++) {
        assert_true(cases[i].want == -400 || cases[i].want == -404);
        expect_status_all(fx, cases[i].target, cases[i].want);
    }

    /* A raw NUL inside the target is malformed, whatever follows it. */
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        expect_status(fx, "/hello.txt\0", 11, modes[m], -400);
        expect_status(fx, "/hello.txt\0../x", 15, modes[m], -400);
        /* And bytes past target_len are never read. */
        expect_status(fx, "/hello.txt", 6, modes[m], -404); /* "/hello" */
    }
}

/* Random targets built from dangerous pieces: whatever comes back must be one
 * of the regular files beneath the root, never secret.txt or anything else. */
static void test_traversal_random(void **state)
{
    fixture_t *fx = *state;
    static const char *const pieces[] = {
        "/",         "/",       "..",       ".",          "%2e",        "%2E",     "%2f",
        "%00",       "sub",     "updir",    "escape",     "hello.txt",  "secret.txt", "root",
        "etcdir",    "passwd",  "index.html", "//",       "%",          "?",       "sublink",
        "link.txt",  "%252e",   "\\",       "deeper",     "uplink.txt", "#",       "abs_escape",
    };
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t served = 0;
    for (int iter = 0; iter < 20000; iter++) {
        char target[128] = "/";
        size_t len = 1;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int k = 1 + (int)(x % 8);
        for (int j = 0; j < k; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *p = pieces[x % (sizeof pieces / sizeof pieces[0])];
            size_t pl = strlen(p);
            memcpy(target + len, p, pl);
            len += pl;
        }
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
            char scratch[PATH_MAX];
            hp_static_file_t f = {.fd = -1};
            int rc = hp_static_resolve_ex(fx->root_fd, target, len, scratch, sizeof scratch, &f,
                                          modes[m]);
            if (rc != 0) {
                assert_true(rc == -400 || rc == -404 || rc == -301 || rc == -403);
                continue;
            }
            struct stat st;
            assert_int_equal(fstat(f.fd, &st), 0);
            close(f.fd);
            assert_true(S_ISREG(st.st_mode));
            assert_true(st.st_ino != fx->secret_ino);
            bool inside = false;
            for (size_t i = 0; i < fx->n_inodes; i++)
                inside |= st.st_dev == fx->dev && st.st_ino == fx->inodes[i];
            if (!inside)
                fail_msg("%.*s served a file outside the root", (int)len, target);
            served++;
        }
    }
    /* The generator does reach real files, so the check above is live. */
    assert_true(served > 100);
}

/* ---- permissions ---------------------------------------------------------- */

static void test_permission(void **state)
{
    fixture_t *fx = *state;
    if (geteuid() != 0) {
        expect_status_all(fx, "/noperm.txt", -403);
        return;
    }
    /* Root bypasses file modes, so the file opens... */
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
        expect_file(fx, "/noperm.txt", modes[m], "nope\n", "text/plain; charset=utf-8");

    /* ...and the -403 is checked in a child that drops to nobody. The child
     * reports through its exit status: 0 all good, otherwise the step that
     * failed. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
            _exit(1);
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
            char scratch[PATH_MAX];
            hp_static_file_t f;
            if (hp_static_resolve_ex(fx->root_fd, "/noperm.txt", 11, scratch, sizeof scratch, &f,
                                     modes[m]) != -403)
                _exit(2);
            /* Readable files still work for the unprivileged user. */
            if (hp_static_resolve_ex(fx->root_fd, "/hello.txt", 10, scratch, sizeof scratch, &f,
                                     modes[m]) != 0)
                _exit(3);
            close(f.fd);
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- lengths -------------------------------------------------------------- */

static void test_too_long(void **state)
{
    fixture_t *fx = *state;
    static char big[8192];
    hp_static_file_t f;
    char scratch[PATH_MAX];

    /* Longer than the scratch space once decoded. */
    big[0] = '/';
    memset(big + 1, 'a', sizeof big - 1);
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        expect_status(fx, big, sizeof big, modes[m], -414);
        expect_status(fx, big, PATH_MAX + 1, modes[m], -414);
        /* Fits in scratch, but one segment exceeds NAME_MAX. */
        expect_status(fx, big, NAME_MAX + 2, modes[m], -414);
        /* A long query does not count. */
        memcpy(big, "/hello.txt?", 11);
        assert_int_equal(hp_static_resolve_ex(fx->root_fd, big, sizeof big, scratch,
                                              sizeof scratch, &f, modes[m]),
                         0);
        close(f.fd);
        memset(big + 1, 'a', 10);
    }

    /* Tight scratch sizes: "/hello.txt" needs exactly 10 bytes (the dropped
     * '/' makes room for the terminator). */
    assert_int_equal(hp_static_resolve(fx->root_fd, "/hello.txt", 10, scratch, 10, &f), 0);
    close(f.fd);
    assert_int_equal(hp_static_resolve(fx->root_fd, "/hello.txt", 10, scratch, 9, &f), -414);
    /* "/" needs "index.html\0": 11 bytes. */
    assert_int_equal(hp_static_resolve(fx->root_fd, "/", 1, scratch, 11, &f), 0);
    close(f.fd);
    assert_int_equal(hp_static_resolve(fx->root_fd, "/", 1, scratch, 10, &f), -414);
    /* "/sub/" needs "sub/index.html\0": 15 bytes. */
    assert_int_equal(hp_static_resolve(fx->root_fd, "/sub/", 5, scratch, 15, &f), 0);
    close(f.fd);
    assert_int_equal(hp_static_resolve(fx->root_fd, "/sub/", 5, scratch, 14, &f), -414);
    assert_int_equal(hp_static_resolve(fx->root_fd, "/", 1, scratch, 0, &f), -414);
}

/* ---- precompressed siblings ----------------------------------------------- */

#define BR HP_ENC_BR
#define GZ HP_ENC_GZIP
#define ID HP_ENC_IDENTITY
#define GZ1 HP_STATIC_GZIP_FIRST

/* Resolves target with `accept` and checks the coding, body, type and the
 * metadata against the descriptor actually returned, then closes it. */
static void expect_enc(fixture_t *fx, const hp_mime_t *types, const char *target,
                       unsigned accept, unsigned mode, unsigned want_enc, const char *want_body,
                       const char *want_mime)
{
    char scratch[PATH_MAX];
    hp_static_file_t f = {.fd = -7};
    unsigned enc = 0xdead;
    int rc = hp_static_resolve_encoded_ex(fx->root_fd, types, target, strlen(target), accept,
                                          scratch, sizeof scratch, &f, &enc, mode);
    if (rc != 0)
        fail_msg("%s accept %#x (mode %u): got %d, want 0", target, accept, mode, rc);
    char body[256];
    read_all(f.fd, body, sizeof body);
    if (enc != want_enc || strcmp(body, want_body) != 0)
        fail_msg("%s accept %#x (mode %u): got enc %u \"%s\", want enc %u \"%s\"", target,
                 accept, mode, enc, body, want_enc, want_body);
    assert_string_equal(f.mime, want_mime);
    struct stat st;
    assert_int_equal(fstat(f.fd, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(f.size, (uint64_t)st.st_size);
    assert_int_equal(f.mtime_sec, (int64_t)st.st_mtim.tv_sec);
    assert_int_equal(f.mtime_nsec, st.st_mtim.tv_nsec);
    assert_true(fcntl(f.fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(fcntl(f.fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    /* scratch names the original, siblings' suffixes gone. */
    assert_null(strstr(scratch, ".br"));
    assert_int_equal(close(f.fd), 0);
}

static void test_encoded_siblings(void **state)
{
    fixture_t *fx = *state;
    const char *css = "text/css; charset=utf-8", *txt = "text/plain; charset=utf-8";
    const char *js = "text/javascript; charset=utf-8", *html = "text/html; charset=utf-8";
    int fds = count_fds();
    alarm(10); /* f.txt.gz is a FIFO: opening it must not block */
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        unsigned mode = modes[m];
        /* Both present: the mask and the order decide. */
        expect_enc(fx, NULL, "/enc/a.css", BR | GZ, mode, BR, "BR:a.css", css);
        expect_enc(fx, NULL, "/enc/a.css", BR | GZ | ID, mode, BR, "BR:a.css", css);
        expect_enc(fx, NULL, "/enc/a.css", BR | GZ | GZ1, mode, GZ, "GZ:a.css!", css);
        expect_enc(fx, NULL, "/enc/a.css", BR, mode, BR, "BR:a.css", css);
        expect_enc(fx, NULL, "/enc/a.css", BR | GZ1, mode, BR, "BR:a.css", css);
        expect_enc(fx, NULL, "/enc/a.css", GZ, mode, GZ, "GZ:a.css!", css);
        expect_enc(fx, NULL, "/enc/a.css", ID, mode, ID, "body{}\n", css);
        expect_enc(fx, NULL, "/enc/a.css", 0, mode, ID, "body{}\n", css);
        expect_enc(fx, NULL, "/enc/a.css", GZ1, mode, ID, "body{}\n", css);
        expect_enc(fx, NULL, "/enc/a.css?v=3", BR | GZ, mode, BR, "BR:a.css", css);
        expect_enc(fx, NULL, "/enc/../enc/./a.css", GZ, mode, GZ, "GZ:a.css!", css);
        /* Only gzip present: br is tried, then gzip. */
        expect_enc(fx, NULL, "/enc/b.js", BR | GZ, mode, GZ, "GZ:b.js", js);
        expect_enc(fx, NULL, "/enc/b.js", BR, mode, ID, "x=1;\n", js);
        /* Only br present. */
        expect_enc(fx, NULL, "/enc/i.json", BR | GZ | GZ1, mode, BR, "BR:i.json",
                   "application/json");
        expect_enc(fx, NULL, "/enc/i.json", GZ, mode, ID, "{}", "application/json");
        /* Stale br skipped, fresh gzip used; all stale: the original. */
        expect_enc(fx, NULL, "/enc/c.txt", BR | GZ, mode, GZ, "GZ:c.txt", txt);
        expect_enc(fx, NULL, "/enc/c.txt", BR, mode, ID, "c plain\n", txt);
        expect_enc(fx, NULL, "/enc/j.txt", BR | GZ, mode, ID, "j plain\n", txt);
        expect_enc(fx, NULL, "/enc/k.txt", BR | GZ, mode, ID, "k plain\n", txt);
        /* Same mtime is not older. */
        expect_enc(fx, NULL, "/enc/h.svg", BR | GZ, mode, GZ, "GZ:h.svg", "image/svg+xml");
        /* A directory or a FIFO named like a sibling is not one. */
        expect_enc(fx, NULL, "/enc/d.html", BR | GZ, mode, ID, "<p>d</p>\n", html);
        expect_enc(fx, NULL, "/enc/f.txt", BR | GZ, mode, ID, "f plain\n", txt);
        /* No siblings. */
        expect_enc(fx, NULL, "/enc/g.txt", BR | GZ, mode, ID, "g plain\n", txt);
        expect_enc(fx, NULL, "/enc/g.txt", BR | GZ | GZ1, mode, ID, "g plain\n", txt);
        /* Directory index siblings, typed as HTML. */
        expect_enc(fx, NULL, "/enc/sub/", BR | GZ, mode, BR, "BR:index", html);
        expect_enc(fx, NULL, "/enc/sub/", GZ, mode, GZ, "GZ:index", html);
        expect_enc(fx, NULL, "/enc/sub/index.html", BR | GZ | GZ1, mode, GZ, "GZ:index", html);
        expect_enc(fx, NULL, "/enc/sub/?x", 0, mode, ID, "<h1>enc sub</h1>\n", html);
        /* The sibling outside the root is never served; the one that stays
         * inside is served only where symlinks are followed. */
        expect_enc(fx, NULL, "/enc/e.txt", BR, mode, ID, "e plain\n", txt);
#if HP_HAVE_OPENAT2
        expect_enc(fx, NULL, "/enc/e.txt", BR | GZ, mode, mode ? ID : GZ,
                   mode ? "e plain\n" : "GZ:e.txt", txt);
#else
        expect_enc(fx, NULL, "/enc/e.txt", BR | GZ, mode, ID, "e plain\n", txt);
#endif
        /* A sibling we may not read is skipped (root reads it anyway). */
        if (geteuid() != 0)
            expect_enc(fx, NULL, "/enc/m.txt", BR | GZ, mode, ID, "m plain\n", txt);
        else
            expect_enc(fx, NULL, "/enc/m.txt", BR | GZ, mode, BR, "BR:m.txt", txt);
    }
    alarm(0);
    assert_int_equal(count_fds(), fds);
}

/* Failures are hp_static_resolve's, with *out and *encoding untouched. */
static void test_encoded_errors(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *target;
        int want;
    } cases[] = {
        {"/enc/noorig.txt", -404}, /* a sibling alone does not make a file */
        {"/enc/sub", -301},
        {"/enc/d.html.gz", -301},
        {"/enc/d.html.gz/", -404},
        {"/enc/nope.css", -404},
        {"/../secret.txt", -404},
        {"/enc/e.txt.br", -404},   /* the escaping symlink itself */
        {"/enc/%zz", -400},
        {"enc/a.css", -400},
    };
    int fds = count_fds();
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char scratch[PATH_MAX];
            hp_static_file_t f = {.fd = -7, .size = 77, .mime = NULL};
            unsigned enc = 0xdead;
            int rc = hp_static_resolve_encoded_ex(fx->root_fd, NULL, cases[i].target,
                                                  strlen(cases[i].target), BR | GZ, scratch,
                                                  sizeof scratch, &f, &enc, modes[m]);
            if (rc != cases[i].want)
                fail_msg("%s (mode %u): got %d, want %d", cases[i].target, modes[m], rc,
                         cases[i].want);
            assert_int_equal(f.fd, -7);
            assert_int_equal(f.size, 77);
            assert_null(f.mime);
            assert_int_equal(enc, 0xdead);
        }
    /* A sibling requested by name is just a file, served as-is. */
    expect_enc(fx, NULL, "/enc/a.css.gz", BR | GZ, 0, ID, "GZ:a.css!", "application/gzip");
    assert_int_equal(count_fds(), fds);
}

/* The mime table decides the type of the ORIGINAL, whatever is sent. */
static void test_encoded_mime_table(void **state)
{
    fixture_t *fx = *state;
    static const char text[] = "text/x-sheet css\napplication/x-brotli br\n"
                               "application/x-gz gz\n";
    hp_mime_t *t = NULL;
    assert_int_equal(hp_mime_parse(&t, text, sizeof text - 1), 0);
    expect_enc(fx, t, "/enc/a.css", BR | GZ, 0, BR, "BR:a.css", "text/x-sheet; charset=utf-8");
    expect_enc(fx, t, "/enc/a.css", GZ, 0, GZ, "GZ:a.css!", "text/x-sheet; charset=utf-8");
    expect_enc(fx, t, "/enc/a.css", 0, 0, ID, "body{}\n", "text/x-sheet; charset=utf-8");
    /* Extensions the table lacks fall back to the built-ins. */
    expect_enc(fx, t, "/enc/b.js", GZ, 0, GZ, "GZ:b.js", "text/javascript; charset=utf-8");
    expect_enc(fx, t, "/enc/a.css.gz", 0, 0, ID, "GZ:a.css!", "application/x-gz");
    hp_mime_free(t);
}

/* Scratch space: a suffix that does not fit serves the original. */
static void test_encoded_scratch(void **state)
{
    fixture_t *fx = *state;
    /* "enc/a.css" is 9 bytes: 10 with the NUL, 13 with ".br". */
    for (size_t cap = 10; cap <= 14; cap++) {
        char scratch[14];
        hp_static_file_t f;
        unsigned enc = 0;
        assert_int_equal(hp_static_resolve_encoded(fx->root_fd, NULL, "/enc/a.css", 10, BR | GZ,
                                                   scratch, cap, &f, &enc),
                         0);
        assert_int_equal(enc, cap >= 13 ? BR : ID);
        assert_string_equal(scratch, "enc/a.css");
        assert_string_equal(f.mime, "text/css; charset=utf-8");
        close(f.fd);
    }
    char scratch[16];
    hp_static_file_t f;
    unsigned enc = 0;
    assert_int_equal(hp_static_resolve_encoded(fx->root_fd, NULL, "/enc/a.css", 10, BR, scratch,
                                               9, &f, &enc),
                     -414);
}

static void test_static_accept(void **state)
{
    (void)state;
    static const struct {
        const char *v; /* NULL: no header */
        unsigned want;
    } cases[] = {
        {NULL, ID},
        {"", ID},
        {"gzip, deflate, br", BR | GZ | ID},
        {"gzip, deflate, br, zstd", BR | GZ | ID},
        {"gzip", GZ | ID},
        {"x-gzip", GZ | ID},
        {"br", BR | ID},
        {"br;q=0.5, gzip", GZ | BR | GZ1 | ID},
        {"gzip;q=0.9, br;q=0.9", BR | GZ | ID}, /* a tie goes to br */
        {"*", BR | GZ | ID},
        {"identity;q=0", 0},
        {"br, identity;q=0", BR},
        {"gzip;q=0.5, br;q=0.8, identity;q=0", BR | GZ},
        {"gzip;q=0.5, identity", ID},           /* the plain file is preferred */
        {"br;q=0.5, identity;q=0.7, gzip", GZ | ID},
        {"br;q=0", ID},
        {"gzip;q=0, br;q=0, *;q=0", 0},
        {"deflate", ID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *v = cases[i].v;
        unsigned got = hp_static_accept(v, v ? strlen(v) : 0);
        if (got != cases[i].want)
            fail_msg("accept(\"%s\") = %#x, want %#x", v ? v : "(none)", got, cases[i].want);
    }
}

/* ---- no allocation, no leaked descriptors ---------------------------------- */

static void test_no_alloc(void **state)
{
    fixture_t *fx = *state;
    static const char *const targets[] = {
        "/hello.txt", "/", "/sub/", "/sub", "/nope", "/../x", "/%zz", "/link.txt", "/escape",
        "/fifo",      "/hello%20world.txt?x=1",
    };
    uint64_t before = hp_alloc_count();
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
            for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
                hp_static_file_t f;
                if (resolve_mode(fx, targets[i], modes[m], &f) == 0)
                    close(f.fd);
            }
        }
        (void)hp_static_mime("/a.html", 7);
        static const char *const enc_targets[] = {"/enc/a.css", "/enc/c.txt", "/enc/g.txt",
                                                  "/enc/sub/", "/enc/e.txt", "/enc/nope"};
        for (size_t i = 0; i < sizeof enc_targets / sizeof enc_targets[0]; i++) {
            for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
                char scratch[PATH_MAX];
                hp_static_file_t f;
                unsigned enc;
                if (hp_static_resolve_encoded_ex(fx->root_fd, NULL, enc_targets[i],
                                                 strlen(enc_targets[i]), BR | GZ, scratch,
                                                 sizeof scratch, &f, &enc, modes[m]) == 0)
                    close(f.fd);
            }
        }
        (void)hp_static_accept("gzip, deflate, br", 17);
    }
    assert_int_equal(hp_alloc_count(), before);
}

static void test_zz_no_fd_leak(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(count_fds(), fx->fds_before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_root),
        cmocka_unit_test(test_resolve_serves),
        cmocka_unit_test(test_resolve_redirect),
        cmocka_unit_test(test_resolve_missing),
        cmocka_unit_test(test_resolve_symlinks),
        cmocka_unit_test(test_traversal_table),
        cmocka_unit_test(test_traversal_random),
        cmocka_unit_test(test_permission),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_encoded_siblings),
        cmocka_unit_test(test_encoded_errors),
        cmocka_unit_test(test_encoded_mime_table),
        cmocka_unit_test(test_encoded_scratch),
        cmocka_unit_test(test_static_accept),
        cmocka_unit_test(test_no_alloc),
        /* Must stay last: compares against the count taken in setup. */
        cmocka_unit_test(test_zz_no_fd_leak),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
