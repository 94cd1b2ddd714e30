/*
 * hist.h - log-linear latency histogram in the style of HdrHistogram.
 *
 * Values are uint64 (nanoseconds for latencies). The value range is cut into
 * buckets that each cover twice the range of the one before; every bucket is
 * split into the same number of linear sub-buckets, enough to keep `digits`
 * significant decimal digits. A value's slot is found with one count of
 * leading zeros, two shifts and an add: no division, no floating point, no
 * allocation, no branch but the range check. Memory is fixed at init.
 *
 * Layout (lowest = 1000 ns, highest = 1 h, 3 digits, the latency setting):
 * the unit is 512 ns (the power of two at or below `lowest`), there are 2048
 * sub-buckets of which the upper 1024 are new in each further bucket, and 23
 * buckets reach 1 h: 24 * 1024 uint64 counts = 192 KiB. Precision: a value v
 * is reported as the top of its slot, which is above v by less than v/1024
 * for v >= 1024 units (0.5 ms) and by less than one unit (512 ns) below.
 *
 * Threads: one histogram per thread, written only by its owner; combine with
 * hp_hist_merge. The recording path stores every field with relaxed atomic
 * stores (plain moves on x86-64, no locked instruction), so another thread
 * may hp_hist_merge() a histogram while its owner records without a data
 * race: the copy is then a recent, slightly inexact picture, never torn.
 */
#ifndef HOTPATH_HIST_H
#define HOTPATH_HIST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hotpath/common.h"

/* The latency setting: 1 us resolution floor, 1 hour ceiling, 3 digits. */
#define HP_HIST_LATENCY_LOWEST 1000ull
#define HP_HIST_LATENCY_HIGHEST (3600ull * 1000000000ull)
#define HP_HIST_LATENCY_DIGITS 3
/* Upper bound on the counts of the latency setting (asserted at compile
 * time in hist.c and by the tests). */
#define HP_HIST_LATENCY_MAX_BYTES (256u * 1024u)

typedef struct hp_hist {
    /* Hot: read or written by every hp_hist_record. */
    uint64_t *counts;    /* owned: counts_len slots */
    uint64_t lowest;     /* lowest discernible value */
    uint64_t range;      /* highest - lowest: one compare finds out-of-range */
    uint64_t sub_mask;   /* (sub_count - 1) << unit_shift: keeps small values
                          * in bucket 0 and the clz argument non-zero */
    uint32_t top_shift;  /* 64 - log2(sub_count): v >> (top_shift - clz) is
                          * the sub-bucket */
    uint32_t unit_shift; /* log2 of the unit (power of two <= lowest) */
    uint32_t half_shift; /* log2(sub_count / 2) */
    uint32_t counts_len; /* (bucket_count + 1) * sub_count / 2 */
    uint64_t total;      /* sum of counts[] */
    uint64_t min;        /* true smallest value recorded; UINT64_MAX if none */
    uint64_t max;        /* true largest value recorded; 0 if none */
    /* Cold. */
    uint64_t overflow;   /* values > highest (recorded as highest) */
    uint64_t underflow;  /* values < lowest (recorded at their own slot) */
    uint64_t highest;    /* highest trackable value */
    uint32_t sub_count;  /* sub-buckets per bucket, a power of two */
    uint32_t bucket_count;
    int digits;          /* significant decimal digits, 1..5 */
} hp_hist_t;

/* Prepares an empty histogram for values in [lowest, highest] with `digits`
 * significant decimal digits, allocating its counts (hp_calloc, owned until
 * hp_hist_destroy). Requires lowest >= 1, highest >= 2 * lowest and digits
 * in 1..5. Returns 0, -EINVAL for bad arguments (or a layout that does not
 * fit 64 bits), -ENOMEM; on failure *h is left zeroed. */
HP_EXPORT int hp_hist_init(hp_hist_t *h, uint64_t lowest, uint64_t highest, int digits);

/* hp_hist_init with the latency setting above (HP_HIST_LATENCY_*). */
HP_EXPORT int hp_hist_init_latency(hp_hist_t *h);
#define HP_HIST_LATENCY_INIT(h) hp_hist_init_latency(h)

/* Frees the counts and zeroes *h. Safe on a zeroed or destroyed histogram. */
HP_EXPORT void hp_hist_destroy(hp_hist_t *h);

/* Forgets every recorded value; keeps the layout and the memory. */
HP_EXPORT void hp_hist_reset(hp_hist_t *h);

/* Slot of a value in [0, highest]. Internal to the record path; exposed
 * because hp_hist_record is inline. */
HP_INLINE uint32_t hp_hist_index(const hp_hist_t *h, uint64_t v)
{
    /* The shift that leaves the sub-bucket: log2(v) - log2(sub_count) + 1
     * for values above bucket 0, unit_shift for those in it (the mask). */
    uint32_t shift = h->top_shift - (uint32_t)__builtin_clzll(v | h->sub_mask);
    /* bucket b = shift - unit_shift starts at slot b * sub_count / 2: its
     * lower half is bucket b-1's range at half the resolution, so it is not
     * stored again and the sub-bucket (>= sub_count/2) continues from
     * there. */
    return ((shift - h->unit_shift) << h->half_shift) + (uint32_t)(v >> shift);
}

/* Relaxed single-writer increment: one load and one store, no lock prefix. */
HP_INLINE void hp_hist_bump(uint64_t *p, uint64_t n)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n,
                     __ATOMIC_RELAXED);
}

/* Out-of-line part of hp_hist_record_n for values below lowest or above
 * highest. Internal. */
HP_EXPORT void hp_hist_record_slow(hp_hist_t *h, uint64_t v, uint64_t n);

/* Records `n` occurrences of v (nothing when n is 0). Values below
 * `lowest` land in bucket 0 at their own unit slot and count in
 * h->underflow; values above `highest` are recorded as `highest` (so for
 * percentiles, mean and the text output) and count in h->overflow. min and
 * max always keep the true values. Never allocates, never fails. */
HP_EXPORT void hp_hist_record_n(hp_hist_t *h, uint64_t v, uint64_t n);

/* Records one value: hp_hist_record_n(h, v, 1), inline and branch-light. */
HP_INLINE void hp_hist_record(hp_hist_t *h, uint64_t v)
{
    /* One unsigned compare catches both v < lowest (wraps to huge) and
     * v > highest. */
    if (HP_UNLIKELY(v - h->lowest > h->range)) {
        hp_hist_record_slow(h, v, 1);
        return;
    }
    hp_hist_bump(&h->counts[hp_hist_index(h, v)], 1);
    hp_hist_bump(&h->total, 1);
    if (v < h->min)
        __atomic_store_n(&h->min, v, __ATOMIC_RELAXED);
    if (v > h->max)
        __atomic_store_n(&h->max, v, __ATOMIC_RELAXED);
}

/* Adds src's values into dst. Both must have been initialised with the same
 * lowest, highest and digits; returns 0 or -EINVAL. src is only read (with
 * relaxed loads, so its owner may keep recording: then dst gets the counts
 * as they were read and dst->total is their sum). */
HP_EXPORT int hp_hist_merge(hp_hist_t *dst, const hp_hist_t *src);

/* Number of values recorded (out-of-range ones included). */
HP_EXPORT uint64_t hp_hist_count(const hp_hist_t *h);

/* True smallest / largest value recorded; 0 when empty. */
HP_EXPORT uint64_t hp_hist_min(const hp_hist_t *h);
HP_EXPORT uint64_t hp_hist_max(const hp_hist_t *h);

/* Mean and standard deviation, from the middle of each slot (so within the
 * histogram's precision); out-of-range values count as clamped. 0 when
 * empty. */
HP_EXPORT double hp_hist_mean(const hp_hist_t *h);
HP_EXPORT double hp_hist_stddev(const hp_hist_t *h);

/* The value at percentile p (clamped to 0..100), nearest rank: the top of
 * the slot where the cumulative count first reaches ceil(p/100 * count)
 * (at least 1), capped at min(max, highest); so p = 100 gives the max
 * (clamped to highest). Never below the true value at that rank and above
 * it by less than the slot width. 0 when empty. */
HP_EXPORT uint64_t hp_hist_percentile(const hp_hist_t *h, double p);

/* Highest value that shares v's slot (v clamped to highest first). */
HP_EXPORT uint64_t hp_hist_highest_equivalent(const hp_hist_t *h, uint64_t v);

/* Calls fn(top value of the slot, count, arg) for each slot with a non-zero
 * count, in increasing order. fn must not modify h. */
HP_EXPORT void hp_hist_foreach(const hp_hist_t *h,
                               void (*fn)(uint64_t value, uint64_t count, void *arg),
                               void *arg);

/* Writes the percentile distribution in HdrHistogram's classic text format
 * (what wrk2 --latency prints and HdrHistogram's plotter reads): a header,
 * one line per percentile tick (`ticks_per_half` ticks each time the
 * distance to 100% halves; 5 in wrk2) with the value divided by `unit`
 * (1e6 prints milliseconds), the percentile as a fraction, the cumulative
 * count and 1/(1-percentile), then the 100% line ("inf" in the last
 * column), then the #[Mean/Max/Buckets] footer; when values fell outside
 * the range one more line, #[Overflow = n, Underflow = n]. An empty
 * histogram prints only the header and footer. out is borrowed.
 * Returns 0, -EINVAL (unit <= 0, ticks_per_half < 1), or -EIO/-errno when
 * writing fails. */
HP_EXPORT int hp_hist_print_percentiles(const hp_hist_t *h, FILE *out, double unit,
                                        int ticks_per_half);

/* Bytes held by the counts. */
HP_EXPORT size_t hp_hist_bytes(const hp_hist_t *h);

/* Checks the layout and the counters: layout fields derived from lowest,
 * highest and digits, total == sum of counts, min <= max when non-empty,
 * overflow <= the count at highest's slot, underflow <= the counts below
 * lowest's slot. Returns 0 or -EINVAL. O(counts_len): tests. Only on a
 * histogram nobody is recording into. */
HP_EXPORT int hp_hist_validate(const hp_hist_t *h);

#endif
