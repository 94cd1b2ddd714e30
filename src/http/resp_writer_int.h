/*
 * resp_writer_int.h - the server side: writing HTTP/1.1 responses into a
 * connection's queue (the client side reads them with http_resp_parser.h).
 *
 * A response head is assembled from pre-built fragments (status line,
 * "Server", the worker's cached Date) straight into the output chunk;
 * small bodies are copied behind it so pipelined responses coalesce into
 * one contiguous iovec, large ones are queued by reference or as a file.
 */
#ifndef HOTPATH_RESP_WRITER_INT_H
#define HOTPATH_RESP_WRITER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "hotpath/clock.h"
#include "hotpath/common.h"
#include "net/conn_int.h"

/* Response flags. */
enum {
    HP_RESP_WRITER_F_CLOSE = 1u << 0,      /* "Connection: close" and close after sending */
    HP_RESP_WRITER_F_KEEP_ALIVE = 1u << 1, /* "Connection: keep-alive" (HTTP/1.0 clients) */
    HP_RESP_WRITER_F_NO_BODY = 1u << 2,    /* HEAD: headers as for GET, no body bytes */
};

/* Bodies up to this size are copied behind the head; larger ones are
 * queued by reference. */
#define HP_RESP_WRITER_INLINE_BODY 4096

/* Upper bound of a head written by hp_resp_writer_head, extra headers
 * excluded; the protocol checks this much room before dispatching. */
#define HP_RESP_WRITER_HEAD_MAX 256

/* The reason phrase for a status code ("Not Found"), "" when unknown. */
const char *hp_resp_writer_reason(int status);

/* Writes a status line and the standard headers (Server, Date,
 * Content-Type when ctype is not NULL, Content-Length, Connection per
 * flags), then `extra` (preformatted "Name: value\r\n" lines, may be NULL)
 * and the blank line. Returns 0 or -ENOBUFS when the queue is full. */
int hp_resp_writer_head(hp_conn_t *c, const hp_clock_date_t *date, int status,
                        const char *ctype, uint64_t content_length, const char *extra,
                        uint32_t flags);

/* A whole response with an in-memory body, copied when small. Returns 0 or
 * -ENOBUFS. */
int hp_resp_writer_respond(hp_conn_t *c, const hp_clock_date_t *date, int status,
                           const char *ctype, const void *body, uint32_t len,
                           const char *extra, uint32_t flags);

/* Writes `v` in decimal to `out` (room for 20 digits); returns the length. */
uint32_t hp_resp_writer_u64(char *out, uint64_t v);

#endif
