/*
 * router_bench.c - nanoseconds per hp_router_match() lookup on route sets.
 *
 * Usage: router_bench [-n LOOKUPS] [-r RUNS] NAME=ROUTES_FILE ...
 * A routes file has one "METHODS PATTERN" per line ("GET,POST /a/{id:int}");
 * '#' lines are comments. For each set the program registers every line,
 * makes one hit path per line by filling each parameter with a value of
 * its type (so the path reaches a route: 200, or 405 when precedence sends
 * it to another route), and one miss path per line by spoiling the hit
 * path (extra segment, changed static byte, typed value of the wrong kind)
 * until hp_router_match answers 404. Paths are shuffled, then each run
 * matches them round-robin for about LOOKUPS lookups (default 1,000,000);
 * the table shows the median of RUNS runs (default 5) in ns per lookup.
 * Benchmarks measure; they never fail because a figure is bad.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hotpath/router.h"

#define MAX_PATH 512
#define TARGET_NS 50.0 /* the target for the GitHub set */

struct path {
    char *s;
    size_t len;
    uint32_t method;
};

struct set {
    const char *name;
    size_t lines, routes;
    struct path *hit, *miss;
    size_t nhit, nmiss;
    double hit_ns, miss_ns;
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void die(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "router_bench: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(2);
}

static uint32_t parse_methods(const char *s, size_t n)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                        "OPTIONS"};
    uint32_t mask = 0;
    while (n) {
        size_t w = 0;
        while (w < n && s[w] != ',')
            w++;
        int k = 0;
        while (k < 7 && !(strlen(names[k]) == w && !memcmp(names[k], s, w)))
            k++;
        if (k == 7)
            return 0;
        mask |= 1u << k;
        s += w;
        n -= w;
        if (n) {
            s++;
            n--;
        }
    }
    return mask;
}

/* Writes a value for parameter type `type` (the text after ':', or ""). */
static size_t fill_param(char *out, const char *type, size_t tl, int spoil)
{
    if (tl == 3 && !memcmp(type, "int", 3))
        return (size_t)sprintf(out, spoil ? "x%u" : "%u", (unsigned)(rnd() % 1000000));
    if (tl == 4 && !memcmp(type, "uuid", 4)) {
        uint64_t a = rnd(), b = rnd();
        return (size_t)sprintf(out, spoil ? "%08x-%04x-%04x-%04x-%011llx" : "%08x-%04x-%04x-%04x-%012llx",
                               (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff,
                               (unsigned)a & 0xffff, (unsigned)(b >> 48),
                               (unsigned long long)(b & 0xffffffffffffull) >> (spoil ? 4 : 0));
    }
    if (tl == 4 && !memcmp(type, "slug", 4))
        return (size_t)sprintf(out, spoil ? "Hello-World-%u" : "hello-world-%u",
                               (unsigned)(rnd() % 100));
    if (tl == 1 && type[0] == '*')
        return (size_t)sprintf(out, "src/lib/file%u.c", (unsigned)(rnd() % 100));
    static const char *const names[] = {"octocat", "hotpath", "linux", "Spoon-Knife", "main"};
    return (size_t)sprintf(out, "%s", names[rnd() % 5]);
}

/* Instantiates pattern into out; spoil != 0 gives typed params a wrong
 * value. Returns the length. */
static size_t instantiate(char *out, const char *pat, int spoil)
{
    size_t n = 0;
    for (const char *p = pat; *p;) {
        if (*p != '{') {
            out[n++] = *p++;
            continue;
        }
        const char *close = strchr(p, '}');
        const char *colon = memchr(p, ':', (size_t)(close - p));
        const char *type = colon ? colon + 1 : close;
        n += fill_param(out + n, type, (size_t)(close - type), spoil);
        p = close + 1;
    }
    out[n] = '\0';
    return n;
}

static char *dup_path(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        die("%s%s", "out of memory", "");
    memcpy(d, s, n + 1);
    return d;
}

static void load(struct set *st, const char *file, hp_router_t *r)
{
    FILE *f = fopen(file, "r");
    if (!f)
        die("cannot open %s: %s", file, strerror(errno));
    char line[1024], err[256], buf[MAX_PATH];
    size_t cap = 64;
    st->hit = malloc(cap * sizeof(*st->hit));
    st->miss = malloc(cap * sizeof(*st->miss));
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        if (!sp)
            die("%s: bad line '%s'", file, line);
        uint32_t methods = parse_methods(line, (size_t)(sp - line));
        const char *pat = sp + 1;
        if (!methods)
            die("%s: bad methods in '%s'", file, line);
        if (hp_router_add(r, methods, pat, (void *)pat, NULL, err, sizeof(err)) != 0)
            die("%s: %s", file, err);
        st->lines++;
        if (st->nhit == cap || st->nmiss == cap) {
            cap *= 2;
            st->hit = realloc(st->hit, cap * sizeof(*st->hit));
            st->miss = realloc(st->miss, cap * sizeof(*st->miss));
            if (!st->hit || !st->miss)
                die("%s%s", "out of memory", "");
        }
        uint32_t method = methods & -methods;
        hp_route_match_t m;
        size_t n = instantiate(buf, pat, 0);
        if (hp_router_match(r, method, buf, n, &m) != 404)
            st->hit[st->nhit++] = (struct path){dup_path(buf, n), n, method};
        /* Miss: try spoilers until one really misses. */
        for (int v = 0; v < 4; v++) {
            n = instantiate(buf, pat, v == 2);
            if (v == 0) {
                n += (size_t)sprintf(buf + n, "/zz-nope");
            } else if (v == 1) {
                buf[1] = buf[1] == 'q' ? 'Q' : 'q'; /* first static byte */
            } else if (v == 3) {
                n += (size_t)sprintf(buf + n, "%s", n > 1 ? "~" : "zz");
            }
            if (hp_router_match(r, method, buf, n, &m) == 404) {
                st->miss[st->nmiss++] = (struct path){dup_path(buf, n), n, method};
                break;
            }
        }
    }
    fclose(f);
    st->routes = hp_router_count(r);
    if (hp_router_validate(r) != 0)
        die("%s: %s", file, "hp_router_validate failed");
}

static void shuffle(struct path *p, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd() % i;
        struct path t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
}

/* CPU time of this thread, not wall-clock: on this shared 2-core VM the
 * process is often descheduled (wall time was ~3x the CPU time in a
 * lookup loop), and lookups are pure CPU work. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static volatile uint64_t sink;

/* Median ns per lookup over `runs` runs of about `lookups` lookups. */
static double measure(const hp_router_t *r, const struct path *p, size_t n, long lookups, int runs)
{
    if (n == 0)
        return 0;
    size_t reps = ((size_t)lookups + n - 1) / n;
    double res[64];
    hp_route_match_t m;
    for (int k = -1; k < runs; k++) { /* k = -1: warm-up */
        uint64_t acc = 0;
        double t0 = now_ns();
        for (size_t rep = 0; rep < reps; rep++)
            for (size_t i = 0; i < n; i++)
                acc += (uint64_t)hp_router_match(r, p[i].method, p[i].s, p[i].len, &m) +
                       m.nparams;
        double t1 = now_ns();
        sink += acc;
        if (k >= 0)
            res[k] = (t1 - t0) / (double)(reps * n);
    }
    qsort(res, (size_t)runs, sizeof(res[0]), cmp_double);
    return res[runs / 2];
}

int main(int argc, char **argv)
{
    long lookups = 1000000;
    int runs = 5, i = 1;
    for (; i < argc && argv[i][0] == '-'; i += 2) {
        if (i + 1 >= argc)
            die("%s needs a value%s", argv[i], "");
        if (!strcmp(argv[i], "-n"))
            lookups = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-r"))
            runs = atoi(argv[i + 1]);
        else
            die("unknown option %s%s", argv[i], "");
    }
    if (i == argc || lookups < 1 || runs < 1 || runs > 64)
        die("usage: router_bench [-n LOOKUPS] [-r RUNS(1-64)] NAME=FILE ...%s%s", "", "");
    int nsets = argc - i;
    struct set *sets = calloc(nsets > 0 ? (size_t)nsets : 1u, sizeof(*sets));
    if (!sets)
        die("%s%s", "out of memory", "");
    printf("router lookups: median of %d runs of ~%ld lookups each, thread CPU ns per lookup\n\n",
           runs, lookups);
    printf("%-12s %7s %7s %6s %6s %10s %10s\n", "set", "lines", "routes", "hits", "misses",
           "hit ns", "miss ns");
    for (int s = 0; s < nsets; s++) {
        struct set *st = &sets[s];
        char *eq = strchr(argv[i + s], '=');
        if (!eq)
            die("expected NAME=FILE, got %s%s", argv[i + s], "");
        *eq = '\0';
        st->name = argv[i + s];
        hp_router_t *r = hp_router_new();
        if (!r)
            die("%s%s", "out of memory", "");
        load(st, eq + 1, r);
        shuffle(st->hit, st->nhit);
        shuffle(st->miss, st->nmiss);
        st->hit_ns = measure(r, st->hit, st->nhit, lookups, runs);
        st->miss_ns = measure(r, st->miss, st->nmiss, lookups, runs);
        printf("%-12s %7zu %7zu %6zu %6zu %10.1f %10.1f\n", st->name, st->lines, st->routes,
               st->nhit, st->nmiss, st->hit_ns, st->miss_ns);
        fflush(stdout);
        for (size_t k = 0; k < st->nhit; k++)
            free(st->hit[k].s);
        for (size_t k = 0; k < st->nmiss; k++)
            free(st->miss[k].s);
        free(st->hit);
        free(st->miss);
        hp_router_free(r);
    }
    for (int s = 0; s < nsets; s++) {
        if (strcmp(sets[s].name, "github"))
            continue;
        double worst = sets[s].hit_ns > sets[s].miss_ns ? sets[s].hit_ns : sets[s].miss_ns;
        printf("\ngithub target <= %.0f ns/lookup: %s (hit %.1f ns, miss %.1f ns)\n", TARGET_NS,
               worst <= TARGET_NS ? "MET" : "NOT MET", sets[s].hit_ns, sets[s].miss_ns);
    }
    free(sets);
    return 0;
}
