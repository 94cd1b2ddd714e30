/*
 * alloc.h - the one door through which hotpath allocates heap memory.
 *
 * Every allocation in the library goes through hp_malloc/hp_calloc/
 * hp_realloc/hp_free. That gives two things:
 *   - a process-wide count of allocations, read by tests and /metrics to
 *     prove that steady-state request handling allocates nothing;
 *   - fault injection: tests make the Nth allocation fail and check that
 *     every constructor cleans up and reports -ENOMEM.
 * The counters are relaxed atomics: allocation is never on the request path,
 * so their cost does not matter, but workers may allocate concurrently.
 */
#ifndef HOTPATH_ALLOC_H
#define HOTPATH_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

/* Same contracts as malloc/calloc/realloc/free. Return NULL when the
 * underlying allocator fails or when an injected fault fires. hp_free(NULL)
 * does nothing. */
HP_EXPORT void *hp_malloc(size_t size);
HP_EXPORT void *hp_calloc(size_t n, size_t size);
HP_EXPORT void *hp_realloc(void *ptr, size_t size);
HP_EXPORT void hp_free(void *ptr);

/* Zeroed memory aligned to HP_CACHELINE (64 bytes), for structures with
 * cache-line-aligned members. Released with hp_free. */
HP_EXPORT void *hp_calloc_aligned(size_t size);

/* Number of successful hp_malloc/hp_calloc/hp_realloc calls since start. */
HP_EXPORT uint64_t hp_alloc_count(void);

/* Makes the allocation `n` calls from now fail (1 = the very next one),
 * and every one after it while `sticky` is true. 0 disables injection.
 * For tests only; not thread-safe against concurrent arming. */
HP_EXPORT void hp_alloc_fail_after(uint64_t n, int sticky);

#endif
