/*
 * target.c - the request-target (RFC 9112 §3.2) checked in one pass and
 * cut into path, query and authority.
 *
 * Central structure: tclass, one 256-entry table whose bits are the byte
 * classes of the RFC 3986 rules a target is made of (path and query
 * literals, reg-name, scheme, hex digits). Every rule is a run of one
 * class, interrupted only by pct-encoded triplets, so each byte is looked
 * at once and costs one load and one test.
 *
 * Invariant: an accepted target holds only bytes its grammar allows in the
 * place they occur: no '#', no raw space, control or byte above 0x7e, and
 * every '%' starts a "%" HEXDIG HEXDIG triplet. What the spans delimit may
 * therefore be copied into a response header as it is.
 */
#include "target_int.h"

#include <stdbool.h>
#include <string.h>

#include "hotpath/common.h"

#define T_PATH 0x01   /* pchar literal or '/': absolute-path, path-abempty */
#define T_QUERY 0x02  /* pchar literal, '/' or '?': query */
#define T_REG 0x04    /* unreserved or sub-delims: reg-name, IPvFuture */
#define T_HEX 0x08    /* HEXDIG (either case, as ABNF strings are) */
#define T_SCHEME 0x10 /* ALPHA, DIGIT, '+', '-', '.': scheme after its first letter */
#define T_ALPHA 0x20
#define T_DIGIT 0x40

/* A byte that is literal in a path segment, a query and a reg-name:
 * unreserved and sub-delims. */
#define T_LIT (T_PATH | T_QUERY | T_REG)

static const uint8_t tclass[256] = {
    ['0' ... '9'] = T_LIT | T_SCHEME | T_DIGIT | T_HEX,
    ['A' ... 'F'] = T_LIT | T_SCHEME | T_ALPHA | T_HEX,
    ['G' ... 'Z'] = T_LIT | T_SCHEME | T_ALPHA,
    ['a' ... 'f'] = T_LIT | T_SCHEME | T_ALPHA | T_HEX,
    ['g' ... 'z'] = T_LIT | T_SCHEME | T_ALPHA,
    /* the rest of unreserved */
    ['-'] = T_LIT | T_SCHEME, ['.'] = T_LIT | T_SCHEME, ['_'] = T_LIT, ['~'] = T_LIT,
    /* sub-delims */
    ['!'] = T_LIT, ['$'] = T_LIT, ['&'] = T_LIT, ['\''] = T_LIT, ['('] = T_LIT,
    [')'] = T_LIT, ['*'] = T_LIT, ['+'] = T_LIT | T_SCHEME, [','] = T_LIT, [';'] = T_LIT,
    ['='] = T_LIT,
    /* pchar adds ':' and '@' to the literals; segments are joined by '/',
     * and a query may hold '/' and '?' as well. */
    [':'] = T_PATH | T_QUERY, ['@'] = T_PATH | T_QUERY,
    ['/'] = T_PATH | T_QUERY, ['?'] = T_QUERY,
};

HP_INLINE bool is(uint8_t bits, char c)
{
    return tclass[(uint8_t)c] & bits;
}

/* The index of the first byte at or after i that is neither in class
 * `bits` nor the '%' of a complete pct-encoded triplet; n when there is
 * none. A '%' without two hex digits stops the scan, so the caller, which
 * accepts only particular stop bytes, refuses it. */
HP_INLINE size_t span(const char *t, size_t i, size_t n, uint8_t bits)
{
    const uint8_t *u = (const uint8_t *)t;
    for (;;) {
        /* Four bytes per branch while the run lasts (the classes of all
         * four are ANDed), then one at a time to find where it stops. */
        while (n - i >= 4 &&
               (tclass[u[i]] & tclass[u[i + 1]] & tclass[u[i + 2]] & tclass[u[i + 3]] & bits))
            i += 4;
        while (i < n && is(bits, t[i]))
            i++;
        if (i < n && t[i] == '%' && n - i >= 3 && is(T_HEX, t[i + 1]) && is(T_HEX, t[i + 2])) {
            i += 3;
            continue;
        }
        return i;
    }
}

HP_INLINE hp_http_span_t sp(size_t off, size_t len)
{
    return (hp_http_span_t){(uint16_t)off, (uint16_t)len};
}

/* path-abempty or absolute-path from t[i], then an optional "?" query to
 * the end. An absolute-path is a path-abempty that starts at a '/', which
 * the origin-form caller has already seen. */
static int path_query(const char *t, size_t i, size_t n, hp_target_t *out)
{
    size_t e = i;
    if (e < n && t[e] == '/')
        e = span(t, e + 1, n, T_PATH);
    out->path = sp(i, e - i);
    if (HP_LIKELY(e == n))
        return 0;
    if (t[e] != '?')
        return -400;
    size_t q = e + 1;
    if (span(t, q, n, T_QUERY) != n)
        return -400;
    out->query = sp(q, n - q);
    return 0;
}

/* ---- hosts (RFC 3986 §3.2.2), off the common path ------------------------ */

/* dec-octet: 0-255 in decimal without a leading zero. */
static bool dec_octet(const char *p, size_t *i, size_t n)
{
    size_t s = *i;
    unsigned v = 0;
    while (*i < n && *i - s < 3 && is(T_DIGIT, p[*i]))
        v = v * 10 + (unsigned)(p[(*i)++] - '0');
    size_t len = *i - s;
    return len > 0 && v <= 255 && (len == 1 || p[s] != '0');
}

/* IPv4address filling all of p[0..n). */
static bool ipv4(const char *p, size_t n)
{
    size_t i = 0;
    for (int k = 0; k < 4; k++) {
        if (k && (i == n || p[i++] != '.'))
            return false;
        if (!dec_octet(p, &i, n))
            return false;
    }
    return i == n;
}

/* IPv6address filling all of p[0..n). Its nine ABNF alternatives come to
 * this: pieces of 1-4 hex digits joined by ':', the last of which may be
 * an IPv4address counting as two; exactly eight pieces, or at most seven
 * with one "::" standing for the missing ones. */
static bool ipv6(const char *p, size_t n)
{
    size_t i = 0;
    unsigned pieces = 0;
    bool elided = false;
    if (n >= 2 && p[0] == ':' && p[1] == ':') {
        elided = true;
        i = 2;
        if (i == n)
            return true;
    }
    for (;;) {
        size_t s = i;
        while (i < n && is(T_HEX, p[i]))
            i++;
        if (i < n && p[i] == '.') {
            if (!ipv4(p + s, n - s))
                return false;
            pieces += 2;
            break;
        }
        if (i == s || i - s > 4)
            return false;
        pieces++;
        if (i == n)
            break;
        if (p[i++] != ':' || i == n)
            return false; /* a stray byte, or a ':' that ends the address */
        if (p[i] == ':') {
            if (elided)
                return false;
            elided = true;
            if (++i == n)
                break;
        }
    }
    return elided ? pieces <= 7 : pieces == 8;
}

/* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ),
 * filling all of p[0..n). */
static bool ipvfuture(const char *p, size_t n)
{
    if (n < 4 || (p[0] | 0x20) != 'v')
        return false;
    size_t i = 1;
    while (i < n && is(T_HEX, p[i]))
        i++;
    if (i == 1 || i == n || p[i++] != '.' || i == n)
        return false;
    for (; i < n; i++)
        if (!is(T_REG, p[i]) && p[i] != ':')
            return false;
    return true;
}

/* A non-empty host at t[*i]: an IP-literal in brackets or a reg-name (which
 * takes in IPv4address, made of the same bytes). Advances *i past it. */
static bool host(const char *t, size_t *i, size_t n)
{
    size_t s = *i;
    if (s < n && t[s] == '[') {
        const char *close = memchr(t + s + 1, ']', n - s - 1);
        if (!close)
            return false;
        size_t len = (size_t)(close - t) - s - 1;
        if (!ipv6(t + s + 1, len) && !ipvfuture(t + s + 1, len))
            return false;
        *i = s + len + 2;
        return true;
    }
    *i = span(t, s, n, T_REG);
    return *i > s;
}

/* port = *DIGIT from t[*i]; returns how many digits. */
static size_t port(const char *t, size_t *i, size_t n)
{
    size_t s = *i;
    while (*i < n && is(T_DIGIT, t[*i]))
        (*i)++;
    return *i - s;
}

/* ---- the forms --------------------------------------------------------- */

/* authority-form = uri-host ":" port, for CONNECT. */
static HP_COLD int authority_form(const char *t, size_t n, hp_target_t *out)
{
    size_t i = 0;
    if (!host(t, &i, n) || i == n || t[i++] != ':' || port(t, &i, n) == 0 || i != n)
        return -400;
    out->form = HP_TARGET_AUTHORITY;
    out->authority = sp(0, n);
    return 0;
}

/* absolute-form of an http or https URI:
 *   scheme "://" host [ ":" port ] path-abempty [ "?" query ]
 * which is absolute-URI with the hier-part RFC 9110 §4.2 requires of
 * these schemes, minus userinfo. */
static HP_COLD int absolute_form(const char *t, size_t n, hp_target_t *out)
{
    size_t i = 0;
    if (!is(T_ALPHA, t[0]))
        return -400;
    while (i < n && is(T_SCHEME, t[i]))
        i++;
    if (i == n || t[i] != ':')
        return -400;
    /* Scheme names are case-insensitive (RFC 3986 §3.1). Only letters
     * map onto letters under | 0x20 among scheme bytes. */
    bool http = i >= 4 && (t[0] | 0x20) == 'h' && (t[1] | 0x20) == 't' &&
                (t[2] | 0x20) == 't' && (t[3] | 0x20) == 'p' &&
                (i == 4 || (i == 5 && (t[4] | 0x20) == 's'));
    if (!http || n - i < 3 || t[i + 1] != '/' || t[i + 2] != '/')
        return -400;
    size_t a = i + 3;
    i = a;
    /* A '@' (userinfo) ends the host where neither a port nor a path may
     * start, so it is refused below like any other stray byte. */
    if (!host(t, &i, n))
        return -400;
    if (i < n && t[i] == ':') {
        i++;
        port(t, &i, n);
    }
    out->form = HP_TARGET_ABSOLUTE;
    out->authority = sp(a, i - a);
    return path_query(t, i, n, out);
}

int hp_target_parse(const char *t, size_t n, int method, hp_target_t *out)
{
    *out = (hp_target_t){0};
    if (HP_UNLIKELY(n == 0 || n > HP_HTTP_MAX_HEAD))
        return -400;
    if (HP_LIKELY(t[0] == '/')) {
        /* A CONNECT must name host and port; a path names no tunnel. */
        if (HP_UNLIKELY(method == HP_METHOD_CONNECT))
            return -400;
        out->form = HP_TARGET_ORIGIN;
        return path_query(t, 0, n, out);
    }
    if (method == HP_METHOD_CONNECT)
        return authority_form(t, n, out);
    if (n == 1 && t[0] == '*') {
        if (method != HP_METHOD_OPTIONS)
            return -400;
        out->form = HP_TARGET_ASTERISK;
        return 0;
    }
    return absolute_form(t, n, out);
}
