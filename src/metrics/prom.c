/*
 * prom.c - Prometheus text exposition (format 0.0.4) into a caller's
 * buffer: HELP/TYPE lines, counter and gauge samples, label escaping, and
 * hp_hist_t histograms as cumulative _bucket/_sum/_count series.
 *
 * Central structure: hp_prom_t, a borrowed buffer with a committed length.
 * Each line is assembled by a `line_t` cursor that appends pieces after
 * `len`; only when the whole line fits does `len` move to its end.
 *
 * Invariant: buf[0..len) is a sequence of complete '\n'-terminated lines;
 * len <= cap; once `overflow` is set it stays set and len never moves
 * again, so the output is a prefix of what an unbounded buffer would hold.
 * Nothing here allocates; the only library calls are snprintf/strtod for
 * floating-point numbers (no libm: isnan/isinf are compiler built-ins).
 */
#include "prom_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double hp_prom_latency_bounds[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,     2.5,   5,     10,
};
const size_t hp_prom_latency_nbounds =
    sizeof hp_prom_latency_bounds / sizeof hp_prom_latency_bounds[0];

void hp_prom_init(hp_prom_t *p, char *buf, size_t cap)
{
    p->buf = buf;
    p->cap = buf ? cap : 0;
    p->len = 0;
    p->overflow = false;
}

/* One line (or group of lines) being assembled after p->len. */
typedef struct line {
    hp_prom_t *p;
    size_t pos;  /* end of what this line has written so far */
    bool failed; /* a piece did not fit: the line will not be committed */
} line_t;

static void line_begin(line_t *l, hp_prom_t *p)
{
    l->p = p;
    l->pos = p->len;
    /* After an overflow nothing more is written, even a line that would
     * fit: the output must stay a prefix of the full exposition. */
    l->failed = p->overflow;
}

static void put(line_t *l, const char *s, size_t n)
{
    if (l->failed)
        return;
    if (n > l->p->cap - l->pos) {
        /* Stop at the first piece that does not fit rather than fill the
         * rest of the buffer with bytes that will never be committed. */
        l->failed = true;
        return;
    }
    memcpy(l->p->buf + l->pos, s, n);
    l->pos += n;
}

static void puts_(line_t *l, const char *s)
{
    put(l, s, strlen(s));
}

static void put_u64(line_t *l, uint64_t v)
{
    char tmp[20]; /* UINT64_MAX has 20 digits */
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(l, tmp + i, sizeof tmp - i);
}

/* Writes v with the fewest significant digits that read back as the same
 * double, as Prometheus' own clients do: bucket bounds come out as
 * le="0.0001", not le="0.00010000000000000000479". Plain notation for
 * magnitudes from 1e-4 up to 1e17 (so 10 is "10", not "1e+01"), exponent
 * notation outside. Returns the length; out needs 32 bytes. */
static size_t fmt_double(char *out, double v)
{
    if (isnan(v)) {
        memcpy(out, "NaN", 4);
        return 3;
    }
    if (isinf(v)) {
        memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
        return 4;
    }
    /* 17 significant digits always round-trip a double, so the loop ends
     * there at the latest. %e also tells the decimal exponent. */
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(out, 32, "%.*e", digits - 1, v);
        if (strtod(out, NULL) == v)
            break;
    }
    snprintf(out, 32, "%.*e", digits - 1, v);
    int exp10 = atoi(strchr(out, 'e') + 1);
    /* %g picks plain notation when -4 <= exponent < precision; asking for
     * at least exponent + 1 digits keeps integers like 10 or 2500 plain
     * (the extra digits are zeros, which %g drops after a point and which
     * are exact before it). */
    int prec = exp10 >= -4 && exp10 < 17 && exp10 + 1 > digits ? exp10 + 1 : digits;
    return (size_t)snprintf(out, 32, "%.*g", prec, v);
}

static void put_double(line_t *l, double v)
{
    char tmp[32];
    put(l, tmp, fmt_double(tmp, v));
}

/* HELP text escaping: the format asks for backslash and line feed only
 * (double quotes are fine there, unlike in label values). */
static void put_help(line_t *l, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        if (*s != '\\' && *s != '\n')
            continue;
        put(l, run, (size_t)(s - run));
        put(l, *s == '\\' ? "\\\\" : "\\n", 2);
        run = s + 1;
    }
    put(l, run, (size_t)(s - run));
}

static void line_commit(line_t *l)
{
    if (l->failed)
        l->p->overflow = true;
    else
        l->p->len = l->pos;
}

void hp_prom_family(hp_prom_t *p, const char *name, const char *type,
                    const char *help)
{
    /* HELP and TYPE are committed together: a cut between them would leave
     * a family whose type the reader has to guess. */
    line_t l;
    line_begin(&l, p);
    if (help) {
        puts_(&l, "# HELP ");
        puts_(&l, name);
        put(&l, " ", 1);
        put_help(&l, help);
        put(&l, "\n", 1);
    }
    puts_(&l, "# TYPE ");
    puts_(&l, name);
    put(&l, " ", 1);
    puts_(&l, type);
    put(&l, "\n", 1);
    line_commit(&l);
}

/* "name{labels} " or "name " when there are no labels. suffix (may be
 * NULL) follows the name: "_sum", "_count". */
static void put_series(line_t *l, const char *name, const char *suffix,
                       const char *labels)
{
    puts_(l, name);
    if (suffix)
        puts_(l, suffix);
    if (labels && *labels) {
        put(l, "{", 1);
        puts_(l, labels);
        put(l, "}", 1);
    }
    put(l, " ", 1);
}

void hp_prom_sample(hp_prom_t *p, const char *name, const char *labels,
                    uint64_t value)
{
    line_t l;
    line_begin(&l, p);
    put_series(&l, name, NULL, labels);
    put_u64(&l, value);
    put(&l, "\n", 1);
    line_commit(&l);
}

void hp_prom_sample_double(hp_prom_t *p, const char *name, const char *labels,
                           double value)
{
    line_t l;
    line_begin(&l, p);
    put_series(&l, name, NULL, labels);
    put_double(&l, value);
    put(&l, "\n", 1);
    line_commit(&l);
}

int hp_prom_label_value(const char *v, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        const char *esc = c == '\\' ? "\\\\"
                          : c == '"' ? "\\\""
                          : c == '\n' ? "\\n"
                          : NULL;
        size_t need = esc ? 2 : 1;
        /* o < cap holds here (one byte is always kept for the NUL), so
         * cap - o does not wrap. */
        if (need >= cap - o)
            return -ENOSPC;
        if (esc) {
            out[o] = esc[0];
            out[o + 1] = esc[1];
        } else {
            out[o] = c;
        }
        o += need;
    }
    if (o >= cap)
        return -ENOSPC;
    out[o] = '\0';
    return (int)o;
}

/* State of one hp_prom_histogram walk, shared with the foreach callback. */
typedef struct hwalk {
    hp_prom_t *p;
    const char *name;
    const char *labels;
    const hp_hist_t *h;
    const double *bounds;
    size_t nbounds;
    size_t next;       /* index of the next bound to write */
    uint64_t next_top; /* the top of the slot holding bounds[next] (ns) */
    double last;       /* the last bound accepted, to skip non-ascending */
    bool any;          /* `last` is set */
    uint64_t cum;      /* values counted so far */
    double sum_ns;     /* sum of slot midpoints so far */
} hwalk_t;

static void put_bucket(hwalk_t *w, const char *le, size_t lelen, uint64_t n)
{
    line_t l;
    line_begin(&l, w->p);
    puts_(&l, w->name);
    puts_(&l, "_bucket{");
    if (w->labels && *w->labels) {
        puts_(&l, w->labels);
        put(&l, ",", 1);
    }
    puts_(&l, "le=\"");
    put(&l, le, lelen);
    puts_(&l, "\"} ");
    put_u64(&l, n);
    put(&l, "\n", 1);
    line_commit(&l);
}

/* Moves w->next to the first usable bound at or after index i and sets
 * next_top for it; w->next == nbounds when none is left. A bound is usable
 * when it is finite and above the previous usable one (a repeated le would
 * make the series ambiguous, and +Inf is written separately). */
static void seek_bound(hwalk_t *w, size_t i)
{
    for (; i < w->nbounds; i++) {
        double b = w->bounds[i];
        if (!isfinite(b) || (w->any && !(b > w->last)))
            continue;
        w->any = true;
        w->last = b;
        w->next = i;
        if (b < 0 || !w->h) {
            /* No value is negative; and an empty (or absent) histogram
             * needs no threshold. Written at once with the count so far. */
            w->next_top = 0;
            return;
        }
        /* Round to the nearest nanosecond, then up to the top of the slot
         * that holds it: the histogram cannot tell values apart within a
         * slot, and this puts a value exactly at a bound in its bucket. */
        double ns = b * 1e9 + 0.5;
        uint64_t v = ns >= 0x1p64 ? UINT64_MAX : (uint64_t)ns;
        w->next_top = hp_hist_highest_equivalent(w->h, v);
        return;
    }
    w->next = w->nbounds;
}

/* Writes the current bound's bucket with the count so far and moves on. */
static void emit_bound(hwalk_t *w)
{
    char tmp[32];
    put_bucket(w, tmp, fmt_double(tmp, w->bounds[w->next]), w->cum);
    seek_bound(w, w->next + 1);
}

static void walk_slot(uint64_t top, uint64_t count, void *arg)
{
    hwalk_t *w = arg;
    /* Slots come in increasing order, so every bound whose slot top is
     * below this slot's top has seen all its values. (Negative bounds were
     * written before the walk.) */
    while (w->next < w->nbounds && top > w->next_top)
        emit_bound(w);
    w->cum += count;
    /* The slot's width is 2^shift where shift is the one hp_hist_index
     * computes: v >> shift is the sub-bucket, so a sub-bucket spans
     * 2^shift values. The midpoint matches hp_hist_mean's. */
    const hp_hist_t *h = w->h;
    uint32_t shift =
        h->top_shift - (uint32_t)__builtin_clzll(top | h->sub_mask);
    uint64_t width = 1ull << shift;
    double mid = (double)(top - (width - 1)) + (double)(width >> 1);
    w->sum_ns += mid * (double)count;
}

void hp_prom_histogram(hp_prom_t *p, const char *name, const char *labels,
                       const hp_hist_t *h, const double *bounds,
                       size_t nbounds)
{
    hwalk_t w = {
        .p = p,
        .name = name,
        .labels = labels,
        /* A histogram never initialised (or destroyed) has no layout to
         * compute slots with: expose it as empty. */
        .h = h && h->counts ? h : NULL,
        .bounds = bounds,
        .nbounds = bounds ? nbounds : 0,
        .next = 0,
    };
    seek_bound(&w, 0);
    /* Bounds below zero can hold no value: write them before the walk. */
    while (w.next < w.nbounds && w.bounds[w.next] < 0)
        emit_bound(&w);
    if (w.h)
        hp_hist_foreach(w.h, walk_slot, &w);
    while (w.next < w.nbounds)
        emit_bound(&w);
    put_bucket(&w, "+Inf", 4, w.cum);

    line_t l;
    line_begin(&l, p);
    put_series(&l, name, "_sum", labels);
    put_double(&l, w.sum_ns / 1e9);
    put(&l, "\n", 1);
    line_commit(&l);

    line_begin(&l, p);
    put_series(&l, name, "_count", labels);
    put_u64(&l, w.cum);
    put(&l, "\n", 1);
    line_commit(&l);
}
