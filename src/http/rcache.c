/*
 * rcache.c - the per-worker HTTP response cache (see http_rcache.h).
 *
 * Central data structure: a power-of-two array of hash chains (singly
 * linked through hnext) over entries that are also threaded on one
 * circular doubly linked LRU list, most recently used first. Each entry is
 * one allocation: the entry struct, then key, Content-Type, header lines
 * and body. Entries that leave the table while a caller still references
 * them move to a second list ("detached") so that hp_rcache_free can cut
 * their link to the cache; their last release frees them.
 *
 * Invariant: an entry is in the table exactly when it is on the LRU list;
 * `count` and `bytes` are the number and charged size of those entries and
 * stay within max_entries / max_bytes after every call; a table entry's
 * refs counts the table's reference plus the callers', a detached entry's
 * only the callers' (so it is >= 1); an orphaned entry (cache freed) is on
 * no list.
 */
#include "rcache_int.h"

#include "hotpath/alloc.h"
#include "hotpath/common.h"
#include "tchar_int.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

enum {
    ST_TABLE = 1,    /* in the hash table and on the LRU list */
    ST_DETACHED = 2, /* out of the table, referenced, on the detached list */
    ST_ORPHAN = 3,   /* referenced, its cache is gone */
};

/* The table starts this small so a cache configured for millions of
 * entries costs little until it fills; it doubles when the entries
 * outnumber the buckets, up to one bucket per entry of the bound. */
#define RC_MIN_BUCKETS 16u

struct hp_rcache {
    hp_rcache_entry_t **buckets;
    uint64_t mask;             /* nbuckets - 1 */
    uint64_t max_buckets;      /* power of two >= max_entries */
    uint64_t seed;             /* per-cache hash seed, so chains are not predictable */
    hp_rcache_entry_t lru;     /* sentinel: lru.next is the most recent */
    hp_rcache_entry_t detached; /* sentinel of the detached list */
    uint64_t count, bytes, ndetached;
    uint64_t max_bytes;        /* 0: no byte bound */
    uint64_t default_ttl_ms;
    uint32_t max_entries;
    uint64_t hits, misses, evictions, expired, inserts;
};

/* ---- hashing ---------------------------------------------------------- */

/* 64x64->128 multiply folded to 64 bits: every input bit reaches the
 * middle of the product, which makes one multiply a good mixer. */
static inline uint64_t fold_mul(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8); /* unaligned-safe; compiles to one load */
    return w;
}

#define K0 0x9e3779b97f4a7c15ull
#define K1 0xc2b2ae3d27d4eb4full
#define K2 0x165667b19e3779f9ull
#define K3 0xd6e8feb86659fd93ull

/* Keys are short (method, path, query, a few header values): 16 bytes per
 * multiply, the tail read in at most two more, then a final avalanche so
 * the low bits that pick the bucket depend on every byte. */
static uint64_t key_hash(uint64_t seed, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = seed ^ ((uint64_t)len * K0);
    size_t n = len;
    while (n >= 16) {
        h = fold_mul(load64(p) ^ seed ^ K1, load64(p + 8) ^ h ^ K2);
        p += 16;
        n -= 16;
    }
    if (n >= 8) {
        h = fold_mul(load64(p) ^ seed ^ K3, h ^ K1);
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = fold_mul(w ^ seed ^ K2, h ^ K3);
    }
    h ^= h >> 32;
    h *= K0;
    h ^= h >> 29;
    return h;
}

static uint64_t new_seed(const void *salt)
{
    uint64_t s = 0;
    /* Best effort: without entropy the cache still works, just with chains
     * an attacker could predict. */
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)(uintptr_t)salt ^ ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec;
    }
    return fold_mul(s ^ K0, s ^ K1) | 1;
}

static inline const char *entry_key(const hp_rcache_entry_t *e)
{
    return (const char *)(e + 1);
}

/* ---- lists ------------------------------------------------------------ */

static inline void list_init(hp_rcache_entry_t *s)
{
    s->prev = s->next = s;
}

static inline void list_unlink(hp_rcache_entry_t *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

static inline void list_push_front(hp_rcache_entry_t *s, hp_rcache_entry_t *e)
{
    e->next = s->next;
    e->prev = s;
    s->next->prev = e;
    s->next = e;
}

/* ---- lifecycle -------------------------------------------------------- */

static uint64_t next_pow2(uint64_t n)
{
    uint64_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

int hp_rcache_new(hp_rcache_t **out, uint32_t max_entries, uint64_t max_bytes,
                  uint64_t default_ttl_ms)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (max_entries == 0 || default_ttl_ms == 0)
        return -EINVAL;
    hp_rcache_t *rc = hp_calloc(1, sizeof *rc);
    if (!rc)
        return -ENOMEM;
    rc->max_buckets = next_pow2(max_entries);
    uint64_t nb = rc->max_buckets < RC_MIN_BUCKETS ? rc->max_buckets : RC_MIN_BUCKETS;
    rc->buckets = hp_calloc(nb, sizeof *rc->buckets);
    if (!rc->buckets) {
        hp_free(rc);
        return -ENOMEM;
    }
    rc->mask = nb - 1;
    rc->seed = new_seed(rc);
    list_init(&rc->lru);
    list_init(&rc->detached);
    rc->max_entries = max_entries;
    rc->max_bytes = max_bytes;
    rc->default_ttl_ms = default_ttl_ms;
    *out = rc;
    return 0;
}

/* Takes e out of the hash table and the LRU list and drops the table's
 * reference: freed now if nobody else holds it, else parked on the
 * detached list until its last release. */
static void drop(hp_rcache_t *rc, hp_rcache_entry_t *e)
{
    assert(e->state == ST_TABLE && e->refs >= 1);
    hp_rcache_entry_t **pp = &rc->buckets[e->hash & rc->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    e->hnext = NULL;
    list_unlink(e);
    rc->count--;
    rc->bytes -= e->size;
    if (--e->refs == 0) {
        hp_free(e);
        return;
    }
    e->state = ST_DETACHED;
    list_push_front(&rc->detached, e);
    rc->ndetached++;
}

void hp_rcache_clear(hp_rcache_t *rc)
{
    while (rc->lru.prev != &rc->lru)
        drop(rc, rc->lru.prev);
}

void hp_rcache_free(hp_rcache_t *rc)
{
    if (!rc)
        return;
    hp_rcache_clear(rc);
    /* Referenced entries outlive the cache: cut their back pointer so
     * their last release frees them without touching freed memory. */
    while (rc->detached.next != &rc->detached) {
        hp_rcache_entry_t *e = rc->detached.next;
        list_unlink(e);
        e->state = ST_ORPHAN;
        e->rc = NULL;
    }
    hp_free(rc->buckets);
    hp_free(rc);
}

void hp_rcache_ref(hp_rcache_entry_t *e)
{
    assert(e->refs >= 1);
    e->refs++;
}

void hp_rcache_release(hp_rcache_entry_t *e)
{
    if (!e)
        return;
    assert(e->refs >= 1);
    if (--e->refs > 0)
        return;
    /* Only detached or orphaned entries reach zero: a table entry keeps
     * the table's own reference. */
    assert(e->state != ST_TABLE);
    if (e->state == ST_DETACHED) {
        list_unlink(e);
        e->rc->ndetached--;
    }
    hp_free(e);
}

void hp_rcache_release_cb(void *entry)
{
    hp_rcache_release(entry);
}

/* ---- lookup ----------------------------------------------------------- */

static hp_rcache_entry_t *find(const hp_rcache_t *rc, const void *key, size_t klen, uint64_t h)
{
    for (hp_rcache_entry_t *e = rc->buckets[h & rc->mask]; e; e = e->hnext)
        if (e->hash == h && e->klen == klen && memcmp(entry_key(e), key, klen) == 0)
            return e;
    return NULL;
}

hp_rcache_entry_t *hp_rcache_get(hp_rcache_t *rc, const void *key, size_t klen, uint64_t now_ms)
{
    uint64_t h = key_hash(rc->seed, key, klen);
    hp_rcache_entry_t *e = find(rc, key, klen, h);
    if (!e) {
        rc->misses++;
        return NULL;
    }
    if (HP_UNLIKELY(now_ms >= e->expires_ms)) {
        /* Stale: it would never be served again, so free its room now
         * rather than waiting for the LRU to reach it. */
        drop(rc, e);
        rc->expired++;
        rc->misses++;
        return NULL;
    }
    if (rc->lru.next != e) {
        list_unlink(e);
        list_push_front(&rc->lru, e);
    }
    e->refs++;
    rc->hits++;
    return e;
}

int hp_rcache_remove(hp_rcache_t *rc, const void *key, size_t klen)
{
    hp_rcache_entry_t *e = find(rc, key, klen, key_hash(rc->seed, key, klen));
    if (!e)
        return -ENOENT;
    drop(rc, e);
    return 0;
}

/* ---- insertion -------------------------------------------------------- */

uint64_t hp_rcache_entry_size(size_t klen, size_t ctype_len, size_t headers_len, uint64_t body_len)
{
    uint64_t s = sizeof(hp_rcache_entry_t) + 2; /* + the NULs after ctype and headers */
    if (__builtin_add_overflow(s, klen, &s) || __builtin_add_overflow(s, ctype_len, &s) ||
        __builtin_add_overflow(s, headers_len, &s) || __builtin_add_overflow(s, body_len, &s))
        return UINT64_MAX;
    return s;
}

/* Doubles the bucket array. A failed allocation only leaves chains
 * longer, so it is not reported: the put that triggered it goes on. */
static HP_COLD void grow(hp_rcache_t *rc)
{
    uint64_t nb = (rc->mask + 1) * 2;
    hp_rcache_entry_t **b = hp_calloc(nb, sizeof *b);
    if (!b)
        return;
    for (uint64_t i = 0; i <= rc->mask; i++) {
        hp_rcache_entry_t *e = rc->buckets[i];
        while (e) {
            hp_rcache_entry_t *nx = e->hnext;
            hp_rcache_entry_t **slot = &b[e->hash & (nb - 1)];
            e->hnext = *slot;
            *slot = e;
            e = nx;
        }
    }
    hp_free(rc->buckets);
    rc->buckets = b;
    rc->mask = nb - 1;
}

int hp_rcache_put(hp_rcache_t *rc, const void *key, size_t klen, int status, const char *ctype,
                  const char *headers, size_t headers_len, const void *body, uint64_t body_len,
                  uint64_t ttl_ms, uint64_t now_ms)
{
    if (!ctype)
        ctype = "";
    size_t clen = strlen(ctype);
    if (klen >= UINT32_MAX || headers_len >= UINT32_MAX)
        return -E2BIG;
    uint64_t size = hp_rcache_entry_size(klen, clen, headers_len, body_len);
    if (size == UINT64_MAX || size > SIZE_MAX || (rc->max_bytes && size > rc->max_bytes))
        return -E2BIG;
    hp_rcache_entry_t *e = hp_malloc((size_t)size);
    if (!e)
        return -ENOMEM;

    char *p = (char *)(e + 1);
    if (klen)
        memcpy(p, key, klen);
    p += klen;
    memcpy(p, ctype, clen + 1);
    e->ctype = p;
    p += clen + 1;
    if (headers_len)
        memcpy(p, headers, headers_len);
    p[headers_len] = '\0';
    e->headers = p;
    p += headers_len + 1;
    if (body_len)
        memcpy(p, body, (size_t)body_len);
    e->body = p;

    /* The configured TTL caps whatever the handler asked for: it is the
     * operator's bound on how stale a cached answer may get. */
    uint64_t ttl = ttl_ms == 0 || ttl_ms > rc->default_ttl_ms ? rc->default_ttl_ms : ttl_ms;
    uint64_t exp;
    if (__builtin_add_overflow(now_ms, ttl, &exp))
        exp = UINT64_MAX;
    e->hash = key_hash(rc->seed, key, klen);
    e->klen = (uint32_t)klen;
    e->refs = 1; /* the table's */
    e->expires_ms = exp;
    e->status = status;
    e->headers_len = (uint32_t)headers_len;
    e->body_len = body_len;
    e->rc = rc;
    e->size = size;
    e->state = ST_TABLE;
    e->hnext = NULL;

    hp_rcache_entry_t *old = find(rc, key, klen, e->hash);
    if (old)
        drop(rc, old);
    while (rc->count + 1 > rc->max_entries ||
           (rc->max_bytes && rc->bytes + size > rc->max_bytes)) {
        assert(rc->lru.prev != &rc->lru); /* size <= max_bytes, max_entries >= 1 */
        drop(rc, rc->lru.prev);
        rc->evictions++;
    }

    hp_rcache_entry_t **slot = &rc->buckets[e->hash & rc->mask];
    e->hnext = *slot;
    *slot = e;
    list_push_front(&rc->lru, e);
    rc->count++;
    rc->bytes += size;
    rc->inserts++;
    if (HP_UNLIKELY(rc->count > rc->mask + 1 && rc->mask + 1 < rc->max_buckets))
        grow(rc);
    return 0;
}

/* ---- introspection ---------------------------------------------------- */

void hp_rcache_stats(const hp_rcache_t *rc, hp_rcache_stats_t *out)
{
    *out = (hp_rcache_stats_t){
        .hits = rc->hits,
        .misses = rc->misses,
        .evictions = rc->evictions,
        .expired = rc->expired,
        .inserts = rc->inserts,
        .entries = rc->count,
        .bytes = rc->bytes,
        .detached = rc->ndetached,
    };
}

/* Checks that the entry's copies sit where put placed them and its size
 * matches what put charged. */
static bool entry_ok(const hp_rcache_t *rc, const hp_rcache_entry_t *e)
{
    const char *k = entry_key(e);
    if (e->ctype != k + e->klen)
        return false;
    size_t clen = strlen(e->ctype);
    if (e->headers != e->ctype + clen + 1 || e->headers[e->headers_len] != '\0')
        return false;
    if ((const char *)e->body != e->headers + e->headers_len + 1)
        return false;
    if (e->size != hp_rcache_entry_size(e->klen, clen, e->headers_len, e->body_len))
        return false;
    return e->rc == rc && e->refs >= 1;
}

int hp_rcache_validate(const hp_rcache_t *rc)
{
    if (!rc || rc->max_entries == 0 || rc->default_ttl_ms == 0)
        return -EINVAL;
    uint64_t nb = rc->mask + 1;
    if ((nb & rc->mask) != 0 || nb > rc->max_buckets || (rc->max_buckets & (rc->max_buckets - 1)))
        return -EINVAL;

    /* Table: every entry in the bucket of its own hash, hash recomputed
     * from the stored key, in state TABLE. */
    uint64_t n = 0, bytes = 0;
    for (uint64_t i = 0; i < nb; i++) {
        for (const hp_rcache_entry_t *e = rc->buckets[i]; e; e = e->hnext) {
            if (++n > rc->count)
                return -EINVAL;
            if (e->state != ST_TABLE || (e->hash & rc->mask) != i ||
                e->hash != key_hash(rc->seed, entry_key(e), e->klen) || !entry_ok(rc, e))
                return -EINVAL;
            /* No duplicate keys: the first match from the bucket head is e. */
            if (find(rc, entry_key(e), e->klen, e->hash) != e)
                return -EINVAL;
            bytes += e->size;
        }
    }
    if (n != rc->count || bytes != rc->bytes)
        return -EINVAL;

    /* LRU list: the same entries, linked both ways. */
    n = 0;
    const hp_rcache_entry_t *prev = &rc->lru;
    for (const hp_rcache_entry_t *e = rc->lru.next; e != &rc->lru; e = e->next) {
        if (++n > rc->count || e->prev != prev || e->state != ST_TABLE)
            return -EINVAL;
        if (find(rc, entry_key(e), e->klen, e->hash) != e)
            return -EINVAL;
        prev = e;
    }
    if (n != rc->count || rc->lru.prev != prev)
        return -EINVAL;

    if (rc->count > rc->max_entries || (rc->max_bytes && rc->bytes > rc->max_bytes))
        return -EINVAL;

    n = 0;
    prev = &rc->detached;
    for (const hp_rcache_entry_t *e = rc->detached.next; e != &rc->detached; e = e->next) {
        if (++n > rc->ndetached || e->prev != prev || e->state != ST_DETACHED ||
            e->hnext != NULL || !entry_ok(rc, e))
            return -EINVAL;
        prev = e;
    }
    if (n != rc->ndetached || rc->detached.prev != prev)
        return -EINVAL;
    return 0;
}

/* ---- Cache-Control ---------------------------------------------------- */

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Case-insensitive comparison of v[0..n) with the lowercase literal s. */
static bool name_is(const char *v, size_t n, const char *s)
{
    size_t sl = strlen(s);
    if (n != sl)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((char)(v[i] | 0x20) != s[i])
            return false;
    return true;
}

/* Skips a quoted-string starting at v[i] == '"' (backslash escapes any
 * byte). Returns the index after the closing quote, or len + 1 when it is
 * unterminated. */
static size_t skip_quoted(const char *v, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (v[i] == '\\')
            i++;
        else if (v[i] == '"')
            return i + 1;
    }
    return len + 1;
}

/* delta-seconds (1*DIGIT) in v[0..n), clamped; -1 when not all digits. */
static int64_t delta_seconds(const char *v, size_t n)
{
    if (n == 0)
        return -1;
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        if (s < HP_RCACHE_MAX_AGE_CAP_S)
            s = s * 10 + (v[i] - '0');
    }
    return s > HP_RCACHE_MAX_AGE_CAP_S ? HP_RCACHE_MAX_AGE_CAP_S : s;
}

int64_t hp_rcache_max_age_ms(const char *v, size_t len)
{
    if (!v)
        return 0;
    int64_t age = -2; /* -2: no max-age seen */
    bool forbid = false;
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_ows(v[i]) || v[i] == ','))
            i++;
        if (i >= len)
            break;
        size_t ns = i;
        while (i < len && tchar_tbl[(unsigned char)v[i]])
            i++;
        const char *name = v + ns;
        size_t nlen = i - ns;
        bool is_age = name_is(name, nlen, "max-age");
        if (name_is(name, nlen, "no-store") || name_is(name, nlen, "private") ||
            name_is(name, nlen, "no-cache"))
            forbid = true; /* with or without an argument */

        /* Optional argument: '=' right after the name, then a token or a
         * quoted-string. */
        const char *arg = NULL;
        size_t alen = 0;
        bool bad = nlen == 0;
        if (i < len && v[i] == '=') {
            i++;
            if (i < len && v[i] == '"') {
                size_t q = skip_quoted(v, len, i);
                if (q > len)
                    return -1; /* unterminated: the rest cannot be split */
                arg = v + i + 1;
                alen = q - i - 2;
                i = q;
            } else {
                size_t as = i;
                while (i < len && tchar_tbl[(unsigned char)v[i]])
                    i++;
                arg = v + as;
                alen = i - as;
                bad |= alen == 0;
            }
        }
        while (i < len && is_ows(v[i]))
            i++;
        if (i < len && v[i] != ',') {
            /* Junk after the element (e.g. "max-age = 5"): skip to the next
             * comma outside quotes. */
            bad = true;
            while (i < len && v[i] != ',') {
                if (v[i] == '"') {
                    i = skip_quoted(v, len, i);
                    if (i > len)
                        return -1;
                } else {
                    i++;
                }
            }
        }
        if (is_age) {
            int64_t s = bad || !arg ? -1 : delta_seconds(arg, alen);
            if (s < 0 || age != -2)
                return -1; /* invalid or duplicate max-age: stale */
            age = s;
        }
    }
    if (forbid || age == 0)
        return -1;
    return age < 0 ? 0 : age * 1000;
}

/* ---- keys ------------------------------------------------------------- */

static inline char *put_part(char *p, const char *s, size_t n, uint32_t lenval)
{
    p[0] = (char)(lenval & 0xff);
    p[1] = (char)((lenval >> 8) & 0xff);
    p[2] = (char)((lenval >> 16) & 0xff);
    p[3] = (char)(lenval >> 24);
    if (n)
        memcpy(p + 4, s, n);
    return p + 4 + n;
}

ssize_t hp_rcache_key(char *buf, size_t cap, const char *method, size_t mlen, const char *path,
                      size_t plen, const char *query, size_t qlen, const char *const *vary_vals,
                      const size_t *vary_lens, size_t nvary)
{
    /* Count first so an undersized buffer is refused before any write. */
    size_t total = 0;
    const size_t fixed[3] = {mlen, plen, qlen};
    for (size_t i = 0; i < 3 + nvary; i++) {
        size_t n = i < 3 ? fixed[i] : (vary_vals[i - 3] ? vary_lens[i - 3] : 0);
        if (n >= UINT32_MAX)
            return -E2BIG;
        if (__builtin_add_overflow(total, 4 + n, &total))
            return -E2BIG;
    }
    if (total > cap || total > (size_t)SSIZE_MAX)
        return -ENOSPC;
    char *p = buf;
    p = put_part(p, method, mlen, (uint32_t)mlen);
    p = put_part(p, path, plen, (uint32_t)plen);
    p = put_part(p, query, qlen, (uint32_t)qlen);
    for (size_t i = 0; i < nvary; i++) {
        if (vary_vals[i])
            p = put_part(p, vary_vals[i], vary_lens[i], (uint32_t)vary_lens[i]);
        else
            p = put_part(p, NULL, 0, UINT32_MAX); /* absent, unlike "" */
    }
    assert((size_t)(p - buf) == total);
    return (ssize_t)total;
}
