/*
 * http_resp_parser.h - incremental, zero-copy HTTP/1.1 response parser for the
 * client side (the hpbench load generator); the server writes responses
 * with http_resp_writer.h.
 *
 * It validates a response head (status line, field syntax, field count and
 * size limits) and then frames the body by Content-Length, chunked coding
 * or connection close, so a load generator can check every response at a
 * few nanoseconds each. Like the request parser (http_parser.h) it never
 * allocates, never copies and keeps only offsets relative to the first byte
 * of the response, so the caller may compact its buffer between calls; it
 * resumes where it stopped without rescanning. It reports what it found
 * (status, framing flags, lengths) and nothing else: field values are not
 * returned.
 */
#ifndef HOTPATH_HTTP_RESP_PARSER_H
#define HOTPATH_HTTP_RESP_PARSER_H

#include "hotpath/common.h"
#include "hotpath/http_parser.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Framing facts, valid once the head is complete (hp_resp_parser_t.flags). */
#define HP_RESP_PARSER_F_CONTENT_LENGTH (1u << 0) /* a valid Content-Length was present */
#define HP_RESP_PARSER_F_CHUNKED (1u << 1)        /* Transfer-Encoding: chunked */
/* The connection cannot carry another response: Connection: close, HTTP/1.0
 * without keep-alive, or a body delimited by the close (UNTIL_CLOSE). */
#define HP_RESP_PARSER_F_CLOSE (1u << 2)
#define HP_RESP_PARSER_F_NO_BODY (1u << 3)     /* HEAD request, 1xx, 204, 304: no body follows */
#define HP_RESP_PARSER_F_UNTIL_CLOSE (1u << 4) /* no length: the body ends when the peer closes */

/* Error codes; the functions return their negation. hpbench counts all of
 * them as "malformed response". */
enum {
    HP_RESP_PARSER_E_STATUS = 1, /* status line is not "HTTP/1.x NNN reason", or NNN < 100 */
    HP_RESP_PARSER_E_HEADER,     /* bad field line, bare CR, NUL, obs-fold, too many fields,
                                  head too long */
    HP_RESP_PARSER_E_FRAMING,    /* bad or conflicting Content-Length, Transfer-Encoding other
                                  than chunked, TE with CL or in HTTP/1.0, bad chunked body */
    HP_RESP_PARSER_E_TRUNCATED,  /* the peer closed before the response was complete */
};

/* A head with more fields than this is malformed. */
#define HP_RESP_PARSER_MAX_FIELDS 100u
/* A head (status line + fields + blank line) longer than this is malformed. */
#define HP_RESP_PARSER_MAX_HEAD 65536u

typedef struct hp_resp_parser {
    uint16_t status;        /* 100-999 */
    uint8_t version_minor;  /* 0 or 1 (HTTP/1.2..1.9 count as 1.1) */
    uint32_t flags;         /* HP_RESP_PARSER_F_* */
    uint32_t head_len;      /* status line + header section incl. the blank line */
    uint64_t content_length; /* when HP_RESP_PARSER_F_CONTENT_LENGTH (also for NO_BODY) */
    /* private: head parse state, all offsets from the first byte */
    uint32_t pos;           /* next byte to examine */
    uint32_t name;          /* start of the field line in progress */
    uint32_t value;         /* start of its value (after leading OWS) */
    uint16_t name_len;
    uint16_t nfields;
    uint8_t state;
    uint8_t pflags;         /* facts from the fields (Transfer-Encoding, Connection) */
    uint8_t head_request;
    uint8_t bstate;         /* body framing state */
    /* private: body state */
    uint64_t remaining;     /* Content-Length bytes still to come */
    hp_http_chunked_t chunked;
} hp_resp_parser_t;

/* Resets `r` for the next response; must be called before the first
 * hp_resp_parser_head() of every response, pipelined or not (a 1xx
 * interim response is a response of its own). head_request says the
 * request was HEAD, so no body follows whatever the head says. */
HP_EXPORT void hp_resp_parser_init(hp_resp_parser_t *r, bool head_request);

/* Parses the response head in buf[0..len) (borrowed, read only). buf
 * always starts at the first byte of the response; between calls the
 * caller may move the bytes and append more, as long as the bytes already
 * passed are unchanged. Returns >0: head complete, the value is head_len
 * (calling again returns it again); 0: need more bytes; <0: malformed,
 * -HP_RESP_PARSER_E_STATUS, -HP_RESP_PARSER_E_HEADER or -HP_RESP_PARSER_E_FRAMING
 * (see the enum), after which the connection must be closed. The outcome
 * does not depend on how the bytes were split across calls. No bytes past
 * HP_RESP_PARSER_MAX_HEAD are read. No heap allocation. */
HP_EXPORT int hp_resp_parser_head(hp_resp_parser_t *r, const char *buf, size_t len);

/* Consumes body bytes in buf[0..len) (borrowed), which start right after
 * the head or where the previous call stopped. Sets *consumed (OUT) to the
 * bytes that belong to this body. Returns 1 when the body is complete
 * (buf[*consumed..len) belongs to the next response; responses without a
 * body complete at once with *consumed = 0), 0 when more is needed (all of
 * len was consumed), -HP_RESP_PARSER_E_FRAMING for a malformed chunked body
 * (or a call before the head completed). A body delimited by close
 * consumes everything and returns 0 until hp_resp_parser_body_eof().
 * Chunked bodies are decoded in place, so the consumed bytes of buf are
 * destroyed: the caller discards them. Only the head must be parsed
 * before; any body size up to UINT64_MAX is accepted. */
HP_EXPORT int hp_resp_parser_body(hp_resp_parser_t *r, char *buf, size_t len, size_t *consumed);

/* The peer closed the connection. Returns 1 when the response is complete
 * (a close-delimited body ends here, or the body had already completed),
 * -HP_RESP_PARSER_E_TRUNCATED when the head or the body was cut short. */
HP_EXPORT int hp_resp_parser_body_eof(hp_resp_parser_t *r);

/* Static short name of an error code (positive or negative), e.g. "status";
 * "?" when unknown. */
HP_EXPORT const char *hp_resp_parser_strerror(int err);

#endif
