/*
 * target_int.h - the request-target of a request line (RFC 9112 §3.2),
 * checked against its grammar and cut into path, query and authority.
 * Private to src/http: dispatch() in server.c is the one caller, the unit
 * test and the fuzz target the others.
 */
#ifndef HOTPATH_HTTP_TARGET_INT_H
#define HOTPATH_HTTP_TARGET_INT_H

#include <stddef.h>
#include <stdint.h>

#include "hotpath/http_parser.h"

/* The four forms of RFC 9112 §3.2. */
enum {
    HP_TARGET_ORIGIN = 1, /* "/path?query", any method but CONNECT */
    HP_TARGET_ABSOLUTE,   /* "http://host:port/path?query" (http and https only) */
    HP_TARGET_AUTHORITY,  /* "host:port", CONNECT only */
    HP_TARGET_ASTERISK,   /* "*", OPTIONS only */
};

/* A checked target. Spans are relative to the target's first byte.
 * path: the absolute-path (origin-form) or path-abempty (absolute-form); an
 * absolute-form target without a path has len 0 and means "/".
 * query: after the '?', without it; off 0 when there is no '?' (a query
 * always starts at offset 2 or later, so 0 is free).
 * authority: the host and port of absolute- and authority-form. */
typedef struct hp_target {
    uint8_t form; /* HP_TARGET_* */
    hp_http_span_t path, query, authority;
} hp_target_t;

/* Checks the request-target t[0..n) (borrowed; n <= HP_HTTP_MAX_HEAD) of a
 * request with method `method` (HP_METHOD_*) and fills *out (OUT).
 *
 * Accepts exactly what RFC 9112 §3.2 and RFC 3986 allow, narrowed where
 * RFC 9110 tells a recipient to refuse or where a server that is not a
 * proxy has nothing to act on:
 *   - origin-form for every method but CONNECT, which must name a tunnel;
 *   - absolute-form only for the schemes "http" and "https" (any case),
 *     whose URIs always have "//" authority, with a non-empty host (RFC
 *     9110 §4.2.1 "MUST reject") and no userinfo (§4.2.4 "treat its
 *     presence as an error"). A URI of another scheme names a resource
 *     this server cannot be asked for;
 *   - authority-form "host:port" only for CONNECT, with a non-empty host
 *     and at least one port digit (RFC 9110 §9.3.6: a client MUST send
 *     the port, and the tunnel needs a destination);
 *   - asterisk-form only for OPTIONS.
 * pct-encoded must be '%' and two hex digits; '#', spaces, controls and
 * bytes above 0x7e appear in no form.
 * Returns 0, or -400 for anything else (n > HP_HTTP_MAX_HEAD included). */
int hp_target_parse(const char *t, size_t n, int method, hp_target_t *out);

#endif
