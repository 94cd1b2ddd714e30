/*
 * cond.c - validators and conditional request evaluation (RFC 9110 §8.8,
 * §13) for the static file server.
 *
 * Central data structure: none kept. An entity-tag is handled as a view
 * (struct etag: weak flag plus the span of its opaque-tag, quotes included)
 * into the caller's bytes; lists are walked once, left to right, with the
 * RFC 9110 §5.6.1.2 recipient rule (empty list elements and OWS around
 * commas are accepted).
 * Invariant: every read is bounds-checked against the given length, so no
 * input needs a NUL, and nothing allocates or reads the clock: a request
 * can be evaluated anywhere on the hot path.
 */
#include "hotpath/http_cond.h"

#include <errno.h>
#include <string.h>

/* ---- ETag generation ---------------------------------------------------- */

static size_t hex_len(uint64_t v)
{
    size_t n = 1;
    while (v >>= 4)
        n++;
    return n;
}

static char *put_hex(char *p, uint64_t v, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = n; i-- > 0; v >>= 4)
        p[i] = digits[v & 15];
    return p + n;
}

size_t hp_cond_etag_make(char *out, size_t cap, uint64_t size, int64_t mtime_sec, long mtime_nsec)
{
    /* Unsigned arithmetic: wraps instead of overflowing for far-off times,
     * which keeps the tag well defined; it only has to be stable. */
    uint64_t ns = (uint64_t)mtime_sec * 1000000000u + (uint64_t)(int64_t)mtime_nsec;
    size_t ns_len = hex_len(size), nt_len = hex_len(ns);
    size_t len = 1 + ns_len + 1 + nt_len + 1;
    if (!out || cap < len + 1)
        return 0;
    char *p = out;
    *p++ = '"';
    p = put_hex(p, size, ns_len);
    *p++ = '-';
    p = put_hex(p, ns, nt_len);
    *p++ = '"';
    *p = '\0';
    return len;
}

/* ---- HTTP-date ---------------------------------------------------------- */

static const char day_short[7][4] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_long[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Two ASCII digits at p, or -1. */
static int num2(const char *p)
{
    if (!is_digit(p[0]) || !is_digit(p[1]))
        return -1;
    return (p[0] - '0') * 10 + (p[1] - '0');
}

static int num4(const char *p)
{
    int a = num2(p), b = num2(p + 2);
    return a < 0 || b < 0 ? -1 : a * 100 + b;
}

/* Month 1..12 from its case-sensitive three-letter name at p, or 0. */
static int month_of(const char *p)
{
    for (int m = 0; m < 12; m++)
        if (!memcmp(p, month_names[m], 3))
            return m + 1;
    return 0;
}

static bool short_day(const char *p)
{
    for (int d = 0; d < 7; d++)
        if (!memcmp(p, day_short[d], 3))
            return true;
    return false;
}

/* "HH:MM:SS" at p; returns seconds into the day (a leap second 60 rolls
 * into the next minute) or -1. */
static int64_t time_of_day(const char *p)
{
    if (p[2] != ':' || p[5] != ':')
        return -1;
    int h = num2(p), m = num2(p + 3), s = num2(p + 6);
    if (h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 60)
        return -1;
    return (int64_t)h * 3600 + m * 60 + s;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const uint8_t dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : dim[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. The
 * year is shifted to start in March so the leap day is the last day of the
 * shifted year; then whole 400-year eras (146097 days), years within the
 * era and days within the year are added up. The inverse of the
 * civil-from-days computation in src/core/clock.c. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                   /* 0..399 */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* 0..146096 */
    return era * 146097 + doe - 719468;
}

static int finish_date(int y, int mon, int day, int64_t tod, int64_t *t)
{
    if (y < 0 || mon == 0 || day < 1 || day > days_in_month(y, mon) || tod < 0)
        return -EINVAL;
    *t = days_from_civil(y, mon, day) * 86400 + tod;
    return 0;
}

int hp_cond_date_parse(const char *s, size_t len, int64_t *t)
{
    if (!s || !t)
        return -EINVAL;
    if (len == 29 && s[3] == ',') {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        if (!short_day(s) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
            s[25] != ' ' || memcmp(s + 26, "GMT", 3))
            return -EINVAL;
        return finish_date(num4(s + 12), month_of(s + 8), num2(s + 5), time_of_day(s + 17), t);
    }
    if (len == 24 && s[3] == ' ') {
        /* asctime: "Sun Nov  6 08:49:37 1994", day as 2DIGIT or SP DIGIT */
        if (!short_day(s) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ')
            return -EINVAL;
        int day = s[8] == ' ' ? (is_digit(s[9]) ? s[9] - '0' : -1) : num2(s + 8);
        return finish_date(num4(s + 20), month_of(s + 4), day, time_of_day(s + 11), t);
    }
    /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT": a long day name, then 24
     * fixed bytes. */
    for (int d = 0; d < 7; d++) {
        size_t n = strlen(day_long[d]);
        if (len != n + 24 || memcmp(s, day_long[d], n))
            continue;
        const char *p = s + n;
        if (p[0] != ',' || p[1] != ' ' || p[4] != '-' || p[8] != '-' || p[11] != ' ' ||
            p[20] != ' ' || memcmp(p + 21, "GMT", 3))
            return -EINVAL;
        int yy = num2(p + 9);
        int y = yy < 0 ? -1 : (yy < 70 ? 2000 + yy : 1900 + yy);
        return finish_date(y, month_of(p + 5), num2(p + 2), time_of_day(p + 12), t);
    }
    return -EINVAL;
}

/* ---- entity-tags -------------------------------------------------------- */

/* A parsed entity-tag: opaque points at the opening quote, len covers both
 * quotes, so two tags compare with one memcmp. */
struct etag {
    const char *opaque;
    size_t len;
    bool weak;
};

/* etagc = %x21 / %x23-7E / obs-text: visible bytes except DQUOTE. */
static bool etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

/* Parses entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE at v[*i..len). On
 * success fills *e, advances *i past it and returns true. */
static bool etag_scan(const char *v, size_t len, size_t *i, struct etag *e)
{
    size_t p = *i;
    e->weak = false;
    if (len - p >= 2 && v[p] == 'W' && v[p + 1] == '/') {
        e->weak = true;
        p += 2;
    }
    if (p >= len || v[p] != '"')
        return false;
    size_t start = p++;
    while (p < len && etagc((unsigned char)v[p]))
        p++;
    if (p >= len || v[p] != '"')
        return false;
    e->opaque = v + start;
    e->len = ++p - start;
    *i = p;
    return true;
}

/* The representation's own tag: valid only when etag is exactly one
 * entity-tag. */
static bool self_tag(const char *etag, size_t etag_len, struct etag *e)
{
    size_t i = 0;
    return etag && etag_scan(etag, etag_len, &i, e) && i == etag_len;
}

static bool same_opaque(const struct etag *a, const struct etag *b)
{
    return a->len == b->len && !memcmp(a->opaque, b->opaque, a->len);
}

static size_t skip_ows(const char *v, size_t len, size_t i)
{
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    return i;
}

/* Matches the field value "*" / #entity-tag against the representation's
 * tag `self` (NULL when it has none). Weak comparison ignores W/ on both
 * sides; strong comparison needs both strong (§8.8.3.2). Returns true on a
 * match. The whole list is checked: one with a syntax error matches
 * nothing, so a garbled precondition never causes a 304 and always causes
 * a 412 for If-Match. */
static bool tag_list_match(const char *v, size_t len, const struct etag *self, bool weak_cmp)
{
    size_t i = skip_ows(v, len, 0);
    size_t end = len;
    while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    if (end - i == 1 && v[i] == '*')
        return true; /* the representation exists: that is all "*" asks */
    bool match = false;
    while (i < end) {
        if (v[i] == ',') { /* empty element */
            i = skip_ows(v, end, i + 1);
            continue;
        }
        struct etag e;
        if (!etag_scan(v, end, &i, &e))
            return false;
        if (self && same_opaque(&e, self) && (weak_cmp || (!e.weak && !self->weak)))
            match = true;
        i = skip_ows(v, end, i);
        if (i < end) {
            if (v[i] != ',')
                return false;
            i = skip_ows(v, end, i + 1);
        }
    }
    return match;
}

/* ---- preconditions ------------------------------------------------------ */

int hp_cond_evaluate(const char *if_match, size_t im_len, const char *if_none_match, size_t inm_len,
                     const char *if_modified_since, size_t ims_len, const char *if_unmodified_since,
                     size_t ius_len, const char *etag, size_t etag_len, int64_t mtime)
{
    struct etag self_buf;
    const struct etag *self = self_tag(etag, etag_len, &self_buf) ? &self_buf : NULL;
    int64_t t;

    /* §13.2.2 steps 1-2: the client's copy must still be current. For GET
     * and HEAD there is no state change that could have already happened,
     * so a failed condition is always 412. */
    if (if_match) {
        if (!tag_list_match(if_match, im_len, self, false))
            return 412;
    } else if (if_unmodified_since &&
               hp_cond_date_parse(if_unmodified_since, ius_len, &t) == 0 && mtime > t) {
        return 412;
    }
    /* Steps 3-4: the client already has this representation. An
     * If-None-Match, valid or not, makes If-Modified-Since irrelevant:
     * tags are the more precise validator. */
    if (if_none_match) {
        if (tag_list_match(if_none_match, inm_len, self, true))
            return 304;
    } else if (if_modified_since &&
               hp_cond_date_parse(if_modified_since, ims_len, &t) == 0 && mtime <= t) {
        return 304;
    }
    return 200;
}

bool hp_cond_if_range(const char *if_range, size_t len, const char *etag, size_t etag_len,
                      int64_t mtime, int64_t now)
{
    if (!if_range)
        return true;
    /* "W/" and not just 'W': dates may start with "Wed". */
    if ((len && if_range[0] == '"') || (len >= 2 && if_range[0] == 'W' && if_range[1] == '/')) {
        /* Only one entity-tag, and a strong match: a weak tag cannot prove
         * that bytes from two responses fit together. */
        struct etag self, e;
        size_t i = 0;
        return self_tag(etag, etag_len, &self) && etag_scan(if_range, len, &i, &e) &&
               i == len && !e.weak && !self.weak && same_opaque(&e, &self);
    }
    /* A date is a strong validator only when the file has not changed in
     * the second the response is generated in (§8.8.2.2). */
    int64_t t;
    return hp_cond_date_parse(if_range, len, &t) == 0 && t == mtime && mtime < now;
}
