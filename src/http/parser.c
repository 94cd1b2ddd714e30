/*
 * parser.c - incremental HTTP/1.1 request head parser and chunked decoder.
 *
 * Central structure: hp_http_req_t, a small resumable state machine. It
 * holds only offsets (pos: next byte to examine, mark: start of the token in
 * progress) so the caller may move its buffer between calls. Each state
 * consumes bytes through one scanner per byte class (token, request target,
 * field value); the scanners (parser_int.h) come in scalar, SSE4.2 and
 * AVX2 flavours and the whole parse function is instantiated once per
 * flavour, so a parse costs one indirect call and the scanners inline.
 *
 * Invariants: bytes before req->pos have been accepted and are never
 * scanned again across calls (a CR whose LF has not arrived yet is looked
 * at once more; a completed field's name and value are re-read only to
 * trim OWS and interpret the few framing fields); the outcome
 * depends only on the bytes, never on how they were split across calls; no
 * byte at or past HP_HTTP_MAX_HEAD is read, so every span fits in 16 bits;
 * SIMD loads never reach past the end the caller gave.
 */
#include "hotpath/http_parser.h"

#include "hotpath/common.h"
#include "parser_int.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Field semantics                                                     */

enum {
    S_START = 0, /* skipping leading empty lines */
    S_METHOD,
    S_TARGET,
    S_VERSION,   /* mark = version start */
    /* S_LINE, S_NAME and S_VALUE are S_LINE + FL_AT_* (parser_int.h). */
    S_LINE,      /* at the start of a header line */
    S_NAME,      /* fields[nfields].name.off is the start */
    S_VALUE,     /* mark = value start (after leading OWS) */
    S_DONE,
};

/* Private framing facts gathered from the fields (req->pflags). */
#define PF_HOST 0x01
#define PF_TE 0x02         /* a Transfer-Encoding field was seen */
#define PF_TE_CHUNKED 0x04 /* ... with exactly one "chunked" coding so far */
#define PF_TE_OTHER 0x08   /* ... with some coding other than chunked */
#define PF_EXPECT_BAD 0x10 /* an Expect other than 100-continue */

/* Applies the meaning of the framing fields; everything else is only
 * recorded. Returns 0 or -status. Kept out of line: most fields are not
 * framing fields and the length switch in the caller rejects them. */
static int apply_field(hp_http_req_t *req, const char *name, size_t nlen, const char *v,
                       size_t vlen)
{
    switch (nlen) {
    case 4:
        if (ieq(name, "host", 4)) {
            if (req->pflags & PF_HOST)
                return -400;
            req->pflags |= PF_HOST;
        }
        break;
    case 6:
        if (ieq(name, "expect", 6)) {
            if (vlen == 12 && ieq(v, "100-continue", 12))
                req->flags |= HP_HTTP_F_EXPECT_CONTINUE;
            else
                req->pflags |= PF_EXPECT_BAD;
        }
        break;
    case 10:
        if (ieq(name, "connection", 10)) {
            unsigned t = connection_tokens(v, vlen);
            req->flags |= (t & CONN_TOK_CLOSE ? HP_HTTP_F_CONN_CLOSE : 0) |
                          (t & CONN_TOK_KEEP_ALIVE ? HP_HTTP_F_CONN_KEEP_ALIVE : 0);
        }
        break;
    case 14:
        if (ieq(name, "content-length", 14)) {
            if (content_length_field(v, vlen, req->flags & HP_HTTP_F_CONTENT_LENGTH,
                                     &req->content_length) < 0)
                return -400;
            req->flags |= HP_HTTP_F_CONTENT_LENGTH;
        }
        break;
    case 17:
        if (ieq(name, "transfer-encoding", 17)) {
            bool chunked = req->pflags & PF_TE_CHUNKED, other = false;
            if (te_codings(v, vlen, &chunked, &other) < 0)
                return -400; /* chunked applied twice: framing, not a coding */
            req->pflags |= PF_TE | (chunked ? PF_TE_CHUNKED : 0) | (other ? PF_TE_OTHER : 0);
        }
        break;
    default:
        break;
    }
    return 0;
}

/* The checks that need the whole head, in order of precedence: framing
 * errors (400), unsupported codings (501), body too large (413), Expect
 * (417). */
static int finish_head(hp_http_req_t *req, const hp_http_limits_t *lim)
{
    if (req->version_minor == 1 && !(req->pflags & PF_HOST))
        return -400;
    if (req->pflags & PF_TE) {
        if (req->version_minor == 0 || (req->flags & HP_HTTP_F_CONTENT_LENGTH))
            return -400;
        if (!(req->pflags & (PF_TE_CHUNKED | PF_TE_OTHER)))
            return -400; /* no coding at all */
        if (req->pflags & PF_TE_OTHER)
            return -501;
        req->flags |= HP_HTTP_F_CHUNKED;
    }
    if ((req->flags & HP_HTTP_F_CONTENT_LENGTH) && req->content_length > lim->max_body)
        return -413;
    if (req->pflags & PF_EXPECT_BAD)
        return -417;
    return 0;
}

/* Method id (HP_METHOD_*, http_method.h) of a token; case-sensitive (RFC
 * 9110 §9.1). The same ids as hp_method_lookup over hp_method_table, which
 * test_method checks, but a switch on the length and one or two compares
 * keep the request path short. */
static uint8_t method_id(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (!memcmp(m, "GET", 3))
            return HP_METHOD_GET;
        if (!memcmp(m, "PUT", 3))
            return HP_METHOD_PUT;
        break;
    case 4:
        if (!memcmp(m, "POST", 4))
            return HP_METHOD_POST;
        if (!memcmp(m, "HEAD", 4))
            return HP_METHOD_HEAD;
        break;
    case 5:
        if (!memcmp(m, "PATCH", 5))
            return HP_METHOD_PATCH;
        if (!memcmp(m, "TRACE", 5))
            return HP_METHOD_TRACE;
        break;
    case 6:
        if (!memcmp(m, "DELETE", 6))
            return HP_METHOD_DELETE;
        break;
    case 7:
        if (!memcmp(m, "OPTIONS", 7))
            return HP_METHOD_OPTIONS;
        if (!memcmp(m, "CONNECT", 7))
            return HP_METHOD_CONNECT;
        break;
    default:
        break;
    }
    return HP_METHOD_UNKNOWN;
}

/* ------------------------------------------------------------------ */
/* The state machine                                                   */

HP_INLINE size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* One request-line scan stopped at i == end. Returns 1 when buf[i] is a
 * line terminator sitting exactly at the line limit (go on), 0 when more
 * bytes are needed, or -status. */
HP_INLINE int rl_at_end(const char *buf, size_t i, size_t cap, size_t len)
{
    if (i == cap)
        return len > cap ? -431 : 0;
    /* i is the line limit and a byte is there: content may not go on. */
    return (buf[i] == '\r' || buf[i] == '\n') ? 1 : -414;
}

/* The request parser's main loop: a resumable state machine over the
 * request line and the field lines, one function on purpose (the
 * exception to the ~100-line rule): the states fall and jump into one
 * another keeping the position and the line being scanned in registers,
 * and it is inlined once per SIMD mode so that each copy calls its
 * scanner directly. Split into functions, that state would go through
 * memory at every field; the steps that are not per byte (rl_at_end, the
 * target and field checks) are functions of their own. */
HP_INLINE int parse_impl(hp_http_req_t *req, hp_http_field_t *fields, const char *buf, size_t len,
                         const hp_http_limits_t *lim, int mode)
{
    /* Nothing at or past cap is ever read: spans stay 16-bit. */
    const size_t cap = min_sz(len, HP_HTTP_MAX_HEAD);
    size_t pos = req->pos, i, rl_end, hend;
    int r;

    /* The caller only ever appends; fewer bytes than already accepted
     * would make the scanners' (end - pos) wrap, so refuse it. */
    if (HP_UNLIKELY(pos > cap) && req->state != S_DONE)
        return -400;

    switch (req->state) {
    case S_START:
        for (;;) {
            if (pos >= cap)
                goto need;
            if (buf[pos] == '\r') {
                if (pos + 1 >= cap)
                    goto need;
                if (buf[pos + 1] != '\n')
                    return -400;
                pos += 2;
            } else if (buf[pos] == '\n') {
                pos++;
            } else {
                break;
            }
            if (++req->empties > HP_HTTP_MAX_LEADING_EMPTY)
                return -400;
        }
        req->method.off = (uint16_t)pos;
        req->state = S_METHOD;
        /* fall through */
    case S_METHOD:
        rl_end = min_sz(cap, (size_t)req->method.off + lim->max_request_line);
        i = scan_token(mode, buf, pos, rl_end);
        if (i == rl_end && (r = rl_at_end(buf, i, cap, len)) <= 0) {
            pos = i;
            goto rl_out;
        }
        if (buf[i] != ' ' || i == req->method.off)
            return -400;
        req->method.len = (uint16_t)(i - req->method.off);
        pos = i + 1;
        req->target.off = (uint16_t)pos;
        req->state = S_TARGET;
        /* fall through */
    case S_TARGET:
        rl_end = min_sz(cap, (size_t)req->method.off + lim->max_request_line);
        i = scan_vchar(mode, buf, pos, rl_end);
        if (i == rl_end && (r = rl_at_end(buf, i, cap, len)) <= 0) {
            pos = i;
            goto rl_out;
        }
        if (buf[i] != ' ' || i == req->target.off)
            return -400;
        req->target.len = (uint16_t)(i - req->target.off);
        pos = i + 1;
        req->mark = (uint32_t)pos;
        req->state = S_VERSION;
        /* fall through */
    case S_VERSION: {
        rl_end = min_sz(cap, (size_t)req->method.off + lim->max_request_line);
        i = scan_vchar(mode, buf, pos, rl_end);
        if (i == rl_end && (r = rl_at_end(buf, i, cap, len)) <= 0) {
            pos = i;
            goto rl_out;
        }
        size_t next;
        if (buf[i] == '\r') {
            if (i + 1 >= cap) {
                pos = i; /* look at the CR again when its LF arrives */
                goto need;
            }
            if (buf[i + 1] != '\n')
                return -400;
            next = i + 2;
        } else if (buf[i] == '\n') {
            next = i + 1;
        } else {
            return -400;
        }
        const char *v = buf + req->mark;
        if (i - req->mark != 8 || memcmp(v, "HTTP/", 5) || (uint8_t)(v[5] - '0') > 9 ||
            v[6] != '.' || (uint8_t)(v[7] - '0') > 9)
            return -400;
        if (v[5] != '1')
            return -505;
        req->version_minor = v[7] != '0';
        req->method_id = method_id(buf + req->method.off, req->method.len);
        if (req->method_id == HP_METHOD_UNKNOWN)
            return -501;
        pos = next;
        req->hdr_start = (uint32_t)pos;
        req->state = S_LINE;
    }
        /* fall through */
    case S_LINE:
    case S_NAME:
    case S_VALUE:
        break;
    case S_DONE:
        return (int)req->head_len;
    default:
        return -400;
    }

    /* Header section. The hot loop keeps its state in locals (buf is a
     * char pointer and may alias *req, so fields of *req would be reloaded
     * after every store) and writes them back only when it stops. A line
     * in progress has its name in fields[nf] and its value start in mark. */
    hend = min_sz(cap, (size_t)req->hdr_start + lim->max_header_bytes);
    unsigned nf = req->nfields;
    int at = req->state - S_LINE;
    field_line_t fl = {.value = req->mark};
    if (at != FL_AT_LINE) {
        fl.name = fields[nf].name.off;
        fl.nlen = fields[nf].name.len;
    }
    for (;;) {
        switch (scan_field_line(mode, buf, &pos, hend, &at, &fl, nf < lim->max_fields, false)) {
        case FL_FIELD:
            break;
        case FL_END:
            goto done;
        case FL_NEED:
            goto hneed;
        case FL_FULL:
            return -431;
        default:
            return -400;
        }
        size_t ve = fl.eol;
        while (ve > fl.value && is_ows(buf[ve - 1]))
            ve--;
        hp_http_field_t *f = &fields[nf];
        f->name.off = (uint16_t)fl.name;
        f->name.len = (uint16_t)fl.nlen;
        f->value.off = (uint16_t)fl.value;
        f->value.len = (uint16_t)(ve - fl.value);
        switch (fl.nlen) {
        case 4: case 6: case 10: case 14: case 17:
            r = apply_field(req, buf + fl.name, fl.nlen, buf + fl.value, ve - fl.value);
            if (r)
                return r;
            break;
        default:
            break;
        }
        nf++;
    }

done:
    req->nfields = (uint16_t)nf;
    if ((r = finish_head(req, lim)) < 0)
        return r;
    req->head_len = (uint32_t)pos;
    req->pos = (uint32_t)pos;
    req->state = S_DONE;
    return (int)pos;

rl_out:
    if (r < 0)
        return r;
need:
    req->pos = (uint32_t)pos;
    return len > cap ? -431 : 0;

hneed:
    req->state = (uint8_t)(S_LINE + at);
    req->pos = (uint32_t)pos;
    if (at != FL_AT_LINE) {
        fields[nf].name.off = (uint16_t)fl.name;
        fields[nf].name.len = (uint16_t)fl.nlen;
        req->mark = fl.value;
    }
    req->nfields = (uint16_t)nf;
    /* Bytes exist past what the header limit lets us look at. */
    return len > hend ? -431 : 0;
}

static int parse_scalar(hp_http_req_t *req, hp_http_field_t *fields, const char *buf, size_t len,
                        const hp_http_limits_t *lim)
{
    return parse_impl(req, fields, buf, len, lim, HP_HTTP_SIMD_SCALAR);
}

#if HP_HAVE_SSE42_TARGET
__attribute__((target("sse4.2"))) static int parse_sse42(hp_http_req_t *req,
                                                         hp_http_field_t *fields, const char *buf,
                                                         size_t len, const hp_http_limits_t *lim)
{
    return parse_impl(req, fields, buf, len, lim, HP_HTTP_SIMD_SSE42);
}
#endif

#if HP_HAVE_AVX2_TARGET
__attribute__((target("avx2"))) static int parse_avx2(hp_http_req_t *req, hp_http_field_t *fields,
                                                      const char *buf, size_t len,
                                                      const hp_http_limits_t *lim)
{
    return parse_impl(req, fields, buf, len, lim, HP_HTTP_SIMD_AVX2);
}
#endif

typedef int (*parse_fn)(hp_http_req_t *, hp_http_field_t *, const char *, size_t,
                        const hp_http_limits_t *);

/* Set once by hp_http_parser_init() before any worker starts (tests and
 * benchmarks change it between runs); read-only while requests are parsed. */
static parse_fn parse_cur = parse_scalar;
static int mode_cur = HP_HTTP_SIMD_SCALAR;

int hp_http_parser_mode(void)
{
    return mode_cur;
}

int hp_http_parse(hp_http_req_t *req, hp_http_field_t *fields, const char *buf, size_t len,
                  const hp_http_limits_t *lim)
{
    return parse_cur(req, fields, buf, len, lim);
}

void hp_http_req_init(hp_http_req_t *req)
{
    memset(req, 0, sizeof(*req));
}

bool hp_http_req_keep_alive(const hp_http_req_t *req)
{
    if (req->flags & HP_HTTP_F_CONN_CLOSE)
        return false;
    return req->version_minor >= 1 || (req->flags & HP_HTTP_F_CONN_KEEP_ALIVE);
}

int hp_http_find_field(const hp_http_req_t *req, const hp_http_field_t *fields, const char *buf,
                       const char *name, size_t name_len)
{
    for (int i = 0; i < req->nfields; i++) {
        if (fields[i].name.len != name_len)
            continue;
        const char *p = buf + fields[i].name.off;
        size_t k = 0;
        while (k < name_len) {
            unsigned a = (uint8_t)p[k], b = (uint8_t)name[k];
            if (a - 'A' < 26)
                a |= 0x20;
            if (b - 'A' < 26)
                b |= 0x20;
            if (a != b)
                break;
            k++;
        }
        if (k == name_len)
            return i;
    }
    return -1;
}

/* Best mode the CPU and the build allow, at most `want`. */
static int best_mode(int want)
{
    __builtin_cpu_init();
#if HP_HAVE_AVX2_TARGET
    if (want >= HP_HTTP_SIMD_AVX2 && __builtin_cpu_supports("avx2"))
        return HP_HTTP_SIMD_AVX2;
#endif
#if HP_HAVE_SSE42_TARGET
    if (want >= HP_HTTP_SIMD_SSE42 && __builtin_cpu_supports("sse4.2"))
        return HP_HTTP_SIMD_SSE42;
#endif
    (void)want;
    return HP_HTTP_SIMD_SCALAR;
}

int hp_http_parser_set_simd(int mode)
{
    /* A forced mode the CPU lacks falls back to the best available. */
    int m = best_mode(mode);
    if (m != mode)
        m = best_mode(HP_HTTP_SIMD_AVX2);
    switch (m) {
#if HP_HAVE_AVX2_TARGET
    case HP_HTTP_SIMD_AVX2:
        parse_cur = parse_avx2;
        break;
#endif
#if HP_HAVE_SSE42_TARGET
    case HP_HTTP_SIMD_SSE42:
        parse_cur = parse_sse42;
        break;
#endif
    default:
        m = HP_HTTP_SIMD_SCALAR;
        parse_cur = parse_scalar;
        break;
    }
    mode_cur = m;
    return m;
}

int hp_http_parser_init(void)
{
    int want = HP_HTTP_SIMD_AVX2;
    const char *env = getenv("HOTPATH_SIMD");
    if (env) {
        if (!strcmp(env, "scalar"))
            want = HP_HTTP_SIMD_SCALAR;
        else if (!strcmp(env, "sse42"))
            want = HP_HTTP_SIMD_SSE42;
    }
    return hp_http_parser_set_simd(want);
}

const char *hp_http_simd_name(int mode)
{
    switch (mode) {
    case HP_HTTP_SIMD_SCALAR:
        return "scalar";
    case HP_HTTP_SIMD_SSE42:
        return "sse42";
    case HP_HTTP_SIMD_AVX2:
        return "avx2";
    default:
        return "?";
    }
}

/* ------------------------------------------------------------------ */
/* Chunked body decoder                                                */

enum {
    C_SIZE0 = 0, /* first hex digit of a chunk size */
    C_SIZE,      /* more hex digits */
    C_BWS,       /* whitespace after the size */
    C_EXT,       /* chunk extension, discarded */
    C_SIZE_LF,   /* CR seen at the end of the size line; the size line's
                  * states are the ones up to here (chunk_size_line) */
    C_DATA,
    C_DATA_CR,   /* CRLF after the data */
    C_DATA_LF,
    C_TRL_START, /* start of a trailer line (or the final empty line) */
    C_TRL_LINE,
    C_TRL_LF,
    C_END_LF,    /* CR of the final empty line seen */
    C_DONE,
};

void hp_http_chunked_init(hp_http_chunked_t *c, uint64_t max_body)
{
    memset(c, 0, sizeof(*c));
    c->max_body = max_body;
}

/* The size line ended: start the data, or the trailers after the last
 * chunk. The total was already checked against max_body. */
HP_INLINE void chunk_line_done(hp_http_chunked_t *c)
{
    c->count = 0;
    if (c->size == 0) {
        c->state = C_TRL_START;
    } else {
        c->total += c->size;
        c->state = C_DATA;
    }
}

/* C_DATA, the common case: moves as much of the chunk's data as is here to
 * buf[*o] in one go, advancing *i and *o. The output never overtakes the
 * input, so memmove is safe. */
HP_INLINE void chunk_data(hp_http_chunked_t *c, char *buf, size_t len, size_t *i, size_t *o)
{
    size_t n = min_sz(len - *i, c->size > SIZE_MAX ? SIZE_MAX : (size_t)c->size);
    if (*o != *i)
        memmove(buf + *o, buf + *i, n);
    *o += n;
    *i += n;
    c->size -= n;
    if (c->size == 0)
        c->state = C_DATA_CR;
}

/* One byte b of a size line: hex digits, whitespace, an extension, then
 * CRLF or LF. Returns 0 (b is consumed) or -status (it is not). Bytes
 * before the line's end count against HP_HTTP_CHUNK_LINE_MAX once their
 * state change is made; the line's CR and LF do not count. */
HP_INLINE int chunk_size_byte(hp_http_chunked_t *c, uint8_t b)
{
    switch (c->state) {
    case C_SIZE0:
    case C_SIZE:
        if (hex_tbl[b] != 0xff) {
            if (c->size >> 60)
                return -400; /* the size would overflow 64 bits */
            c->size = c->size << 4 | hex_tbl[b];
            c->state = C_SIZE;
            goto count;
        }
        if (c->state == C_SIZE0)
            return -400; /* no digits */
        if (c->size > c->max_body - c->total)
            return -413;
        c->state = C_BWS;
        /* fall through - this byte ends the digits */
    case C_BWS:
        if (is_ows((char)b))
            goto count;
        if (b == ';') {
            c->state = C_EXT;
            goto count;
        }
        break;
    case C_EXT:
        if (value_tbl[b])
            goto count;
        break;
    default: /* C_SIZE_LF */
        if (b != '\n')
            return -400;
        chunk_line_done(c);
        return 0;
    }
    /* b ends the size line (or is not allowed there). */
    if (b == '\r') {
        c->state = C_SIZE_LF;
        return 0;
    }
    if (b == '\n') {
        chunk_line_done(c);
        return 0;
    }
    return -400;

count:
    return ++c->count > HP_HTTP_CHUNK_LINE_MAX ? -400 : 0;
}

/* Takes size-line bytes from buf[*i] on, advancing *i past each one
 * consumed, until the line has ended (the state is past C_SIZE_LF), the
 * input has, or a byte is wrong. Returns 0 or -status. The loop is here,
 * not in the caller, so that a line of many bytes is one dispatch on the
 * state and not one per byte (small chunks are mostly size lines). */
HP_INLINE int chunk_size_line(hp_http_chunked_t *c, const char *buf, size_t len, size_t *i)
{
    do {
        int r = chunk_size_byte(c, (uint8_t)buf[*i]);
        if (r < 0)
            return r;
        ++*i;
    } while (*i < len && c->state <= C_SIZE_LF);
    return 0;
}

/* One byte b of the CRLF (or bare LF) after a chunk's data (C_DATA_CR,
 * C_DATA_LF). Returns 0 (b is consumed) or -400 (it is not). */
HP_INLINE int chunk_data_end_byte(hp_http_chunked_t *c, uint8_t b)
{
    if (c->state == C_DATA_CR && b == '\r')
        c->state = C_DATA_LF;
    else if (b == '\n')
        c->state = C_SIZE0;
    else
        return -400;
    return 0;
}

/* One byte b of the trailer section, already counted and consumed (a bad
 * trailer byte is consumed too). Returns 0, 1 when b ended the section
 * (state C_DONE), or -400. Plain static, not HP_INLINE: trailers are rare,
 * so the compiler may keep this out of the decode loop. */
static int chunk_trailer_byte(hp_http_chunked_t *c, uint8_t b)
{
    if (c->state == C_TRL_LF || c->state == C_END_LF) {
        if (b != '\n')
            return -400; /* bare CR */
        if (c->state == C_END_LF)
            goto finished;
        c->state = C_TRL_START;
    } else if (b == '\r') {
        c->state = c->state == C_TRL_START ? C_END_LF : C_TRL_LF;
    } else if (b == '\n') {
        if (c->state == C_TRL_START)
            goto finished;
        c->state = C_TRL_START;
    } else if (!value_tbl[b]) {
        return -400;
    } else {
        c->state = C_TRL_LINE;
    }
    return 0;

finished:
    c->state = C_DONE;
    return 1;
}

int hp_http_chunked_decode(hp_http_chunked_t *c, char *buf, size_t len, size_t *consumed,
                           size_t *out_len)
{
    size_t i = 0, o = 0;
    int r = 0;

    while (i < len) {
        uint8_t b = (uint8_t)buf[i];
        switch (c->state) {
        case C_DATA:
            chunk_data(c, buf, len, &i, &o);
            continue;
        case C_SIZE0:
        case C_SIZE:
        case C_BWS:
        case C_EXT:
        case C_SIZE_LF:
            r = chunk_size_line(c, buf, len, &i);
            if (r < 0)
                goto out;
            continue;
        case C_DATA_CR:
        case C_DATA_LF:
            r = chunk_data_end_byte(c, b);
            if (r < 0)
                goto out;
            i++;
            continue;
        case C_TRL_START:
        case C_TRL_LINE:
        case C_TRL_LF:
        case C_END_LF:
            /* The byte over the limit is not consumed; any other is, even
             * one that is wrong. */
            if (++c->count > HP_HTTP_TRAILER_MAX) {
                r = -431;
                goto out;
            }
            i++;
            r = chunk_trailer_byte(c, b);
            if (r)
                goto out;
            continue;
        case C_DONE:
            r = 1;
            goto out;
        default:
            r = -400;
            goto out;
        }
    }
    if (c->state == C_DONE)
        r = 1;
out:
    *consumed = i;
    *out_len = o;
    return r;
}
