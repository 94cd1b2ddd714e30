/*
 * middleware.h - ready-made middleware for hp_app_use (app.h): request IDs
 * and CORS, plus an OPTIONS handler that answers with the route's methods.
 *
 *     static const char *const origins[] = {"https://example.com", NULL};
 *     static const hp_cors_config_t cors = {.origins = origins, .max_age = 600};
 *
 *     hp_app_use(app, hp_middleware_request_id, NULL, NULL);
 *     hp_app_use(app, hp_middleware_cors_before, hp_middleware_cors_after, (void *)&cors);
 *     hp_app_route(app, HP_ROUTER_GET, "/api", api, NULL, err, sizeof err);
 *     hp_app_route(app, HP_ROUTER_OPTIONS, "/api", hp_middleware_options_handler, NULL,
 *                  err, sizeof err);
 *
 * Middleware only runs for requests a route matched. An OPTIONS request to
 * a route that has no OPTIONS handler is answered 405 by the router before
 * any middleware runs, so a CORS preflight would never reach
 * hp_middleware_cors_before: every route a browser may call cross-origin with a
 * non-simple request must also be registered for HP_ROUTER_OPTIONS, either
 * with hp_middleware_options_handler (as above) or as part of its own method mask
 * (HP_ROUTER_GET | HP_ROUTER_OPTIONS) with a handler that passes OPTIONS on
 * to hp_middleware_options_handler. Preflights are then answered by the CORS
 * middleware and plain OPTIONS requests by the handler.
 *
 * Order matters as for any middleware: `before` functions run in the order
 * added and an early answer (a preflight) skips the later ones, while every
 * `after` runs. Add hp_middleware_request_id first so that preflights carry an ID.
 *
 * Everything here is per request and allocation-free; the configurations
 * are borrowed and must stay valid and unchanged while the app runs.
 */
#ifndef HOTPATH_MIDDLEWARE_H
#define HOTPATH_MIDDLEWARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"
#include "hotpath/ctx.h"

/* ---- request ID ---- */

/* Longest request ID taken from a client; longer ones are replaced. */
#define HP_MIDDLEWARE_REQUEST_ID_MAX 64

/* A `before` middleware (udata unused, pass NULL). When the request carries
 * an X-Request-Id of 1..HP_MIDDLEWARE_REQUEST_ID_MAX bytes of [A-Za-z0-9._-] it is
 * kept; otherwise (absent, empty, too long, other bytes) a new one is made:
 * "<8 hex: per-process random>-w<worker id>-<12+ hex: per-thread counter>",
 * e.g. "3f9a1c2e-w0-000000001a2b" (the counter's bits above 40 hold the
 * generating thread's sequence number: "w1-010000000001"), unique within
 * the process (also across apps run one after another) and cheap: no
 * lock, no allocation, no system call after the first one in the process.
 * The ID is added to the response as X-Request-Id. Returns HP_NEXT. */
HP_EXPORT int hp_middleware_request_id(hp_ctx_t *ctx, void *udata);

/* The request's ID as hp_middleware_request_id set it (read back from the response
 * headers), with its length in *len; NULL when it did not run for this
 * request (not installed, or an earlier middleware answered first). The
 * string is not NUL-terminated and lives as long as the context. */
HP_EXPORT const char *hp_middleware_request_id_of(const hp_ctx_t *ctx, size_t *len);

/* ---- CORS ---- */

/* What cross-origin requests are allowed. All strings are borrowed. */
typedef struct hp_cors_config {
    /* Allowed origins, NULL-terminated, compared case-insensitively with
     * the request's Origin ("https://example.com", scheme and port as the
     * browser sends them). An entry "*" allows every origin. */
    const char *const *origins;
    /* Access-Control-Allow-Methods for preflights; NULL: the methods of
     * the route the preflight matched ("GET, HEAD, OPTIONS"). */
    const char *methods;
    /* Access-Control-Allow-Headers for preflights ("Content-Type,
     * Authorization"); NULL: none beyond the CORS-safelisted ones. */
    const char *headers;
    /* Access-Control-Expose-Headers on normal responses ("X-Request-Id");
     * NULL: none. */
    const char *expose;
    /* Access-Control-Max-Age for preflights, in seconds; 0: not sent. */
    uint32_t max_age;
    /* Send Access-Control-Allow-Credentials: true. With "*" the request's
     * origin is then echoed instead of "*", which browsers refuse with
     * credentials. */
    bool allow_credentials;
} hp_cors_config_t;

/* Checks a configuration before it is used (optional; the middleware
 * trusts its configuration): origins present and no string holding CR or
 * LF, which would end up in response headers. Returns 0 or -EINVAL. */
HP_EXPORT int hp_middleware_cors_check(const hp_cors_config_t *cfg);

/* The `before` half (udata: a const hp_cors_config_t *). A preflight
 * (OPTIONS with Origin and Access-Control-Request-Method) from an allowed
 * origin is answered 204 with Access-Control-Allow-Origin (the origin, or
 * "*" when "*" is configured without credentials), -Allow-Methods,
 * -Allow-Headers, -Max-Age and -Allow-Credentials as configured and
 * Vary: Origin; from any other origin 403. Both return HP_DONE; anything
 * else returns HP_NEXT untouched. */
HP_EXPORT int hp_middleware_cors_before(hp_ctx_t *ctx, void *udata);

/* The `after` half (same udata). For a request that is not a preflight
 * and whose Origin is allowed, adds Access-Control-Allow-Origin,
 * Access-Control-Allow-Credentials and Access-Control-Expose-Headers as
 * configured. Adds Vary: Origin to every such response whenever the answer
 * depends on the origin (a list of origins, or credentials), so that caches
 * do not hand one origin's answer to another. Returns HP_NEXT. */
HP_EXPORT int hp_middleware_cors_after(hp_ctx_t *ctx, void *udata);

/* A handler for HP_ROUTER_OPTIONS (udata unused): 204 with an Allow header
 * listing the methods registered on the matched route (HEAD included with
 * GET). Returns HP_DONE. */
HP_EXPORT int hp_middleware_options_handler(hp_ctx_t *ctx, void *udata);

#endif
