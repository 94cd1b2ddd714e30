/*
 * router.h - HTTP request router: a radix tree over paths with typed
 * parameters, per-method handlers, 404 and 405 with Allow.
 *
 * A router is built once, before the server starts, with hp_router_add(),
 * and is then read-only: hp_router_match() takes a const pointer, allocates
 * nothing and writes only into the caller's match struct, so every worker
 * shares one router without locks.
 *
 * Patterns start with '/'. Static text matches itself byte for byte. A
 * parameter fills a whole path segment (it follows a '/' and is followed by
 * '/' or the end of the pattern):
 *   {name}       any non-empty segment (no '/')
 *   {name:int}   signed 64-bit decimal: optional '-', 1 to 19 digits, in
 *                range; no '+', no leading zero ("0" yes, "01" and "-0" no,
 *                so every value has exactly one spelling)
 *   {name:uuid}  8-4-4-4-12 hex digits with '-' between groups, either case
 *   {name:slug}  [a-z0-9-]+ (uppercase is rejected)
 *   {name:*}     the rest of the path, slashes included, possibly empty; only
 *                as the last element ("/static/{p:*}" matches "/static/" and
 *                "/static/a/b", not "/static")
 * Names are [A-Za-z0-9_]{1,255}, unique within a pattern; at most
 * HP_ROUTER_MAX_PARAMS parameters per pattern. Paths are compared exactly:
 * "/a" and "/a/" are different paths, "//" is not collapsed and nothing is
 * percent-decoded (the caller normalises first if it wants to).
 *
 * Precedence, decided at each segment: static text > int > uuid > slug >
 * untyped segment > catch-all. The walk backtracks: when a static branch
 * fails deeper down, the parameter branches at the same segment are tried
 * next. The route found is the one whose sequence of per-segment choices is
 * the smallest under that order; the method is checked only afterwards (a
 * path whose best route lacks the method is a 405, even if a weaker route
 * has the method).
 */
#ifndef HOTPATH_ROUTER_H
#define HOTPATH_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

#define HP_ROUTER_MAX_PARAMS 8

typedef struct hp_router hp_router_t; /* opaque */

/* Method bits: a route holds a mask of them, a match asks for one. */
enum {
    HP_ROUTER_GET = 1u << 0,
    HP_ROUTER_HEAD = 1u << 1,
    HP_ROUTER_POST = 1u << 2,
    HP_ROUTER_PUT = 1u << 3,
    HP_ROUTER_DELETE = 1u << 4,
    HP_ROUTER_PATCH = 1u << 5,
    HP_ROUTER_OPTIONS = 1u << 6,
};
#define HP_ROUTER_ALL_METHODS 0x7fu

/* Parameter types, in hp_route_param_t.type. */
enum {
    HP_ROUTE_PARAM_SEGMENT,
    HP_ROUTE_PARAM_INT,
    HP_ROUTE_PARAM_UUID,
    HP_ROUTE_PARAM_SLUG,
    HP_ROUTE_PARAM_REST,
};

/* One matched parameter. name points into the router (valid until
 * hp_router_free), value into the matched path (valid as long as the path). */
typedef struct hp_route_param {
    const char *name;
    uint8_t name_len, type;
    const char *value;
    uint32_t len;
    int64_t i; /* the parsed value for HP_ROUTE_PARAM_INT, else 0 */
} hp_route_param_t;

typedef struct hp_route_match {
    void *handler;         /* what was registered for the method; NULL unless 200 */
    void *udata;
    uint32_t allow;        /* methods of the matched route, HEAD included when GET is */
    const char *pattern;   /* the route's pattern (NUL-terminated, owned by the router) */
    uint32_t nparams;
    hp_route_param_t params[HP_ROUTER_MAX_PARAMS];
} hp_route_match_t;

/* Creates an empty router. Returns NULL when out of memory. */
HP_EXPORT hp_router_t *hp_router_new(void);

/* Frees the router, its routes and the copies of their patterns. Names and
 * patterns handed out by earlier matches die with it. NULL does nothing. */
HP_EXPORT void hp_router_free(hp_router_t *r);

/* Registers handler/udata (opaque to the router, borrowed) for every method
 * in `methods` on `pattern` (copied). Registering more methods on an
 * existing pattern later is allowed. All or nothing: on any error the
 * router is exactly as before.
 * Returns 0; -EINVAL for a malformed pattern or a bad method mask; -EEXIST
 * for a method already registered on the pattern, or a parameter of the
 * same type but another name at the same position as an existing route's;
 * -ENOMEM. On error a one-line message is written into err (errlen bytes,
 * NUL-terminated, may be NULL/0); on success err is set to "". */
HP_EXPORT int hp_router_add(hp_router_t *r, uint32_t methods, const char *pattern, void *handler,
                            void *udata, char *err, size_t errlen);

/* Finds the route for method (one HP_ROUTER_* bit; any other value, such as
 * 0 for a method the router does not know, never matches a handler) and
 * path (len bytes, not NUL-terminated, no query string). Fully static routes
 * are found with one hash lookup; others by the tree walk.
 * Returns 200 (m->handler/udata set; HEAD falls back to the GET handler),
 * 405 (the path matches a route without that method) or 404. m->allow,
 * m->pattern and m->params are set for 200 and 405; for 404 allow is 0,
 * pattern NULL and nparams 0. Allocates nothing and never copies the path:
 * parameter values point into it. Safe to call from many threads at once. */
HP_EXPORT int hp_router_match(const hp_router_t *r, uint32_t method, const char *path, size_t len,
                              hp_route_match_t *m);

/* Writes the Allow header value for a method mask ("GET, HEAD, POST"), in
 * the order GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, into buf like
 * snprintf: truncated to len - 1 bytes and NUL-terminated when len > 0.
 * Returns the length of the full value. */
HP_EXPORT size_t hp_router_allow_str(uint32_t allow, char *buf, size_t len);

/* Checks the tree's invariants: static children sorted by first byte with
 * matching keys, no empty edges, prefixes compressed (no route-less static
 * node with a single child and no parameters), parameters only at segment
 * starts, catch-alls terminal, every node leading to a route, the hash
 * table holding exactly the fully static routes and the route count.
 * Returns 0 or -EINVAL (for tests). */
HP_EXPORT int hp_router_validate(const hp_router_t *r);

/* Number of distinct patterns registered. */
HP_EXPORT size_t hp_router_count(const hp_router_t *r);

#endif
