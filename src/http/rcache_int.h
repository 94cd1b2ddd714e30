/*
 * rcache_int.h - the per-worker HTTP response cache: a bounded LRU of
 * complete responses (status, Content-Type, extra header lines, body) with
 * a time to live, keyed by method, path, query and the varied header values.
 *
 * One cache belongs to one worker thread and is used only from it: nothing
 * here locks or uses atomics. A lookup hashes the key once, compares bytes
 * and allocates nothing; a hit hands out a reference so the body can be
 * queued for writev without a copy and still outlive an eviction.
 *
 * Which responses go in is the request path's decision (GET/HEAD, status
 * 200, a route that opts in or a Cache-Control max-age from the handler);
 * hp_rcache_max_age_ms() and hp_rcache_key() are the helpers for it.
 *
 * Times are milliseconds on any monotonic clock the caller chooses (the
 * worker's cached loop time); the cache never reads a clock itself.
 */
#ifndef HOTPATH_RCACHE_INT_H
#define HOTPATH_RCACHE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hotpath/common.h"

/* Defaults from the issue; the configuration (cache.max_entries,
 * cache.ttl) normally supplies the values. */
#define HP_RCACHE_DEFAULT_ENTRIES 1000u
#define HP_RCACHE_DEFAULT_TTL_MS (300u * 1000u)

/* RFC 9111 §1.2.2: a delta-seconds too large to hold is taken as 2^31. */
#define HP_RCACHE_MAX_AGE_CAP_S 2147483648ll

typedef struct hp_rcache hp_rcache_t;

/* One cached response. Allocated as a single block: this header, then the
 * key, the Content-Type, the header lines and the body. The public fields
 * are read-only for callers and stay valid while they hold a reference
 * (from hp_rcache_get or hp_rcache_ref), even if the entry is evicted,
 * replaced or cleared in the meantime, or the cache itself is freed. */
typedef struct hp_rcache_entry {
    /* private, first because a lookup walking a chain touches only these
     * and the key that follows the struct: */
    struct hp_rcache_entry *hnext; /* hash chain */
    uint64_t hash;
    uint32_t klen;
    uint32_t refs;                 /* the table's own reference counts as one */

    /* public, read-only: */
    uint64_t expires_ms;           /* fresh while now_ms < expires_ms */
    int status;                    /* as given to put (200 on the request path) */
    uint32_t headers_len;          /* length of `headers`, NUL not counted */
    const char *ctype;             /* NUL-terminated copy ("" when none) */
    const char *headers;           /* extra header lines "Name: v\r\n"...: NUL-terminated
                                    * copy, may be "" */
    const void *body;              /* copy of the body (body_len bytes) */
    uint64_t body_len;

    /* private: */
    struct hp_rcache_entry *prev, *next; /* LRU list (in the table) or detached list */
    hp_rcache_t *rc;               /* owning cache; NULL once the cache is freed */
    uint64_t size;                 /* bytes charged against max_bytes */
    uint32_t state;                /* in table / detached / orphaned */
} hp_rcache_entry_t;

/* Counters are monotonic since hp_rcache_new (clear does not reset them);
 * entries/bytes/detached are current figures. */
typedef struct hp_rcache_stats {
    uint64_t hits;      /* get returned an entry */
    uint64_t misses;    /* get returned NULL (expired entries included) */
    uint64_t evictions; /* entries pushed out by a bound (not replacements, clears, expiry) */
    uint64_t expired;   /* entries found stale by get and dropped */
    uint64_t inserts;   /* successful puts */
    uint64_t entries;   /* entries in the table now */
    uint64_t bytes;     /* bytes charged for them now (see hp_rcache_entry_size) */
    uint64_t detached;  /* entries out of the table but still referenced */
} hp_rcache_stats_t;

/* Creates an empty cache in *out (OUT; owned by the caller, released with
 * hp_rcache_free). max_entries >= 1 bounds the number of entries;
 * max_bytes bounds the bytes charged for them (hp_rcache_entry_size; 0 means
 * no byte bound); default_ttl_ms >= 1 is the time to live used when put is
 * given ttl 0 and the cap on any ttl put is given. The hash table starts
 * small and doubles as entries arrive, up to one bucket per entry.
 * Returns 0, -EINVAL (max_entries or default_ttl_ms 0, out NULL) or -ENOMEM
 * (nothing allocated is left behind). */
int hp_rcache_new(hp_rcache_t **out, uint32_t max_entries, uint64_t max_bytes,
                  uint64_t default_ttl_ms);

/* Drops every entry and frees the cache. Entries still referenced stay
 * readable and are freed by their last hp_rcache_release. NULL is a no-op. */
void hp_rcache_free(hp_rcache_t *rc);

/* Looks up key[0..klen) (borrowed) at time now_ms. On a fresh hit moves the
 * entry to the front of the LRU, counts a hit and returns it with a new
 * reference the caller owns (release it with hp_rcache_release). Returns
 * NULL on a miss; an entry with now_ms >= expires_ms is a miss too, is
 * dropped from the table and counted in both `misses` and `expired`.
 * Allocates nothing. */
hp_rcache_entry_t *hp_rcache_get(hp_rcache_t *rc, const void *key, size_t klen,
                                 uint64_t now_ms);

/* Stores a copy of a response under key[0..klen) in one allocation; every
 * pointer argument is borrowed. ctype is NUL-terminated (NULL: ""); headers
 * is headers[0..headers_len) (NULL allowed when headers_len is 0); body is
 * body[0..body_len) (NULL allowed when body_len is 0).
 * TTL: ttl_ms 0 means default_ttl_ms; otherwise min(ttl_ms, default_ttl_ms),
 * because the configured TTL is the operator's cap on staleness whatever a
 * handler asks for. The entry is fresh while now_ms < now_ms + TTL.
 * An existing entry with the same key is replaced (not counted as an
 * eviction). Then least-recently-used entries are evicted (counted) until
 * both bounds hold with the new entry in. References to replaced or evicted
 * entries stay valid.
 * Returns 0; -E2BIG when the entry alone is larger than max_bytes (or key,
 * headers or the total size overflow 32/64-bit lengths); -ENOMEM. On
 * failure the cache is unchanged (an older entry under the key stays). */
int hp_rcache_put(hp_rcache_t *rc, const void *key, size_t klen, int status,
                  const char *ctype, const char *headers, size_t headers_len,
                  const void *body, uint64_t body_len, uint64_t ttl_ms, uint64_t now_ms);

/* Drops the entry under key[0..klen) (borrowed), for invalidation after an
 * unsafe request to the same resource. Returns 0 or -ENOENT. Not counted as
 * an eviction. */
int hp_rcache_remove(hp_rcache_t *rc, const void *key, size_t klen);

/* Bytes an entry of these sizes is charged against max_bytes: the entry
 * header (per-entry overhead) plus key, Content-Type and header lines with
 * their NULs, plus the body. UINT64_MAX when the sum overflows. */
uint64_t hp_rcache_entry_size(size_t klen, size_t ctype_len, size_t headers_len,
                              uint64_t body_len);

/* Takes one more reference to e (for example one per queued response). */
void hp_rcache_ref(hp_rcache_entry_t *e);

/* Gives back one reference. The last one frees an entry that has left the
 * table (evicted, replaced, expired, cleared, or its cache freed); an
 * entry still in the table keeps the table's own reference. NULL is a no-op. */
void hp_rcache_release(hp_rcache_entry_t *e);

/* hp_rcache_release with the signature of a generic "done with this
 * buffer" callback: `entry` is a hp_rcache_entry_t *. */
void hp_rcache_release_cb(void *entry);

/* Drops every entry (on configuration reload). Referenced entries live on
 * until released. Counters are kept; drops are not counted as evictions. */
void hp_rcache_clear(hp_rcache_t *rc);

/* Copies the counters and current figures into *out (OUT). */
void hp_rcache_stats(const hp_rcache_t *rc, hp_rcache_stats_t *out);

/* Checks every invariant (for tests, O(entries)): table and LRU list hold
 * the same entries, counts and bytes agree with the bounds, each entry sits
 * in the bucket of its recomputed hash, the detached list is consistent.
 * Returns 0 or -EINVAL. */
int hp_rcache_validate(const hp_rcache_t *rc);

/* Reads a Cache-Control field value v[0..len) (borrowed, no NUL needed)
 * from a handler's response and decides whether and how long it may be
 * cached (RFC 9111 §5.2.2). Directive names are case-insensitive, list
 * elements are separated by commas with optional spaces/tabs around them,
 * empty elements are skipped, and arguments of other directives may be
 * tokens or quoted strings (which may hold commas). Returns
 *   > 0  max-age=N in milliseconds; N is decimal seconds in token or
 *        quoted form ("max-age=5", max-age="5"); N above 2^31 is clamped to
 *        2^31 s (RFC 9111 §1.2.2);
 *   0    no max-age: the route's own policy decides;
 *   -1   must not be cached: no-store, private or no-cache (with or without
 *        an argument); max-age=0; an invalid max-age (no value, non-digits,
 *        a sign, spaces around '=' - RFC 9110's grammar has no whitespace
 *        there - or max-age given twice), which RFC 9111 §4.2.1 says to
 *        treat as stale; an unterminated quoted string, after which nothing
 *        can be trusted.
 * Other directives (public, s-maxage, must-revalidate, ...) and malformed
 * elements with other names are ignored. */
int64_t hp_rcache_max_age_ms(const char *v, size_t len);

/* Builds a cache key into buf[0..cap) (OUT): method, path, query, then
 * nvary varied header values, each written as a 4-byte little-endian
 * length followed by its bytes, so no choice of bytes in one part can
 * imitate a different split (path "a" + query "b" differs from path "ab"
 * + query ""). A NULL vary_vals[i] (header absent) is written as length
 * 0xffffffff with no bytes, unlike a present but empty value. All inputs
 * are borrowed; method/path/query may be NULL when their length is 0.
 * Returns the key length, -ENOSPC when buf is too small (buf contents then
 * unspecified) or -E2BIG when a part is 4 GiB - 1 or longer. */
ssize_t hp_rcache_key(char *buf, size_t cap, const char *method, size_t mlen,
                      const char *path, size_t plen, const char *query, size_t qlen,
                      const char *const *vary_vals, const size_t *vary_lens,
                      size_t nvary);

#endif
