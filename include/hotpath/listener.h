/*
 * listener.h - listening sockets: address parsing and SO_REUSEPORT sockets.
 */
#ifndef HOTPATH_LISTENER_H
#define HOTPATH_LISTENER_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "hotpath/common.h"

typedef struct hp_listener_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[96];           /* canonical "127.0.0.1:8080" / "[::1]:8080" */
} hp_listener_addr_t;

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (all IPv4 interfaces); HOST
 * must be a numeric address or "localhost". Port 1-65535. Returns 0 or
 * -EINVAL. */
HP_EXPORT int hp_listener_addr_parse(const char *text, hp_listener_addr_t *out);

/* Opens a non-blocking, close-on-exec TCP socket bound to `addr` with
 * SO_REUSEADDR and SO_REUSEPORT (so each worker can own one), listening
 * with `backlog`. Returns the fd or -errno. */
HP_EXPORT int hp_listener_open(const hp_listener_addr_t *addr, int backlog);

#endif
