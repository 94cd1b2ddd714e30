/*
 * static_int.h - map an HTTP request target to a file beneath a document
 * root (src/http/static.c), and the entry points unit tests drive
 * separately: the dot-segment
 * normaliser on its own, and the resolver with openat2 switched off so the
 * O_NOFOLLOW fallback runs on kernels that have openat2. Not installed and
 * not part of the public API.
 */
#ifndef HOTPATH_HTTP_STATIC_INT_H
#define HOTPATH_HTTP_STATIC_INT_H


#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"
#include "mime_int.h"

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

/* hp_static_resolve_encoded `accept` bit: try the .gz sibling before the
 * .br one (the client ranks gzip strictly above br). Above the HP_ENC_*
 * bits of http_accept.h. */
#define HP_STATIC_GZIP_FIRST (1u << 8)

/* Builds the `accept` argument of hp_static_resolve_encoded from the
 * Accept-Encoding value v[0..len) (v NULL: no header), with
 * hp_accept_encoding's rules (http_accept.h):
 *   - HP_ENC_BR / HP_ENC_GZIP for each coding the client ranks at least as
 *     high as identity (a coding it likes less than the plain file is never
 *     tried), plus HP_STATIC_GZIP_FIRST when it ranks gzip above br;
 *   - HP_ENC_IDENTITY when the plain file is acceptable too.
 * Returns that mask, or 0 when nothing is acceptable: the caller may answer
 * 406 at once. When the result lacks HP_ENC_IDENTITY and the resolve comes
 * back with identity anyway (no sibling), the caller chooses between 406
 * and ignoring the header (RFC 9110 §12.5.3 allows both).
 * Parses v at most three times; no allocation. */
unsigned hp_static_accept(const char *v, size_t len);

/* hp_static_resolve(), then, when `accept` allows, the precompressed
 * sibling: one call answers "br if present, else gzip, else the file".
 *
 * `types` (borrowed, may be NULL for the built-ins) gives out->mime, which
 * is ALWAYS the original file's type ("a.css.br" is served as text/css).
 * `accept` is a mask of HP_ENC_BR / HP_ENC_GZIP to try, in the order br then
 * gzip, or gzip then br with HP_STATIC_GZIP_FIRST; HP_ENC_IDENTITY and
 * other bits are ignored. hp_static_accept() builds it from the header.
 *
 * The original target is resolved and opened first, exactly as
 * hp_static_resolve does (same statuses, same confinement); a missing
 * original is -404 even if "x.gz" exists. Then "<path>.br" / "<path>.gz" is
 * opened beneath root_fd with the same rules (RESOLVE_BENEATH, or every
 * symlink refused without openat2) and used only if it is a regular file
 * whose mtime is not older than the original's: a stale sibling, a
 * directory or FIFO named like one, a symlink leaving the root, or any open
 * error falls through to the next coding and finally to the original.
 * A directory target tries index.html.br / index.html.gz the same way.
 *
 * On success *out describes the descriptor to send: the sibling's fd, size
 * and mtime (so an ETag made from them differs per coding, as RFC 9110
 * §8.8.3 requires of strong validators), the original's mime; *encoding is
 * the HP_ENC_* sent (the caller adds "Content-Encoding" unless identity, and
 * "Vary: Accept-Encoding" whenever siblings may exist). The original's
 * descriptor is closed when a sibling replaces it. scratch holds the
 * original's NUL-terminated relative path. On failure *out and *encoding
 * are untouched.
 *
 * Cost: one openat2 + fstat for the file, plus one openat2 per coding tried:
 * at most two extra (failing) openat2 calls per request when no sibling
 * exists, and one extra fstat (+ close of the original) per sibling found.
 * Without openat2 each try is a walk of one openat per path segment. Nothing is allocated. An
 * open-file cache in front of this is expected to absorb the misses.
 * A scratch too small for the 4 extra bytes of a suffix serves the original.
 *
 * Returns 0 or the negative HTTP status of hp_static_resolve(). */
int hp_static_resolve_encoded(int root_fd, const hp_mime_t *types, const char *target,
                              size_t target_len, unsigned accept, char *scratch,
                              size_t scratch_len, hp_static_file_t *out,
                              unsigned *encoding);

/* Content-Type for `path` (len bytes, need not be NUL-terminated), chosen by
 * the extension of its last segment, case-insensitively. Unknown or missing
 * extensions give "application/octet-stream". Returns a static string.
 * The built-in table only: hp_mime_lookup(NULL, path, len). */
const char *hp_static_mime(const char *path, size_t len);

/* Percent-decodes src[0..len) into dst (capacity dst_cap), stopping at the
 * first '?' or '#'. '+' is left alone (it only means space in queries).
 * Returns the decoded length, -400 for a '%' not followed by two hex digits,
 * %00, an encoded '/' or a raw NUL byte, or -414 when dst is too small.
 * dst is not NUL-terminated. */
int hp_static_decode_path(const char *src, size_t len, char *dst, size_t dst_cap);

#include <stdbool.h>
#include <stddef.h>


/* hp_static_resolve_ex flag: do not use openat2 even when it is available;
 * walk the path one segment at a time with O_NOFOLLOW instead. */
#define HP_STATIC_NO_OPENAT2 1u

/* hp_static_resolve() with behaviour flags (HP_STATIC_*). Same contract. */
int hp_static_resolve_ex(int root_fd, const char *target, size_t target_len, char *scratch,
                         size_t scratch_len, hp_static_file_t *out, unsigned flags);

/* hp_static_resolve_encoded() with behaviour flags (HP_STATIC_*), for
 * tests of the fallback walk. Same contract. */
int hp_static_resolve_encoded_ex(int root_fd, const hp_mime_t *types, const char *target,
                                 size_t target_len, unsigned accept, char *scratch,
                                 size_t scratch_len, hp_static_file_t *out, unsigned *encoding,
                                 unsigned flags);

/* Removes dot-segments and empty segments from the decoded absolute path
 * path[0..len) (path[0] must be '/'), in place, and drops the leading '/':
 * "/a/./b//../c" becomes "a/c". Sets *is_dir when the path names a
 * directory (ends in '/', "/." or "/..", or is the root).
 * Returns the new length (never more than len - 1), or -404 when a ".."
 * would climb above the root. Does not NUL-terminate. */
int hp_static_normalize(char *path, size_t len, bool *is_dir);

#endif
