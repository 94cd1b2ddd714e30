/*
 * hist.c - log-linear (HdrHistogram-style) histogram: layout, merging,
 * percentiles, the classic text output.
 *
 * Central structure: hp_hist_t's counts[], (bucket_count + 1) * half slots
 * where half = sub_count / 2. Slots 0 .. sub_count-1 are bucket 0, values
 * 0 .. sub_count units at one unit each; every further bucket b adds `half`
 * slots for [half << (b + unit_shift), sub_count << (b + unit_shift)) at
 * 2^(b + unit_shift) each. Slot i therefore starts at
 *     ((i & (half - 1)) + half) << ((i >> half_shift) - 1 + unit_shift)
 * for i >= sub_count, and at i << unit_shift below.
 *
 * Invariant: total == sum(counts); every recorded value sits in the slot of
 * min(v, highest); overflow and underflow count subsets of those; min and
 * max are the true extremes (UINT64_MAX / 0 when empty). Nothing here
 * allocates after hp_hist_init, nor uses libm (the square root for stddev
 * is a few Newton steps), so the library needs no -lm.
 */
#include "hotpath/hist.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "hotpath/alloc.h"

/* The latency setting's size, computed the way hp_hist_init does:
 * unit 2^9 (<= 1000), 2^11 sub-buckets (>= 2 * 10^3), and as many buckets
 * as it takes to reach the bucket holding 1 h. */
#define LAT_UNIT_SHIFT (63 - __builtin_clzll(HP_HIST_LATENCY_LOWEST))
#define LAT_SUB_SHIFT (64 - __builtin_clzll(2000ull - 1))
#define LAT_BUCKETS                                                            \
    (64 - LAT_UNIT_SHIFT - LAT_SUB_SHIFT -                                     \
     __builtin_clzll(HP_HIST_LATENCY_HIGHEST |                                 \
                     (((1ull << LAT_SUB_SHIFT) - 1) << LAT_UNIT_SHIFT)) +      \
     1)
_Static_assert((LAT_BUCKETS + 1) * (1ull << (LAT_SUB_SHIFT - 1)) *
                       sizeof(uint64_t) <=
                   HP_HIST_LATENCY_MAX_BYTES,
               "latency histogram counts must fit in 256 KiB");

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* The layout a (lowest, highest, digits) triple gives, or -EINVAL. Shared
 * by init and validate so validate can recompute it. */
static int layout(hp_hist_t *h, uint64_t lowest, uint64_t highest, int digits)
{
    if (lowest < 1 || digits < 1 || digits > 5 || highest / 2 < lowest)
        return -EINVAL;
    /* Sub-buckets: single-unit resolution up to 2 * 10^digits units keeps
     * `digits` significant digits over the whole bucket (a slot is at most
     * 1/10^digits of the values in its upper half). */
    uint64_t single = 2;
    for (int i = 0; i < digits; i++)
        single *= 10;
    uint32_t sub_shift = 64 - (uint32_t)__builtin_clzll(single - 1);
    uint32_t unit_shift = 63 - (uint32_t)__builtin_clzll(lowest);
    /* The top of bucket 0 (sub_count units) must fit in 64 bits. */
    if (unit_shift + sub_shift > 63)
        return -EINVAL;
    h->lowest = lowest;
    h->highest = highest;
    h->range = highest - lowest;
    h->digits = digits;
    h->unit_shift = unit_shift;
    h->sub_count = 1u << sub_shift;
    h->half_shift = sub_shift - 1;
    h->sub_mask = (uint64_t)(h->sub_count - 1) << unit_shift;
    h->top_shift = 64 - sub_shift;
    /* The bucket of `highest` is the last one. */
    uint32_t last = h->top_shift - (uint32_t)__builtin_clzll(highest | h->sub_mask)
                    - unit_shift;
    h->bucket_count = last + 1;
    h->counts_len = (h->bucket_count + 1) << h->half_shift;
    return 0;
}

int hp_hist_init(hp_hist_t *h, uint64_t lowest, uint64_t highest, int digits)
{
    memset(h, 0, sizeof(*h));
    int rc = layout(h, lowest, highest, digits);
    if (rc < 0) {
        memset(h, 0, sizeof(*h));
        return rc;
    }
    h->counts = hp_calloc(h->counts_len, sizeof(uint64_t));
    if (!h->counts) {
        memset(h, 0, sizeof(*h));
        return -ENOMEM;
    }
    h->min = UINT64_MAX;
    return 0;
}

int hp_hist_init_latency(hp_hist_t *h)
{
    return hp_hist_init(h, HP_HIST_LATENCY_LOWEST, HP_HIST_LATENCY_HIGHEST,
                        HP_HIST_LATENCY_DIGITS);
}

void hp_hist_destroy(hp_hist_t *h)
{
    hp_free(h->counts);
    memset(h, 0, sizeof(*h));
}

void hp_hist_reset(hp_hist_t *h)
{
    if (h->counts)
        memset(h->counts, 0, (size_t)h->counts_len * sizeof(uint64_t));
    h->total = 0;
    h->overflow = 0;
    h->underflow = 0;
    h->min = UINT64_MAX;
    h->max = 0;
}

void hp_hist_record_slow(hp_hist_t *h, uint64_t v, uint64_t n)
{
    uint64_t slot_value = v;
    if (v < h->lowest) {
        hp_hist_bump(&h->underflow, n);
    } else if (v > h->highest) {
        hp_hist_bump(&h->overflow, n);
        slot_value = h->highest;
    }
    hp_hist_bump(&h->counts[hp_hist_index(h, slot_value)], n);
    hp_hist_bump(&h->total, n);
    if (v < h->min)
        __atomic_store_n(&h->min, v, __ATOMIC_RELAXED);
    if (v > h->max)
        __atomic_store_n(&h->max, v, __ATOMIC_RELAXED);
}

void hp_hist_record_n(hp_hist_t *h, uint64_t v, uint64_t n)
{
    if (n == 0)
        return;
    /* The slow path handles every value; the split only matters for the
     * inline single-value recorder. */
    hp_hist_record_slow(h, v, n);
}

/* Lowest value of slot i. */
static uint64_t slot_low(const hp_hist_t *h, uint32_t i)
{
    uint32_t b = i >> h->half_shift;
    if (b == 0)
        return (uint64_t)i << h->unit_shift;
    uint64_t sub = (i & ((1u << h->half_shift) - 1)) + (1u << h->half_shift);
    return sub << (b - 1 + h->unit_shift);
}

/* Width of slot i (a power of two). */
static uint64_t slot_width(const hp_hist_t *h, uint32_t i)
{
    uint32_t b = i >> h->half_shift;
    return 1ull << ((b ? b - 1 : 0) + h->unit_shift);
}

static uint64_t slot_high(const hp_hist_t *h, uint32_t i)
{
    return slot_low(h, i) + (slot_width(h, i) - 1);
}

uint64_t hp_hist_highest_equivalent(const hp_hist_t *h, uint64_t v)
{
    return slot_high(h, hp_hist_index(h, v > h->highest ? h->highest : v));
}

int hp_hist_merge(hp_hist_t *dst, const hp_hist_t *src)
{
    if (!dst->counts || !src->counts || dst->lowest != src->lowest ||
        dst->highest != src->highest || dst->digits != src->digits ||
        dst->counts_len != src->counts_len)
        return -EINVAL;
    /* Read the subset counters before the counts: a recorder bumps the
     * count first, so what we read is never more than the counts hold
     * (clamped below anyway, in case the loads are reordered). */
    uint64_t over = ld(&src->overflow);
    uint64_t under = ld(&src->underflow);
    uint64_t mn = ld(&src->min);
    uint64_t mx = ld(&src->max);
    uint64_t added = 0;
    uint64_t below = 0;
    uint64_t at_high = 0;
    uint32_t low_slot = hp_hist_index(src, src->lowest);
    uint32_t high_slot = hp_hist_index(src, src->highest);
    for (uint32_t i = 0; i < src->counts_len; i++) {
        uint64_t c = ld(&src->counts[i]);
        if (c == 0)
            continue;
        dst->counts[i] += c;
        added += c;
        if (i <= low_slot)
            below += c;
        if (i == high_slot)
            at_high = c;
    }
    if (over > at_high)
        over = at_high;
    if (under > below)
        under = below;
    dst->total += added;
    dst->overflow += over;
    dst->underflow += under;
    if (added) {
        if (mn < dst->min)
            dst->min = mn;
        if (mx > dst->max)
            dst->max = mx;
    }
    return 0;
}

uint64_t hp_hist_count(const hp_hist_t *h)
{
    return ld(&h->total);
}

uint64_t hp_hist_min(const hp_hist_t *h)
{
    return ld(&h->total) ? ld(&h->min) : 0;
}

uint64_t hp_hist_max(const hp_hist_t *h)
{
    return ld(&h->total) ? ld(&h->max) : 0;
}

/* What percentiles report at most: the largest value recorded, as
 * clamped. */
static uint64_t value_cap(const hp_hist_t *h)
{
    uint64_t mx = ld(&h->max);
    return mx < h->highest ? mx : h->highest;
}

/* Middle of slot i, the value mean and stddev stand for. */
static double slot_mid(const hp_hist_t *h, uint32_t i)
{
    return (double)slot_low(h, i) + (double)(slot_width(h, i) >> 1);
}

double hp_hist_mean(const hp_hist_t *h)
{
    uint64_t n = 0;
    double sum = 0;
    for (uint32_t i = 0; i < h->counts_len; i++) {
        uint64_t c = ld(&h->counts[i]);
        if (c) {
            n += c;
            sum += slot_mid(h, i) * (double)c;
        }
    }
    return n ? sum / (double)n : 0.0;
}

/* Square root by Newton's method, so the library does not need libm. The
 * first guess halves the binary exponent; five steps then reach full
 * double precision from within a factor of two. */
static double newton_sqrt(double x)
{
    if (!(x > 0))
        return 0.0;
    uint64_t bits;
    memcpy(&bits, &x, sizeof(bits));
    bits = (bits >> 1) + (1023ull << 51);
    double y;
    memcpy(&y, &bits, sizeof(y));
    for (int i = 0; i < 6; i++)
        y = 0.5 * (y + x / y);
    return y;
}

double hp_hist_stddev(const hp_hist_t *h)
{
    double mean = hp_hist_mean(h);
    uint64_t n = 0;
    double sq = 0;
    for (uint32_t i = 0; i < h->counts_len; i++) {
        uint64_t c = ld(&h->counts[i]);
        if (c) {
            double d = slot_mid(h, i) - mean;
            n += c;
            sq += d * d * (double)c;
        }
    }
    return n ? newton_sqrt(sq / (double)n) : 0.0;
}

/* Nearest rank of percentile p among n values: ceil(p/100 * n), at least
 * 1. p/100 * n carries rounding noise (99.9/100 * 1e5 is
 * 99900.00000000001), which a plain ceil would turn into the next rank, so
 * a fractional part below a relative 1e-12 counts as none. */
static uint64_t rank_of(double p, uint64_t n)
{
    double r = p / 100.0 * (double)n;
    if (r >= (double)n)
        return n;
    uint64_t k = (uint64_t)r;
    if (r - (double)k > r * 1e-12)
        k++;
    return k ? k : 1;
}

uint64_t hp_hist_percentile(const hp_hist_t *h, double p)
{
    uint64_t n = ld(&h->total);
    if (n == 0 || !h->counts)
        return 0;
    if (!(p > 0))
        p = 0;
    if (p > 100)
        p = 100;
    uint64_t rank = rank_of(p, n);
    uint64_t cap = value_cap(h);
    uint64_t cum = 0;
    uint64_t v = 0;
    for (uint32_t i = 0; i < h->counts_len; i++) {
        uint64_t c = ld(&h->counts[i]);
        if (c == 0)
            continue;
        cum += c;
        v = slot_high(h, i);
        if (cum >= rank)
            break;
    }
    /* Falling off the end only happens when another thread records while
     * we read (total ahead of the counts): the last slot seen is the best
     * answer. */
    return v < cap ? v : cap;
}

void hp_hist_foreach(const hp_hist_t *h,
                     void (*fn)(uint64_t value, uint64_t count, void *arg),
                     void *arg)
{
    for (uint32_t i = 0; i < h->counts_len; i++) {
        uint64_t c = ld(&h->counts[i]);
        if (c)
            fn(slot_high(h, i), c, arg);
    }
}

/* Percentile ticks in HdrHistogram's percentile iteration: from tick p the
 * next is p + 100 / (ticks * 2^(floor(log2(100 / (100 - p))) + 1)), i.e.
 * `ticks` steps per halving of the distance to 100%. Computed with a loop
 * instead of log/pow. */
static double next_tick(double p, int ticks)
{
    double r = 100.0 / (100.0 - p);
    double half_distance = 2;
    /* 2^62 bounds the loop when p is within rounding of 100. */
    while (half_distance <= r && half_distance < 0x1p62)
        half_distance *= 2;
    return p + 100.0 / ((double)ticks * half_distance);
}

/* fprintf that turns a failure into -errno (or -EIO). */
#define PUT(...)                                                               \
    do {                                                                       \
        if (fprintf(out, __VA_ARGS__) < 0)                                     \
            return errno ? -errno : -EIO;                                      \
    } while (0)

int hp_hist_print_percentiles(const hp_hist_t *h, FILE *out, double unit,
                              int ticks_per_half)
{
    if (!(unit > 0) || ticks_per_half < 1 || !out)
        return -EINVAL;
    errno = 0;
    int dec = h->digits;
    PUT("%12s %12s %12s %12s\n\n", "Value", "Percentile", "TotalCount",
        "1/(1-Percentile)");
    /* Sum the counts first: the lines must agree with each other even if
     * the total moves while we print. */
    uint64_t n = 0;
    for (uint32_t i = 0; i < h->counts_len; i++)
        n += ld(&h->counts[i]);
    uint64_t cap = value_cap(h);
    if (n) {
        double tick = 0;
        bool ticking = true; /* false once no tick below 100% is left */
        uint64_t cum = 0;
        uint64_t v = 0;
        for (uint32_t i = 0; i < h->counts_len && cum < n; i++) {
            uint64_t c = ld(&h->counts[i]);
            if (c == 0)
                continue;
            cum += c;
            v = slot_high(h, i);
            if (v > cap)
                v = cap;
            /* Every tick this slot reaches gets a line with its value; the
             * slot that completes the count gets one (the tick that made
             * it current) and then the 100% line below. */
            while (ticking && (double)cum * 100.0 / (double)n >= tick) {
                double frac = tick / 100.0;
                PUT("%12.*f %12f %12" PRIu64 " %12.2f\n", dec,
                    (double)v / unit, frac, cum, 1.0 / (1.0 - frac));
                if (cum == n)
                    break;
                double next = next_tick(tick, ticks_per_half);
                if (!(next > tick) || next >= 100.0)
                    ticking = false; /* rounding: 100% comes next */
                tick = next;
            }
        }
        PUT("%12.*f %12f %12" PRIu64 " %12s\n", dec, (double)v / unit, 1.0, n,
            "inf");
    }
    PUT("#[Mean    = %12.3f, StdDeviation   = %12.3f]\n",
        hp_hist_mean(h) / unit, hp_hist_stddev(h) / unit);
    PUT("#[Max     = %12.3f, Total count    = %12" PRIu64 "]\n",
        (double)(n ? cap : 0) / unit, n);
    PUT("#[Buckets = %12u, SubBuckets     = %12u]\n", h->bucket_count,
        h->sub_count);
    uint64_t over = ld(&h->overflow), under = ld(&h->underflow);
    if (over || under)
        PUT("#[Overflow = %11" PRIu64 ", Underflow      = %12" PRIu64 "]\n",
            over, under);
    return 0;
}

#undef PUT

size_t hp_hist_bytes(const hp_hist_t *h)
{
    return (size_t)h->counts_len * sizeof(uint64_t);
}

int hp_hist_validate(const hp_hist_t *h)
{
    if (!h->counts)
        return -EINVAL;
    hp_hist_t want;
    memset(&want, 0, sizeof(want));
    if (layout(&want, h->lowest, h->highest, h->digits) < 0)
        return -EINVAL;
    if (want.range != h->range || want.sub_mask != h->sub_mask ||
        want.top_shift != h->top_shift || want.unit_shift != h->unit_shift ||
        want.half_shift != h->half_shift ||
        want.counts_len != h->counts_len ||
        want.sub_count != h->sub_count ||
        want.bucket_count != h->bucket_count)
        return -EINVAL;
    /* highest's slot must be in the last bucket, the last one stored. */
    uint32_t hs = hp_hist_index(h, h->highest);
    if (hs >= h->counts_len ||
        (h->bucket_count > 1 && hs < h->counts_len - (1u << h->half_shift)))
        return -EINVAL;
    uint64_t sum = 0, below = 0;
    uint32_t low_slot = hp_hist_index(h, h->lowest);
    uint32_t high_slot = hp_hist_index(h, h->highest);
    for (uint32_t i = 0; i < h->counts_len; i++) {
        sum += h->counts[i];
        if (i <= low_slot)
            below += h->counts[i];
        /* Nothing may sit above highest's slot: those values are clamped. */
        if (i > high_slot && h->counts[i])
            return -EINVAL;
    }
    if (sum != h->total)
        return -EINVAL;
    if (h->overflow > h->counts[high_slot] || h->underflow > below)
        return -EINVAL;
    if (h->total == 0) {
        if (h->min != UINT64_MAX || h->max != 0 || h->overflow ||
            h->underflow)
            return -EINVAL;
    } else {
        if (h->min > h->max)
            return -EINVAL;
        if ((h->min < h->lowest) != (h->underflow != 0))
            return -EINVAL;
        if ((h->max > h->highest) != (h->overflow != 0))
            return -EINVAL;
        /* The extremes lie in the first and last non-empty slots. */
        uint32_t first = 0, last = 0;
        bool seen = false;
        for (uint32_t i = 0; i < h->counts_len; i++) {
            if (h->counts[i]) {
                if (!seen)
                    first = i;
                seen = true;
                last = i;
            }
        }
        uint64_t mn = h->min > h->highest ? h->highest : h->min;
        uint64_t mx = h->max > h->highest ? h->highest : h->max;
        if (hp_hist_index(h, mn) != first || hp_hist_index(h, mx) != last)
            return -EINVAL;
    }
    return 0;
}
