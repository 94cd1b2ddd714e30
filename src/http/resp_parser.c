/*
 * resp_parser.c - incremental HTTP/1.1 response parser for the client side.
 *
 * Central structure: hp_resp_parser_t, a small resumable state machine for
 * the head followed by a body framer. Like the request parser (parser.c),
 * the head state holds only offsets from the first byte of the response
 * (pos: next byte to examine; name/value: the field line in progress), so
 * the caller may compact its buffer between calls. The byte classes and the
 * scalar/SSE4.2/AVX2 scanners are the request parser's (parser_int.h); the
 * head parse is instantiated once per flavour so the scanners inline.
 * Chunked bodies go through hp_http_chunked_decode() with no size limit.
 *
 * Invariants: bytes before r->pos were accepted and are not scanned again
 * across calls (a CR whose LF has not arrived is looked at once more, the
 * status digits and the few framing fields are re-read when their line
 * ends); the outcome depends only on the bytes, never on how they were split
 * across calls, because every check is made in byte order and only on bytes
 * below the same cap; no byte at or past HP_RESP_PARSER_MAX_HEAD is read and
 * no SIMD load reaches past the length the caller gave.
 */
#include "hotpath/http_resp_parser.h"

#include "hotpath/common.h"
#include "parser_int.h"

#include <string.h>

enum {
    S_STATUS = 0, /* in the fixed part "HTTP/1.x NNN" (pos < 12) */
    S_REASON,     /* after the status code, in the reason phrase */
    /* S_LINE, S_NAME and S_VALUE are S_LINE + FL_AT_* (parser_int.h). */
    S_LINE,       /* at the start of a header line */
    S_NAME,       /* r->name is the line start */
    S_VALUE,      /* r->value is the value start (after leading OWS) */
    S_DONE,
};

/* Body framing states (r->bstate). */
enum {
    B_NONE = 0, /* head not complete yet */
    B_LENGTH,   /* Content-Length: r->remaining bytes to go */
    B_CHUNKED,
    B_CLOSE,    /* delimited by the connection close */
    B_DONE,
    B_ERROR,    /* a malformed chunked body was seen: stays an error */
};

/* Private facts from the fields (r->pflags). */
#define PF_TE 0x01         /* a Transfer-Encoding field was seen */
#define PF_TE_CHUNKED 0x02 /* ... with a "chunked" coding */
#define PF_TE_OTHER 0x04   /* ... with some other coding */
#define PF_CLOSE 0x08      /* Connection: close */
#define PF_KEEP_ALIVE 0x10 /* Connection: keep-alive */

/* Length of the fixed part of a status line: "HTTP/1.1 200". */
#define STATUS_FIXED 12u

HP_INLINE size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

HP_INLINE bool is_digit(char c)
{
    return (uint8_t)(c - '0') <= 9;
}

/* Applies the meaning of a framing field; every other field is only
 * validated. Out of line: the caller's length switch already rejects most
 * fields. Returns 0 or -HP_RESP_PARSER_E_FRAMING. */
static int apply_field(hp_resp_parser_t *r, const char *name, size_t nlen, const char *v,
                       size_t vlen)
{
    switch (nlen) {
    case 10:
        if (ieq(name, "connection", 10)) {
            unsigned t = connection_tokens(v, vlen);
            r->pflags |= (t & CONN_TOK_CLOSE ? PF_CLOSE : 0) |
                         (t & CONN_TOK_KEEP_ALIVE ? PF_KEEP_ALIVE : 0);
        }
        break;
    case 14:
        if (ieq(name, "content-length", 14)) {
            if (content_length_field(v, vlen, r->flags & HP_RESP_PARSER_F_CONTENT_LENGTH,
                                     &r->content_length) < 0)
                return -HP_RESP_PARSER_E_FRAMING;
            r->flags |= HP_RESP_PARSER_F_CONTENT_LENGTH;
        }
        break;
    case 17:
        if (ieq(name, "transfer-encoding", 17)) {
            bool chunked = r->pflags & PF_TE_CHUNKED, other = false;
            if (te_codings(v, vlen, &chunked, &other) < 0)
                return -HP_RESP_PARSER_E_FRAMING;
            r->pflags |= PF_TE | (chunked ? PF_TE_CHUNKED : 0) | (other ? PF_TE_OTHER : 0);
        }
        break;
    default:
        break;
    }
    return 0;
}

/* The head is complete: decide the framing (RFC 9112 §6.3) and set up the
 * body state. Returns 0 or -HP_RESP_PARSER_E_FRAMING. */
static int finish_head(hp_resp_parser_t *r)
{
    uint32_t flags = r->flags;
    if (r->pflags & PF_TE) {
        /* A load generator cannot undo other codings, and a 1.0 message
         * with Transfer-Encoding has faulty framing (RFC 9112 §6.1), as has
         * one with both TE and CL: all are reported, never guessed at. */
        if (r->version_minor == 0 || (flags & HP_RESP_PARSER_F_CONTENT_LENGTH) ||
            (r->pflags & (PF_TE_CHUNKED | PF_TE_OTHER)) != PF_TE_CHUNKED)
            return -HP_RESP_PARSER_E_FRAMING;
        flags |= HP_RESP_PARSER_F_CHUNKED;
    }
    if ((r->pflags & PF_CLOSE) || (r->version_minor == 0 && !(r->pflags & PF_KEEP_ALIVE)))
        flags |= HP_RESP_PARSER_F_CLOSE;
    /* RFC 9112 §6.3 rules 1-2: these never have a body, whatever their
     * Content-Length (which describes the GET response) says. */
    if (r->head_request || r->status < 200 || r->status == 204 || r->status == 304) {
        flags |= HP_RESP_PARSER_F_NO_BODY;
        r->bstate = B_DONE;
    } else if (flags & HP_RESP_PARSER_F_CHUNKED) {
        hp_http_chunked_init(&r->chunked, UINT64_MAX);
        r->bstate = B_CHUNKED;
    } else if (flags & HP_RESP_PARSER_F_CONTENT_LENGTH) {
        r->remaining = r->content_length;
        r->bstate = r->remaining ? B_LENGTH : B_DONE;
    } else {
        flags |= HP_RESP_PARSER_F_UNTIL_CLOSE | HP_RESP_PARSER_F_CLOSE;
        r->bstate = B_CLOSE;
    }
    r->flags = flags;
    return 0;
}

/* Whether byte c may sit at offset i (< 12) of "HTTP/1.x NNN". */
HP_INLINE bool status_byte_ok(size_t i, char c)
{
    static const char pat[STATUS_FIXED] = "HTTP/1.# ###";
    return pat[i] == '#' ? is_digit(c) : c == pat[i];
}

/* Checks the fixed part of the status line from `pos` up to cap. Returns
 * the new pos (STATUS_FIXED when all of it is there and good), or -1 when
 * a byte does not fit, so a garbage response is refused at its first byte
 * rather than when (if ever) a line end arrives. */
HP_INLINE long status_fixed(const char *buf, size_t pos, size_t cap)
{
    if (pos == 0 && cap >= STATUS_FIXED) {
        /* The common case, the whole fixed part at once. */
        if (memcmp(buf, "HTTP/1.", 7) || !is_digit(buf[7]) || buf[8] != ' ' || !is_digit(buf[9]) || !is_digit(buf[10]) ||
            !is_digit(buf[11]))
            return -1;
        return STATUS_FIXED;
    }
    size_t end = min_sz(cap, STATUS_FIXED);
    for (; pos < end; pos++)
        if (!status_byte_ok(pos, buf[pos]))
            return -1;
    return (long)pos;
}

/* The parser's main loop: a resumable state machine over the status line
 * and the field lines, one function on purpose (the exception to the
 * ~100-line rule): its states jump into one another with gotos that keep
 * the position and the line being scanned in registers, and it is
 * inlined once per SIMD mode so each copy's scanner is a direct call.
 * Split into functions, the state would round-trip through memory at
 * every field. */
HP_INLINE int parse_impl(hp_resp_parser_t *r, const char *buf, size_t len, int mode)
{
    /* Nothing at or past cap is ever read. */
    const size_t cap = min_sz(len, HP_RESP_PARSER_MAX_HEAD);
    size_t pos = r->pos, i;

    if (HP_UNLIKELY(r->state == S_DONE))
        return (int)r->head_len;
    /* The caller only ever appends; fewer bytes than already accepted
     * would make the scanners' (end - pos) wrap. */
    if (HP_UNLIKELY(pos > cap))
        return -HP_RESP_PARSER_E_HEADER;

    if (r->state == S_STATUS) {
        long p = status_fixed(buf, pos, cap);
        if (p < 0)
            return -HP_RESP_PARSER_E_STATUS;
        pos = (size_t)p;
        if (pos < STATUS_FIXED)
            goto need;
        unsigned st = (unsigned)(buf[9] - '0') * 100 + (unsigned)(buf[10] - '0') * 10 +
                      (unsigned)(buf[11] - '0');
        if (st < 100)
            return -HP_RESP_PARSER_E_STATUS;
        r->status = (uint16_t)st;
        r->version_minor = buf[7] != '0';
        r->state = S_REASON;
    }
    if (r->state == S_REASON) {
        /* The code is followed by SP and a reason phrase, or (leniently,
         * as most clients do) directly by the line end. */
        if (pos == STATUS_FIXED) {
            if (pos >= cap)
                goto need;
            char c = buf[pos];
            if (c == ' ')
                pos++;
            else if (c != '\r' && c != '\n')
                return -HP_RESP_PARSER_E_STATUS;
        }
        i = scan_value(mode, buf, pos, cap);
        if (i == cap || (buf[i] == '\r' && i + 1 >= cap)) {
            pos = i; /* a CR is looked at again when its LF arrives */
            goto need;
        }
        if (buf[i] == '\r') {
            if (buf[i + 1] != '\n')
                return -HP_RESP_PARSER_E_STATUS;
            pos = i + 2;
        } else if (buf[i] == '\n') {
            pos = i + 1;
        } else {
            return -HP_RESP_PARSER_E_STATUS; /* control byte in the reason */
        }
        r->state = S_LINE;
    }

    /* Header section. The loop keeps its state in locals (buf may alias
     * *r, so fields of *r would be reloaded after every store) and writes
     * them back only when it stops. */
    field_line_t fl = {.name = r->name, .nlen = r->name_len, .value = r->value};
    unsigned nf = r->nfields;
    int at = r->state - S_LINE, e;
    for (;;) {
        switch (scan_field_line(mode, buf, &pos, cap, &at, &fl, nf < HP_RESP_PARSER_MAX_FIELDS,
                                true)) {
        case FL_FIELD:
            break;
        case FL_END:
            goto done;
        case FL_NEED:
            goto hneed;
        default:
            return -HP_RESP_PARSER_E_HEADER; /* malformed, or too many fields */
        }
        switch (fl.nlen) {
        case 10: case 14: case 17: {
            size_t ve = fl.eol;
            while (ve > fl.value && is_ows(buf[ve - 1]))
                ve--;
            e = apply_field(r, buf + fl.name, fl.nlen, buf + fl.value, ve - fl.value);
            if (e)
                return e;
            break;
        }
        default:
            break;
        }
        nf++;
    }

done:
    r->nfields = (uint16_t)nf;
    if ((e = finish_head(r)) < 0)
        return e;
    r->head_len = (uint32_t)pos;
    r->pos = (uint32_t)pos;
    r->state = S_DONE;
    return (int)pos;

need:
    r->pos = (uint32_t)pos;
    /* Bytes exist past what the head limit lets us look at. */
    return len > cap ? -HP_RESP_PARSER_E_HEADER : 0;

hneed:
    r->state = (uint8_t)(S_LINE + at);
    r->pos = (uint32_t)pos;
    r->name = fl.name;
    r->value = fl.value;
    r->name_len = (uint16_t)fl.nlen;
    r->nfields = (uint16_t)nf;
    return len > cap ? -HP_RESP_PARSER_E_HEADER : 0;
}

static int parse_scalar(hp_resp_parser_t *r, const char *buf, size_t len)
{
    return parse_impl(r, buf, len, HP_HTTP_SIMD_SCALAR);
}

#if HP_HAVE_SSE42_TARGET
__attribute__((target("sse4.2"))) static int parse_sse42(hp_resp_parser_t *r, const char *buf,
                                                         size_t len)
{
    return parse_impl(r, buf, len, HP_HTTP_SIMD_SSE42);
}
#endif

#if HP_HAVE_AVX2_TARGET
__attribute__((target("avx2"))) static int parse_avx2(hp_resp_parser_t *r, const char *buf,
                                                      size_t len)
{
    return parse_impl(r, buf, len, HP_HTTP_SIMD_AVX2);
}
#endif

int hp_resp_parser_head_mode(struct hp_resp_parser *r, const char *buf, size_t len, int mode)
{
    /* The CPU feature test is a load of a word the runtime filled in at
     * start-up, so picking the flavour per call costs no more than an
     * indirect call and needs no mutable global. */
#if HP_HAVE_AVX2_TARGET
    if (mode >= HP_HTTP_SIMD_AVX2 && __builtin_cpu_supports("avx2"))
        return parse_avx2(r, buf, len);
#endif
#if HP_HAVE_SSE42_TARGET
    if (mode >= HP_HTTP_SIMD_SSE42 && __builtin_cpu_supports("sse4.2"))
        return parse_sse42(r, buf, len);
#endif
    (void)mode;
    return parse_scalar(r, buf, len);
}

int hp_resp_parser_head(hp_resp_parser_t *r, const char *buf, size_t len)
{
    return hp_resp_parser_head_mode(r, buf, len, hp_http_parser_mode());
}

void hp_resp_parser_init(hp_resp_parser_t *r, bool head_request)
{
    /* The chunked state is set up only when a chunked head completes, so
     * the common reset stays a few stores. */
    memset(r, 0, offsetof(hp_resp_parser_t, chunked));
    r->head_request = head_request;
}

int hp_resp_parser_body(hp_resp_parser_t *r, char *buf, size_t len, size_t *consumed)
{
    switch (r->bstate) {
    case B_LENGTH: {
        size_t n = r->remaining < len ? (size_t)r->remaining : len;
        r->remaining -= n;
        *consumed = n;
        if (r->remaining)
            return 0;
        r->bstate = B_DONE;
        return 1;
    }
    case B_CHUNKED: {
        size_t out;
        int rc = hp_http_chunked_decode(&r->chunked, buf, len, consumed, &out);
        if (rc < 0) {
            r->bstate = B_ERROR;
            return -HP_RESP_PARSER_E_FRAMING;
        }
        if (rc == 1)
            r->bstate = B_DONE;
        return rc;
    }
    case B_CLOSE:
        *consumed = len;
        return 0;
    case B_DONE:
        *consumed = 0;
        return 1;
    default: /* head incomplete, or an earlier framing error */
        *consumed = 0;
        return -HP_RESP_PARSER_E_FRAMING;
    }
}

int hp_resp_parser_body_eof(hp_resp_parser_t *r)
{
    if (r->bstate == B_CLOSE)
        r->bstate = B_DONE;
    return r->bstate == B_DONE ? 1 : -HP_RESP_PARSER_E_TRUNCATED;
}

const char *hp_resp_parser_strerror(int err)
{
    switch (err < 0 ? -err : err) {
    case HP_RESP_PARSER_E_STATUS:
        return "status";
    case HP_RESP_PARSER_E_HEADER:
        return "header";
    case HP_RESP_PARSER_E_FRAMING:
        return "framing";
    case HP_RESP_PARSER_E_TRUNCATED:
        return "truncated";
    default:
        return "?";
    }
}
