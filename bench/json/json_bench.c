/*
 * json_bench.c - the JSON library for AMQP message bodies, chosen by
 * measurement among Debian 12's jansson, json-c and cJSON.
 *
 * One realistic message (MSG, ~1 KiB: an object of 20 fields with strings,
 * integers, a float, booleans, a null, a nested object and an array of 10
 * small objects) and the same message as C values (REF, described field by
 * field in ORDER_S, so that every library builds and checks exactly the
 * same document). Per library and operation:
 *   decode       text -> document, and the document freed: the consuming
 *                side. The text is a borrowed buffer with a length and no
 *                NUL, ending at a PROT_NONE page, so a parser that reads one
 *                byte past the length crashes the run.
 *   encode       document -> compact text, through the API that returns a
 *                string (freed after each call, where the caller owns it).
 *   encode buf   document -> compact text written into a caller's buffer,
 *                as a publisher would write it into its frame buffer.
 *   build+encode C values -> document -> compact text in the caller's
 *                buffer -> document freed: what publishing does.
 * Each cell: median (and min, max) of `runs` runs of N operations, N chosen
 * so that one run takes about `ms` milliseconds of thread CPU time; the runs
 * of all cells are interleaved so that drift hits every library alike.
 * Allocations per operation are counted through the libraries' allocator
 * hooks where they have one (jansson, cJSON); -A runs one cell without
 * timing so that run.sh can count every library's allocations, json-c's
 * included, under valgrind.
 *
 * Before anything is timed, every library's decode, encode, encode-into-
 * buffer and build+encode output is checked field by field against REF,
 * after a re-parse by each of the three libraries: a measurement of broken
 * output stops the program with exit status 1.
 *
 * The libraries sit behind lib_t (json_bench.h), one file each.
 *
 * Usage: json_bench [-r runs] [-t ms_per_run]
 *        json_bench -A lib:op:count    (run one cell count times, untimed)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "json_bench.h"

/* ---- the message ---- */

/* Compact, in the order of ORDER_S, so that an encoder that keeps
 * insertion order and formats numbers as written gives it back byte for byte.
 * Two non-ASCII names (UTF-8), an escaped quote and a '/' keep the string
 * escaping paths honest. */
const char MSG[] =
    "{\"id\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\",\"type\":\"order.created\",\"version\":3,"
    "\"source\":\"shop-eu-1/checkout\",\"created_at\":\"2026-12-07T14:03:27.512Z\","
    "\"timestamp_ms\":1796652207512,\"sequence\":48213377,"
    "\"customer\":{\"id\":90210,\"name\":\"J\xc3\xb6rg M\xc3\xbcller\","
    "\"email\":\"j.mueller@example.com\",\"tier\":\"gold\",\"verified\":true},"
    "\"currency\":\"EUR\",\"total\":1234.56,\"items\":["
    "{\"sku\":\"SKU-10001\",\"qty\":2,\"price\":1999,\"gift\":false},"
    "{\"sku\":\"SKU-10002\",\"qty\":1,\"price\":4950,\"gift\":false},"
    "{\"sku\":\"SKU-10003\",\"qty\":3,\"price\":299,\"gift\":true},"
    "{\"sku\":\"SKU-10004\",\"qty\":1,\"price\":12900,\"gift\":false},"
    "{\"sku\":\"SKU-10005\",\"qty\":6,\"price\":150,\"gift\":false},"
    "{\"sku\":\"SKU-10006\",\"qty\":2,\"price\":2500,\"gift\":true},"
    "{\"sku\":\"SKU-10007\",\"qty\":1,\"price\":799,\"gift\":false},"
    "{\"sku\":\"SKU-10008\",\"qty\":4,\"price\":1250,\"gift\":false},"
    "{\"sku\":\"SKU-10009\",\"qty\":1,\"price\":3999,\"gift\":false},"
    "{\"sku\":\"SKU-10010\",\"qty\":2,\"price\":875,\"gift\":true}],"
    "\"paid\":true,\"shipped\":false,\"priority\":5,\"channel\":\"web\",\"coupon\":null,"
    "\"locale\":\"de-DE\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"retries\":0,"
    "\"note\":\"Bitte an der Hintert\xc3\xbcr abgeben, \\\"Hof\\\" links\"}";
const size_t MSG_LEN = sizeof MSG - 1;

/* MSG as C values; verify() checks that MSG decodes to exactly this. */
const order_t REF = {
    .id = "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    .type = "order.created",
    .version = 3,
    .source = "shop-eu-1/checkout",
    .created_at = "2026-12-07T14:03:27.512Z",
    .timestamp_ms = 1796652207512,
    .sequence = 48213377,
    .customer = {90210, "J\xc3\xb6rg M\xc3\xbcller", "j.mueller@example.com", "gold", true},
    .currency = "EUR",
    .total = 1234.56,
    .items = {{"SKU-10001", 2, 1999, false}, {"SKU-10002", 1, 4950, false},
              {"SKU-10003", 3, 299, true},   {"SKU-10004", 1, 12900, false},
              {"SKU-10005", 6, 150, false},  {"SKU-10006", 2, 2500, true},
              {"SKU-10007", 1, 799, false},  {"SKU-10008", 4, 1250, false},
              {"SKU-10009", 1, 3999, false}, {"SKU-10010", 2, 875, true}},
    .paid = true,
    .shipped = false,
    .priority = 5,
    .channel = "web",
    .locale = "de-DE",
    .trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
    .retries = 0,
    .note = "Bitte an der Hintert\xc3\xbcr abgeben, \"Hof\" links",
};

/* MSG's shape, field by field in MSG's order. */
#define F(t, k, kind, m) {k, kind, offsetof(t, m), NULL}
static const field_t ITEM_F[] = {
    F(item_t, "sku", K_STR, sku), F(item_t, "qty", K_INT, qty),
    F(item_t, "price", K_INT, price), F(item_t, "gift", K_BOOL, gift)};
static const schema_t ITEM_S = {ITEM_F, 4, sizeof(item_t), 10};
static const field_t CUSTOMER_F[] = {
    F(customer_t, "id", K_INT, id), F(customer_t, "name", K_STR, name),
    F(customer_t, "email", K_STR, email), F(customer_t, "tier", K_STR, tier),
    F(customer_t, "verified", K_BOOL, verified)};
static const schema_t CUSTOMER_S = {CUSTOMER_F, 5, sizeof(customer_t), 0};
static const field_t ORDER_F[] = {
    F(order_t, "id", K_STR, id),
    F(order_t, "type", K_STR, type),
    F(order_t, "version", K_INT, version),
    F(order_t, "source", K_STR, source),
    F(order_t, "created_at", K_STR, created_at),
    F(order_t, "timestamp_ms", K_INT, timestamp_ms),
    F(order_t, "sequence", K_INT, sequence),
    {"customer", K_OBJ, offsetof(order_t, customer), &CUSTOMER_S},
    F(order_t, "currency", K_STR, currency),
    F(order_t, "total", K_REAL, total),
    {"items", K_ARR, offsetof(order_t, items), &ITEM_S},
    F(order_t, "paid", K_BOOL, paid),
    F(order_t, "shipped", K_BOOL, shipped),
    F(order_t, "priority", K_INT, priority),
    F(order_t, "channel", K_STR, channel),
    {"coupon", K_NULL, 0, NULL},
    F(order_t, "locale", K_STR, locale),
    F(order_t, "trace_id", K_STR, trace_id),
    F(order_t, "retries", K_INT, retries),
    F(order_t, "note", K_STR, note)};
const schema_t ORDER_S = {ORDER_F, 20, sizeof(order_t), 0};
#undef F

/* The first mismatch a check found, for the error message. */
static char g_why[160];

bool mismatch(const char *key, const char *what)
{
    snprintf(g_why, sizeof g_why, "field \"%s\": %s", key, what);
    return false;
}

static const lib_t *const LIBS[] = {&LIB_JANSSON, &LIB_JSONC, &LIB_CJSON};
#define NLIBS 3

/* ---- inputs at a guard page, the output buffer ---- */

static char *g_page;     /* two pages per slot: data, then PROT_NONE */
static size_t g_pagesz;
static char g_out[4096]; /* the "frame buffer" for encode buf */
static void *g_doc[NLIBS]; /* each library's decoded MSG, for the encode cells */

/* Copies len bytes so that they end where the guard page begins. Slot 0 holds
 * MSG for the timed decodes; slot 1 is scratch for re-parses and probes. */
static const char *at_guard(int slot, const char *s, size_t len)
{
    if (len > g_pagesz)
        abort();
    char *end = g_page + (size_t)slot * 2 * g_pagesz + g_pagesz;
    memcpy(end - len, s, len);
    return end - len;
}

static void guard_init(void)
{
    g_pagesz = (size_t)sysconf(_SC_PAGESIZE);
    if (MSG_LEN > g_pagesz) {
        fprintf(stderr, "message larger than a page\n");
        exit(1);
    }
    g_page = mmap(NULL, 4 * g_pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_page == MAP_FAILED || mprotect(g_page + g_pagesz, g_pagesz, PROT_NONE) ||
        mprotect(g_page + 3 * g_pagesz, g_pagesz, PROT_NONE)) {
        perror("mmap");
        exit(1);
    }
}

/* ---- the operations ---- */

enum op { OP_DECODE, OP_ENCODE, OP_ENCODE_BUF, OP_BUILD, NOPS };
static const char *const OP_NAMES[NOPS] = {"decode", "encode", "encode buf", "build+encode"};
static const char *const OP_KEYS[NOPS] = {"decode", "encode", "encodebuf", "build"};

/* One operation; returns a length so that the work cannot be optimised away.
 * Failures were ruled out by verify(); a later one aborts. */
static size_t run_op(const lib_t *L, int li, enum op op, const char *in)
{
    char err[128];
    size_t n = 0;
    switch (op) {
    case OP_DECODE: {
        void *d = L->decode(in, MSG_LEN, err, sizeof err);
        if (!d)
            abort();
        L->free(d);
        return 1;
    }
    case OP_ENCODE: {
        char *s = L->encode(g_doc[li], &n);
        if (!s)
            abort();
        L->release(s);
        return n;
    }
    case OP_ENCODE_BUF:
        n = L->encode_buf(g_doc[li], g_out, sizeof g_out);
        break;
    case OP_BUILD: {
        void *d = L->build(&REF);
        if (!d)
            abort();
        n = L->encode_buf(d, g_out, sizeof g_out);
        L->free(d);
        break;
    }
    default:
        break;
    }
    if (!n)
        abort();
    return n;
}

/* ---- correctness, before any timing ---- */

/* Re-parses text with every library and checks each document against REF. */
static bool reparse_all(const char *what, const char *lname, const char *text, size_t len)
{
    bool ok = true;
    for (int j = 0; j < NLIBS; j++) {
        char err[128];
        void *d = LIBS[j]->decode(at_guard(1, text, len), len, err, sizeof err);
        if (!d) {
            printf("FAIL %s %s: %s cannot parse it: %s\n", lname, what, LIBS[j]->name, err);
            ok = false;
            continue;
        }
        g_why[0] = 0;
        if (!LIBS[j]->check(d, &ORDER_S, &REF)) {
            printf("FAIL %s %s, re-parsed by %s: %s\n", lname, what, LIBS[j]->name, g_why);
            ok = false;
        }
        LIBS[j]->free(d);
    }
    return ok;
}

static bool verify(void)
{
    bool ok = true;
    printf("correctness: each output re-parsed by all three libraries, all %d top-level fields,\n"
           "the customer and the 10 items compared with the C values\n\n",
           ORDER_S.n);
    printf("%-8s %-8s %-14s %-16s %s\n", "lib", "decode", "encode bytes", "encode buf bytes",
           "build+encode bytes, same as input");
    for (int i = 0; i < NLIBS; i++) {
        const lib_t *L = LIBS[i];
        char err[128], buf[4096];
        void *doc = L->decode(at_guard(0, MSG, MSG_LEN), MSG_LEN, err, sizeof err);
        if (!doc) {
            printf("FAIL %s decode: %s\n", L->name, err);
            ok = false;
            continue;
        }
        g_why[0] = 0;
        bool dec = L->check(doc, &ORDER_S, &REF);
        if (!dec) {
            printf("FAIL %s decode: %s\n", L->name, g_why);
            ok = false;
        }
        size_t n = 0, nb, nbuild;
        char *s = L->encode(doc, &n);
        if (!s || !n) {
            printf("FAIL %s encode: no text\n", L->name);
            ok = false;
        } else {
            ok &= reparse_all("decode+encode", L->name, s, n);
        }
        nb = L->encode_buf(doc, buf, sizeof buf);
        if (!nb || !s || nb != n || memcmp(buf, s, n)) {
            printf("FAIL %s encode buf: differs from encode\n", L->name);
            ok = false;
        }
        if (s)
            L->release(s);
        void *built = L->build(&REF);
        nbuild = built ? L->encode_buf(built, buf, sizeof buf) : 0;
        if (!nbuild) {
            printf("FAIL %s build+encode: no text\n", L->name);
            ok = false;
        } else {
            ok &= reparse_all("build+encode", L->name, buf, nbuild);
        }
        printf("%-8s %-8s %-14zu %-16zu %zu, %s\n", L->name, dec ? "ok" : "FAIL", n, nb, nbuild,
               nbuild == MSG_LEN && !memcmp(buf, MSG, MSG_LEN) ? "byte for byte" : "differs");
        if (nbuild && (nbuild != MSG_LEN || memcmp(buf, MSG, MSG_LEN))) {
            /* Show where, so that the table below can say why. */
            size_t k = 0;
            while (k < nbuild && k < MSG_LEN && buf[k] == MSG[k])
                k++;
            size_t from = k > 20 ? k - 20 : 0;
            printf("         first difference at byte %zu: ...%.*s...\n", k,
                   (int)(nbuild - from < 50 ? nbuild - from : 50), buf + from);
        }
        if (built)
            L->free(built);
        g_doc[i] = doc;
    }
    printf("\ninput: %zu bytes\n\n", MSG_LEN);
    return ok;
}

/* ---- what each library makes of edge cases ---- */

static void probes(void)
{
    static const struct {
        const char *name, *text;
    } P[] = {
        {"2^53+1", "{\"n\":9007199254740993}"},
        {"2^64-1", "{\"n\":18446744073709551615}"},
        {"0.1", "{\"f\":0.1}"},
        {"duplicate key", "{\"a\":1,\"a\":2}"},
        {"\\u0000 in a string", "{\"s\":\"a\\u0000b\"}"},
        {"invalid UTF-8", "{\"s\":\"\xff\"}"},
        {"bytes after", "{\"a\":1} x"},
    };
    printf("what each library makes of edge cases: decode (with length) + compact encode\n\n");
    printf("%-20s %-8s %s\n", "input", "lib", "output or error");
    for (size_t p = 0; p < sizeof P / sizeof P[0]; p++) {
        for (int i = 0; i < NLIBS; i++) {
            char err[128];
            size_t len = strlen(P[p].text), n = 0;
            void *d = LIBS[i]->decode(at_guard(1, P[p].text, len), len, err, sizeof err);
            if (!d) {
                printf("%-20s %-8s error: %s\n", P[p].name, LIBS[i]->name, err);
                continue;
            }
            char *s = LIBS[i]->encode(d, &n);
            printf("%-20s %-8s ", P[p].name, LIBS[i]->name);
            /* Show non-printable bytes as \xNN. */
            for (size_t k = 0; s && k < n; k++) {
                unsigned char c = (unsigned char)s[k];
                if (c >= 0x20 && c < 0x7f)
                    putchar(c);
                else
                    printf("\\x%02x", c);
            }
            putchar('\n');
            if (s)
                LIBS[i]->release(s);
            LIBS[i]->free(d);
        }
    }
    putchar('\n');
}

/* ---- timing ---- */

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static volatile size_t g_sink;

/* ns per operation over n operations of one cell. */
static double time_cell(int li, enum op op, const char *in, uint64_t n)
{
    size_t sink = 0;
    uint64_t t0 = cpu_ns();
    for (uint64_t k = 0; k < n; k++)
        sink += run_op(LIBS[li], li, op, in);
    uint64_t t1 = cpu_ns();
    g_sink += sink;
    return (double)(t1 - t0) / (double)n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- allocation counting through the hooks ---- */

static uint64_t g_allocs, g_frees, g_bytes;

static void *count_malloc(size_t n)
{
    g_allocs++;
    g_bytes += n;
    return malloc(n);
}

static void count_free(void *p)
{
    if (p)
        g_frees++;
    free(p);
}

/* Allocations per operation, and whether every one was freed; -1 without a hook. */
static double count_allocs(int li, enum op op, const char *in, double *bytes, bool *balanced)
{
    if (!LIBS[li]->set_alloc)
        return -1;
    enum { K = 100 };
    run_op(LIBS[li], li, op, in); /* any first-call set-up stays out of the count */
    g_allocs = g_frees = g_bytes = 0;
    for (int k = 0; k < K; k++)
        g_sink += run_op(LIBS[li], li, op, in);
    *bytes = (double)g_bytes / K;
    *balanced = g_allocs == g_frees;
    return (double)g_allocs / K;
}

/* -A lib:op:count: runs one cell count times without timing or output. */
static int count_mode(const char *spec, const char *in)
{
    char lname[16], oname[16];
    unsigned long count;
    if (sscanf(spec, "%15[^:]:%15[^:]:%lu", lname, oname, &count) != 3)
        return 2;
    for (int i = 0; i < NLIBS; i++) {
        if (strcmp(LIBS[i]->name, lname))
            continue;
        for (int o = 0; o < NOPS; o++) {
            if (strcmp(OP_KEYS[o], oname))
                continue;
            for (unsigned long k = 0; k < count; k++)
                g_sink += run_op(LIBS[i], i, (enum op)o, in);
            return 0;
        }
    }
    return 2;
}

int main(int argc, char **argv)
{
    int runs = 5, ms = 500, opt;
    const char *count_spec = NULL;
    while ((opt = getopt(argc, argv, "r:t:A:")) != -1) {
        if (opt == 'r')
            runs = atoi(optarg);
        else if (opt == 't')
            ms = atoi(optarg);
        else if (opt == 'A')
            count_spec = optarg;
        else
            return 2;
    }
    if (runs < 1 || runs > 99 || ms < 1)
        return 2;
    guard_init();
    for (int i = 0; i < NLIBS; i++)
        if (LIBS[i]->init && LIBS[i]->init() < 0)
            return 1;
    const char *in = at_guard(0, MSG, MSG_LEN);

    if (count_spec) {
        /* The same set-up whatever the cell, so that run.sh can subtract a
         * run of count 0: the decoded documents, each encoded once so that
         * json-c's lazily made print buffer is not counted in a cell. */
        for (int i = 0; i < NLIBS; i++) {
            char err[128];
            g_doc[i] = LIBS[i]->decode(in, MSG_LEN, err, sizeof err);
            if (!g_doc[i] || !LIBS[i]->encode_buf(g_doc[i], g_out, sizeof g_out))
                return 1;
        }
        int rc = count_mode(count_spec, in);
        for (int i = 0; i < NLIBS; i++) {
            LIBS[i]->free(g_doc[i]);
            if (LIBS[i]->fini)
                LIBS[i]->fini();
        }
        return rc;
    }

    printf("libraries: ");
    for (int i = 0; i < NLIBS; i++)
        printf("%s %s%s", LIBS[i]->name, LIBS[i]->version(), i + 1 < NLIBS ? ", " : "\n\n");
    if (!verify()) {
        printf("correctness check failed: nothing timed\n");
        return 1;
    }
    probes();

    /* N per cell: double the count until a batch takes 50 ms, then scale. */
    uint64_t n[NLIBS][NOPS];
    for (int i = 0; i < NLIBS; i++)
        for (int o = 0; o < NOPS; o++) {
            uint64_t k = 1;
            for (;;) {
                uint64_t t0 = cpu_ns();
                time_cell(i, (enum op)o, in, k);
                uint64_t dt = cpu_ns() - t0;
                if (dt >= 50000000u) {
                    n[i][o] = (uint64_t)((double)k * (double)ms * 1e6 / (double)dt);
                    break;
                }
                k *= 2;
            }
            if (n[i][o] < 1)
                n[i][o] = 1;
        }

    /* Run r of every cell before run r+1 of any. */
    double ns[NLIBS][NOPS][99];
    uint64_t w0 = wall_ns(), c0 = cpu_ns();
    for (int r = 0; r < runs; r++)
        for (int i = 0; i < NLIBS; i++)
            for (int o = 0; o < NOPS; o++)
                ns[i][o][r] = time_cell(i, (enum op)o, in, n[i][o]);
    double wall = (double)(wall_ns() - w0) / 1e9, cpu = (double)(cpu_ns() - c0) / 1e9;

    /* The counting hooks go in after the timing, so that timed runs keep
     * cJSON's realloc (its hooks disable it) and every library's own paths. */
    for (int i = 0; i < NLIBS; i++)
        if (LIBS[i]->set_alloc)
            LIBS[i]->set_alloc(count_malloc, count_free);

    double med[NLIBS][NOPS];
    printf("median of %d runs of N operations each (~%d ms of thread CPU per run), ns per operation;\n"
           "allocs and bytes requested per operation through the library's allocator hook\n\n",
           runs, ms);
    printf("%-8s %-13s %9s %10s %10s %10s %9s %9s\n", "lib", "op", "N", "median ns", "min ns",
           "max ns", "allocs", "bytes");
    for (int o = 0; o < NOPS; o++) {
        for (int i = 0; i < NLIBS; i++) {
            double v[99];
            memcpy(v, ns[i][o], sizeof(double) * (size_t)runs);
            qsort(v, (size_t)runs, sizeof v[0], cmp_double);
            med[i][o] = runs % 2 ? v[runs / 2] : (v[runs / 2 - 1] + v[runs / 2]) / 2;
            double bytes = 0;
            bool balanced = true;
            double a = count_allocs(i, (enum op)o, in, &bytes, &balanced);
            printf("%-8s %-13s %9llu %10.0f %10.0f %10.0f ", LIBS[i]->name, OP_NAMES[o],
                   (unsigned long long)n[i][o], med[i][o], v[0], v[runs - 1]);
            if (a < 0)
                printf("%9s %9s\n", "no hook", "-");
            else
                printf("%9.1f %9.0f%s\n", a, bytes, balanced ? "" : "  (allocs != frees)");
        }
    }
    printf("\nratios of the medians to the fastest library, per operation (same run)\n\n");
    printf("%-13s", "op");
    for (int i = 0; i < NLIBS; i++)
        printf(" %9s", LIBS[i]->name);
    printf("\n");
    for (int o = 0; o < NOPS; o++) {
        double best = INFINITY;
        for (int i = 0; i < NLIBS; i++)
            best = fmin(best, med[i][o]);
        printf("%-13s", OP_NAMES[o]);
        for (int i = 0; i < NLIBS; i++)
            printf(" %8.2fx", med[i][o] / best);
        printf("\n");
    }
    printf("\ntimed runs: %.1f s wall, %.1f s thread CPU (%.0f %% of wall)\n", wall, cpu,
           100 * cpu / wall);

    for (int i = 0; i < NLIBS; i++) {
        LIBS[i]->free(g_doc[i]);
        if (LIBS[i]->fini)
            LIBS[i]->fini();
    }
    return 0;
}
