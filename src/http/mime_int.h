/*
 * mime_int.h - Content-Type by file extension: a built-in table of the
 * common web types, optionally extended by a mime.types file.
 *
 * The table is built once at start-up (hp_mime_load), is read-only from
 * then on and is shared by every worker without locks. Lookups allocate
 * nothing and need no NUL-terminated input.
 *
 * Merge rules, decided here once for every caller:
 *   - The file wins for each extension it lists; the built-ins answer for
 *     every extension it does not.
 *   - Within the file, a later line wins over an earlier one for the same
 *     extension (as when an administrator appends an override).
 *   - Every "text/..." type read from the file gets "; charset=utf-8"
 *     appended, as the built-in text types have: served files are almost
 *     always UTF-8 today, and without a charset browsers guess (often
 *     windows-1252). Other types are stored exactly as written.
 *   - Extensions compare case-insensitively (ASCII); types keep their case.
 */
#ifndef HOTPATH_MIME_INT_H
#define HOTPATH_MIME_INT_H

#include <stddef.h>

#include "hotpath/common.h"

/* A loaded table; opaque. NULL is a valid table: the built-ins alone. */
typedef struct hp_mime hp_mime_t;

/* Longest extension kept from a file. Debian's /etc/mime.types tops out at
 * 30 bytes; longer ones are skipped (the rest of their line is kept). */
#define HP_MIME_EXT_MAX 32

/* Longest "type/subtype" accepted from a file; a longer one makes its line
 * malformed. RFC 6838 §4.2 caps each half at 127 bytes. */
#define HP_MIME_TYPE_MAX 255

/* Largest mime.types file read (-EFBIG above): the table lives in memory
 * for the life of the process, and real files are about 70 KiB. */
#define HP_MIME_FILE_MAX (16u << 20)

/* Reads the mime.types file at `path` and builds a table into *out (owned
 * by the caller; release with hp_mime_free).
 *
 * Format: one "type ext1 ext2 ..." per line, separated by spaces or tabs;
 * a token that starts with '#' begins a comment that runs to the end of the
 * line; blank lines and CRLF line ends are fine. A line whose type is not
 * "token/token" (RFC 9110 §5.6.2) or longer than HP_MIME_TYPE_MAX, or whose
 * extensions hold a byte that is not a token character, is skipped whole.
 * An extension containing '.' or longer than HP_MIME_EXT_MAX is skipped on
 * its own: the lookup only ever sees what follows the last '.'.
 *
 * A missing file (ENOENT, ENOTDIR) is not an error: *out = NULL (built-ins
 * only) and 0 is returned. Nothing is logged; the caller decides.
 * Returns 0, or -ENOMEM, -EFBIG (over HP_MIME_FILE_MAX), -EISDIR, -EINVAL
 * (not a regular file), or the -errno of open/read (e.g. -EACCES); *out is
 * untouched on failure. Allocates through hp_malloc: one transient buffer
 * for the file, one block for the table. */
int hp_mime_load(hp_mime_t **out, const char *path);

/* Same as hp_mime_load on the text[0..len) of a mime.types file already in
 * memory (need not be NUL-terminated). An empty text gives a table with no
 * entries, not NULL. Returns 0 or -ENOMEM (then *out is untouched). */
int hp_mime_parse(hp_mime_t **out, const char *text, size_t len);

/* Releases a table from hp_mime_load/hp_mime_parse. NULL is fine. Only
 * after every worker has stopped using it: strings it returned die too. */
void hp_mime_free(hp_mime_t *t);

/* Content-Type for path[0..len) (need not be NUL-terminated), from the
 * extension after the last '.' of its last segment: the table's entry, else
 * the built-in one, else "application/octet-stream". `t` may be NULL.
 * Returns a string owned by the table (valid until hp_mime_free) or a
 * static one. No allocation, no locks, safe from any thread. */
const char *hp_mime_lookup(const hp_mime_t *t, const char *path, size_t len);

/* Number of distinct extensions in the table (0 for NULL). */
size_t hp_mime_count(const hp_mime_t *t);

/* Checks the table's invariants (every entry reachable by its own probe,
 * lower-case extensions within bounds, types NUL-terminated inside the
 * arena). Returns 0, or -EINVAL. For tests. */
int hp_mime_validate(const hp_mime_t *t);

#endif
