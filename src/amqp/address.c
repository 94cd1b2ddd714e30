/*
 * address.c - where a connection goes: its list of broker addresses
 * (cfg.addresses, or host and port alone) and the amqp:// URIs that name
 * them, one host or several (a cluster: host1:5672,host2:5673).
 *
 * Central structure: the connection's address array (amqp_addr_t,
 * hp_amqp_conn_t.addrs), built once by amqp_addrs_new from the
 * configuration: one allocation holding the array and, after it, each
 * address's host and its "host:port" text. Invariant: every entry has a
 * non-empty host without brackets and a port from 1 to 65535, so a dial
 * never meets a malformed address. Which address comes next is
 * client.c's (a round) and recover.c's (after a loss) to say.
 */
#include "hotpath/amqp.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client_int.h"
#include "hotpath/alloc.h"
#include "hotpath/resolve.h"

/* ---- one address ---- */

/* Splits "host", "host:port", "[v6]" or "[v6]:port" in s[0, n): the
 * host's span (brackets off; it may be empty) and the port, 0 when none
 * is given. Returns NULL, or why it is malformed. */
static const char *split_address(const char *s, size_t n, const char **host, size_t *hlen,
                                 uint16_t *port)
{
    const char *end = s + n, *after;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return "an IPv6 host without ']'";
        *host = s + 1;
        *hlen = (size_t)(close - s - 1);
        after = close + 1;
    } else {
        after = memchr(s, ':', n);
        if (!after)
            after = end;
        *host = s;
        *hlen = (size_t)(after - s);
    }
    *port = 0;
    if (after == end)
        return NULL;
    if (*after != ':')
        return "a bad host";
    uint32_t v = 0;
    for (const char *d = after + 1; d < end; d++) {
        if (*d < '0' || *d > '9' || (v = v * 10 + (uint32_t)(*d - '0')) > 65535)
            return "a bad port";
    }
    if (v == 0)
        return "a bad port";
    *port = (uint16_t)v;
    return NULL;
}

/* "host:port", or "[host]:port" for an IPv6 address. */
static int format_address(char *out, size_t cap, const char *host, uint16_t port)
{
    return snprintf(out, cap, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
}

/* ---- the connection's list ---- */

int amqp_addrs_new(const hp_amqp_config_t *cfg, amqp_addr_t **out, uint32_t *count)
{
    /* Host and port alone are a list of one, the host as given (an IPv6
     * address without brackets). */
    const char *list = cfg->addresses ? cfg->addresses : cfg->host;
    if (!list || !*list)
        return -EINVAL;
    size_t len = strlen(list);
    uint32_t n = 1;
    for (const char *p = cfg->addresses; p && *p; p++)
        n += *p == ',';
    if (n > HP_AMQP_MAX_ADDRESSES)
        return -EINVAL;
    /* Per address, at most its bytes twice (host, text) plus brackets, a
     * port and two NULs. */
    amqp_addr_t *v = hp_malloc(n * (sizeof *v + 12) + 2 * len);
    if (!v)
        return -ENOMEM;
    char *at = (char *)(v + n);
    const char *item = list;
    for (uint32_t i = 0; i < n; i++) {
        size_t ilen = cfg->addresses ? strcspn(item, ",") : len;
        const char *next = item + ilen + 1;
        const char *host = item;
        size_t hlen = ilen;
        uint16_t port = 0;
        if (cfg->addresses) {
            while (ilen > 0 && (*item == ' ' || *item == '\t'))
                item++, ilen--;
            while (ilen > 0 && (item[ilen - 1] == ' ' || item[ilen - 1] == '\t'))
                ilen--;
            if (split_address(item, ilen, &host, &hlen, &port))
                hlen = 0;
        }
        if (!port)
            port = cfg->port;
        if (hlen == 0 || hlen > HP_RESOLVE_MAX_HOST || port == 0 ||
            strcspn(host, ",[] \t") < hlen) {
            hp_free(v);
            return -EINVAL;
        }
        memcpy(at, host, hlen);
        at[hlen] = '\0';
        v[i].host = at;
        v[i].port = port;
        at += hlen + 1;
        v[i].text = at;
        at += format_address(at, hlen + 10, v[i].host, port) + 1;
        item = next;
    }
    *out = v;
    *count = n;
    return 0;
}

const char *hp_amqp_address(const hp_amqp_conn_t *a, uint32_t *index)
{
    if (index)
        *index = a->addr;
    return a->addrs[a->addr].text;
}

/* ---- URIs ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0, n) into *at (advanced), NUL-terminated. Returns
 * the decoded string, or NULL with *why set (NULL: no room). */
static const char *decode_part(const char *s, size_t n, char **at, char *end, const char **why)
{
    char *out = *at;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                *why = "a bad percent-escape";
                return NULL;
            }
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (out >= end) {
            *why = NULL;
            return NULL;
        }
        *out++ = ch;
    }
    if (out >= end) {
        *why = NULL;
        return NULL;
    }
    *out++ = '\0';
    const char *r = *at;
    *at = out;
    return r;
}

/* Copies s[0, n) into *at (advanced), NUL-terminated; NULL when there
 * is no room. */
static const char *put_part(const char *s, size_t n, char **at, char *end)
{
    if ((size_t)(end - *at) <= n)
        return NULL;
    char *r = *at;
    memcpy(r, s, n);
    r[n] = '\0';
    *at += n + 1;
    return r;
}

/* The hosts of a URI with several, hosts[0, n) ("h1:5672,[v6]:5673,h3"),
 * written to *at as the list cfg.addresses takes: each host decoded,
 * each with its port (`port` when it has none). Returns the list, or
 * NULL with *why set (NULL: no room). */
static const char *url_hosts(const char *hosts, size_t n, uint16_t port, char **at, char *end,
                             const char **why)
{
    char *list = *at, *w = list;
    uint32_t count = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t ilen = strcspn(hosts + i, ",");
        if (ilen > n - i)
            ilen = n - i;
        const char *h;
        size_t hl;
        uint16_t p;
        if ((*why = split_address(hosts + i, ilen, &h, &hl, &p)))
            return NULL;
        if (hl == 0) {
            *why = "an empty host in the list";
            return NULL;
        }
        if (++count > HP_AMQP_MAX_ADDRESSES) {
            *why = "more than 64 hosts";
            return NULL;
        }
        char name[HP_RESOLVE_MAX_HOST + 1], *nat = name;
        if (!decode_part(h, hl, &nat, name + sizeof name, why)) {
            if (!*why)
                *why = "a host longer than 253 bytes";
            return NULL;
        }
        if (strpbrk(name, ",[] \t")) {
            *why = "a bad host";
            return NULL;
        }
        size_t room = (size_t)(end - w);
        int k = format_address(w, room, name, p ? p : port);
        if (k < 0 || (size_t)k + 1 >= room) {
            *why = NULL;
            return NULL;
        }
        w += k;
        *w++ = ',';
        i += ilen;
    }
    w[-1] = '\0';
    *at = w;
    return list;
}

int hp_amqp_url_parse(const char *url, hp_amqp_config_t *cfg, char *buf, size_t len,
                      const char **err)
{
    const char *why = "not an amqp:// URI";
    const char *p = url;
    if (strncmp(p, "amqp://", 7) != 0) {
        if (strncmp(p, "amqps://", 8) == 0)
            why = "amqps (TLS) is not supported yet";
        goto bad;
    }
    p += 7;
    hp_amqp_config_t c = *cfg;
    char *at = buf, *end = buf + len;
    size_t auth_end = strcspn(p, "@/?#");
    const char *hostpart = p;
    if (p[auth_end] == '@') {
        size_t colon = strcspn(p, ":@");
        why = NULL;
        c.user = decode_part(p, colon, &at, end, &why);
        if (!c.user)
            goto fail;
        if (p[colon] == ':') {
            c.password = decode_part(p + colon + 1, auth_end - colon - 1, &at, end, &why);
            if (!c.password)
                goto fail;
        }
        hostpart = p + auth_end + 1;
    }
    /* host[:port] or [v6][:port]; several, separated by commas, are a
     * cluster's nodes. */
    size_t hn = strcspn(hostpart, "/?#");
    const char *after = hostpart + hn;
    const char *h;
    size_t hl;
    uint16_t port;
    if (!memchr(hostpart, ',', hn)) {
        /* One host, which may be empty: the default stays. */
        if ((why = split_address(hostpart, hn, &h, &hl, &port)))
            goto bad;
        if (hl > 0) {
            why = NULL;
            c.host = decode_part(h, hl, &at, end, &why);
            if (!c.host)
                goto fail;
        }
        if (port)
            c.port = port;
        c.addresses = NULL;
    } else {
        c.addresses = url_hosts(hostpart, hn, cfg->port, &at, end, &why);
        if (!c.addresses)
            goto fail;
        /* The first is host and port too (what a single-host reader
         * shows); the list is canonical, so it splits. */
        split_address(c.addresses, strcspn(c.addresses, ","), &h, &hl, &c.port);
        why = NULL;
        c.host = put_part(h, hl, &at, end);
        if (!c.host)
            goto fail;
    }
    if (*after == '/') {
        /* The path is the vhost, percent-decoded: "/" is %2F; an empty
         * path keeps the default. */
        size_t n = strcspn(after + 1, "?#");
        if (n > 0) {
            why = NULL;
            c.vhost = decode_part(after + 1, n, &at, end, &why);
            if (!c.vhost)
                goto fail;
        }
    }
    *cfg = c;
    return 0;
fail:
    if (!why) {
        if (err)
            *err = "the URI does not fit the buffer";
        return -ENOSPC;
    }
bad:
    if (err)
        *err = why;
    return -EINVAL;
}
