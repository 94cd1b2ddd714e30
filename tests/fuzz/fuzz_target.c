/*
 * fuzz_target.c - libFuzzer target for the request-target checker
 * (src/http/target.c).
 *
 * The first input byte picks the method (its value modulo 10, an
 * HP_METHOD_* id), the rest is the target, copied to a heap block of
 * exactly its length so ASan catches any read past the end.
 *
 * The module is checked against ref(), a second implementation written
 * straight from the ABNF of RFC 9112 §3.2 and RFC 3986, rule by rule, with
 * no table and no attempt at speed: each rule is a predicate on a whole
 * substring, found by splitting at the delimiters the grammar fixes, and
 * IPv6address tries its nine alternatives one by one. The policy that
 * narrows the grammar (which method may use which form, http and https
 * only, no userinfo, a non-empty host, a CONNECT port) is applied after
 * the grammar, separately, as target_int.h states it. Any disagreement on
 * the outcome, the form or a span aborts.
 */
#include "http/target_int.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- core rules (RFC 5234 appendix B; ABNF strings ignore case) ---- */

static bool alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool hexdig(char c)
{
    return digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

static bool in(char c, const char *set)
{
    return c != '\0' && strchr(set, c) != NULL;
}

static bool unreserved(char c)
{
    return alpha(c) || digit(c) || in(c, "-._~");
}

static bool sub_delim(char c)
{
    return in(c, "!$&'()*+,;=");
}

/* ---- RFC 3986 rules, each a predicate on all of s[0..n) ---- */

/* *( one-byte-class / pct-encoded ) where `extra` lists the bytes the rule
 * adds to unreserved and sub-delims. */
static bool star_chars(const char *s, size_t n, const char *extra)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n || !hexdig(s[i + 1]) || !hexdig(s[i + 2]))
                return false;
            i += 2;
        } else if (!unreserved(s[i]) && !sub_delim(s[i]) && !in(s[i], extra)) {
            return false;
        }
    }
    return true;
}

/* segment = *pchar; pchar = unreserved / pct-encoded / sub-delims / ":" / "@" */
static bool segment(const char *s, size_t n)
{
    return star_chars(s, n, ":@");
}

/* query = *( pchar / "/" / "?" ) */
static bool query(const char *s, size_t n)
{
    return star_chars(s, n, ":@/?");
}

/* path-abempty = *( "/" segment ) */
static bool path_abempty(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] != '/')
            return false;
        size_t j = i + 1;
        while (j < n && s[j] != '/')
            j++;
        if (!segment(s + i + 1, j - i - 1))
            return false;
        i = j;
    }
    return true;
}

/* absolute-path = 1*( "/" segment ) */
static bool absolute_path(const char *s, size_t n)
{
    return n > 0 && path_abempty(s, n);
}

/* path-rootless = segment-nz *( "/" segment ) */
static bool path_rootless(const char *s, size_t n)
{
    size_t j = 0;
    while (j < n && s[j] != '/')
        j++;
    return j > 0 && segment(s, j) && path_abempty(s + j, n - j);
}

/* path-absolute = "/" [ segment-nz *( "/" segment ) ] */
static bool path_absolute(const char *s, size_t n)
{
    return n > 0 && s[0] == '/' && (n == 1 || path_rootless(s + 1, n - 1));
}

/* dec-octet = DIGIT / %x31-39 DIGIT / "1" 2DIGIT / "2" %x30-34 DIGIT
 *           / "25" %x30-35 */
static bool dec_octet(const char *s, size_t n)
{
    switch (n) {
    case 1:
        return digit(s[0]);
    case 2:
        return s[0] >= '1' && s[0] <= '9' && digit(s[1]);
    case 3:
        return (s[0] == '1' && digit(s[1]) && digit(s[2])) ||
               (s[0] == '2' && s[1] >= '0' && s[1] <= '4' && digit(s[2])) ||
               (s[0] == '2' && s[1] == '5' && s[2] >= '0' && s[2] <= '5');
    default:
        return false;
    }
}

/* IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet */
static bool ipv4address(const char *s, size_t n)
{
    size_t start = 0;
    int parts = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (!dec_octet(s + start, i - start))
                return false;
            parts++;
            start = i + 1;
        }
    }
    return parts == 4;
}

/* h16 = 1*4HEXDIG */
static bool h16(const char *s, size_t n)
{
    if (n < 1 || n > 4)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!hexdig(s[i]))
            return false;
    return true;
}

/* ls32 = ( h16 ":" h16 ) / IPv4address */
static bool ls32(const char *s, size_t n)
{
    const char *c = memchr(s, ':', n);
    if (c)
        return h16(s, (size_t)(c - s)) && h16(c + 1, n - (size_t)(c - s) - 1);
    return ipv4address(s, n);
}

/* k( h16 ":" ) followed by `tail`: 0 ls32, 1 h16, 2 nothing. */
enum { TAIL_LS32, TAIL_H16, TAIL_NONE };
static bool h16c_then(const char *s, size_t n, int k, int tail)
{
    size_t i = 0;
    for (int r = 0; r < k; r++) {
        const char *c = memchr(s + i, ':', n - i);
        if (!c || !h16(s + i, (size_t)(c - s) - i))
            return false;
        i = (size_t)(c - s) + 1;
    }
    if (tail == TAIL_LS32)
        return ls32(s + i, n - i);
    if (tail == TAIL_H16)
        return h16(s + i, n - i);
    return i == n;
}

/* [ *m( h16 ":" ) h16 ]: empty, or 1 to m + 1 h16 joined by ':'. */
static bool h16_list(const char *s, size_t n, int m)
{
    if (n == 0)
        return true;
    for (int k = 0; k <= m; k++)
        if (h16c_then(s, n, k, TAIL_H16))
            return true;
    return false;
}

/* IPv6address, its nine alternatives in order. Where "::" occurs, the
 * part before it never holds "::" nor ends in ':', so it is the first. */
static bool ipv6address(const char *s, size_t n)
{
    const char *dc = NULL;
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == ':' && s[i + 1] == ':') {
            dc = s + i;
            break;
        }
    if (!dc)
        return h16c_then(s, n, 6, TAIL_LS32);
    size_t ln = (size_t)(dc - s);
    const char *r = dc + 2;
    size_t rn = n - ln - 2;
    static const struct {
        int left_max; /* -1: nothing before the "::" */
        int k, tail;
    } alt[8] = {
        {-1, 5, TAIL_LS32}, {0, 4, TAIL_LS32}, {1, 3, TAIL_LS32}, {2, 2, TAIL_LS32},
        {3, 1, TAIL_LS32},  {4, 0, TAIL_LS32}, {5, 0, TAIL_H16},  {6, 0, TAIL_NONE},
    };
    for (int a = 0; a < 8; a++) {
        bool left = alt[a].left_max < 0 ? ln == 0 : h16_list(s, ln, alt[a].left_max);
        if (left && h16c_then(r, rn, alt[a].k, alt[a].tail))
            return true;
    }
    return false;
}

/* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
static bool ipvfuture(const char *s, size_t n)
{
    if (n < 1 || (s[0] != 'v' && s[0] != 'V'))
        return false;
    const char *dot = memchr(s, '.', n);
    if (!dot)
        return false;
    size_t d = (size_t)(dot - s);
    if (d < 2)
        return false;
    for (size_t i = 1; i < d; i++)
        if (!hexdig(s[i]))
            return false;
    if (d + 1 >= n)
        return false;
    for (size_t i = d + 1; i < n; i++)
        if (!unreserved(s[i]) && !sub_delim(s[i]) && s[i] != ':')
            return false;
    return true;
}

/* host = IP-literal / IPv4address / reg-name */
static bool host(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
        return ipv6address(s + 1, n - 2) || ipvfuture(s + 1, n - 2);
    return ipv4address(s, n) || star_chars(s, n, ""); /* reg-name */
}

/* port = *DIGIT */
static bool port(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!digit(s[i]))
            return false;
    return true;
}

/* host [ ":" port ]: where the host ends and the port starts (the port's
 * ':' is the first one after an IP-literal's ']', or the first one). */
static bool host_port(const char *s, size_t n, size_t *host_len, bool *has_port)
{
    size_t h = 0;
    if (n > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb)
            return false;
        h = (size_t)(rb - s) + 1;
    } else {
        while (h < n && s[h] != ':')
            h++;
    }
    *host_len = h;
    *has_port = h < n;
    if (h < n && s[h] != ':')
        return false;
    return host(s, h) && (h == n || port(s + h + 1, n - h - 1));
}

/* ---- the forms, then the policy ---- */

static void set(hp_http_span_t *sp, size_t off, size_t len)
{
    sp->off = (uint16_t)off;
    sp->len = (uint16_t)len;
}

/* The expected outcome for target t[0..n) of method m: 0 with *e filled,
 * or -400. */
static int ref(const char *t, size_t n, int m, hp_target_t *e)
{
    memset(e, 0, sizeof *e);
    if (n == 0)
        return -400;

    /* asterisk-form = "*" */
    if (n == 1 && t[0] == '*') {
        if (m != HP_METHOD_OPTIONS)
            return -400;
        e->form = HP_TARGET_ASTERISK;
        return 0;
    }

    /* Where a query would start: the first '?' (no earlier part of any
     * form may hold one). */
    const char *qm = memchr(t, '?', n);
    size_t q = qm ? (size_t)(qm - t) : n;

    /* origin-form = absolute-path [ "?" query ] */
    if (t[0] == '/') {
        if (!absolute_path(t, q) || (qm && !query(t + q + 1, n - q - 1)))
            return -400;
        if (m == HP_METHOD_CONNECT)
            return -400;
        e->form = HP_TARGET_ORIGIN;
        set(&e->path, 0, q);
        if (qm)
            set(&e->query, q + 1, n - q - 1);
        return 0;
    }

    if (m == HP_METHOD_CONNECT) {
        /* authority-form = uri-host ":" port */
        size_t hl;
        bool has_port;
        if (!host_port(t, n, &hl, &has_port) || !has_port)
            return -400;
        if (hl == 0 || hl + 1 == n) /* policy: a host, and a port */
            return -400;
        e->form = HP_TARGET_AUTHORITY;
        set(&e->authority, 0, n);
        return 0;
    }

    /* absolute-form = absolute-URI = scheme ":" hier-part [ "?" query ]
     * scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
    const char *colon = memchr(t, ':', n);
    if (!colon)
        return -400;
    size_t sl = (size_t)(colon - t);
    if (sl == 0 || sl > q || !alpha(t[0]))
        return -400;
    for (size_t i = 1; i < sl; i++)
        if (!alpha(t[i]) && !digit(t[i]) && !in(t[i], "+-."))
            return -400;
    if (qm && !query(t + q + 1, n - q - 1))
        return -400;
    /* hier-part = "//" authority path-abempty / path-absolute
     *           / path-rootless / path-empty */
    const char *h = t + sl + 1;
    size_t hn = q - sl - 1;
    bool slashes = hn >= 2 && h[0] == '/' && h[1] == '/';
    size_t an = 0, ai = 0;
    bool userinfo = false;
    size_t host_len = 0;
    if (slashes) {
        while (2 + an < hn && h[2 + an] != '/')
            an++;
        const char *a = h + 2;
        /* authority = [ userinfo "@" ] host [ ":" port ]
         * userinfo = *( unreserved / pct-encoded / sub-delims / ":" ) */
        const char *at = memchr(a, '@', an);
        if (at) {
            userinfo = true;
            ai = (size_t)(at - a) + 1;
            if (!star_chars(a, ai - 1, ":"))
                return -400;
        }
        bool has_port;
        if (!host_port(a + ai, an - ai, &host_len, &has_port))
            return -400;
        if (!path_abempty(h + 2 + an, hn - 2 - an))
            return -400;
    } else if (!(hn == 0 || path_absolute(h, hn) || path_rootless(h, hn))) {
        return -400;
    }

    /* Policy: an http or https URI, which always has an authority, with a
     * host and without userinfo. */
    bool http = (sl == 4 && strncasecmp(t, "http", 4) == 0) ||
                (sl == 5 && strncasecmp(t, "https", 5) == 0);
    if (!http || !slashes || userinfo || host_len == 0)
        return -400;
    e->form = HP_TARGET_ABSOLUTE;
    size_t aoff = sl + 3;
    set(&e->authority, aoff, an);
    set(&e->path, aoff + an, q - aoff - an);
    if (qm)
        set(&e->query, q + 1, n - q - 1);
    return 0;
}

static bool same_span(hp_http_span_t a, hp_http_span_t b)
{
    return a.off == b.off && a.len == b.len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size - 1 > HP_HTTP_MAX_HEAD)
        return 0;
    int m = data[0] % 10;
    size_t n = size - 1;
    char *t = malloc(n ? n : 1);
    if (!t)
        abort();
    memcpy(t, data + 1, n);

    hp_target_t got, want;
    int r = hp_target_parse(t, n, m, &got);
    int w = ref(t, n, m, &want);
    if (r != w)
        abort();
    if (r == 0) {
        if (got.form != want.form || !same_span(got.path, want.path) ||
            !same_span(got.query, want.query) || !same_span(got.authority, want.authority))
            abort();
        /* The spans lie inside the target and in order. */
        if (got.path.off + got.path.len > n || got.query.off + got.query.len > n ||
            got.authority.off + got.authority.len > n)
            abort();
    }
    free(t);
    return 0;
}
