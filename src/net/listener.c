/*
 * listener.c - address parsing and SO_REUSEPORT listening sockets.
 *
 * Every worker gets its own socket on the same address; the kernel spreads
 * incoming connections across them, so accept never contends on a lock.
 */
#include "hotpath/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_port(const char *s, in_port_t *out)
{
    if (!*s)
        return -EINVAL;
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 65535)
            return -EINVAL;
    }
    if (v == 0)
        return -EINVAL;
    *out = htons((in_port_t)v);
    return 0;
}

int hp_listener_addr_parse(const char *text, hp_listener_addr_t *out)
{
    memset(out, 0, sizeof *out);
    char host[64];
    const char *port;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof host)
            return -EINVAL;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = '\0';
        port = end + 2;
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->ss;
        a->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1 || parse_port(port, &a->sin6_port) < 0)
            return -EINVAL;
        out->len = sizeof *a;
        char ip6[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &a->sin6_addr, ip6, sizeof ip6);
        snprintf(out->text, sizeof out->text, "[%s]:%u", ip6, ntohs(a->sin6_port));
        return 0;
    }
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host)
        return -EINVAL;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    port = colon + 1;
    struct sockaddr_in *a = (struct sockaddr_in *)&out->ss;
    a->sin_family = AF_INET;
    if (host[0] == '\0')
        a->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return -EINVAL;
    if (parse_port(port, &a->sin_port) < 0)
        return -EINVAL;
    out->len = sizeof *a;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(out->text, sizeof out->text, "%s:%u", ip, ntohs(a->sin_port));
    return 0;
}

int hp_listener_open(const hp_listener_addr_t *addr, int backlog)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    int r = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 ||
        listen(fd, backlog) < 0)
        r = -errno;
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}
