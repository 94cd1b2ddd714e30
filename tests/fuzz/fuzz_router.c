/*
 * fuzz_router.c - libFuzzer target for the HTTP router (src/http/router.c).
 *
 * The input is split at '\n'. A line "+<m><pattern>" registers <pattern>
 * with the method mask byte <m> (any byte: masks outside the seven methods
 * must be rejected); any other line is a path, matched with each of the
 * seven methods and with 0. Everything is checked against a brute-force
 * reference written here from the rules in router.h, independently of the
 * router's code: its own pattern grammar (valid or -EINVAL), its own
 * conflict rule (-EEXIST), and a matcher that tries every route and keeps
 * the one with the smallest per-segment precedence ranks. Status, handler,
 * udata, Allow, pattern and every parameter (name, type, slice, int value)
 * must agree; hp_router_validate must pass after every registration. Each
 * path is matched from a heap copy of exactly its bytes, so ASan catches a
 * read past the end.
 */
#include "hotpath/router.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROUTES 48
#define MAX_LINES 96

struct ref_elem {
    bool param;
    int rank; /* 0 static, 1 int, 2 uuid, 3 slug, 4 segment, 5 catch-all */
    const char *s;
    size_t len;
};

struct ref_route {
    char *pattern; /* owned */
    struct ref_elem el[2 * HP_ROUTER_MAX_PARAMS + 1];
    int nel;
    uint32_t methods;
    void *handler[7];
};

static const int rank_type[6] = {-1, HP_ROUTE_PARAM_INT, HP_ROUTE_PARAM_UUID, HP_ROUTE_PARAM_SLUG,
                                 HP_ROUTE_PARAM_SEGMENT, HP_ROUTE_PARAM_REST};

static bool static_byte(uint8_t c)
{
    if (c >= 0x80)
        return true;
    return c > 0x20 && c < 0x7f && c != '?' && c != '#' && c != '{' && c != '}';
}

static bool name_byte(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The grammar of router.h, written out plainly. False: -EINVAL. */
static bool ref_parse(struct ref_route *rr, const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 4096 || p[0] != '/')
        return false;
    rr->nel = 0;
    int nparams = 0;
    size_t i = 0;
    while (i < n) {
        if (p[i] != '{') {
            if (!static_byte((uint8_t)p[i]))
                return false;
            size_t j = i;
            while (j < n && p[j] != '{') {
                if (!static_byte((uint8_t)p[j]))
                    return false;
                j++;
            }
            rr->el[rr->nel++] = (struct ref_elem){false, 0, p + i, j - i};
            i = j;
            continue;
        }
        if (p[i - 1] != '/' || nparams == HP_ROUTER_MAX_PARAMS)
            return false;
        const char *close = memchr(p + i, '}', n - i);
        if (!close)
            return false;
        const char *body = p + i + 1;
        size_t blen = (size_t)(close - body);
        const char *colon = memchr(body, ':', blen);
        size_t nlen = colon ? (size_t)(colon - body) : blen;
        if (nlen == 0 || nlen > 255)
            return false;
        for (size_t k = 0; k < nlen; k++)
            if (!name_byte((uint8_t)body[k]))
                return false;
        int rank = 4;
        if (colon) {
            const char *t = colon + 1;
            size_t tl = blen - nlen - 1;
            if (tl == 3 && !memcmp(t, "int", 3))
                rank = 1;
            else if (tl == 4 && !memcmp(t, "uuid", 4))
                rank = 2;
            else if (tl == 4 && !memcmp(t, "slug", 4))
                rank = 3;
            else if (tl == 1 && *t == '*')
                rank = 5;
            else
                return false;
        }
        size_t after = (size_t)(close - p) + 1;
        if (after < n && (p[after] != '/' || rank == 5))
            return false;
        for (int k = 0; k < rr->nel; k++)
            if (rr->el[k].param && rr->el[k].len == nlen && !memcmp(rr->el[k].s, body, nlen))
                return false;
        rr->el[rr->nel++] = (struct ref_elem){true, rank, body, nlen};
        nparams++;
        i = after;
    }
    return true;
}

/* -EEXIST when q (already registered) and rr collide; 1 when they are the
 * same pattern; 0 when independent. */
static int ref_conflict(const struct ref_route *q, const struct ref_route *rr)
{
    for (int k = 0;; k++) {
        if (k == q->nel || k == rr->nel)
            return k == q->nel && k == rr->nel ? 1 : 0;
        const struct ref_elem *a = &q->el[k], *b = &rr->el[k];
        if (a->param != b->param || a->rank != b->rank)
            return 0;
        bool same = a->len == b->len && !memcmp(a->s, b->s, a->len);
        if (!same)
            return a->param ? -EEXIST : 0;
    }
}

static bool ref_int(const char *s, size_t n, int64_t *v)
{
    char buf[32], back[32];
    if (n == 0 || n >= sizeof(buf) || memchr(s, '\0', n))
        return false; /* strtoll would stop at an embedded NUL */
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (buf[0] != '-' && (buf[0] < '0' || buf[0] > '9'))
        return false; /* strtoll would skip spaces and take '+' */
    errno = 0;
    char *end;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end)
        return false;
    snprintf(back, sizeof(back), "%lld", x);
    if (strcmp(back, buf))
        return false;
    *v = x;
    return true;
}

static bool ref_accept(int rank, const char *s, size_t n, int64_t *v)
{
    *v = 0;
    switch (rank) {
    case 1:
        return ref_int(s, n, v);
    case 2:
        if (n != 36)
            return false;
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            if ((i == 8 || i == 13 || i == 18 || i == 23) ? c != '-' : !hex)
                return false;
        }
        return true;
    case 3:
        for (size_t i = 0; i < n; i++)
            if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                return false;
        return true;
    default:
        return true;
    }
}

/* Matches one route; rank[p] is the choice made at path offset p. */
static bool ref_try(const struct ref_route *rr, const char *path, size_t len, uint8_t *rank,
                    hp_route_match_t *m)
{
    memset(rank, 0, len + 1);
    m->nparams = 0;
    size_t pos = 0;
    for (int k = 0; k < rr->nel; k++) {
        const struct ref_elem *e = &rr->el[k];
        if (!e->param) {
            if (len - pos < e->len || memcmp(path + pos, e->s, e->len))
                return false;
            pos += e->len;
            continue;
        }
        size_t end = len;
        if (e->rank != 5) {
            const char *sl = memchr(path + pos, '/', len - pos);
            if (sl)
                end = (size_t)(sl - path);
            if (end == pos)
                return false;
        }
        int64_t v = 0;
        if (!ref_accept(e->rank, path + pos, end - pos, &v))
            return false;
        for (size_t q = pos; q <= (e->rank == 5 ? len : pos); q++)
            rank[q] = (uint8_t)e->rank;
        hp_route_param_t *p = &m->params[m->nparams++];
        p->name = e->s;
        p->name_len = (uint8_t)e->len;
        p->type = (uint8_t)rank_type[e->rank];
        p->value = path + pos;
        p->len = (uint32_t)(end - pos);
        p->i = v;
        pos = end;
    }
    return pos == len;
}

static int ref_match(struct ref_route *rs, int nr, uint32_t method, const char *path, size_t len,
                     hp_route_match_t *out)
{
    uint8_t *rank = malloc(len + 1), *best_rank = malloc(len + 1);
    if (!rank || !best_rank)
        abort();
    int best = -1;
    hp_route_match_t m;
    for (int i = 0; i < nr; i++) {
        if (!ref_try(&rs[i], path, len, rank, &m))
            continue;
        int cmp = best < 0 ? -1 : 0;
        /* Choices are made at segment starts: offsets right after a '/'. */
        for (size_t p = 1; cmp == 0 && p <= len; p++)
            if (path[p - 1] == '/' && rank[p] != best_rank[p])
                cmp = rank[p] < best_rank[p] ? -1 : 1;
        if (cmp == 0)
            abort(); /* two routes that the router could not tell apart */
        if (cmp < 0) {
            best = i;
            memcpy(best_rank, rank, len + 1);
            *out = m;
        }
    }
    free(rank);
    free(best_rank);
    if (best < 0)
        return 404;
    uint32_t ms = rs[best].methods;
    out->allow = ms | (ms & HP_ROUTER_GET ? HP_ROUTER_HEAD : 0u);
    out->pattern = rs[best].pattern;
    int mi = -1;
    for (int k = 0; k < 7; k++)
        if (method == (1u << k))
            mi = k;
    if (mi >= 0 && !(ms & method))
        mi = method == HP_ROUTER_HEAD && (ms & HP_ROUTER_GET) ? 0 : -1;
    if (mi < 0)
        return 405;
    out->handler = rs[best].handler[mi];
    return 200;
}

static void check_match(const hp_router_t *r, struct ref_route *rs, int nr, const uint8_t *d,
                        size_t n)
{
    char *path = malloc(n ? n : 1);
    if (!path)
        abort();
    memcpy(path, d, n);
    for (int k = 0; k <= 7; k++) {
        uint32_t method = k < 7 ? 1u << k : 0;
        hp_route_match_t got, want;
        memset(&want, 0, sizeof(want));
        int gs = hp_router_match(r, method, path, n, &got);
        int ws = ref_match(rs, nr, method, path, n, &want);
        if (gs != ws)
            abort();
        if (ws == 404) {
            if (got.allow || got.pattern || got.nparams || got.handler)
                abort();
            continue;
        }
        if (strcmp(got.pattern, want.pattern) || got.allow != want.allow)
            abort();
        if (got.handler != (ws == 200 ? want.handler : NULL) || got.udata != got.handler)
            abort();
        if (got.nparams != want.nparams)
            abort();
        for (uint32_t i = 0; i < got.nparams; i++) {
            const hp_route_param_t *a = &got.params[i], *b = &want.params[i];
            if (a->name_len != b->name_len || memcmp(a->name, b->name, a->name_len) ||
                a->type != b->type || a->value != b->value || a->len != b->len || a->i != b->i)
                abort();
        }
    }
    free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hp_router_t *r = hp_router_new();
    if (!r)
        abort();
    struct ref_route rs[MAX_ROUTES];
    int nr = 0, lines = 0;
    size_t pos = 0;
    while (pos <= size && lines++ < MAX_LINES) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) : size;
        const uint8_t *line = data + pos;
        size_t n = end - pos;
        pos = end + 1;
        if (n == 0 || line[0] != '+') {
            check_match(r, rs, nr, line, n);
            if (!nl)
                break;
            continue;
        }
        if (nr == MAX_ROUTES)
            break;
        uint32_t mask = n > 1 ? line[1] : 0;
        size_t plen = n > 2 ? n - 2 : 0;
        char *pat = malloc(plen + 1);
        if (!pat)
            abort();
        memcpy(pat, line + 2, plen);
        pat[plen] = '\0'; /* an embedded NUL ends the pattern, for both sides */
        void *h = (void *)(uintptr_t)(lines * 16 + 1);

        struct ref_route *rr = &rs[nr];
        memset(rr, 0, sizeof(*rr));
        int want = 0, same = -1;
        if (!mask || (mask & ~HP_ROUTER_ALL_METHODS) || !ref_parse(rr, pat)) {
            want = -EINVAL;
        } else {
            for (int i = 0; i < nr && !want; i++) {
                int c = ref_conflict(&rs[i], rr);
                if (c < 0)
                    want = c;
                else if (c == 1) {
                    same = i;
                    if (rs[i].methods & mask)
                        want = -EEXIST;
                }
            }
        }
        char err[160];
        size_t before = hp_router_count(r);
        int got = hp_router_add(r, mask, pat, h, h, err, sizeof(err));
        if (got != want || hp_router_validate(r) != 0)
            abort();
        if (got != 0) {
            if (!err[0] || strchr(err, '\n') || hp_router_count(r) != before)
                abort();
            free(pat);
        } else {
            struct ref_route *dst = rr;
            if (same >= 0) {
                dst = &rs[same];
                free(pat);
            } else {
                rr->pattern = pat; /* the elements point into it */
                nr++;
            }
            dst->methods |= mask;
            for (int k = 0; k < 7; k++)
                if (mask & (1u << k))
                    dst->handler[k] = h;
            if (err[0] || hp_router_count(r) != (size_t)nr)
                abort();
        }
        if (!nl)
            break;
    }
    for (int i = 0; i < nr; i++)
        free(rs[i].pattern);
    hp_router_free(r);
    return 0;
}
