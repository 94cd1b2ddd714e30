/*
 * ctx.h - what a handler sees: the request, and the response it builds.
 *
 * An hp_ctx_t lives in the connection's request state and is valid while
 * the handler runs and, when the handler returned HP_PENDING, until it
 * calls hp_ctx_finish or until the on-abort callback reports that the
 * client went away. Strings it hands out point into the request buffer and
 * share that lifetime; none is NUL-terminated.
 *
 * The response is assembled in the context (status, headers, body) and
 * written when the handler is done, after the `after` middleware ran.
 */
#ifndef HOTPATH_CTX_H
#define HOTPATH_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

typedef struct hp_ctx hp_ctx_t;
struct hp_proto;

/* What handlers and middleware return. */
enum {
    HP_NEXT = 0,    /* middleware: go on to the next one, then the handler */
    HP_DONE = 1,    /* the response is set: write it */
    HP_PENDING = 2, /* handler: the response comes later (hp_ctx_finish) */
};

typedef int (*hp_handler_fn)(hp_ctx_t *ctx, void *udata);
typedef int (*hp_middleware_fn)(hp_ctx_t *ctx, void *udata);

/* ---- the request ---- */

/* The method token ("GET") and its HP_ROUTER_* bit. */
HP_EXPORT const char *hp_ctx_method(const hp_ctx_t *ctx, size_t *len);
HP_EXPORT uint32_t hp_ctx_method_bit(const hp_ctx_t *ctx);

/* The path, without the query string, as received (not decoded). */
HP_EXPORT const char *hp_ctx_path(const hp_ctx_t *ctx, size_t *len);

/* The raw query string after '?' (len 0 when none). */
HP_EXPORT const char *hp_ctx_query_string(const hp_ctx_t *ctx, size_t *len);

/* The value of query parameter `name`, percent- and '+'-decoded into
 * out[0..cap). Returns its length, -1 when absent, -ENOSPC when it does not
 * fit, -EINVAL for a bad escape. The first occurrence wins. */
HP_EXPORT int hp_ctx_query(const hp_ctx_t *ctx, const char *name, char *out, size_t cap);

/* A request header by name, case-insensitively; NULL when absent. */
HP_EXPORT const char *hp_ctx_header(const hp_ctx_t *ctx, const char *name, size_t *len);

/* A route parameter by name ({id:int} ...): its text, NULL when the route
 * has no such parameter. */
HP_EXPORT const char *hp_ctx_param(const hp_ctx_t *ctx, const char *name, size_t *len);

/* An {x:int} parameter's value; `fallback` when absent or not an int. */
HP_EXPORT int64_t hp_ctx_param_int(const hp_ctx_t *ctx, const char *name, int64_t fallback);

/* The request body (complete before the handler runs); len 0 when none. */
HP_EXPORT const char *hp_ctx_body(const hp_ctx_t *ctx, size_t *len);

/* The route pattern that matched ("/users/{id:int}"), or NULL. */
HP_EXPORT const char *hp_ctx_route(const hp_ctx_t *ctx);

/* ---- the response ---- */

/* Sets the status (default 200). */
HP_EXPORT void hp_ctx_status(hp_ctx_t *ctx, int status);

/* Adds a response header. Server, Date, Content-Length, Transfer-Encoding
 * and Connection are the server's. Returns 0, -EINVAL for a name that is
 * not a token or is one of the server's framing fields, or a value with CR
 * or LF, -ENOSPC when the headers exceed HP_CTX_HEADER_BYTES. */
#define HP_CTX_HEADER_BYTES 1024
HP_EXPORT int hp_ctx_set_header(hp_ctx_t *ctx, const char *name, const char *value);

/* Sets the body to a copy of data[0..len) with Content-Type `ctype`
 * (borrowed; a string constant, or NULL for none). Returns 0 or -ENOMEM. */
HP_EXPORT int hp_ctx_send(hp_ctx_t *ctx, const char *ctype, const void *data, size_t len);

/* Sets the body to data[0..len) without copying: `data` must stay valid
 * until `done(arg)` is called, once it has been sent or dropped (done may
 * be NULL for static data). Returns 0. */
HP_EXPORT int hp_ctx_send_ref(hp_ctx_t *ctx, const char *ctype, const void *data, size_t len,
                              void (*done)(void *arg), void *arg);

/* Sets the body to `len` bytes of file `fd` from `offset`, sent with
 * sendfile. Takes ownership of fd on every path. Returns 0. */
HP_EXPORT int hp_ctx_send_file(hp_ctx_t *ctx, const char *ctype, int fd, uint64_t offset,
                               uint64_t len);

/* A complete short response: status, text/plain body "NNN Reason\n". */
HP_EXPORT void hp_ctx_send_status(hp_ctx_t *ctx, int status);

/* Answers "101 Switching Protocols" and, once it is queued, hands the
 * connection to `proto` (with `udata` as its hp_conn_udata): the bytes the client
 * sent behind this request are the new protocol's first input. The request
 * must be HTTP/1.1, not HEAD, on a connection that stays open, with
 * "Connection: upgrade" and an Upgrade field listing `token` (or
 * "token/version"); "Connection: upgrade" and "Upgrade: token" are added to
 * the response, and the handler may add more (hp_ctx_set_header). Returns
 * 0, -EPERM when the request cannot be upgraded (the handler then answers
 * an error, e.g. 400 or 426), -EINVAL for a bad token or protocol, or
 * -ENOSPC. `proto` and `udata` are borrowed and must outlive the
 * connection. */
HP_EXPORT int hp_ctx_upgrade(hp_ctx_t *ctx, const char *token, const struct hp_proto *proto,
                             void *udata);

/* ---- asynchronous handlers ---- */

/* Ends a response whose handler returned HP_PENDING: runs the `after`
 * middleware and writes it. Call on the connection's worker thread. */
HP_EXPORT void hp_ctx_finish(hp_ctx_t *ctx);

/* Called (on the worker) if the connection closes while the handler is
 * pending; the context is invalid once it returns. */
HP_EXPORT void hp_ctx_on_abort(hp_ctx_t *ctx, void (*fn)(hp_ctx_t *ctx, void *arg), void *arg);

/* The worker that runs this request, for timers and loop access. */
HP_EXPORT struct hp_worker *hp_ctx_worker(const hp_ctx_t *ctx);

#endif
