/*
 * alloc.c - counted, fault-injectable wrappers around the C allocator.
 *
 * Invariant: alloc_count grows by one for every pointer handed out, so the
 * difference of two readings is the number of allocations made in between.
 */
#include "hotpath/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic uint64_t alloc_count;
static _Atomic uint64_t fail_countdown; /* 0: injection off */
static _Atomic int fail_sticky;

/* True when an injected fault says this allocation must fail. */
static int should_fail(void)
{
    uint64_t left = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (left == 0)
        return 0;
    if (left == 1) {
        if (!atomic_load_explicit(&fail_sticky, memory_order_relaxed))
            atomic_store_explicit(&fail_countdown, 0, memory_order_relaxed);
        return 1;
    }
    atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed);
    return 0;
}

static void *counted(void *p)
{
    if (p)
        atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
    return p;
}

void *hp_malloc(size_t size)
{
    return should_fail() ? NULL : counted(malloc(size));
}

void *hp_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : counted(calloc(n, size));
}

void *hp_realloc(void *ptr, size_t size)
{
    return should_fail() ? NULL : counted(realloc(ptr, size));
}

void *hp_calloc_aligned(size_t size)
{
    if (should_fail())
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 1) != 0)
        return NULL;
    memset(p, 0, size);
    return counted(p);
}

void hp_free(void *ptr)
{
    free(ptr);
}

uint64_t hp_alloc_count(void)
{
    return atomic_load_explicit(&alloc_count, memory_order_relaxed);
}

void hp_alloc_fail_after(uint64_t n, int sticky)
{
    atomic_store_explicit(&fail_sticky, sticky, memory_order_relaxed);
    atomic_store_explicit(&fail_countdown, n, memory_order_relaxed);
}
