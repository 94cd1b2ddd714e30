/*
 * fcache.c - per-worker open-file cache for static files: descriptors,
 * validators and on-the-fly compressed bodies, kept per request path.
 *
 * Central structure: fentry_t, the public hp_fcache_entry_t wrapped with
 * its bookkeeping, reachable two ways while it is in the table: from a
 * chained hash bucket (hash of root_fd and the raw path) and from a doubly
 * linked LRU list, most recently used at the head. Entries that left the
 * table while referenced (evicted, replaced, cleared, or one-off entries
 * made when the table was full of referenced ones) sit on a second list,
 * `detached`, so that hp_fcache_free can orphan them.
 *
 * Invariants:
 *  - an entry is either IN_TABLE (in one bucket and on the LRU list) or
 *    detached with refs > 0; an unreferenced entry leaving the table is
 *    freed at once, closing its descriptors;
 *  - table size <= max_entries;
 *  - fc->bytes is the sum of the compressed bodies of every live entry,
 *    table or detached, and stays <= max_bytes;
 *  - an entry's stat signatures (sig[]) describe exactly the files whose
 *    descriptors and sizes it holds, so an equal fstatat proves that a
 *    descriptor still stands for what the path names.
 */
#include "fcache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "hotpath/common.h"
#include "accept_int.h"
#include "encoding_int.h"
#include "static_int.h"

/* What an fstatat of one of the entry's names said when the entry was
 * built. A name that did not exist (or could not be looked at) is
 * `exists = false`; revalidation demands the same answer again. ctime is
 * included because it moves on every write even when a tool restores the
 * mtime (cp -p, tar, rsync -t). */
typedef struct fsig {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
} fsig_t;

/* In-memory body states, and which body. */
enum { Z_UNTRIED = 0, Z_NONE, Z_READY };
enum { Z_GZIP = 0, Z_BR, Z_PLAIN, ZN };

typedef struct zbody {
    uint8_t state;
    void *buf;      /* owned, Z_READY only */
    uint64_t len;
} zbody_t;

enum { FE_IN_TABLE = 1u << 0 };

typedef struct fentry fentry_t;
struct fentry {
    hp_fcache_entry_t pub;
    hp_fcache_t *fc;          /* NULL once the cache was freed */
    fentry_t *hnext;          /* hash chain */
    fentry_t *prev, *next;    /* LRU list, or the detached list */
    uint32_t refs;
    uint32_t flags;           /* FE_* */
    uint64_t hash;
    uint64_t checked_ms;      /* last time the file system was asked */
    int root_fd;
    fsig_t sig[HP_FCACHE_NVAR];
    zbody_t z[ZN];            /* [Z_GZIP], [Z_BR]: compressed; [Z_PLAIN]: the file's bytes */
    uint32_t key_len, rel_len;
    char *rel;                /* NUL-terminated normalised relative path,
                               * inside this allocation after the key, with
                               * 3 spare bytes for a ".gz"/".br" suffix */
    char key[];               /* raw path bytes before '?'/'#' */
};

typedef struct flist {
    fentry_t *head, *tail;
} flist_t;

struct hp_fcache {
    fentry_t **buckets;
    uint32_t nbuckets;        /* power of two >= max_entries */
    uint32_t max_entries;
    uint64_t max_bytes;
    uint64_t revalidate_ms;
    flist_t lru;              /* table entries, most recent first */
    flist_t detached;         /* referenced entries outside the table */
    hp_fcache_stats_t st;
};

static fentry_t *fe_of(hp_fcache_entry_t *e)
{
    return HP_CONTAINER_OF(e, fentry_t, pub);
}

/* ---- lists and the table ---- */

static void list_push(flist_t *l, fentry_t *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
}

static void list_del(flist_t *l, fentry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
}

/* FNV-1a over the path, with the root folded in first: cheap, and the
 * table is small and never faces an adversary who could exploit it beyond
 * longer chains within max_entries. */
static uint64_t key_hash(int root_fd, const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(uint32_t)root_fd;
    h *= 1099511628211ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)k[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static fentry_t **bucket_of(hp_fcache_t *fc, uint64_t h)
{
    return &fc->buckets[h & (fc->nbuckets - 1)];
}

static fentry_t *table_find(hp_fcache_t *fc, uint64_t h, int root_fd, const char *k, size_t n)
{
    for (fentry_t *e = *bucket_of(fc, h); e; e = e->hnext)
        if (e->hash == h && e->root_fd == root_fd && e->key_len == n &&
            memcmp(e->key, k, n) == 0)
            return e;
    return NULL;
}

static void table_insert(hp_fcache_t *fc, fentry_t *e)
{
    fentry_t **b = bucket_of(fc, e->hash);
    e->hnext = *b;
    *b = e;
    list_push(&fc->lru, e);
    e->flags |= FE_IN_TABLE;
    fc->st.entries++;
}

/* ---- entry life ---- */

static void free_entry(fentry_t *e)
{
    for (int i = 0; i < HP_FCACHE_NVAR; i++)
        if (e->pub.v[i].fd >= 0)
            close(e->pub.v[i].fd);
    for (int i = 0; i < ZN; i++) {
        if (e->z[i].state == Z_READY) {
            if (e->fc)
                e->fc->st.bytes -= e->z[i].len;
            hp_free(e->z[i].buf);
        }
    }
    hp_free(e);
}

/* Takes e out of the table; frees it unless somebody still holds it, in
 * which case it waits on the detached list for its last release. */
static void table_remove(hp_fcache_t *fc, fentry_t *e)
{
    fentry_t **p = bucket_of(fc, e->hash);
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
    e->hnext = NULL;
    list_del(&fc->lru, e);
    e->flags &= ~(uint32_t)FE_IN_TABLE;
    fc->st.entries--;
    if (e->refs == 0)
        free_entry(e);
    else
        list_push(&fc->detached, e);
}

void hp_fcache_ref(hp_fcache_entry_t *pub)
{
    fe_of(pub)->refs++;
}

void hp_fcache_release(hp_fcache_entry_t *pub)
{
    fentry_t *e = fe_of(pub);
    if (--e->refs > 0 || (e->flags & FE_IN_TABLE))
        return;
    if (e->fc)
        list_del(&e->fc->detached, e);
    free_entry(e);
}

void hp_fcache_release_cb(void *entry)
{
    hp_fcache_release(entry);
}

/* ---- building an entry ---- */

static fsig_t sig_of(const struct stat *st)
{
    return (fsig_t){.exists = true, .dev = st->st_dev, .ino = st->st_ino, .size = st->st_size,
                    .mtim = st->st_mtim, .ctim = st->st_ctim};
}

static fsig_t sig_at(int root_fd, const char *rel)
{
    struct stat st;
    if (fstatat(root_fd, rel, &st, 0) < 0)
        return (fsig_t){.exists = false};
    return sig_of(&st);
}

static bool sig_equal(const fsig_t *a, const fsig_t *b)
{
    if (a->exists != b->exists)
        return false;
    return !a->exists ||
           (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
            a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
            a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec);
}

static void variant_set(hp_fcache_variant_t *v, int fd, const struct stat *st)
{
    v->fd = fd;
    v->size = (uint64_t)st->st_size;
    v->mtime_sec = (int64_t)st->st_mtim.tv_sec;
    v->mtime_nsec = st->st_mtim.tv_nsec;
    hp_cond_etag_make(v->etag, sizeof v->etag, v->size, v->mtime_sec, v->mtime_nsec);
}

/* Turns e->rel into the name of its sibling with `suffix` ("gz", "br"),
 * in place; sibling_end() puts the NUL back. */
static const char *sibling_name(fentry_t *e, const char *suffix)
{
    e->rel[e->rel_len] = '.';
    memcpy(e->rel + e->rel_len + 1, suffix, 3); /* with its NUL */
    return e->rel;
}

static void sibling_end(fentry_t *e)
{
    e->rel[e->rel_len] = '\0';
}

/* Writes "/" + rel + suffix into dst as a request target that
 * hp_static_resolve decodes back to exactly rel + suffix: the three bytes
 * its decoder treats specially ('%', '?', '#') are percent-encoded. rel
 * has no NUL and no empty or dot segment, so normalising it is a no-op.
 * Returns the length. dst must hold 1 + 3 * rel_len + 3 bytes (no NUL). */
static size_t sibling_target(char *dst, const char *rel, size_t rel_len, const char *suffix)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    dst[o++] = '/';
    for (size_t i = 0; i < rel_len; i++) {
        char c = rel[i];
        if (c == '%' || c == '?' || c == '#') {
            dst[o++] = '%';
            dst[o++] = hex[(uint8_t)c >> 4];
            dst[o++] = hex[(uint8_t)c & 15];
        } else {
            dst[o++] = c;
        }
    }
    dst[o++] = '.';
    dst[o++] = suffix[0];
    dst[o++] = suffix[1];
    return o;
}

/* True when a sibling modified at `t` predates the original `id`: it was
 * made from an older version of the file and must not be served. */
static bool stale(const struct timespec *t, const hp_fcache_variant_t *id)
{
    return t->tv_sec < id->mtime_sec || (t->tv_sec == id->mtime_sec && t->tv_nsec < id->mtime_nsec);
}

/* Opens the sibling rel + suffix ("gz" or "br") of e into e->pub.v[vi],
 * under the rules of hp_static_resolve_encoded: beneath the root (the
 * open goes through hp_static_resolve), a regular file, and not older than
 * the original. The signature is always recorded: the opened file's when
 * it was taken, else whatever fstatat saw (absent, a directory, stale ...),
 * so that revalidation notices when that answer changes.
 * `*tbuf` is a target buffer allocated on first need; NULL on OOM, which
 * just leaves the sibling out (the original is served). */
static void open_sibling(fentry_t *e, int vi, const char *suffix, char **tbuf, char *scratch,
                         size_t scratch_len)
{
    hp_fcache_variant_t *v = &e->pub.v[vi];
    v->fd = -1;
    /* The stat first: in the common case (no sibling) it is the only
     * syscall, and a failing stat is cheaper than a failing open. */
    e->sig[vi] = sig_at(e->root_fd, sibling_name(e, suffix));
    sibling_end(e);
    if (!e->sig[vi].exists || stale(&e->sig[vi].mtim, &e->pub.v[0]))
        return;
    /* A transient failure (no memory, no descriptors) must not be
     * remembered as "no sibling": a signature that cannot match makes the
     * next revalidation rebuild the entry. */
    if (!*tbuf && !(*tbuf = hp_malloc(1 + 3 * (size_t)e->rel_len + 4))) {
        e->sig[vi].exists = false;
        return;
    }
    size_t tlen = sibling_target(*tbuf, e->rel, e->rel_len, suffix);
    hp_static_file_t f;
    int rc = hp_static_resolve(e->root_fd, *tbuf, tlen, scratch, scratch_len, &f);
    if (rc < 0) {
        /* A directory, a FIFO, a symlink out of the root, EACCES ...: a
         * lasting answer, kept until the name changes. */
        if (rc == -503)
            e->sig[vi].exists = false;
        return;
    }
    struct stat st;
    if (fstat(f.fd, &st) < 0) {
        close(f.fd);
        return;
    }
    /* What is open now is what the signature must describe; if the file
     * was swapped between the stat and the open, the check is redone on
     * what was opened. */
    e->sig[vi] = sig_of(&st);
    if (stale(&st.st_mtim, &e->pub.v[0])) {
        close(f.fd);
        return;
    }
    variant_set(v, f.fd, &st);
}

/* Resolves the target into a new, unreferenced entry that is in no list.
 * Returns it in *out, or the negative HTTP status. */
static int build_entry(hp_fcache_t *fc, int root_fd, const hp_mime_t *types, const char *target,
                       size_t target_len, size_t key_len, uint64_t h, uint64_t now_ms,
                       char *scratch, size_t scratch_len, fentry_t **out)
{
    hp_static_file_t f;
    unsigned enc;
    int rc = hp_static_resolve_encoded(root_fd, types, target, target_len, 0, scratch,
                                       scratch_len, &f, &enc);
    if (rc < 0)
        return rc;
    struct stat st;
    if (fstat(f.fd, &st) < 0) {
        close(f.fd);
        return -500;
    }
    /* hp_static_resolve_encoded leaves the NUL-terminated relative path in
     * scratch. */
    size_t rel_len = strlen(scratch);
    fentry_t *e = hp_malloc(sizeof *e + key_len + 1 + rel_len + 4);
    if (!e) {
        close(f.fd);
        return -503;
    }
    memset(e, 0, sizeof *e);
    e->fc = fc;
    e->hash = h;
    e->checked_ms = now_ms;
    e->root_fd = root_fd;
    e->key_len = (uint32_t)key_len;
    memcpy(e->key, target, key_len);
    e->key[key_len] = '\0';
    e->rel = e->key + key_len + 1;
    e->rel_len = (uint32_t)rel_len;
    memcpy(e->rel, scratch, rel_len + 1);

    e->pub.mime = f.mime;
    hp_clock_date_format(f.mtime_sec, e->pub.last_modified);
    variant_set(&e->pub.v[0], f.fd, &st);
    e->sig[0] = sig_of(&st);
    char *tbuf = NULL;
    open_sibling(e, HP_FCACHE_V_GZIP, "gz", &tbuf, scratch, scratch_len);
    open_sibling(e, HP_FCACHE_V_BR, "br", &tbuf, scratch, scratch_len);
    hp_free(tbuf);
    *out = e;
    return 0;
}

/* One fstatat per name of the entry: true when each still names what the
 * entry holds (or still names nothing usable, for siblings). */
static bool still_valid(fentry_t *e)
{
    fsig_t now = sig_at(e->root_fd, e->rel);
    if (!now.exists || !sig_equal(&now, &e->sig[0]))
        return false;
    static const char *const sfx[HP_FCACHE_NVAR] = {NULL, "gz", "br"};
    for (int i = 1; i < HP_FCACHE_NVAR; i++) {
        now = sig_at(e->root_fd, sibling_name(e, sfx[i]));
        sibling_end(e);
        if (!sig_equal(&now, &e->sig[i]))
            return false;
    }
    return true;
}

/* Makes room for one more entry: evicts the least recently used
 * unreferenced one. False when every entry is referenced. */
static bool make_room(hp_fcache_t *fc)
{
    for (fentry_t *e = fc->lru.tail; e; e = e->prev) {
        if (e->refs == 0) {
            table_remove(fc, e);
            fc->st.evictions++;
            return true;
        }
    }
    return false;
}

int hp_fcache_get(hp_fcache_t *fc, int root_fd, const hp_mime_t *types, const char *target,
                  size_t target_len, uint64_t now_ms, char *scratch, size_t scratch_len,
                  hp_fcache_entry_t **out)
{
    size_t key_len = 0;
    while (key_len < target_len && target[key_len] != '?' && target[key_len] != '#')
        key_len++;
    uint64_t h = key_hash(root_fd, target, key_len);
    fentry_t *e = table_find(fc, h, root_fd, target, key_len);
    if (HP_LIKELY(e != NULL)) {
        /* Unsigned: a clock that went backwards also revalidates. */
        if (now_ms - e->checked_ms >= fc->revalidate_ms) {
            fc->st.revalidations++;
            if (still_valid(e)) {
                e->checked_ms = now_ms;
            } else {
                fc->st.replaced++;
                table_remove(fc, e);
                e = NULL;
            }
        }
        if (e) {
            fc->st.hits++;
            if (e != fc->lru.head) {
                list_del(&fc->lru, e);
                list_push(&fc->lru, e);
            }
            e->refs++;
            *out = &e->pub;
            return 0;
        }
    } else {
        fc->st.misses++;
    }

    int rc = build_entry(fc, root_fd, types, target, target_len, key_len, h, now_ms, scratch,
                         scratch_len, &e);
    if (rc < 0)
        return rc;
    e->refs = 1;
    if (fc->st.entries < fc->max_entries || make_room(fc)) {
        table_insert(fc, e);
    } else {
        /* Every entry is being sent: serve this one without caching it. */
        fc->st.uncached++;
        list_push(&fc->detached, e);
    }
    *out = &e->pub;
    return 0;
}

int hp_fcache_select(const hp_fcache_entry_t *e, unsigned accept, unsigned *encoding)
{
    int order[2] = {HP_FCACHE_V_BR, HP_FCACHE_V_GZIP};
    if (accept & HP_STATIC_GZIP_FIRST)
        order[0] = HP_FCACHE_V_GZIP, order[1] = HP_FCACHE_V_BR;
    for (int k = 0; k < 2; k++) {
        unsigned bit = order[k] == HP_FCACHE_V_BR ? HP_ENC_BR : HP_ENC_GZIP;
        if ((accept & bit) && e->v[order[k]].fd >= 0) {
            *encoding = bit;
            return order[k];
        }
    }
    *encoding = HP_ENC_IDENTITY;
    return HP_FCACHE_V_IDENTITY;
}

/* ---- on-the-fly compression ---- */

/* Drops compressed bodies of unreferenced entries, least recently used
 * first, until `need` more bytes fit under max_bytes. `keep` is skipped. */
static bool make_bytes(hp_fcache_t *fc, uint64_t need, const fentry_t *keep)
{
    for (fentry_t *e = fc->lru.tail; e && fc->st.bytes + need > fc->max_bytes; e = e->prev) {
        if (e->refs || e == keep)
            continue;
        for (int i = 0; i < ZN; i++) {
            if (e->z[i].state != Z_READY)
                continue;
            hp_free(e->z[i].buf);
            fc->st.bytes -= e->z[i].len;
            fc->st.body_drops++;
            /* Untried again, so the next request for it rebuilds it. */
            e->z[i] = (zbody_t){.state = Z_UNTRIED};
        }
    }
    return fc->st.bytes + need <= fc->max_bytes;
}

/* Reads the whole identity file; 0 or -errno (-EIO when it came up short,
 * i.e. the file shrank: the next revalidation replaces the entry). */
static int read_all(int fd, void *buf, uint64_t size)
{
    uint64_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, (char *)buf + got, (size_t)(size - got), (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        got += (uint64_t)n;
    }
    return 0;
}

/* Compresses the identity file into z. Returns 0 (z READY or NONE) or
 * -ENOMEM (z left UNTRIED). */
static int compress_into(hp_fcache_t *fc, fentry_t *e, zbody_t *z, unsigned encoding, int level)
{
    const hp_fcache_variant_t *id = &e->pub.v[HP_FCACHE_V_IDENTITY];
    size_t size = (size_t)id->size;
    size_t cap = hp_encoding_bound(encoding, size);
    /* Too small to save 10 %, or no budget for bodies at all. */
    if (cap == 0 || fc->max_bytes == 0) {
        z->state = Z_NONE;
        return 0;
    }
    fc->st.compressions++;
    void *in = hp_malloc(size);
    if (!in)
        return -ENOMEM;
    int rc = read_all(id->fd, in, size);
    if (rc < 0) {
        hp_free(in);
        z->state = Z_NONE;
        return 0;
    }
    void *outb = hp_malloc(cap);
    if (!outb) {
        hp_free(in);
        return -ENOMEM;
    }
    ssize_t n = hp_encoding_compress(encoding, level, in, size, outb, cap);
    hp_free(in);
    if (n == -ENOMEM) {
        hp_free(outb);
        return -ENOMEM;
    }
    if (n <= 0) {
        /* Saves under 10 % (or cannot be compressed at all): remembered,
         * so the file is sent as identity from now on at no cost. */
        hp_free(outb);
        z->state = Z_NONE;
        return 0;
    }
    if ((uint64_t)n > fc->max_bytes) {
        hp_free(outb);
        z->state = Z_NONE;
        return 0;
    }
    if (!make_bytes(fc, (uint64_t)n, e)) {
        /* The room is held by entries being sent: not now. Left untried,
         * so a later request can keep it once they are released. */
        hp_free(outb);
        return 0;
    }
    /* Give back the slack between the bound and the result. */
    void *shrunk = hp_realloc(outb, (size_t)n);
    z->buf = shrunk ? shrunk : outb;
    z->len = (uint64_t)n;
    z->state = Z_READY;
    fc->st.bytes += (uint64_t)n;
    return 0;
}

int hp_fcache_compressed(hp_fcache_t *fc, hp_fcache_entry_t *pub, unsigned encoding, int level,
                         uint64_t min_size, const void **buf, uint64_t *len,
                         char etag[HP_ETAG_MAX])
{
    if (encoding != HP_ENC_GZIP && encoding != HP_ENC_BR)
        return -EINVAL;
    fentry_t *e = fe_of(pub);
    zbody_t *z = &e->z[encoding == HP_ENC_BR];
    /* The same entry may serve locations with different minimum sizes,
     * so that test is made per call and never remembered. */
    uint64_t size = pub->v[HP_FCACHE_V_IDENTITY].size;
    if (size < min_size || size == 0)
        return -ENOENT;
    if (z->state == Z_UNTRIED) {
        if (size > HP_FCACHE_COMPRESS_MAX || !hp_encoding_type_ok(pub->mime)) {
            z->state = Z_NONE;
            return -ENOENT;
        }
        if (level < HP_ENCODING_LEVEL_MIN || level > HP_ENCODING_LEVEL_MAX)
            return -EINVAL;
        int rc = compress_into(fc, e, z, encoding, level);
        if (rc < 0)
            return rc;
    }
    if (z->state != Z_READY)
        return -ENOENT;
    /* The identity tag with a coding suffix inside the quotes: 35 + 3 + NUL
     * fits HP_ETAG_MAX. */
    const char *it = pub->v[HP_FCACHE_V_IDENTITY].etag;
    size_t n = strlen(it);
    memcpy(etag, it, n - 1);
    memcpy(etag + n - 1, encoding == HP_ENC_BR ? "-br\"" : "-gz\"", 5);
    *buf = z->buf;
    *len = z->len;
    return 0;
}

/* ---- small files in memory ---- */

int hp_fcache_body(hp_fcache_t *fc, hp_fcache_entry_t *pub, const void **buf)
{
    fentry_t *e = fe_of(pub);
    zbody_t *z = &e->z[Z_PLAIN];
    if (z->state == Z_UNTRIED) {
        uint64_t size = pub->v[HP_FCACHE_V_IDENTITY].size;
        z->state = Z_NONE;
        if (size == 0 || size > HP_FCACHE_MEM_MAX || size > fc->max_bytes)
            return -ENOENT;
        void *b = hp_malloc((size_t)size);
        if (!b) {
            z->state = Z_UNTRIED; /* try again later */
            return -ENOENT;
        }
        if (read_all(pub->v[HP_FCACHE_V_IDENTITY].fd, b, size) < 0 ||
            !make_bytes(fc, size, e)) {
            hp_free(b);
            z->state = Z_UNTRIED;
            return -ENOENT;
        }
        *z = (zbody_t){.state = Z_READY, .buf = b, .len = size};
        fc->st.bytes += size;
    }
    if (z->state != Z_READY)
        return -ENOENT;
    *buf = z->buf;
    return 0;
}

/* ---- the cache ---- */

int hp_fcache_new(hp_fcache_t **out, uint32_t max_entries, uint64_t max_bytes,
                  uint64_t revalidate_ms)
{
    if (max_entries == 0 || max_entries > (1u << 30))
        return -EINVAL;
    uint32_t nb = 8;
    while (nb < max_entries)
        nb <<= 1;
    hp_fcache_t *fc = hp_calloc(1, sizeof *fc);
    if (!fc)
        return -ENOMEM;
    fc->buckets = hp_calloc(nb, sizeof *fc->buckets);
    if (!fc->buckets) {
        hp_free(fc);
        return -ENOMEM;
    }
    fc->nbuckets = nb;
    fc->max_entries = max_entries;
    fc->max_bytes = max_bytes;
    fc->revalidate_ms = revalidate_ms;
    *out = fc;
    return 0;
}

void hp_fcache_clear(hp_fcache_t *fc)
{
    while (fc->lru.head)
        table_remove(fc, fc->lru.head);
}

void hp_fcache_free(hp_fcache_t *fc)
{
    if (!fc)
        return;
    hp_fcache_clear(fc);
    /* The rest is referenced: cut it loose; its last release frees it. */
    for (fentry_t *e = fc->detached.head; e; e = e->next)
        e->fc = NULL;
    hp_free(fc->buckets);
    hp_free(fc);
}

void hp_fcache_stats(const hp_fcache_t *fc, hp_fcache_stats_t *out)
{
    *out = fc->st;
}

static uint64_t zbytes(const fentry_t *e)
{
    uint64_t b = 0;
    for (int i = 0; i < ZN; i++)
        if (e->z[i].state == Z_READY)
            b += e->z[i].len;
    return b;
}

int hp_fcache_validate(const hp_fcache_t *fc)
{
    uint64_t n = 0, bytes = 0;
    for (uint32_t b = 0; b < fc->nbuckets; b++) {
        for (const fentry_t *e = fc->buckets[b]; e; e = e->hnext) {
            if (!(e->flags & FE_IN_TABLE) || (e->hash & (fc->nbuckets - 1)) != b ||
                e->fc != fc || e->pub.v[0].fd < 0)
                return -EINVAL;
            if (++n > fc->max_entries)
                return -EINVAL;
        }
    }
    if (n != fc->st.entries)
        return -EINVAL;
    uint64_t m = 0;
    const fentry_t *prev = NULL;
    for (const fentry_t *e = fc->lru.head; e; prev = e, e = e->next) {
        if (e->prev != prev || !(e->flags & FE_IN_TABLE) || ++m > n)
            return -EINVAL;
        const fentry_t *f = fc->buckets[e->hash & (fc->nbuckets - 1)];
        while (f && f != e)
            f = f->hnext;
        if (!f)
            return -EINVAL;
        bytes += zbytes(e);
    }
    if (m != n || fc->lru.tail != prev)
        return -EINVAL;
    prev = NULL;
    for (const fentry_t *e = fc->detached.head; e; prev = e, e = e->next) {
        if (e->prev != prev || (e->flags & FE_IN_TABLE) || e->refs == 0 || e->fc != fc)
            return -EINVAL;
        bytes += zbytes(e);
    }
    if (fc->detached.tail != prev || bytes != fc->st.bytes || bytes > fc->max_bytes)
        return -EINVAL;
    return 0;
}
