/*
 * http_static.h - map an HTTP request target to a file beneath a document
 * root, safely and without touching the heap.
 *
 * The server calls hp_static_resolve() for GET/HEAD requests that fall
 * through to static files, then sends the returned descriptor with
 * sendfile. Everything that decides whether a request may see a file lives
 * here: percent-decoding, dot-segment removal, confinement to the root
 * (openat2 RESOLVE_BENEATH where the kernel has it, a per-segment
 * O_NOFOLLOW walk otherwise) and the file-type checks.
 *
 * Errors from hp_static_resolve() are negative HTTP status codes, in the
 * style of the parsers: the caller sends -rc and carries on.
 */
#ifndef HOTPATH_HTTP_STATIC_H
#define HOTPATH_HTTP_STATIC_H

#include <stddef.h>
#include <stdint.h>

/* What a successful resolve hands back. */
typedef struct hp_static_file {
    int fd;           /* owned by the caller: O_RDONLY|O_CLOEXEC regular file
                       * (O_NONBLOCK is also set, which Linux ignores for
                       * regular files; see hp_static_resolve) */
    uint64_t size;    /* st_size at open time */
    int64_t mtime_sec; /* st_mtime at open time, for Last-Modified/ETag */
    long mtime_nsec;   /* its nanoseconds, for the ETag */
    const char *mime; /* static string, never freed */
} hp_static_file_t;

/* Opens the document root as O_PATH|O_DIRECTORY|O_CLOEXEC. The descriptor
 * is only a lookup anchor: it grants no read access by itself and is safe to
 * share read-only between workers.
 * Returns the fd (owned by the caller, close it with close()) or -errno:
 * -ENOENT, -ENOTDIR, -EACCES, -ELOOP, -EMFILE ... */
int hp_static_open_root(const char *path);

/* Resolves `target`, the origin-form request target exactly as received
 * (path plus an optional ?query or #fragment, which are ignored; not
 * NUL-terminated), beneath `root_fd` (from hp_static_open_root) and opens it.
 *
 * `scratch`/`scratch_len` is caller space for the decoded path (PATH_MAX is
 * enough); it is clobbered. Nothing is allocated.
 *
 * The decoded path is normalised (RFC 3986 §5.2.4 dot-segment removal, empty
 * segments collapse); a ".." that would climb above the root is refused.
 * A path ending in '/' (or in "/." or "/..") names a directory and serves its
 * index.html. Symlinks are followed only while they stay beneath the root
 * (with openat2); without openat2 every symlink is refused.
 *
 * Returns 0 and fills *out (the caller owns out->fd) or, leaving *out
 * untouched, a negative HTTP status:
 *   -400 target does not start with '/', bad %-escape, %00, %2F, raw NUL;
 *   -403 the kernel denied access (EACCES/EPERM);
 *   -404 missing, outside the root, a symlink that leaves the root, a
 *        directory without index.html, anything but a regular file or
 *        directory (FIFOs are opened O_NONBLOCK so they cannot stall us);
 *   -301 a directory named without a trailing '/': the caller redirects to
 *        the path plus "/" (insert the '/' before any "?query");
 *   -414 the decoded path (plus "index.html" for directories) does not fit
 *        in scratch, or the kernel says ENAMETOOLONG;
 *   -503 out of descriptors or kernel memory (EMFILE/ENFILE/ENOMEM);
 *   -500 any other unexpected failure. */
int hp_static_resolve(int root_fd, const char *target, size_t target_len, char *scratch,
                      size_t scratch_len, hp_static_file_t *out);

/* Content-Type for `path` (len bytes, need not be NUL-terminated), chosen by
 * the extension of its last segment, case-insensitively. Unknown or missing
 * extensions give "application/octet-stream". Returns a static string. */
const char *hp_static_mime(const char *path, size_t len);

/* Percent-decodes src[0..len) into dst (capacity dst_cap), stopping at the
 * first '?' or '#'. '+' is left alone (it only means space in queries).
 * Returns the decoded length, -400 for a '%' not followed by two hex digits,
 * %00, an encoded '/' or a raw NUL byte, or -414 when dst is too small.
 * dst is not NUL-terminated. */
int hp_static_decode_path(const char *src, size_t len, char *dst, size_t dst_cap);

#endif
