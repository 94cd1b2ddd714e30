/*
 * static_int.h - library-private entry points of src/http/static.c.
 *
 * Exposed so unit tests can drive the pieces separately: the dot-segment
 * normaliser on its own, and the resolver with openat2 switched off so the
 * O_NOFOLLOW fallback runs on kernels that have openat2. Not installed and
 * not part of the public API.
 */
#ifndef HOTPATH_HTTP_STATIC_INT_H
#define HOTPATH_HTTP_STATIC_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "hotpath/http_mime.h"
#include "hotpath/http_static.h"

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
