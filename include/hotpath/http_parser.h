/*
 * http_parser.h - incremental, zero-copy HTTP/1.1 request head parser and
 * in-place chunked body decoder (RFC 9110/9112).
 *
 * The parser never allocates and never stores pointers: every result is an
 * offset/length span relative to the first byte of the request, so the
 * caller may compact or move its read buffer between calls. It resumes where
 * it stopped and does not rescan bytes it has already accepted. Malformed or
 * over-limit input is answered with the exact status the server must send.
 */
#ifndef HOTPATH_HTTP_PARSER_H
#define HOTPATH_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"
#include "hotpath/http_method.h"


/* A slice of the request: offset from buf[0] and length. */
typedef struct hp_http_span {
    uint16_t off, len;
} hp_http_span_t;

/* One header field; value has leading and trailing OWS trimmed. */
typedef struct hp_http_field {
    hp_http_span_t name, value;
} hp_http_field_t;

#define HP_HTTP_F_CONTENT_LENGTH (1u << 0)  /* a valid Content-Length was present */
#define HP_HTTP_F_CHUNKED (1u << 1)         /* Transfer-Encoding: chunked (final and only coding) */
#define HP_HTTP_F_CONN_CLOSE (1u << 2)      /* Connection: close token */
#define HP_HTTP_F_CONN_KEEP_ALIVE (1u << 3) /* Connection: keep-alive token */
#define HP_HTTP_F_EXPECT_CONTINUE (1u << 4) /* Expect: 100-continue */

typedef struct hp_http_limits {
    uint32_t max_request_line; /* default 8192: longer request line -> 414 */
    uint32_t max_header_bytes; /* default 16384: header section (after the request line) longer -> 431 */
    uint32_t max_fields;       /* default 100: more header fields -> 431 */
    uint64_t max_body;         /* default 1 MiB: Content-Length above -> 413 (decided from headers) */
} hp_http_limits_t;
#define HP_HTTP_LIMITS_DEFAULT ((hp_http_limits_t){8192, 16384, 100, 1048576})

/* Spans are 16-bit, so no head may reach past this many bytes: a head that
 * would is answered with 431 whatever the limits say. */
#define HP_HTTP_MAX_HEAD 65535u

/* At most this many empty lines before the request line are skipped
 * (RFC 9112 §2.2 robustness); more is a 400. */
#define HP_HTTP_MAX_LEADING_EMPTY 8

typedef struct hp_http_req {
    hp_http_span_t method, target;
    uint8_t method_id;     /* HP_METHOD_* (http_method.h) */
    uint8_t version_minor; /* 0 or 1 (HTTP/1.2..1.9 are treated as 1.1) */
    uint16_t nfields;
    uint32_t flags;        /* HP_HTTP_F_* */
    uint32_t head_len;     /* request line + header section incl. the blank line
                              (and any leading empty lines skipped) */
    uint32_t hdr_start;    /* private: offset of the first header line */
    uint64_t content_length;
    /* private resumption state */
    uint32_t pos;          /* next byte to examine */
    uint32_t mark;         /* start of the token being scanned */
    uint8_t state;         /* where to resume */
    uint8_t pflags;        /* private framing facts (Host seen, TE codings...) */
    uint8_t empties;       /* leading empty lines skipped so far */
} hp_http_req_t;

/* Resets `req` for a new request. Must be called before the first
 * hp_http_parse() of every request (including each pipelined one). */
HP_EXPORT void hp_http_req_init(hp_http_req_t *req);

/* Parses the request head in buf[0..len). buf always starts at the first
 * byte of the request; between calls the caller may move the bytes
 * (compaction) and append more, as long as the bytes already passed are
 * unchanged. fields (borrowed, OUT) has room for lim->max_fields entries and
 * must be the same array on every call for this request; fields[0..nfields)
 * are valid once the head is complete.
 * Returns >0: complete, the value is head_len; 0: need more bytes;
 * <0: -status to answer (-400, -413, -414, -417, -431, -501, -505), after
 * which the connection must be closed. No heap allocation. */
HP_EXPORT int hp_http_parse(hp_http_req_t *req, hp_http_field_t *fields, const char *buf,
                            size_t len, const hp_http_limits_t *lim);

/* True when the connection may stay open after this request: HTTP/1.1
 * unless Connection: close; HTTP/1.0 only with Connection: keep-alive
 * (and no close). Only meaningful after a complete parse. */
HP_EXPORT bool hp_http_req_keep_alive(const hp_http_req_t *req);

/* Case-insensitive lookup of the first field named name[0..name_len)
 * among fields[0..req->nfields) of the request in buf. Returns its index,
 * or -1 when absent. */
HP_EXPORT int hp_http_find_field(const hp_http_req_t *req, const hp_http_field_t *fields,
                                 const char *buf, const char *name, size_t name_len);

/* SIMD scanner implementations. */
enum { HP_HTTP_SIMD_SCALAR = 0, HP_HTTP_SIMD_SSE42, HP_HTTP_SIMD_AVX2 };

/* Picks the scanner once at start-up, before any thread parses: AVX2, else
 * SSE4.2, else scalar, from what the CPU supports, unless the environment
 * variable HOTPATH_SIMD is "scalar", "sse42" or "avx2" (a forced mode the
 * CPU lacks falls back to the best available). Returns the mode chosen. */
HP_EXPORT int hp_http_parser_init(void);

/* Forces a mode (tests, benchmarks); a mode the CPU or the build lacks
 * falls back to the best one available below it. Not thread-safe against
 * concurrent parsing. Returns the mode actually in force. */
HP_EXPORT int hp_http_parser_set_simd(int mode);

/* Static name of a mode: "scalar", "sse42", "avx2" (or "?"). */
HP_EXPORT const char *hp_http_simd_name(int mode);

/* Resumable state of the chunked body decoder. All fields are private. */
typedef struct hp_http_chunked {
    uint64_t size;     /* chunk size being read, then data bytes left in it */
    uint64_t total;    /* decoded bytes so far */
    uint64_t max_body; /* decoded total may not exceed this */
    uint32_t count;    /* bytes of the current size line, or of the trailers */
    uint8_t state;
} hp_http_chunked_t;

/* Chunk size/extension lines longer than this are a 400. */
#define HP_HTTP_CHUNK_LINE_MAX 4096u
/* A trailer section longer than this is a 431. */
#define HP_HTTP_TRAILER_MAX 16384u

/* Starts decoding a new chunked body whose decoded size may not exceed
 * max_body bytes. */
HP_EXPORT void hp_http_chunked_init(hp_http_chunked_t *c, uint64_t max_body);

/* Decodes buf[0..len) in place: data bytes are moved to the front,
 * buf[0..*out_len), and *consumed is the number of raw bytes used. Partial
 * size lines are kept in *c, not in the buffer, so a return of 0 always
 * consumed all of len. Returns 1 when the last chunk and the trailer
 * section were consumed (bytes after *consumed belong to the next request),
 * 0 when more input is needed, -400 for a malformed chunk size or line
 * (including a missing CRLF after data, overflow, a size line over
 * HP_HTTP_CHUNK_LINE_MAX bytes), -413 when the decoded total would exceed
 * max_body, -431 when trailers exceed HP_HTTP_TRAILER_MAX. Trailers and
 * chunk extensions are validated loosely and discarded. After an error
 * *consumed and *out_len only say where decoding stopped (a bad size-line
 * byte is not counted, a bad trailer byte is): the caller answers the
 * status and closes, and must not decode on. */
HP_EXPORT int hp_http_chunked_decode(hp_http_chunked_t *c, char *buf, size_t len, size_t *consumed,
                                     size_t *out_len);

#endif
