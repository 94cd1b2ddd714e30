/*
 * pool_int.h - per-worker pool of fixed-size, 64-byte-aligned memory chunks.
 *
 * Read and write buffers come from here: a connection takes a chunk when
 * bytes arrive and gives it back when it goes idle, so idle connections hold
 * no buffer memory and steady-state traffic never calls the allocator.
 * A pool belongs to one worker thread; nothing here is thread-safe.
 *
 * Memory is obtained in slabs of `slab_chunks` chunks (one hp_malloc each)
 * and is only given back by hp_pool_destroy(). Free chunks form a LIFO list
 * threaded through their first word, so the chunk handed out next is the
 * one returned last, whose cache lines and pages are still warm.
 */
#ifndef HOTPATH_POOL_INT_H
#define HOTPATH_POOL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

/* Smallest chunk and the alignment of every chunk: one cache line. */
#define HP_POOL_ALIGN 64

/* One block of memory obtained from the allocator. */
typedef struct hp_pool_slab {
    void *raw;     /* owned: what hp_malloc returned (freed by destroy) */
    char *base;    /* first chunk: raw rounded up to HP_POOL_ALIGN */
    uint32_t nchunks;
} hp_pool_slab_t;

typedef struct hp_pool {
    /* Hot fields first: get/put touch only this line. */
    void *free;          /* head of the free list (next pointer in word 0) */
    char *carve;         /* next never-used chunk in the newest slab */
    char *carve_end;     /* end of the newest slab's chunks */
    uint32_t in_use;     /* chunks handed out and not yet returned */
    uint32_t chunk_size;
    /* Cold fields: touched when the pool grows or is inspected. */
    uint32_t slab_chunks;
    uint32_t max_chunks; /* 0 = unlimited */
    uint32_t capacity;   /* chunks in all slabs */
    uint32_t nslabs;
    uint32_t slabs_cap;  /* entries allocated in `slabs` */
    hp_pool_slab_t *slabs; /* owned, grown with hp_realloc */
    size_t bytes;        /* bytes requested from the allocator for slabs */
} hp_pool_t;

/* Prepares an empty pool; allocates nothing. chunk_size must be a multiple
 * of HP_POOL_ALIGN (so at least 64), slab_chunks at least 1; max_chunks
 * caps the chunks the pool will ever hold (0: no cap).
 * Returns 0, or -EINVAL for a bad size (the pool is then left zeroed). */
int hp_pool_init(hp_pool_t *p, uint32_t chunk_size, uint32_t slab_chunks,
                           uint32_t max_chunks);

/* Hands out a chunk of chunk_size bytes aligned to HP_POOL_ALIGN, the most
 * recently returned one first. Grows the pool by one slab when no free
 * chunk is left (the only path that allocates). Returns NULL when
 * max_chunks are all handed out or the allocator fails; the pool stays
 * valid and usable either way. The caller owns the chunk until it passes
 * it back with hp_pool_put(). Contents are undefined. */
void *hp_pool_get(hp_pool_t *p);

/* Returns `chunk` (owned by the caller, obtained from this pool's
 * hp_pool_get) to the free list. Never frees memory. */
void hp_pool_put(hp_pool_t *p, void *chunk);

/* Frees every slab and zeroes the pool. Every chunk must have been put
 * back (asserted). Safe on a pool that never allocated. */
void hp_pool_destroy(hp_pool_t *p);

/* Chunks currently handed out. */
uint32_t hp_pool_in_use(const hp_pool_t *p);

/* Chunks held in slabs, handed out or not. */
uint32_t hp_pool_capacity(const hp_pool_t *p);

/* Bytes obtained from the allocator for slabs (alignment slack included;
 * the small slab index is not counted). */
size_t hp_pool_bytes(const hp_pool_t *p);

/* Checks every invariant: free chunks + never-used chunks + in_use ==
 * capacity, the free list has no cycle, every free chunk lies inside a
 * slab on a chunk boundary, counters agree with the slabs.
 * Returns 0, or -EINVAL at the first violation. O(free * slabs): tests. */
int hp_pool_validate(const hp_pool_t *p);

#endif
