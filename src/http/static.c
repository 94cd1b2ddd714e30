/*
 * static.c - from a raw request target to an open file beneath the document
 * root, with no heap allocation.
 *
 * Central data: the caller's scratch buffer, which holds the path through
 * three stages, each written in place over the last: percent-decoded
 * ("/a/./b%20c" -> "/a/./b c"), normalised and made relative ("a/b c"), then
 * NUL-terminated, with "index.html" appended when a directory was asked for.
 * A fourth, transient stage appends ".br" or ".gz" to try a precompressed
 * sibling and puts the NUL back afterwards.
 *
 * Invariant: the string handed to the kernel is relative and has no empty,
 * "." or ".." segment and no NUL byte. A lexical ".." can therefore never
 * leave the root; the only remaining way out is a symlink, and the open
 * itself refuses those that leave (openat2 RESOLVE_BENEATH) or, without
 * openat2, refuses every symlink (O_NOFOLLOW at each step of the walk).
 */
#include "static_int.h"

#include "config.h"
#include "hotpath/common.h"
#include "accept_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if HP_HAVE_OPENAT2
#include <linux/openat2.h>
#include <sys/syscall.h>
#endif

/* ---- percent-decoding ---------------------------------------------------- */

/* What each raw target byte means to the decoder. Plain bytes are copied;
 * a raw NUL can never be passed to the kernel inside a path, so it is a
 * malformed request rather than a missing file. */
enum { DC_PLAIN = 0, DC_PCT, DC_END, DC_BAD };

static const uint8_t dec_class[256] = {
    [0] = DC_BAD, ['%'] = DC_PCT, ['?'] = DC_END, ['#'] = DC_END,
};

/* Hex digit value plus one; 0 marks "not a hex digit", so one table and one
 * test per nibble suffice. */
static const uint8_t hex1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
    ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
    ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12,
    ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

int hp_static_decode_path(const char *src, size_t len, char *dst, size_t dst_cap)
{
    const uint8_t *s = (const uint8_t *)src;
    size_t o = 0;

    /* The length is returned as an int; no real buffer comes near this. */
    if (dst_cap > INT_MAX)
        dst_cap = INT_MAX;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        uint8_t cls = dec_class[c];
        if (HP_UNLIKELY(cls != DC_PLAIN)) {
            if (cls == DC_END)
                break;
            if (cls == DC_BAD || len - i < 3)
                return -400;
            unsigned hi = hex1[s[i + 1]], lo = hex1[s[i + 2]];
            if (!hi || !lo)
                return -400;
            c = (uint8_t)(((hi - 1) << 4) | (lo - 1));
            /* %00 would truncate the path the kernel sees; %2F would let a
             * "..%2F" survive dot-segment removal as one segment and be
             * split by the kernel afterwards. Both are refused outright. */
            if (c == 0 || c == '/')
                return -400;
            i += 2;
        }
        if (HP_UNLIKELY(o == dst_cap))
            return -414;
        dst[o++] = (char)c;
    }
    return (int)o;
}

/* ---- dot-segment removal -------------------------------------------------- */

int hp_static_normalize(char *path, size_t len, bool *is_dir)
{
    /* Output is built at the front of the same buffer. It never overtakes
     * the input: before a segment starting at input offset i is copied, the
     * output holds at most i - 1 bytes, because the leading '/' is dropped
     * and each copied segment brings at most its own preceding '/'. */
    size_t w = 0;
    size_t i = 1;
    bool dir = true; /* "/" alone names the root directory */

    while (i < len) {
        char *seg = path + i;
        char *slash = memchr(seg, '/', len - i);
        size_t n = slash ? (size_t)(slash - seg) : len - i;

        /* Empty, "." and ".." segments all leave the path naming a
         * directory if they are last (RFC 3986 §5.2.4 keeps the '/'). */
        dir = true;
        if (n == 0 || (n == 1 && seg[0] == '.')) {
            /* "//" and "/./" contribute nothing. */
        } else if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            /* RFC 3986 clamps a ".." at the root; we refuse instead, since
             * a client asking for it is probing, not browsing. */
            if (w == 0)
                return -404;
            char *prev = memrchr(path, '/', w);
            w = prev ? (size_t)(prev - path) : 0;
        } else {
            if (w)
                path[w++] = '/';
            memmove(path + w, seg, n);
            w += n;
            dir = slash != NULL;
        }
        i += n + 1;
    }
    *is_dir = dir || w == 0;
    return (int)w;
}

/* ---- opening beneath the root -------------------------------------------- */

/* Flags for the final open. O_NONBLOCK makes opening a FIFO that somebody
 * planted in the root return at once instead of stalling the worker until a
 * writer appears; Linux ignores it for regular files, so sendfile on the
 * result behaves as usual. O_NOCTTY keeps a tty from becoming ours. */
#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)

static int openat_retry(int dirfd, const char *path, int flags)
{
    int fd;
    do {
        fd = openat(dirfd, path, flags);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

/* Opens rel (NUL-terminated, relative, normalised) beneath root_fd without
 * openat2: every intermediate directory is opened O_PATH|O_NOFOLLOW one
 * segment at a time, then the last one O_NOFOLLOW. Any symlink on the way
 * fails with ENOTDIR or ELOOP. This refuses symlinks that stay inside the
 * root too: checking where they lead would mean resolving them by hand.
 * rel is modified during the walk and restored before returning. */
static int open_walk(int root_fd, char *rel, int flags)
{
    int dir = root_fd;
    char *seg = rel;
    char *slash;

    while ((slash = strchr(seg, '/')) != NULL) {
        *slash = '\0';
        int fd = openat_retry(dir, seg, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        *slash = '/';
        if (dir != root_fd)
            close(dir);
        if (fd < 0)
            return fd;
        dir = fd;
        seg = slash + 1;
    }
    int fd = openat_retry(dir, seg, flags | O_NOFOLLOW);
    if (dir != root_fd)
        close(dir);
    return fd;
}

#if HP_HAVE_OPENAT2
/* How often to retry when RESOLVE_BENEATH reports EAGAIN: the kernel says so
 * when a concurrent rename means it cannot prove that a ".." inside a
 * symlink stayed beneath the root. A few tries ride out an honest race;
 * after that we treat the path as leaving the root. */
#define OPENAT2_AGAIN_TRIES 3

static int open_beneath(int root_fd, const char *rel, int flags)
{
    struct open_how how = {
        .flags = (__u64)(unsigned)flags,
        /* BENEATH refuses absolute symlinks and any ".." above root_fd
         * (EXDEV); NO_MAGICLINKS refuses /proc/self/fd-style jumps. */
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    int again = 0;
    for (;;) {
        long fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN && ++again < OPENAT2_AGAIN_TRIES)
            continue;
        return -errno;
    }
}
#endif

static int open_file(int root_fd, char *rel, unsigned flags)
{
#if HP_HAVE_OPENAT2
    if (!(flags & HP_STATIC_NO_OPENAT2)) {
        int fd = open_beneath(root_fd, rel, OPEN_FLAGS);
        /* Built where openat2 exists but running on an older kernel (or
         * under a seccomp filter that hides it): walk instead. */
        if (fd != -ENOSYS)
            return fd;
    }
#else
    (void)flags;
#endif
    return open_walk(root_fd, rel, OPEN_FLAGS);
}

/* Maps an open() failure to the HTTP status to send. */
static HP_COLD int status_of(int err)
{
    switch (err) {
    case -ENOENT:
    case -ENOTDIR: /* a file used as a directory, or a symlink in the walk */
    case -EXDEV:   /* openat2: the path would leave the root */
    case -ELOOP:   /* a symlink under O_NOFOLLOW, a magic link, or a cycle */
    case -EAGAIN:  /* openat2 could not prove the path stayed beneath */
    case -ENXIO:   /* a UNIX socket or a device without a driver */
    case -ENODEV:
        return -404;
    case -EACCES:
    case -EPERM:
        return -403;
    case -ENAMETOOLONG:
        return -414;
    case -EMFILE:
    case -ENFILE:
    case -ENOMEM:
        return -503;
    default:
        return -500;
    }
}

/* Everything hp_static_resolve does except choosing the type: decodes,
 * normalises and opens the target, leaving the NUL-terminated relative path
 * in scratch[0..*path_len). Fills *out but its mime; on failure returns the
 * negative status and leaves *out untouched. */
static int resolve_open(int root_fd, const char *target, size_t target_len, char *scratch,
                        size_t scratch_len, unsigned flags, hp_static_file_t *out,
                        size_t *path_len)
{
    /* Origin-form only: "*" and absolute-form never name a file here. */
    if (HP_UNLIKELY(target_len == 0 || target[0] != '/'))
        return -400;
    int n = hp_static_decode_path(target, target_len, scratch, scratch_len);
    if (HP_UNLIKELY(n < 0))
        return n;
    bool dir;
    int r = hp_static_normalize(scratch, (size_t)n, &dir);
    if (HP_UNLIKELY(r < 0))
        return r;

    size_t w = (size_t)r;
    if (dir) {
        static const char idx[] = "index.html";
        if (w + (w != 0) + sizeof idx > scratch_len)
            return -414;
        if (w)
            scratch[w++] = '/';
        memcpy(scratch + w, idx, sizeof idx);
        w += sizeof idx - 1;
    } else {
        /* Normalising dropped the leading '/', so w < n <= scratch_len and
         * the terminator fits. */
        scratch[w] = '\0';
    }

    int fd = open_file(root_fd, scratch, flags);
    if (HP_UNLIKELY(fd < 0))
        return status_of(fd);

    struct stat st;
    if (HP_UNLIKELY(fstat(fd, &st) < 0)) {
        close(fd);
        return -500;
    }
    if (HP_UNLIKELY(!S_ISREG(st.st_mode))) {
        close(fd);
        /* A directory named without its '/' gets a redirect, so relative
         * links inside its index.html resolve against the right base. */
        return S_ISDIR(st.st_mode) && !dir ? -301 : -404;
    }
    out->fd = fd;
    out->size = (uint64_t)st.st_size;
    out->mtime_sec = (int64_t)st.st_mtim.tv_sec;
    out->mtime_nsec = st.st_mtim.tv_nsec;
    *path_len = w;
    return 0;
}

int hp_static_resolve_ex(int root_fd, const char *target, size_t target_len, char *scratch,
                         size_t scratch_len, hp_static_file_t *out, unsigned flags)
{
    hp_static_file_t f;
    size_t w;
    int rc = resolve_open(root_fd, target, target_len, scratch, scratch_len, flags, &f, &w);
    if (HP_UNLIKELY(rc < 0))
        return rc;
    f.mime = hp_static_mime(scratch, w);
    *out = f;
    return 0;
}

int hp_static_resolve(int root_fd, const char *target, size_t target_len, char *scratch,
                      size_t scratch_len, hp_static_file_t *out)
{
    return hp_static_resolve_ex(root_fd, target, target_len, scratch, scratch_len, out, 0);
}

/* ---- precompressed siblings ------------------------------------------------ */

/* Tries `<path>.<suffix>` next to the resolved file f (path in
 * scratch[0..w), NUL-terminated at w). Succeeds only for a regular file, no
 * older than f, opened under the same confinement as f itself. On success
 * replaces f's descriptor, size and mtime with the sibling's (the mime stays)
 * and closes f's old descriptor. scratch[w] is NUL again on return. */
static bool try_sibling(int root_fd, char *scratch, size_t w, const char suffix[3],
                        unsigned flags, hp_static_file_t *f)
{
    scratch[w] = '.';
    scratch[w + 1] = suffix[0];
    scratch[w + 2] = suffix[1];
    scratch[w + 3] = '\0';
    int fd = open_file(root_fd, scratch, flags);
    scratch[w] = '\0';
    /* Any failure (absent, a symlink that leaves the root, EACCES, even
     * EMFILE) just means "serve the original": it is already open. */
    if (fd < 0)
        return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
              (st.st_mtim.tv_sec > f->mtime_sec ||
               (st.st_mtim.tv_sec == f->mtime_sec && st.st_mtim.tv_nsec >= f->mtime_nsec));
    if (!ok) {
        /* A directory, a FIFO, or a stale sibling that predates the last
         * edit of the original: sending it would serve old content. */
        close(fd);
        return false;
    }
    close(f->fd);
    f->fd = fd;
    f->size = (uint64_t)st.st_size;
    f->mtime_sec = (int64_t)st.st_mtim.tv_sec;
    f->mtime_nsec = st.st_mtim.tv_nsec;
    return true;
}

int hp_static_resolve_encoded_ex(int root_fd, const hp_mime_t *types, const char *target,
                                 size_t target_len, unsigned accept, char *scratch,
                                 size_t scratch_len, hp_static_file_t *out, unsigned *encoding,
                                 unsigned flags)
{
    hp_static_file_t f;
    size_t w;
    int rc = resolve_open(root_fd, target, target_len, scratch, scratch_len, flags, &f, &w);
    if (HP_UNLIKELY(rc < 0))
        return rc;
    /* The type is the original's: a .gz sibling is still the HTML page. */
    f.mime = hp_mime_lookup(types, scratch, w);

    unsigned enc = HP_ENC_IDENTITY;
    /* Each suffix is 3 bytes plus the NUL; without room, the original. */
    if ((accept & (HP_ENC_BR | HP_ENC_GZIP)) && scratch_len >= 4 && w <= scratch_len - 4) {
        unsigned order[2] = {HP_ENC_BR, HP_ENC_GZIP};
        if (accept & HP_STATIC_GZIP_FIRST)
            order[0] = HP_ENC_GZIP, order[1] = HP_ENC_BR;
        for (int k = 0; k < 2; k++) {
            if (!(accept & order[k]))
                continue;
            if (try_sibling(root_fd, scratch, w, order[k] == HP_ENC_BR ? "br" : "gz", flags,
                            &f)) {
                enc = order[k];
                break;
            }
        }
    }
    *out = f;
    *encoding = enc;
    return 0;
}

int hp_static_resolve_encoded(int root_fd, const hp_mime_t *types, const char *target,
                              size_t target_len, unsigned accept, char *scratch,
                              size_t scratch_len, hp_static_file_t *out, unsigned *encoding)
{
    return hp_static_resolve_encoded_ex(root_fd, types, target, target_len, accept, scratch,
                                        scratch_len, out, encoding, 0);
}

unsigned hp_static_accept(const char *v, size_t len)
{
    /* hp_accept_encoding names one winner; the resolver also needs the
     * runner-up, because the winner's sibling may be missing. A coding is
     * worth trying when the client ranks it at least as high as identity,
     * which is exactly when hp_accept_encoding picks it over identity. */
    unsigned best = hp_accept_encoding(v, len, HP_ENC_BR | HP_ENC_GZIP);
    if (best == 0 || best == HP_ENC_IDENTITY)
        return best; /* nothing acceptable (406), or identity beats both */
    unsigned other = best == HP_ENC_BR ? HP_ENC_GZIP : HP_ENC_BR;
    unsigned mask = best;
    if (hp_accept_encoding(v, len, other) == other)
        mask |= other;
    /* A tie goes to br, so gzip winning means the client ranks it higher. */
    if (best == HP_ENC_GZIP && (mask & HP_ENC_BR))
        mask |= HP_STATIC_GZIP_FIRST;
    if (hp_accept_encoding(v, len, 0) == HP_ENC_IDENTITY)
        mask |= HP_ENC_IDENTITY;
    return mask;
}

int hp_static_open_root(const char *path)
{
    int fd;
    do {
        fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

/* ---- content types -------------------------------------------------------- */

const char *hp_static_mime(const char *path, size_t len)
{
    return hp_mime_lookup(NULL, path, len);
}
