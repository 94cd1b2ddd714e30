/*
 * router.c - HTTP router: a radix tree with typed parameters plus a hash
 * table for fully static paths.
 *
 * Data structure. Every node is reached by an edge. A static node's edge is
 * a non-empty run of literal bytes (compressed: it may cross '/'); a
 * parameter node's edge is one parameter (its text is the name). A node has
 * static children sorted by the first byte of their edge (a byte array
 * `keys` beside the child pointers, so picking a child is one memchr), up
 * to one parameter child per type in fixed slots ordered by precedence
 * (int, uuid, slug, untyped segment, catch-all), and the route that ends
 * there. Routes without parameters are also in an open-addressing hash
 * table keyed by their path, so /health and friends cost one hash lookup.
 *
 * Invariants (checked by hp_router_validate):
 *   - static children: non-empty edges, keys[i] == kids[i]->text[0],
 *     strictly increasing keys; a static node with no route and no
 *     parameter child has at least two static children (compressed);
 *   - parameter children only hang under static nodes whose edge ends in
 *     '/', i.e. at segment starts; a catch-all node is a leaf with a route;
 *   - every node except the root leads to at least one route;
 *   - the hash table holds exactly the routes whose tree path has no
 *     parameter node.
 * The tree is only changed by hp_router_add, which allocates everything it
 * needs before touching the live tree, so a failure leaves it unchanged.
 */
#include "hotpath/router.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "hotpath/alloc.h"
#include "hotpath/common.h"
#include "hotpath/http_method.h"

#define NMETHODS 7
#define NSLOTS 5
/* Longer patterns are certainly a mistake; the cap also bounds the depth of
 * the recursive walk (every node consumes at least one pattern byte). */
#define MAX_PATTERN 4096
#define MAX_ELEMS (2 * HP_ROUTER_MAX_PARAMS + 1)
#define ELEM_STATIC 0xff
#define HASH_MIN 16
/* Nodes with this many child slots get a 256-byte index by first byte:
 * the node under /repos/{owner}/{repo}/ has ~40 children, and a linear
 * scan of them was the largest cost of a lookup. */
#define IDX_MIN 16

/* Parameter slots in precedence order, and the type held by each slot. */
enum { SLOT_INT, SLOT_UUID, SLOT_SLUG, SLOT_SEGMENT, SLOT_REST };
static const uint8_t slot_type[NSLOTS] = {HP_ROUTE_PARAM_INT, HP_ROUTE_PARAM_UUID,
                                          HP_ROUTE_PARAM_SLUG, HP_ROUTE_PARAM_SEGMENT,
                                          HP_ROUTE_PARAM_REST};
static const uint8_t type_slot[NSLOTS] = {SLOT_SEGMENT, SLOT_INT, SLOT_UUID, SLOT_SLUG,
                                          SLOT_REST};
static const char *const type_suffix[NSLOTS] = {"", ":int", ":uuid", ":slug", ":*"};

struct route {
    uint32_t methods; /* registered HP_ROUTER_* bits */
    uint32_t allow;   /* methods, plus HEAD when GET is there */
    uint32_t len;     /* strlen(pattern) */
    bool is_static;   /* no parameters: also in the hash table */
    void *handler[NMETHODS];
    void *udata[NMETHODS];
    char pattern[]; /* owned copy, NUL-terminated */
};

struct node {
    struct route *route;  /* owned: the route ending here, or NULL */
    struct node **kids;   /* owned block: static children, then `keys` */
    uint8_t *keys;        /* first byte of each child's edge, same order */
    uint8_t *idx;         /* when cap >= IDX_MIN: idx[byte] = position in keys */
    struct node *param[NSLOTS];
    uint32_t tlen;        /* edge length (static) or name length (param) */
    uint16_t nkids, cap;  /* static children used / allocated (<= 256) */
    uint8_t pmask;        /* bit s set when param[s] != NULL */
    uint8_t type;         /* HP_ROUTE_PARAM_* for parameter nodes, else ELEM_STATIC */
    char text[];          /* edge bytes or parameter name */
};

struct hentry {
    uint64_t h;
    struct route *r; /* borrowed from the tree; NULL: empty slot */
};

struct hp_router {
    struct node *root; /* empty edge; never has parameter children */
    struct hentry *tab;
    uint32_t tabcap;   /* power of two, or 0 before the first static route */
    uint32_t nstatic;  /* entries in tab */
    uint64_t lenmask;  /* bit min(len, 63) set for each static route: a cheap miss */
    size_t nroutes;
};

/* One element of a parsed pattern: a static run or a parameter. */
struct elem {
    const char *s; /* static bytes or parameter name, inside the pattern */
    uint32_t len;
    uint8_t type;  /* ELEM_STATIC or HP_ROUTE_PARAM_* */
};

/* Byte classes for parameter checks and pattern validation. */
enum { C_DIGIT = 1, C_HEX = 2, C_SLUG = 4, C_NAME = 8, C_PATH = 16 };
static const uint8_t cls[256] = {
#define D (C_DIGIT | C_HEX | C_SLUG | C_NAME | C_PATH)
#define HL (C_HEX | C_SLUG | C_NAME | C_PATH)
#define HU (C_HEX | C_NAME | C_PATH)
#define L (C_SLUG | C_NAME | C_PATH)
#define U (C_NAME | C_PATH)
#define P C_PATH
    ['!'] = P, ['"'] = P, ['$'] = P, ['%'] = P, ['&'] = P, ['\''] = P, ['('] = P, [')'] = P,
    ['*'] = P, ['+'] = P, [','] = P, ['-'] = C_SLUG | C_PATH, ['.'] = P, ['/'] = P,
    ['0'] = D, ['1'] = D, ['2'] = D, ['3'] = D, ['4'] = D, ['5'] = D, ['6'] = D, ['7'] = D,
    ['8'] = D, ['9'] = D, [':'] = P, [';'] = P, ['<'] = P, ['='] = P, ['>'] = P, ['@'] = P,
    ['A'] = HU, ['B'] = HU, ['C'] = HU, ['D'] = HU, ['E'] = HU, ['F'] = HU, ['G'] = U,
    ['H'] = U, ['I'] = U, ['J'] = U, ['K'] = U, ['L'] = U, ['M'] = U, ['N'] = U, ['O'] = U,
    ['P'] = U, ['Q'] = U, ['R'] = U, ['S'] = U, ['T'] = U, ['U'] = U, ['V'] = U, ['W'] = U,
    ['X'] = U, ['Y'] = U, ['Z'] = U, ['['] = P, ['\\'] = P, [']'] = P, ['^'] = P,
    ['_'] = C_NAME | C_PATH, ['`'] = P, ['a'] = HL, ['b'] = HL, ['c'] = HL, ['d'] = HL,
    ['e'] = HL, ['f'] = HL, ['g'] = L, ['h'] = L, ['i'] = L, ['j'] = L, ['k'] = L, ['l'] = L,
    ['m'] = L, ['n'] = L, ['o'] = L, ['p'] = L, ['q'] = L, ['r'] = L, ['s'] = L, ['t'] = L,
    ['u'] = L, ['v'] = L, ['w'] = L, ['x'] = L, ['y'] = L, ['z'] = L, ['|'] = P, ['~'] = P,
    /* Raw UTF-8 in static text is allowed: the router compares bytes. */
    [0x80 ... 0xff] = P,
#undef D
#undef HL
#undef HU
#undef L
#undef U
#undef P
};

/* ---- parameter checks (the matching hot path) ---- */

/* Canonical signed 64-bit decimal: '-'? then 1-19 digits, no leading zero,
 * no "-0", within [INT64_MIN, INT64_MAX]. 19 digits cannot overflow a
 * uint64_t (max 9999999999999999999 < 2^64), so the range check is last. */
static bool parse_int(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = s[0] == '-';
    if (neg)
        i = 1;
    if (i == n || n - i > 19 || (s[i] == '0' && (n - i > 1 || neg)))
        return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned)(uint8_t)s[i] - '0';
        if (d > 9)
            return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

static bool is_uuid(const char *s, size_t n)
{
    if (n != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return false;
    for (size_t i = 0; i < 36; i++)
        if (i != 8 && i != 13 && i != 18 && i != 23 && !(cls[(uint8_t)s[i]] & C_HEX))
            return false;
    return true;
}

static bool is_slug(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(cls[(uint8_t)s[i]] & C_SLUG))
            return false;
    return true;
}

/* Whether a non-empty segment fits the parameter type in `slot`. */
static bool accepts(int slot, const char *s, size_t n, int64_t *iv)
{
    switch (slot) {
    case SLOT_INT:
        return parse_int(s, n, iv);
    case SLOT_UUID:
        return is_uuid(s, n);
    case SLOT_SLUG:
        return is_slug(s, n);
    default:
        return true;
    }
}

/* ---- hash table of static routes ---- */

static uint64_t path_hash(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)(uint8_t)s[i] << (8 * i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static const struct route *hash_find(const hp_router_t *r, const char *path, size_t len)
{
    uint64_t h = path_hash(path, len);
    uint32_t mask = r->tabcap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        const struct hentry *e = &r->tab[i];
        if (!e->r)
            return NULL;
        if (e->h == h && e->r->len == len && memcmp(e->r->pattern, path, len) == 0)
            return e->r;
    }
}

/* Inserts without growing: the caller made room (load factor <= 1/2). */
static void hash_put(struct hentry *tab, uint32_t cap, uint64_t h, struct route *rt)
{
    uint32_t i = (uint32_t)h & (cap - 1);
    while (tab[i].r)
        i = (i + 1) & (cap - 1);
    tab[i].h = h;
    tab[i].r = rt;
}

static uint64_t len_bit(size_t len)
{
    return 1ull << (len < 63 ? len : 63);
}

/* ---- matching ---- */

/* Inline compare of an edge (n >= 1 bytes) with the path, which has
 * avail >= n bytes left: edges are short, and a libc call per node costs
 * more than the compare. Edge text is allocated with 8 bytes of padding,
 * so the last word may be read whole and masked; the path is read past n
 * only when it has 8 bytes left (it may end at a guard page). */
HP_INLINE bool edge_eq(const char *e, const char *p, uint32_t n, size_t avail)
{
    uint64_t x, y;
    for (; n > 8; e += 8, p += 8, n -= 8, avail -= 8) {
        memcpy(&x, e, 8);
        memcpy(&y, p, 8);
        if (x != y)
            return false;
    }
    if (avail >= 8) {
        memcpy(&x, e, 8);
        memcpy(&y, p, 8);
        return ((x ^ y) & (~0ull >> (64 - 8 * n))) == 0;
    }
    while (n--)
        if (*e++ != *p++)
            return false;
    return true;
}

/* Offset of the first '/' in path[pos, len), or len: eight bytes at a
 * time (the classic has-zero-byte test on the bytes XOR '/'). */
HP_INLINE size_t seg_end(const char *path, size_t len, size_t pos)
{
    const uint64_t ones = 0x0101010101010101ull;
    for (; len - pos >= 8; pos += 8) {
        uint64_t w;
        memcpy(&w, path + pos, 8);
        w ^= ones * '/';
        uint64_t z = (w - ones) & ~w & (ones << 7);
        if (z) /* little-endian: the lowest flagged byte is the first '/' */
            return pos + ((size_t)__builtin_ctzll(z) >> 3);
    }
    while (pos < len && path[pos] != '/')
        pos++;
    return pos;
}

/* The static child whose edge starts with ch; keys are sorted, so the scan
 * stops early. */
HP_INLINE const struct node *kid_for(const struct node *n, uint8_t ch)
{
    if (n->idx) {
        uint32_t i = n->idx[ch];
        return i < n->nkids && n->keys[i] == ch ? n->kids[i] : NULL;
    }
    for (uint32_t i = 0; i < n->nkids; i++) {
        if (n->keys[i] >= ch)
            return n->keys[i] == ch ? n->kids[i] : NULL;
    }
    return NULL;
}

/* Depth-first walk from n, whose edge ends at path[pos]. Returns the first
 * route found in precedence order, with its parameters in m->params[0 ..
 * m->nparams); on failure m->nparams may hold garbage and the caller
 * resets it. The walk only recurses where an alternative is left to try
 * at the same node; a descent with nothing to fall back on is a loop. */
static const struct route *walk(const struct node *n, const char *path, size_t len, size_t pos,
                                hp_route_match_t *m)
{
    for (;;) {
        if (pos == len) {
            if (n->route)
                return n->route;
        } else {
            const struct node *c = kid_for(n, (uint8_t)path[pos]);
            if (c && len - pos >= c->tlen && edge_eq(c->text, path + pos, c->tlen, len - pos)) {
                if (!n->pmask) {
                    n = c;
                    pos += c->tlen;
                    continue;
                }
                uint32_t np = m->nparams;
                const struct route *rt = walk(c, path, len, pos + c->tlen, m);
                if (rt)
                    return rt;
                m->nparams = np;
            }
        }
        if (!n->pmask)
            return NULL;
        /* Parameter children exist only at segment starts: the static
         * branch failed (or did not exist), so try the types in order. */
        uint32_t np = m->nparams;
        assert(np < HP_ROUTER_MAX_PARAMS);
        hp_route_param_t *p = &m->params[np];
        size_t seg = seg_end(path, len, pos) - pos;
        const struct node *next = NULL;
        if (seg) {
            for (int slot = 0; slot < SLOT_REST; slot++) {
                const struct node *c = n->param[slot];
                int64_t iv = 0;
                if (!c || !accepts(slot, path + pos, seg, &iv))
                    continue;
                p->name = c->text;
                p->name_len = (uint8_t)c->tlen;
                p->type = c->type;
                p->value = path + pos;
                p->len = (uint32_t)seg;
                p->i = iv;
                m->nparams = np + 1;
                if (!(n->pmask >> (slot + 1))) {
                    next = c; /* the last alternative: no need to come back */
                    break;
                }
                const struct route *rt = walk(c, path, len, pos + seg, m);
                if (rt)
                    return rt;
                m->nparams = np;
            }
        }
        if (next) {
            n = next;
            pos += seg;
            continue;
        }
        const struct node *c = n->param[SLOT_REST];
        if (!c)
            return NULL;
        p->name = c->text;
        p->name_len = (uint8_t)c->tlen;
        p->type = HP_ROUTE_PARAM_REST;
        p->value = path + pos;
        p->len = (uint32_t)(len - pos);
        p->i = 0;
        m->nparams = np + 1;
        return c->route;
    }
}

static int method_index(uint32_t method)
{
    if (method == 0 || (method & (method - 1)) || (method & ~HP_ROUTER_ALL_METHODS))
        return -1;
    return __builtin_ctz(method);
}

int hp_router_match(const hp_router_t *r, uint32_t method, const char *path, size_t len,
                    hp_route_match_t *m)
{
    m->handler = NULL;
    m->udata = NULL;
    m->allow = 0;
    m->pattern = NULL;
    m->nparams = 0;
    const struct route *rt = NULL;
    if (r->nstatic && (r->lenmask & len_bit(len)))
        rt = hash_find(r, path, len);
    /* Values longer than 4 GiB could not be reported in a uint32_t. */
    if (!rt && len <= UINT32_MAX)
        rt = walk(r->root, path, len, 0, m);
    if (!rt) {
        m->nparams = 0;
        return 404;
    }
    m->allow = rt->allow;
    m->pattern = rt->pattern;
    int i = method_index(method);
    if (i < 0)
        return 405;
    if (!(rt->methods & method)) {
        /* HEAD is GET without the body: the GET handler serves it. */
        if (method != HP_ROUTER_HEAD || !(rt->methods & HP_ROUTER_GET))
            return 405;
        i = 0;
    }
    m->handler = rt->handler[i];
    m->udata = rt->udata[i];
    return 200;
}

/* Copies s[0..n) to buf at `at`, keeping room for the final NUL. */
static void put(char *buf, size_t len, size_t at, const char *s, size_t n)
{
    for (size_t k = 0; k < n && at + k + 1 < len; k++)
        buf[at + k] = s[k];
}

size_t hp_router_allow_str(uint32_t allow, char *buf, size_t len)
{
    size_t n = 0;
    for (int i = 0; i < NMETHODS; i++) {
        if (!(allow & (1u << i)))
            continue;
        if (n) {
            put(buf, len, n, ", ", 2);
            n += 2;
        }
        const hp_method_info_t *m = &hp_method_table[hp_method_of_router_bit(1u << i)];
        put(buf, len, n, m->name, m->len);
        n += m->len;
    }
    if (len)
        buf[n < len ? n : len - 1] = '\0';
    return n;
}

/* ---- construction ---- */

static HP_COLD int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Splits pattern into elements, checking the grammar in router.h. */
static int parse(const char *pat, struct elem *el, size_t *nel, char *err, size_t errlen)
{
    size_t plen = strnlen(pat, MAX_PATTERN + 1);
    if (plen > MAX_PATTERN)
        return fail(err, errlen, -EINVAL, "pattern longer than %d bytes", MAX_PATTERN);
    if (pat[0] != '/')
        return fail(err, errlen, -EINVAL, "%s: pattern must start with '/'", pat);
    size_t n = 0, np = 0, i = 0;
    while (i < plen) {
        char ch = pat[i];
        if (ch == '}')
            return fail(err, errlen, -EINVAL, "%s: '}' without '{'", pat);
        if (ch != '{') {
            if (!(cls[(uint8_t)ch] & C_PATH))
                return fail(err, errlen, -EINVAL, "%s: byte 0x%02x not allowed in a pattern",
                            pat, (uint8_t)ch);
            if (n && el[n - 1].type == ELEM_STATIC)
                el[n - 1].len++;
            else
                el[n++] = (struct elem){pat + i, 1, ELEM_STATIC};
            i++;
            continue;
        }
        /* i > 0 because pat[0] == '/'. */
        if (pat[i - 1] != '/')
            return fail(err, errlen, -EINVAL, "%s: a parameter must fill a whole segment", pat);
        size_t j = i + 1;
        while (j < plen && pat[j] != '}' && pat[j] != ':') {
            if (!(cls[(uint8_t)pat[j]] & C_NAME))
                return fail(err, errlen, -EINVAL, "%s: bad character in a parameter name", pat);
            j++;
        }
        const char *name = pat + i + 1;
        size_t nlen = j - i - 1;
        uint8_t type = HP_ROUTE_PARAM_SEGMENT;
        if (j < plen && pat[j] == ':') {
            size_t t = j + 1;
            while (j < plen && pat[j] != '}')
                j++;
            if (j == plen)
                return fail(err, errlen, -EINVAL, "%s: unclosed '{'", pat);
            size_t tl = j - t;
            if (tl == 3 && !memcmp(pat + t, "int", 3))
                type = HP_ROUTE_PARAM_INT;
            else if (tl == 4 && !memcmp(pat + t, "uuid", 4))
                type = HP_ROUTE_PARAM_UUID;
            else if (tl == 4 && !memcmp(pat + t, "slug", 4))
                type = HP_ROUTE_PARAM_SLUG;
            else if (tl == 1 && pat[t] == '*')
                type = HP_ROUTE_PARAM_REST;
            else
                return fail(err, errlen, -EINVAL, "%s: unknown parameter type '%.*s'", pat,
                            (int)tl, pat + t);
        }
        if (j == plen)
            return fail(err, errlen, -EINVAL, "%s: unclosed '{'", pat);
        if (nlen == 0)
            return fail(err, errlen, -EINVAL, "%s: empty parameter name", pat);
        if (nlen > 255)
            return fail(err, errlen, -EINVAL, "%s: parameter name longer than 255 bytes", pat);
        if (np == HP_ROUTER_MAX_PARAMS)
            return fail(err, errlen, -EINVAL, "%s: more than %d parameters", pat,
                        HP_ROUTER_MAX_PARAMS);
        for (size_t k = 0; k < n; k++)
            if (el[k].type != ELEM_STATIC && el[k].len == nlen && !memcmp(el[k].s, name, nlen))
                return fail(err, errlen, -EINVAL, "%s: parameter '%.*s' appears twice", pat,
                            (int)nlen, name);
        if (type == HP_ROUTE_PARAM_REST && j + 1 != plen)
            return fail(err, errlen, -EINVAL, "%s: a catch-all must be the last element", pat);
        if (j + 1 < plen && pat[j + 1] != '/')
            return fail(err, errlen, -EINVAL, "%s: a parameter must fill a whole segment", pat);
        el[n++] = (struct elem){name, (uint32_t)nlen, type};
        np++;
        i = j + 1;
    }
    *nel = n;
    return 0;
}

static struct node *node_new(const char *text, size_t tlen, uint8_t type)
{
    /* 8 bytes of padding: edge_eq reads the last word of an edge whole. */
    struct node *n = hp_malloc(sizeof(*n) + tlen + 8);
    if (!n)
        return NULL;
    memset(n, 0, sizeof(*n) + tlen + 8);
    n->tlen = (uint32_t)tlen;
    n->type = type;
    memcpy(n->text, text, tlen);
    n->text[tlen] = '\0';
    return n;
}

static void node_free(struct node *n)
{
    if (!n)
        return;
    for (uint16_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    for (int s = 0; s < NSLOTS; s++)
        node_free(n->param[s]);
    hp_free(n->route);
    hp_free(n->kids);
    hp_free(n);
}

/* Fills the first-byte index from keys (registration time only). Bytes
 * without a child may map anywhere: lookups check keys[i] == byte. */
static void build_idx(struct node *n)
{
    if (!n->idx)
        return;
    memset(n->idx, 0, 256);
    for (uint32_t i = 0; i < n->nkids; i++)
        n->idx[n->keys[i]] = (uint8_t)i;
}

/* Makes room for `want` static children (one block: pointers, then keys).
 * Growing changes no child, so it is safe on the live tree. */
static int reserve_kids(struct node *n, size_t want)
{
    if (want <= n->cap)
        return 0;
    size_t cap = n->cap ? (size_t)n->cap * 2 : 2;
    if (cap < want)
        cap = want;
    if (cap > 256)
        cap = 256; /* one child per first byte at most */
    struct node **kids = hp_malloc(cap * (sizeof(*kids) + 1) + (cap >= IDX_MIN ? 256 : 0));
    if (!kids)
        return -ENOMEM;
    uint8_t *keys = (uint8_t *)(kids + cap);
    if (n->nkids) {
        memcpy(kids, n->kids, n->nkids * sizeof(*kids));
        memcpy(keys, n->keys, n->nkids);
    }
    hp_free(n->kids);
    n->kids = kids;
    n->keys = keys;
    n->idx = cap >= IDX_MIN ? keys + cap : NULL;
    n->cap = (uint16_t)cap;
    build_idx(n);
    return 0;
}

/* Inserts c among n's static children in key order; room was reserved. */
static void insert_kid(struct node *n, struct node *c)
{
    uint8_t key = (uint8_t)c->text[0];
    uint16_t i = 0;
    while (i < n->nkids && n->keys[i] < key)
        i++;
    memmove(n->kids + i + 1, n->kids + i, (size_t)(n->nkids - i) * sizeof(*n->kids));
    memmove(n->keys + i + 1, n->keys + i, (size_t)(n->nkids - i));
    n->kids[i] = c;
    n->keys[i] = key;
    n->nkids++;
    build_idx(n);
}

static struct node *find_kid(const struct node *n, uint8_t key, uint16_t *idx)
{
    const uint8_t *k = n->nkids ? memchr(n->keys, key, n->nkids) : NULL;
    if (!k)
        return NULL;
    *idx = (uint16_t)(k - n->keys);
    return n->kids[*idx];
}

/* Hangs the parameter node c in the slot of its type under n. */
static void put_param(struct node *n, struct node *c)
{
    int s = type_slot[c->type];
    n->param[s] = c;
    n->pmask |= (uint8_t)(1u << s);
}

/* Hangs the chain for el[from .. nel) under the fresh node n (not yet in
 * the live tree, so a failure only leaves garbage that the caller frees
 * with n's subtree). Returns the node where the route goes, NULL on OOM. */
static struct node *grow_chain(struct node *n, const struct elem *el, size_t from, size_t nel)
{
    for (size_t i = from; i < nel; i++) {
        const struct elem *e = &el[i];
        struct node *c = node_new(e->s, e->len, e->type);
        if (!c)
            return NULL;
        if (e->type == ELEM_STATIC) {
            if (reserve_kids(n, 1) < 0) {
                hp_free(c);
                return NULL;
            }
            insert_kid(n, c);
        } else {
            put_param(n, c);
        }
        n = c;
    }
    return n;
}

static void set_handlers(struct route *rt, uint32_t methods, void *handler, void *udata)
{
    for (int i = 0; i < NMETHODS; i++) {
        if (methods & (1u << i)) {
            rt->handler[i] = handler;
            rt->udata[i] = udata;
        }
    }
    rt->methods |= methods;
    rt->allow = rt->methods | (rt->methods & HP_ROUTER_GET ? HP_ROUTER_HEAD : 0);
}

/* Where a new pattern leaves the tree, as found by find_divergence:
 *   D_NONE   the whole pattern is in the tree and ends at n;
 *   D_CHILD  n has no static child for s[0 .. sl), the rest of el[ei];
 *   D_SPLIT  n's child c (at kids[kidx]) shares only `common` bytes of its
 *            edge with s[0 .. sl);
 *   D_PARAM  n has no parameter child of el[ei]'s type. */
enum { D_NONE, D_CHILD, D_SPLIT, D_PARAM };
struct divergence {
    int kind;           /* D_* */
    struct node *n, *c; /* borrowed: live nodes */
    size_t ei;
    const char *s;      /* inside the pattern */
    uint32_t sl, common;
    uint16_t kidx;
};

/* Phase 1 of an add, read-only: follows the pattern el[0 .. nel) from the
 * root as far as the tree has it and records where it diverges in *d.
 * Returns 0, or -EEXIST when a parameter of the same type but another
 * name sits at a position the pattern passes through. */
static int find_divergence(const hp_router_t *r, const struct elem *el, size_t nel,
                           const char *pattern, struct divergence *d, char *err, size_t errlen)
{
    *d = (struct divergence){.kind = D_NONE, .n = r->root};
    uint32_t off = 0; /* bytes of el[d->ei] already matched */
    while (d->ei < nel) {
        const struct elem *e = &el[d->ei];
        if (e->type != ELEM_STATIC) {
            struct node *c = d->n->param[type_slot[e->type]];
            if (!c) {
                d->kind = D_PARAM;
                return 0;
            }
            if (c->tlen != e->len || memcmp(c->text, e->s, e->len))
                return fail(err, errlen, -EEXIST,
                            "%s: {%.*s%s} conflicts with {%s%s} registered at the same position",
                            pattern, (int)e->len, e->s, type_suffix[e->type], c->text,
                            type_suffix[e->type]);
            d->n = c;
            d->ei++;
            continue;
        }
        /* A static element may run through several compressed edges. */
        d->s = e->s + off;
        d->sl = e->len - off;
        d->c = find_kid(d->n, (uint8_t)d->s[0], &d->kidx);
        if (!d->c) {
            d->kind = D_CHILD;
            return 0;
        }
        struct node *c = d->c;
        uint32_t common = 0;
        while (common < c->tlen && common < d->sl && c->text[common] == d->s[common])
            common++;
        d->common = common;
        if (common < c->tlen) {
            d->kind = D_SPLIT;
            return 0;
        }
        d->n = c;
        off += common;
        if (off == e->len) {
            d->ei++;
            off = 0;
        }
    }
    return 0;
}

/* The pattern names an existing route: adds the methods to it, all or
 * nothing. Returns 0, or -EEXIST when one of them is already there. */
static int add_methods(struct route *rt, uint32_t methods, void *handler, void *udata,
                       const char *pattern, char *err, size_t errlen)
{
    uint32_t dup = rt->methods & methods;
    if (dup)
        return fail(err, errlen, -EEXIST, "%s: %s is already registered", pattern,
                    hp_method_table[hp_method_of_router_bit(1u << __builtin_ctz(dup))].name);
    set_handlers(rt, methods, handler, udata);
    return 0;
}

/* A new route for pattern (plen bytes, copied) with its handlers set.
 * Returns NULL when out of memory. */
static struct route *route_new(const char *pattern, size_t plen, bool is_static,
                               uint32_t methods, void *handler, void *udata)
{
    struct route *rt = hp_calloc(1, sizeof(*rt) + plen + 1);
    if (!rt)
        return NULL;
    memcpy(rt->pattern, pattern, plen + 1);
    rt->len = (uint32_t)plen;
    rt->is_static = is_static;
    set_handlers(rt, methods, handler, udata);
    return rt;
}

/* Phase 2 for one more static route: when it would push the hash table's
 * load factor over 1/2, allocates the doubled table into *tab and *tabcap
 * (not yet live); otherwise leaves *tab NULL. Returns 0 or -ENOMEM. */
static int hash_reserve(const hp_router_t *r, struct hentry **tab, uint32_t *tabcap)
{
    *tab = NULL;
    *tabcap = r->tabcap;
    if ((r->nstatic + 1) * 2 <= r->tabcap)
        return 0;
    *tabcap = r->tabcap ? r->tabcap * 2 : HASH_MIN;
    *tab = hp_calloc(*tabcap, sizeof(**tab));
    return *tab ? 0 : -ENOMEM;
}

/* Phase 2 in the tree: builds the nodes the pattern lacks past divergence
 * d, touching nothing live except the capacity of one child array. *top gets
 * the new branch's top node (owned by the caller until commit_branch; on
 * failure the caller frees it, with anything hung under it). Returns the
 * node where the route goes, NULL when out of memory. */
static struct node *build_branch(const struct divergence *d, const struct elem *el, size_t nel,
                                 struct node **top)
{
    *top = NULL;
    switch (d->kind) {
    case D_NONE:
        return d->n;
    case D_CHILD:
        if (reserve_kids(d->n, (size_t)d->n->nkids + 1) < 0)
            return NULL;
        *top = node_new(d->s, d->sl, ELEM_STATIC);
        return *top ? grow_chain(*top, el, d->ei + 1, nel) : NULL;
    case D_SPLIT:
        /* top takes the common part of c's edge; c keeps the rest and
         * moves under it at commit time (room for it is reserved here). */
        *top = node_new(d->s, d->common, ELEM_STATIC);
        if (!*top || reserve_kids(*top, 2) < 0)
            return NULL;
        if (d->common < d->sl) {
            struct node *leaf = node_new(d->s + d->common, d->sl - d->common, ELEM_STATIC);
            if (!leaf)
                return NULL;
            insert_kid(*top, leaf);
            return grow_chain(leaf, el, d->ei + 1, nel);
        }
        return grow_chain(*top, el, d->ei + 1, nel);
    case D_PARAM:
        *top = node_new(el[d->ei].s, el[d->ei].len, el[d->ei].type);
        return *top ? grow_chain(*top, el, d->ei + 1, nel) : NULL;
    }
    return NULL;
}

/* Phase 3 in the tree: hangs the branch built by build_branch at
 * divergence d. Cannot fail: every array it grows had its room reserved. */
static void commit_branch(const struct divergence *d, struct node *top)
{
    struct node *n = d->n, *c = d->c;
    switch (d->kind) {
    case D_NONE:
        break;
    case D_CHILD:
        insert_kid(n, top);
        break;
    case D_SPLIT:
        memmove(c->text, c->text + d->common, c->tlen - d->common + 1);
        c->tlen -= d->common;
        insert_kid(top, c);
        n->kids[d->kidx] = top; /* same first byte: keys stay sorted */
        break;
    case D_PARAM:
        put_param(n, top);
        break;
    }
}

/* Phase 3 for a static route rt: moves the table over to tab when
 * hash_reserve allocated one (tab may be NULL), then enters rt. */
static void hash_commit(hp_router_t *r, struct hentry *tab, uint32_t tabcap, struct route *rt)
{
    if (tab) {
        for (uint32_t i = 0; i < r->tabcap; i++)
            if (r->tab[i].r)
                hash_put(tab, tabcap, r->tab[i].h, r->tab[i].r);
        hp_free(r->tab);
        r->tab = tab;
        r->tabcap = tabcap;
    }
    hash_put(r->tab, r->tabcap, path_hash(rt->pattern, rt->len), rt);
    r->nstatic++;
    r->lenmask |= len_bit(rt->len);
}

int hp_router_add(hp_router_t *r, uint32_t methods, const char *pattern, void *handler,
                  void *udata, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!r || !pattern)
        return fail(err, errlen, -EINVAL, "router and pattern are required");
    if (!methods || (methods & ~HP_ROUTER_ALL_METHODS))
        return fail(err, errlen, -EINVAL, "%s: bad method mask 0x%x", pattern, methods);
    struct elem el[MAX_ELEMS];
    size_t nel = 0;
    int rc = parse(pattern, el, &nel, err, errlen);
    if (rc < 0)
        return rc;
    bool is_static = nel == 1 && el[0].type == ELEM_STATIC;

    /* Phase 1, read-only: find where the pattern leaves the tree, catching
     * conflicts on the way. */
    struct divergence d;
    rc = find_divergence(r, el, nel, pattern, &d, err, errlen);
    if (rc < 0)
        return rc;
    if (d.kind == D_NONE && d.n->route)
        return add_methods(d.n->route, methods, handler, udata, pattern, err, errlen);

    /* Phase 2: allocate everything (in this order: route, table, nodes),
     * touching nothing live except the capacity of one child array. */
    struct hentry *tab = NULL;
    uint32_t tabcap = 0;
    struct node *top = NULL, *end = NULL;
    struct route *rt = route_new(pattern, strlen(pattern), is_static, methods, handler, udata);
    if (!rt || (is_static && hash_reserve(r, &tab, &tabcap) < 0))
        goto oom;
    end = build_branch(&d, el, nel, &top);
    if (!end) {
        node_free(top);
        goto oom;
    }

    /* Phase 3: commit; nothing below can fail. */
    end->route = rt;
    commit_branch(&d, top);
    if (is_static)
        hash_commit(r, tab, tabcap, rt);
    r->nroutes++;
    return 0;

oom:
    hp_free(tab);
    hp_free(rt);
    return fail(err, errlen, -ENOMEM, "%s: out of memory", pattern);
}

hp_router_t *hp_router_new(void)
{
    hp_router_t *r = hp_calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->root = node_new("", 0, ELEM_STATIC);
    if (!r->root) {
        hp_free(r);
        return NULL;
    }
    return r;
}

void hp_router_free(hp_router_t *r)
{
    if (!r)
        return;
    node_free(r->root);
    hp_free(r->tab);
    hp_free(r);
}

size_t hp_router_count(const hp_router_t *r)
{
    return r->nroutes;
}

/* ---- validation ---- */

struct vstate {
    const hp_router_t *r;
    size_t routes, statics;
    char pat[MAX_PATTERN + 1]; /* the pattern spelled by the path from the root */
};

/* Checks n (whose edge ended at pat[plen]) and its subtree. */
static int check(struct vstate *v, const struct node *n, size_t plen, bool is_root,
                 bool has_param)
{
    bool is_param = n->type != ELEM_STATIC;
    bool seg_start = !is_param && plen > 0 && v->pat[plen - 1] == '/';
    if (!is_root && !n->route && !n->pmask && n->nkids == 0)
        return -EINVAL; /* dead end */
    if (!is_root && !is_param && !n->route && !n->pmask && n->nkids == 1)
        return -EINVAL; /* not compressed */
    if (n->nkids > n->cap || (n->cap && !n->kids))
        return -EINVAL;
    if (n->pmask && !seg_start)
        return -EINVAL;
    if (n->type == HP_ROUTE_PARAM_REST && (!n->route || n->nkids || n->pmask))
        return -EINVAL;
    if (n->route) {
        const struct route *rt = n->route;
        if (rt->len != plen || memcmp(rt->pattern, v->pat, plen) || rt->pattern[plen] ||
            rt->is_static == has_param || !rt->methods ||
            (rt->methods & ~HP_ROUTER_ALL_METHODS))
            return -EINVAL;
        uint32_t allow = rt->methods | (rt->methods & HP_ROUTER_GET ? HP_ROUTER_HEAD : 0);
        if (rt->allow != allow)
            return -EINVAL;
        v->routes++;
        if (rt->is_static) {
            v->statics++;
            if (!v->r->tabcap || !(v->r->lenmask & len_bit(plen)) ||
                hash_find(v->r, rt->pattern, plen) != rt)
                return -EINVAL;
        }
    }
    for (uint16_t i = 0; i < n->nkids; i++) {
        const struct node *c = n->kids[i];
        if (!c || c->type != ELEM_STATIC || c->tlen == 0 || n->keys[i] != (uint8_t)c->text[0])
            return -EINVAL;
        if (i && n->keys[i - 1] >= n->keys[i])
            return -EINVAL;
        if (!n->idx != (n->cap < IDX_MIN) || (n->idx && n->idx[n->keys[i]] != i))
            return -EINVAL;
        if (is_param && c->text[0] != '/')
            return -EINVAL;
        if (plen + c->tlen > MAX_PATTERN)
            return -EINVAL;
        memcpy(v->pat + plen, c->text, c->tlen);
        int rc = check(v, c, plen + c->tlen, false, has_param);
        if (rc < 0)
            return rc;
    }
    for (int s = 0; s < NSLOTS; s++) {
        const struct node *c = n->param[s];
        if (!c != !(n->pmask & (1u << s)))
            return -EINVAL;
        if (!c)
            continue;
        if (c->type != slot_type[s] || c->tlen == 0 || c->tlen > 255)
            return -EINVAL;
        int k = snprintf(v->pat + plen, sizeof(v->pat) - plen, "{%s%s}", c->text,
                         type_suffix[c->type]);
        if (k < 0 || (size_t)k >= sizeof(v->pat) - plen)
            return -EINVAL;
        int rc = check(v, c, plen + (size_t)k, false, true);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int hp_router_validate(const hp_router_t *r)
{
    if (!r || !r->root || r->root->tlen || r->root->pmask || r->root->route)
        return -EINVAL;
    if (r->tabcap & (r->tabcap - 1))
        return -EINVAL;
    size_t used = 0;
    for (uint32_t i = 0; i < r->tabcap; i++) {
        const struct route *rt = r->tab[i].r;
        if (!rt)
            continue;
        used++;
        if (!rt->is_static || r->tab[i].h != path_hash(rt->pattern, rt->len))
            return -EINVAL;
    }
    if (used != r->nstatic || (r->nstatic && used * 2 > r->tabcap))
        return -EINVAL;
    /* On the stack so validation allocates nothing (tests call it between
     * fault-injected allocations). */
    struct vstate v = {.r = r};
    int rc = check(&v, r->root, 0, true, false);
    if (rc == 0 && (v.routes != r->nroutes || v.statics != r->nstatic))
        rc = -EINVAL;
    return rc;
}
