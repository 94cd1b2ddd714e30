/*
 * http_response.h - writing HTTP/1.1 responses into a connection's queue.
 *
 * A response head is assembled from pre-built fragments (status line,
 * "Server", the worker's cached Date) straight into the output chunk;
 * small bodies are copied behind it so pipelined responses coalesce into
 * one contiguous iovec, large ones are queued by reference or as a file.
 */
#ifndef HOTPATH_HTTP_RESPONSE_H
#define HOTPATH_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stdint.h>

#include "hotpath/clock.h"
#include "hotpath/common.h"
#include "hotpath/conn.h"

/* Response flags. */
enum {
    HP_HTTP_R_CLOSE = 1u << 0,      /* "Connection: close" and close after sending */
    HP_HTTP_R_KEEP_ALIVE = 1u << 1, /* "Connection: keep-alive" (HTTP/1.0 clients) */
    HP_HTTP_R_NO_BODY = 1u << 2,    /* HEAD: headers as for GET, no body bytes */
};

/* Bodies up to this size are copied behind the head; larger ones are
 * queued by reference. */
#define HP_HTTP_INLINE_BODY 4096

/* Upper bound of a head written by hp_http_write_head, extra headers
 * excluded; the protocol checks this much room before dispatching. */
#define HP_HTTP_HEAD_MAX 256

/* The reason phrase for a status code ("Not Found"), "" when unknown. */
HP_EXPORT const char *hp_http_reason(int status);

/* Writes a status line and the standard headers (Server, Date,
 * Content-Type when ctype is not NULL, Content-Length, Connection per
 * flags), then `extra` (preformatted "Name: value\r\n" lines, may be NULL)
 * and the blank line. Returns 0 or -ENOBUFS when the queue is full. */
HP_EXPORT int hp_http_write_head(hp_conn_t *c, const hp_clock_date_t *date, int status, const char *ctype,
                       uint64_t content_length, const char *extra, uint32_t flags);

/* A whole response with an in-memory body, copied when small. Returns 0 or
 * -ENOBUFS. */
HP_EXPORT int hp_http_respond(hp_conn_t *c, const hp_clock_date_t *date, int status, const char *ctype,
                    const void *body, uint32_t len, const char *extra, uint32_t flags);

/* Writes `v` in decimal to `out` (room for 20 digits); returns the length. */
HP_EXPORT uint32_t hp_http_u64(char *out, uint64_t v);

#endif
