/*
 * fcache_int.h - the per-worker open-file cache for static files.
 *
 * Without it every static request costs openat2 + fstat (+ a failing
 * openat2 per precompressed sibling tried) + close. With it, a request for
 * a file asked for within the last `revalidate_ms` costs no syscall at all
 * before the sendfile: the entry keeps the open descriptors of the file and
 * of its .gz/.br siblings, their sizes, mtimes and ETags, the type and the
 * Last-Modified text. Older entries are revalidated with one fstatat per
 * file (dev, inode, size, mtime, ctime); anything changed and the entry is
 * rebuilt from scratch through hp_static_resolve, with all its safety
 * (percent-decoding, dot segments, RESOLVE_BENEATH).
 *
 * The entry also holds the on-the-fly gzip/brotli body of the file, made
 * once on first demand (hp_fcache_compressed), not once per request.
 *
 * One cache per worker, used only by that worker's thread: no locks.
 * Entries are reference-counted: one handed out by hp_fcache_get stays
 * valid (descriptors open, body allocated) until released, even if it is
 * evicted, replaced or the cache is cleared or freed meanwhile. A release
 * fits the `done` callbacks of hp_conn_write_file_cb and
 * hp_conn_write_ref_cb (conn.h), so a queued sendfile pins its entry:
 *
 *     hp_fcache_ref(e);
 *     hp_conn_write_file_cb(c, e->v[i].fd, 0, e->v[i].size, hp_fcache_release_cb, e);
 */
#ifndef HOTPATH_FCACHE_INT_H
#define HOTPATH_FCACHE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "hotpath/clock.h"
#include "hotpath/common.h"
#include "hotpath/http_cond.h"
#include "mime_int.h"

/* Largest file compressed on the fly: the whole file is read into memory
 * and compressed in one go on the worker's thread, so the cost of one
 * miss must stay bounded (8 MiB of gzip -6 is ~100 ms). Larger files go
 * out as identity (or as a precompressed sibling). */
#define HP_FCACHE_COMPRESS_MAX (8u << 20)

/* Files up to this size are also kept in memory (hp_fcache_body), so a
 * response is its head and body in one writev instead of a writev and a
 * sendfile. */
#define HP_FCACHE_MEM_MAX (32u << 10)

/* Indexes of hp_fcache_entry_t.v. */
enum { HP_FCACHE_V_IDENTITY = 0, HP_FCACHE_V_GZIP = 1, HP_FCACHE_V_BR = 2, HP_FCACHE_NVAR = 3 };

/* One stored coding of the file: the file itself or a precompressed
 * sibling. All fields read-only for callers. */
typedef struct hp_fcache_variant {
    int fd;              /* -1: no such variant. Owned by the cache: never
                          * close it; sendfile with an explicit offset, so
                          * concurrent sends may share it */
    uint64_t size;       /* st_size when opened */
    int64_t mtime_sec;   /* st_mtime when opened (Last-Modified, If-Range) */
    long mtime_nsec;
    char etag[HP_ETAG_MAX]; /* strong ETag (hp_cond_etag_make) of this variant,
                             * NUL-terminated; "" when fd is -1 */
} hp_fcache_variant_t;

/* What hp_fcache_get hands out. Read-only for callers; the cache keeps its
 * private bookkeeping around it. */
typedef struct hp_fcache_entry {
    const char *mime;    /* of the original file, from the `types` table
                          * given to hp_fcache_get (or a static string) */
    char last_modified[HP_CLOCK_DATE_LEN + 1]; /* of the original (hp_clock_date_format) */
    /* [HP_FCACHE_V_IDENTITY] always present; [GZIP] the "<file>.gz" and
     * [BR] the "<file>.br" sibling when it is a regular file beneath the
     * root and not older than the original, else fd -1. */
    hp_fcache_variant_t v[HP_FCACHE_NVAR];
} hp_fcache_entry_t;

typedef struct hp_fcache hp_fcache_t;

/* Counters since hp_fcache_new (entries and bytes are current values). */
typedef struct hp_fcache_stats {
    uint64_t hits;          /* gets answered from the table */
    uint64_t misses;        /* gets that resolved the target (failures included) */
    uint64_t evictions;     /* entries pushed out by max_entries */
    uint64_t revalidations; /* hits that were old enough to be checked */
    uint64_t replaced;      /* of those, entries found changed (rebuilt or gone) */
    uint64_t uncached;      /* one-off entries: the table was full of referenced ones */
    uint64_t compressions;  /* on-the-fly bodies attempted (kept or not) */
    uint64_t body_drops;    /* compressed bodies dropped to respect max_bytes */
    uint64_t entries;       /* entries in the table now */
    uint64_t bytes;         /* bytes of compressed bodies held now, including
                             * those of referenced entries already unlinked */
} hp_fcache_stats_t;

/* Creates an empty cache into *out (owned by the caller; hp_fcache_free).
 *   max_entries    >= 1: entries in the table (each holds up to three
 *                  descriptors: budget RLIMIT_NOFILE accordingly);
 *   max_bytes      bound on the memory of on-the-fly compressed bodies
 *                  (0: never keep one);
 *   revalidate_ms  age after which a hit is checked against the file
 *                  system (0: every hit is checked).
 * Returns 0, -EINVAL (max_entries 0 or above 2^30) or -ENOMEM (*out
 * untouched). */
int hp_fcache_new(hp_fcache_t **out, uint32_t max_entries, uint64_t max_bytes,
                  uint64_t revalidate_ms);

/* Frees the cache and every unreferenced entry (closing their
 * descriptors). Entries still referenced live on, detached, and are freed
 * by their last release. NULL is fine. */
void hp_fcache_free(hp_fcache_t *fc);

/* Looks up `target` (the origin-form request target as received, not
 * NUL-terminated; only the part before '?' or '#' is the key, with
 * root_fd) and returns its entry in *out, referenced: the caller must
 * hp_fcache_release it (directly or through a done callback).
 *
 *   - a hit younger than revalidate_ms: no syscall at all;
 *   - an older hit: one fstatat per file of the entry (the original and
 *     each sibling name), compared with what was opened; a change makes
 *     the entry be rebuilt as on a miss (the old one lives on for those
 *     still holding it);
 *   - a miss: hp_static_resolve_encoded(root_fd, types, ...) opens the
 *     file (same statuses, same confinement), then each sibling
 *     "<path>.gz", "<path>.br" is opened through hp_static_resolve under
 *     the same rules as hp_static_resolve_encoded would: a regular file
 *     beneath the root, not older than the original. One entry then serves
 *     every Accept-Encoding.
 *
 * root_fd is part of the key, so a root reopened under the same number
 * (config reload) must come with hp_fcache_clear. `types` (borrowed, may
 * be NULL for the built-ins) must outlive the entries made with it, and be
 * the same for every call with the same root_fd.
 * now_ms: the caller's clock in milliseconds (the loop's cached time).
 * scratch/scratch_len: as for hp_static_resolve (PATH_MAX is enough);
 * clobbered.
 *
 * Returns 0, or the negative HTTP status of hp_static_resolve (-400, -403,
 * -404, -301, -414, -500, -503: nothing is cached for those), or -503 when
 * memory for the entry is short. */
int hp_fcache_get(hp_fcache_t *fc, int root_fd, const hp_mime_t *types,
                  const char *target, size_t target_len, uint64_t now_ms, char *scratch,
                  size_t scratch_len, hp_fcache_entry_t **out);

/* One more reference to e (from hp_fcache_get), e.g. for each queued
 * segment that sends from it. */
void hp_fcache_ref(hp_fcache_entry_t *e);

/* Drops a reference. The last one on an entry that has left the table
 * (evicted, replaced, cleared, one-off, or its cache freed) closes its
 * descriptors and frees it. */
void hp_fcache_release(hp_fcache_entry_t *e);

/* hp_fcache_release with the done-callback signature of conn.h. */
void hp_fcache_release_cb(void *entry);

/* The variant to send for `accept` (a mask from hp_static_accept:
 * HP_ENC_BR / HP_ENC_GZIP / HP_STATIC_GZIP_FIRST): the first sibling
 * present among those accepted, br before gzip unless
 * HP_STATIC_GZIP_FIRST, else HP_FCACHE_V_IDENTITY. Sets *encoding
 * (HP_ENC_*) to the coding chosen. No syscall. */
int hp_fcache_select(const hp_fcache_entry_t *e, unsigned accept, unsigned *encoding);

/* The on-the-fly compressed body of e's identity variant, `encoding`
 * HP_ENC_GZIP or HP_ENC_BR at `level` (1..9, see http_encoding.h), for a
 * location that compresses responses and a client whose best acceptable
 * coding this is and for which no precompressed sibling exists.
 *
 * Made on first demand: the file is read (pread) and compressed, but only
 * when hp_encoding_type_ok(e->mime), min_size <= size <=
 * HP_FCACHE_COMPRESS_MAX, and the result saves at least 10 %. The outcome,
 * "not worth it" included, is remembered in the entry until the file is
 * seen to change; later calls cost nothing whatever their level (the
 * first level asked for is the one kept). The body counts against
 * max_bytes: compressed bodies of the least recently used unreferenced
 * entries are dropped to make room; if it still does not fit it is not
 * kept (and -ENOENT returned).
 *
 * Returns 0 with *buf and *len (borrowed, valid while the caller holds its
 * reference to e) and etag (OUT, HP_ETAG_MAX bytes: the identity's ETag
 * with "-gz" or "-br" inside the quotes, so each coding has its own strong
 * validator); -ENOENT when no compressed form is available; -ENOMEM when
 * memory ran out (nothing is remembered: a later call tries again);
 * -EINVAL for another encoding. May block on the read of the file (once
 * per file). */
int hp_fcache_compressed(hp_fcache_t *fc, hp_fcache_entry_t *e, unsigned encoding,
                         int level, uint64_t min_size, const void **buf, uint64_t *len,
                         char etag[HP_ETAG_MAX]);

/* Empties the table (config reload, new root): unreferenced entries are
 * freed at once, referenced ones when released. */
void hp_fcache_clear(hp_fcache_t *fc);

/* The bytes of e's identity file when it is at most HP_FCACHE_MEM_MAX
 * long: read (pread) on first demand and kept with the entry until the
 * file is seen to change, counted against max_bytes like compressed
 * bodies (which it may push out). Returns 0 with *buf (borrowed, e->v[0].size
 * bytes, valid while the caller holds its reference to e), or -ENOENT:
 * too large, empty, no room or no memory (the caller sends the file). */
int hp_fcache_body(hp_fcache_t *fc, hp_fcache_entry_t *e, const void **buf);

/* Copies the counters into *out. */
void hp_fcache_stats(const hp_fcache_t *fc, hp_fcache_stats_t *out);

/* Checks the structural invariants: every table entry in its hash bucket
 * once and on the LRU list once, counts and byte totals consistent,
 * detached entries referenced. Returns 0 or -EINVAL. For tests. */
int hp_fcache_validate(const hp_fcache_t *fc);

#endif
