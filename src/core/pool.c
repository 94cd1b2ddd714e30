/*
 * pool.c - per-worker pool of fixed-size chunks.
 *
 * Data structure: an array of slabs (each one hp_malloc'd block of
 * nchunks * chunk_size bytes, rounded up to a 64-byte boundary), a LIFO
 * free list threaded through the first word of each free chunk, and a
 * "carve" range: the part of the newest slab that was never handed out.
 * Carving lazily instead of threading a whole new slab onto the free list
 * means growth writes nothing into the slab, so its pages are not faulted
 * in until a chunk is really used.
 *
 * Invariant: length(free list) + (carve_end - carve) / chunk_size + in_use
 * == capacity == sum of slab nchunks, and capacity <= max_chunks when
 * max_chunks != 0. hp_pool_get/hp_pool_put allocate nothing; only the
 * cold grow path calls the allocator.
 */
#include "pool_int.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "hotpath/alloc.h"
#include "hotpath/common.h"

/* First slab index size: most workers need only a handful of slabs. */
#define POOL_SLABS_MIN 4

int hp_pool_init(hp_pool_t *p, uint32_t chunk_size, uint32_t slab_chunks,
                 uint32_t max_chunks)
{
    memset(p, 0, sizeof(*p));
    if (chunk_size < HP_POOL_ALIGN || chunk_size % HP_POOL_ALIGN != 0 ||
        slab_chunks == 0)
        return -EINVAL;
    p->chunk_size = chunk_size;
    p->slab_chunks = slab_chunks;
    p->max_chunks = max_chunks;
    return 0;
}

/* Adds one slab and makes it the carve range. Returns false (pool
 * unchanged apart from a possibly larger slab index) on cap or OOM. */
static HP_COLD bool pool_grow(hp_pool_t *p)
{
    uint32_t n = p->slab_chunks;
    if (p->max_chunks != 0) {
        if (p->capacity >= p->max_chunks)
            return false;
        /* The last slab is cut short so the cap holds exactly. */
        if (n > p->max_chunks - p->capacity)
            n = p->max_chunks - p->capacity;
    }
    if (p->nslabs == UINT32_MAX || n > UINT32_MAX - p->capacity)
        return false;
    if (p->nslabs == p->slabs_cap) {
        /* Grow the index first: if that fails nothing else has changed,
         * and once it succeeds the slab always has a place. */
        uint32_t cap = p->slabs_cap ? p->slabs_cap * 2 : POOL_SLABS_MIN;
        hp_pool_slab_t *s = hp_realloc(p->slabs, (size_t)cap * sizeof(*s));
        if (!s)
            return false;
        p->slabs = s;
        p->slabs_cap = cap;
    }
    /* hp_malloc only promises max_align_t alignment; over-allocate and
     * round up so every chunk starts on a cache line. */
    size_t size = (size_t)n * p->chunk_size + HP_POOL_ALIGN - 1;
    void *raw = hp_malloc(size);
    if (!raw)
        return false;
    char *base = (char *)(((uintptr_t)raw + HP_POOL_ALIGN - 1) &
                          ~(uintptr_t)(HP_POOL_ALIGN - 1));
    p->slabs[p->nslabs++] = (hp_pool_slab_t){raw, base, n};
    /* Any chunks left in the old carve range are lost to use; that cannot
     * happen because we only grow when the carve range is empty. */
    assert(p->carve == p->carve_end);
    p->carve = base;
    p->carve_end = base + (size_t)n * p->chunk_size;
    p->capacity += n;
    p->bytes += size;
    return true;
}

void *hp_pool_get(hp_pool_t *p)
{
    void *c = p->free;
    if (HP_LIKELY(c != NULL)) {
        memcpy(&p->free, c, sizeof(void *));
    } else {
        if (p->carve == p->carve_end && !pool_grow(p))
            return NULL;
        c = p->carve;
        p->carve += p->chunk_size;
    }
    p->in_use++;
    return c;
}

void hp_pool_put(hp_pool_t *p, void *chunk)
{
    assert(chunk != NULL && p->in_use > 0);
    assert(((uintptr_t)chunk & (HP_POOL_ALIGN - 1)) == 0);
    memcpy(chunk, &p->free, sizeof(void *));
    p->free = chunk;
    p->in_use--;
}

void hp_pool_destroy(hp_pool_t *p)
{
    assert(p->in_use == 0);
    for (uint32_t i = 0; i < p->nslabs; i++)
        hp_free(p->slabs[i].raw);
    hp_free(p->slabs);
    memset(p, 0, sizeof(*p));
}

uint32_t hp_pool_in_use(const hp_pool_t *p)
{
    return p->in_use;
}

uint32_t hp_pool_capacity(const hp_pool_t *p)
{
    return p->capacity;
}

size_t hp_pool_bytes(const hp_pool_t *p)
{
    return p->bytes;
}

/* The slab holding `c` on a chunk boundary, or NULL. */
static const hp_pool_slab_t *slab_of(const hp_pool_t *p, const char *c)
{
    for (uint32_t i = 0; i < p->nslabs; i++) {
        const hp_pool_slab_t *s = &p->slabs[i];
        size_t span = (size_t)s->nchunks * p->chunk_size;
        if (c >= s->base && c < s->base + span)
            return (size_t)(c - s->base) % p->chunk_size == 0 ? s : NULL;
    }
    return NULL;
}

int hp_pool_validate(const hp_pool_t *p)
{
    if (p->chunk_size < HP_POOL_ALIGN || p->chunk_size % HP_POOL_ALIGN ||
        p->slab_chunks == 0)
        return -EINVAL;
    if (p->nslabs > p->slabs_cap || (p->slabs_cap && !p->slabs))
        return -EINVAL;
    uint64_t cap = 0, bytes = 0;
    for (uint32_t i = 0; i < p->nslabs; i++) {
        const hp_pool_slab_t *s = &p->slabs[i];
        if (!s->raw || s->base < (char *)s->raw ||
            s->base >= (char *)s->raw + HP_POOL_ALIGN ||
            ((uintptr_t)s->base & (HP_POOL_ALIGN - 1)) || s->nchunks == 0 ||
            s->nchunks > p->slab_chunks)
            return -EINVAL;
        cap += s->nchunks;
        bytes += (uint64_t)s->nchunks * p->chunk_size + HP_POOL_ALIGN - 1;
    }
    if (cap != p->capacity || bytes != p->bytes)
        return -EINVAL;
    if (p->max_chunks && p->capacity > p->max_chunks)
        return -EINVAL;
    /* The carve range is the unused tail of the newest slab. */
    uint64_t uncarved = 0;
    if (p->carve != p->carve_end) {
        if (p->nslabs == 0)
            return -EINVAL;
        const hp_pool_slab_t *s = &p->slabs[p->nslabs - 1];
        char *end = s->base + (size_t)s->nchunks * p->chunk_size;
        if (p->carve_end != end || p->carve < s->base || p->carve > end ||
            (size_t)(p->carve - s->base) % p->chunk_size)
            return -EINVAL;
        uncarved = (size_t)(end - p->carve) / p->chunk_size;
    }
    /* Walk the free list; more links than chunks means a cycle. */
    uint64_t nfree = 0;
    for (const char *c = p->free; c != NULL;) {
        if (++nfree > p->capacity || !slab_of(p, c))
            return -EINVAL;
        const hp_pool_slab_t *last = &p->slabs[p->nslabs - 1];
        if (slab_of(p, c) == last && c >= p->carve && c < p->carve_end)
            return -EINVAL; /* free chunk inside the never-used range */
        const void *next;
        memcpy(&next, c, sizeof(next));
        c = next;
    }
    if (nfree + uncarved + p->in_use != p->capacity)
        return -EINVAL;
    return 0;
}
