/*
 * resp_writer.c - response heads from pre-built fragments.
 *
 * The head is written in place into the output chunk with memcpy of
 * constant fragments; the only per-response formatting is Content-Length.
 * Invariant: a head never exceeds HP_RESP_WRITER_HEAD_MAX + strlen(extra) bytes.
 */
#include "resp_writer_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct status_line {
    uint16_t code;
    uint8_t len;
    const char *text;   /* the whole status line, CRLF included */
    const char *reason;
} status_line_t;

#define S(code, text)                                                          \
    {code, sizeof("HTTP/1.1 " #code " " text "\r\n") - 1,                      \
     "HTTP/1.1 " #code " " text "\r\n", text}
static const status_line_t status_lines[] = {
    S(100, "Continue"),
    S(200, "OK"),
    S(101, "Switching Protocols"),
    S(201, "Created"),
    S(202, "Accepted"),
    S(204, "No Content"),
    S(206, "Partial Content"),
    S(301, "Moved Permanently"),
    S(302, "Found"),
    S(303, "See Other"),
    S(304, "Not Modified"),
    S(307, "Temporary Redirect"),
    S(308, "Permanent Redirect"),
    S(400, "Bad Request"),
    S(401, "Unauthorized"),
    S(403, "Forbidden"),
    S(404, "Not Found"),
    S(405, "Method Not Allowed"),
    S(406, "Not Acceptable"),
    S(408, "Request Timeout"),
    S(409, "Conflict"),
    S(410, "Gone"),
    S(411, "Length Required"),
    S(412, "Precondition Failed"),
    S(413, "Content Too Large"),
    S(414, "URI Too Long"),
    S(415, "Unsupported Media Type"),
    S(416, "Range Not Satisfiable"),
    S(417, "Expectation Failed"),
    S(422, "Unprocessable Content"),
    S(426, "Upgrade Required"),
    S(429, "Too Many Requests"),
    S(431, "Request Header Fields Too Large"),
    S(500, "Internal Server Error"),
    S(501, "Not Implemented"),
    S(502, "Bad Gateway"),
    S(503, "Service Unavailable"),
    S(504, "Gateway Timeout"),
    S(505, "HTTP Version Not Supported"),
    S(507, "Insufficient Storage"),
};
#undef S

static const status_line_t *lookup(int status)
{
    for (size_t i = 0; i < HP_ARRAY_LEN(status_lines); i++)
        if (status_lines[i].code == status)
            return &status_lines[i];
    return NULL;
}

/* The status line for a code; one the table lacks gets "NNN " with no
 * reason phrase (allowed: the reason is optional), written into `tmp`. */
static const status_line_t *find_status(int status, status_line_t *tmp, char *buf)
{
    /* 200 first: it is nearly every response. */
    if (HP_LIKELY(status == 200))
        return &status_lines[1];
    const status_line_t *sl = lookup(status);
    if (sl)
        return sl;
    if (status < 100 || status > 999)
        return lookup(500);
    int n = snprintf(buf, 16, "HTTP/1.1 %03d \r\n", status);
    *tmp = (status_line_t){(uint16_t)status, (uint8_t)n, buf, ""};
    return tmp;
}

const char *hp_resp_writer_reason(int status)
{
    const status_line_t *sl = lookup(status);
    return sl ? sl->reason : "";
}

uint32_t hp_resp_writer_u64(char *out, uint64_t v)
{
    /* Two digits per division: most lengths have two to five digits. */
    static const char pairs[201] = "00010203040506070809101112131415161718192021222324"
                                   "25262728293031323334353637383940414243444546474849"
                                   "50515253545556575859606162636465666768697071727374"
                                   "75767778798081828384858687888990919293949596979899";
    char tmp[20];
    uint32_t n = 20;
    while (v >= 100) {
        uint64_t q = v / 100;
        memcpy(tmp + (n -= 2), pairs + 2 * (v - q * 100), 2);
        v = q;
    }
    if (v >= 10)
        memcpy(tmp + (n -= 2), pairs + 2 * v, 2);
    else
        tmp[--n] = (char)('0' + v);
    memcpy(out, tmp + n, 20 - n);
    return 20 - n;
}

#define PUT(p, lit)                                                            \
    do {                                                                       \
        memcpy(p, lit, sizeof(lit) - 1);                                       \
        p += sizeof(lit) - 1;                                                  \
    } while (0)

int hp_resp_writer_head(hp_conn_t *c, const hp_clock_date_t *date, int status, const char *ctype,
                       uint64_t content_length, const char *extra, uint32_t flags)
{
    size_t ctype_len = ctype ? strlen(ctype) : 0;
    size_t extra_len = extra ? strlen(extra) : 0;
    uint32_t max = HP_RESP_WRITER_HEAD_MAX + (uint32_t)(ctype_len + extra_len);
    char *start = hp_conn_reserve(c, max);
    if (!start)
        return -ENOBUFS;
    char *p = start;
    status_line_t tmp;
    char tmp_text[16];
    const status_line_t *sl = find_status(status, &tmp, tmp_text);
    memcpy(p, sl->text, sl->len);
    p += sl->len;
    PUT(p, "Server: hotpath\r\nDate: ");
    memcpy(p, date->text, 29);
    p += 29;
    if (ctype) {
        PUT(p, "\r\nContent-Type: ");
        memcpy(p, ctype, ctype_len);
        p += ctype_len;
    }
    /* RFC 9110 §8.6: no Content-Length on 1xx and 204; a 304's would
     * describe the representation, which we leave out as nginx does. */
    if (HP_LIKELY(status >= 200 && status != 204 && status != 304)) {
        PUT(p, "\r\nContent-Length: ");
        p += hp_resp_writer_u64(p, content_length);
    }
    if (flags & HP_RESP_WRITER_F_CLOSE)
        PUT(p, "\r\nConnection: close");
    else if (flags & HP_RESP_WRITER_F_KEEP_ALIVE)
        PUT(p, "\r\nConnection: keep-alive");
    PUT(p, "\r\n");
    if (extra_len) {
        memcpy(p, extra, extra_len);
        p += extra_len;
    }
    PUT(p, "\r\n");
    hp_conn_commit(c, (uint32_t)(p - start));
    return 0;
}

int hp_resp_writer_respond(hp_conn_t *c, const hp_clock_date_t *date, int status, const char *ctype,
                    const void *body, uint32_t len, const char *extra, uint32_t flags)
{
    int r = hp_resp_writer_head(c, date, status, ctype, len, extra, flags);
    if (r < 0 || (flags & HP_RESP_WRITER_F_NO_BODY) || len == 0)
        return r;
    if (len <= HP_RESP_WRITER_INLINE_BODY)
        return hp_conn_write(c, body, len);
    return hp_conn_write_ref(c, body, len, false);
}
