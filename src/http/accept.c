/*
 * accept.c - Accept-Encoding negotiation (RFC 9110 §12.5.3, §12.4.2).
 *
 * Central data structure: a four-slot table of weights in thousandths
 * (identity, gzip, br, "*"), -1 for "not listed", filled by one pass over
 * the list; the choice is then made from the table alone.
 * Invariant: a slot only ever holds -1 or a valid qvalue 0..1000 taken
 * from a well-formed element; malformed elements never touch the table.
 */
#include "accept_int.h"
#include "tchar_int.h"

#include <stdbool.h>
#include <stdint.h>

enum { C_IDENTITY, C_GZIP, C_BR, C_STAR, C_NONE };

static size_t skip_ows(const char *v, size_t len, size_t i)
{
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    return i;
}

static size_t scan_token(const char *v, size_t len, size_t i)
{
    while (i < len && tchar_tbl[(unsigned char)v[i]])
        i++;
    return i;
}

/* Case-insensitive compare of v[0..n) with the lowercase word w. */
static bool word_is(const char *v, size_t n, const char *w)
{
    size_t i = 0;
    for (; i < n && w[i]; i++)
        if ((v[i] | 0x20) != w[i])
            return false;
    return i == n && !w[i];
}

static int coding_of(const char *v, size_t n)
{
    if (n == 1 && v[0] == '*')
        return C_STAR;
    if (word_is(v, n, "br"))
        return C_BR;
    if (word_is(v, n, "gzip") || word_is(v, n, "x-gzip"))
        return C_GZIP;
    if (word_is(v, n, "identity"))
        return C_IDENTITY;
    return C_NONE;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) at v[*i..len),
 * in thousandths. The token must end right after it; the caller checks
 * what follows. */
static bool scan_qvalue(const char *v, size_t len, size_t *i, int *q)
{
    size_t p = *i;
    if (p >= len || (v[p] != '0' && v[p] != '1'))
        return false;
    bool one = v[p++] == '1';
    int frac = 0, digits = 0;
    if (p < len && v[p] == '.') {
        p++;
        while (p < len && v[p] >= '0' && v[p] <= '9') {
            if (++digits > 3 || (one && v[p] != '0'))
                return false;
            frac = frac * 10 + (v[p++] - '0');
        }
    }
    for (; digits < 3; digits++)
        frac *= 10;
    *q = one ? 1000 : frac;
    *i = p;
    return true;
}

/* After a malformed element: the next comma that is not inside a
 * quoted-string (a parameter value may be quoted and hold commas), or the
 * end. */
static size_t skip_element(const char *v, size_t len, size_t i)
{
    bool quoted = false;
    for (; i < len; i++) {
        if (quoted && v[i] == '\\')
            i++;
        else if (v[i] == '"')
            quoted = !quoted;
        else if (!quoted && v[i] == ',')
            break;
    }
    return i < len ? i : len;
}

/* Parses one element at v[*i..len): token *( OWS ";" OWS "q=" qvalue ),
 * at most one weight. On success sets *coding, *q and leaves *i at the
 * OWS/comma/end that follows. */
static bool scan_element(const char *v, size_t len, size_t *i, int *coding, int *q)
{
    size_t p = *i, t = scan_token(v, len, p);
    if (t == p)
        return false;
    *coding = coding_of(v + p, t - p);
    *q = 1000;
    bool weighted = false;
    p = t;
    for (;;) {
        size_t s = skip_ows(v, len, p);
        if (s >= len || v[s] != ';')
            break;
        s = skip_ows(v, len, s + 1);
        if (weighted || len - s < 2 || (v[s] | 0x20) != 'q' || v[s + 1] != '=')
            return false;
        s += 2;
        if (!scan_qvalue(v, len, &s, q))
            return false;
        weighted = true;
        p = s;
    }
    size_t s = skip_ows(v, len, p);
    if (s < len && v[s] != ',')
        return false;
    *i = s;
    return true;
}

unsigned hp_accept_encoding(const char *v, size_t len, unsigned available)
{
    unsigned avail = (available & (HP_ENC_GZIP | HP_ENC_BR)) | HP_ENC_IDENTITY;
    if (!v)
        return HP_ENC_IDENTITY;

    int w[4] = {-1, -1, -1, -1};
    size_t i = 0;
    while (i < len) {
        i = skip_ows(v, len, i);
        if (i >= len)
            break;
        if (v[i] == ',') { /* empty list element */
            i++;
            continue;
        }
        int coding, q;
        size_t at = i;
        if (!scan_element(v, len, &i, &coding, &q)) {
            i = skip_element(v, len, at);
            continue;
        }
        if (coding != C_NONE && q > w[coding])
            w[coding] = q;
    }

    /* Effective weights: named, else "*", else (identity only) acceptable
     * at the bottom: rank 0 below the thousandths, so +1 on the rest. */
    int best = 0;
    unsigned pick = 0;
    static const struct {
        int slot;
        unsigned bit;
    } order[3] = {{C_BR, HP_ENC_BR}, {C_GZIP, HP_ENC_GZIP}, {C_IDENTITY, HP_ENC_IDENTITY}};
    for (int k = 0; k < 3; k++) {
        if (!(avail & order[k].bit))
            continue;
        int q = w[order[k].slot] >= 0 ? w[order[k].slot] : w[C_STAR];
        int rank;
        if (q > 0)
            rank = q + 1;
        else if (q < 0 && order[k].slot == C_IDENTITY)
            rank = 1;
        else
            continue; /* q=0, or a content coding the client did not name */
        /* Strictly greater: on a tie the earlier (preferred) coding stays. */
        if (rank > best) {
            best = rank;
            pick = order[k].bit;
        }
    }
    return pick;
}
