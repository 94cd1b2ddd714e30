/*
 * common.h - the few compiler helpers every hotpath module shares.
 *
 * Kept deliberately tiny: branch hints, cold-path markers, cache-line size,
 * the export marker and a container-of. Nothing here allocates or holds state.
 */
#ifndef HOTPATH_COMMON_H
#define HOTPATH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define HP_LIKELY(x) __builtin_expect(!!(x), 1)
#define HP_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Refill, grow and error paths live out of line so the common case stays
 * short and its instructions stay together in the cache. */
#define HP_COLD __attribute__((cold, noinline))
#define HP_INLINE static inline __attribute__((always_inline))

#define HP_CACHELINE 64
#define HP_ALIGNED_CACHELINE __attribute__((aligned(HP_CACHELINE)))

/* Marks what libhotpath.so exports: the library is built with
 * -fvisibility=hidden, so only functions and data declared with this in
 * the public headers are part of its dynamic interface. */
#define HP_EXPORT __attribute__((visibility("default")))

#define HP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The struct that holds `ptr` as its member `member`. */
#define HP_CONTAINER_OF(ptr, type, member)                                     \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
