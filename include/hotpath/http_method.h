/*
 * http_method.h - the request methods hotpath knows: one id for each, and
 * one table of their names and router bits that the request parser, the
 * router, the metrics and hpbench all read.
 *
 * The ids are what the request parser stores (hp_http_req_t.method_id);
 * the router keeps its own mask bits (HP_ROUTER_*, router.h) so that a
 * route can hold several methods, and this table is the one map between
 * the two. Method names are case-sensitive (RFC 9110 §9.1).
 */
#ifndef HOTPATH_HTTP_METHOD_H
#define HOTPATH_HTTP_METHOD_H

#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

enum {
    HP_METHOD_UNKNOWN = 0, /* any other token */
    /* The methods a route can be registered for, each with a router bit. */
    HP_METHOD_GET,
    HP_METHOD_HEAD,
    HP_METHOD_POST,
    HP_METHOD_PUT,
    HP_METHOD_DELETE,
    HP_METHOD_OPTIONS,
    HP_METHOD_PATCH,
    /* Recognised, but no route takes them. */
    HP_METHOD_TRACE,
    HP_METHOD_CONNECT,
    HP_METHOD_COUNT
};

/* Ids below this are counted one by one in the per-route metrics
 * (HP_METHOD_UNKNOWN as "OTHER"); TRACE and CONNECT count as OTHER. */
#define HP_METHOD_ROUTED (HP_METHOD_PATCH + 1)

typedef struct hp_method_info {
    const char *name;    /* "GET"; NULL for HP_METHOD_UNKNOWN */
    uint8_t len;         /* strlen(name) */
    uint32_t router_bit; /* its HP_ROUTER_* bit; 0 when no route takes it */
} hp_method_info_t;

/* Indexed by id (HP_METHOD_*). */
HP_EXPORT extern const hp_method_info_t hp_method_table[HP_METHOD_COUNT];

/* The id of the method token name[0..len) (borrowed, not NUL-terminated),
 * or HP_METHOD_UNKNOWN. The request parser recognises the token with its
 * own switch on the length, which produces these same ids. */
HP_EXPORT int hp_method_lookup(const char *name, size_t len);

/* The id whose router bit is `bit` (exactly one HP_ROUTER_* bit), or
 * HP_METHOD_UNKNOWN. */
HP_EXPORT int hp_method_of_router_bit(uint32_t bit);

/* The router bit of an id (any value: out of range or unroutable gives 0). */
static inline uint32_t hp_method_router_bit(unsigned id)
{
    return id < HP_METHOD_COUNT ? hp_method_table[id].router_bit : 0;
}

#endif
