/*
 * resolve.h - host names to addresses without blocking a worker's loop.
 *
 * A resolver is a small pool of helper threads that call getaddrinfo, so
 * a name resolves exactly as it does for every other program on the host
 * (/etc/hosts, /etc/nsswitch.conf and its modules, resolv.conf's search
 * domains and options, gai.conf's address order, AI_ADDRCONFIG). A worker
 * asks with hp_resolve_start; the answer comes back to that worker's
 * thread through its inbox (hp_worker_call), never before hp_resolve_start
 * returns. Helper threads start on first use, up to a fixed number, and
 * requests wait for them in a bounded queue: a full queue is refused at
 * once. bench/README.md ("resolve") has the measurements behind this
 * choice over c-ares.
 *
 * A request can be cancelled by its worker at any time before its answer
 * arrives: its callback then never runs, and the request is freed when
 * its lookup ends (or at once if no helper had taken it yet).
 *
 * One resolver may serve any number of workers (the engine shares one).
 */
#ifndef HOTPATH_RESOLVE_H
#define HOTPATH_RESOLVE_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hotpath/common.h"

struct addrinfo; /* <netdb.h> */
typedef struct hp_worker hp_worker_t;
typedef struct hp_resolve hp_resolve_t;
typedef struct hp_resolve_req hp_resolve_req_t;

/* Helper threads at most, by default: a lookup answered from /etc/hosts
 * or nscd costs tens of microseconds, so two keep up with far more
 * outbound connections than a server opens by name; more only help while
 * DNS servers are slow to answer, which is what the queue absorbs. */
#define HP_RESOLVE_THREADS 2
/* Requests waiting for a helper at most, by default. */
#define HP_RESOLVE_QUEUE 256
/* Addresses kept from one answer (the first ones, in getaddrinfo's order). */
#define HP_RESOLVE_MAX_ADDRS 8
/* The longest host name accepted (a DNS name is at most 253 characters). */
#define HP_RESOLVE_MAX_HOST 253

typedef struct hp_resolve_config {
    uint32_t threads;  /* helper threads at most; 0: HP_RESOLVE_THREADS */
    uint32_t queue;    /* waiting requests at most; 0: HP_RESOLVE_QUEUE */
    /* The lookup and its free: NULL means getaddrinfo and freeaddrinfo.
     * Tests put their own here (a name that never answers, one that
     * fails); it is called on a helper thread, with service NULL. */
    int (*lookup)(const char *node, const char *service, const struct addrinfo *hints,
                  struct addrinfo **res);
    void (*lookup_free)(struct addrinfo *res);
} hp_resolve_config_t;

/* One address of an answer; the port is 0. */
typedef struct hp_resolve_addr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    };
    socklen_t len;
} hp_resolve_addr_t;

/* The answer, on the requesting worker's thread: err 0 and n >= 1
 * addresses (borrowed: valid during the call), or err < 0 and n 0. See
 * hp_resolve_error for the codes. The request is finished when this runs:
 * it must not be cancelled. */
typedef void (*hp_resolve_cb)(void *arg, int err, const hp_resolve_addr_t *addrs, uint32_t n);

/* Makes a resolver with cfg (NULL: the defaults); no thread starts until
 * the first request. Returns 0 with *out set, -ENOMEM (nothing is left
 * allocated), or -EINVAL for a queue above 1<<20. Any thread. */
HP_EXPORT int hp_resolve_new(hp_resolve_t **out, const hp_resolve_config_t *cfg);

/* Looks up `host` (a NUL-terminated name, copied) for stream sockets of
 * `family` (AF_UNSPEC, AF_INET or AF_INET6) on a helper thread; cb(arg,
 * ...) then runs on worker w's thread, at one of its wake-ups after this
 * returns. Call from w's thread (or before it starts). Returns 0 with
 * *out set to the request (for hp_resolve_cancel; `out` may be NULL),
 * -EINVAL for an empty or too long name, -EBUSY when the queue is full,
 * -ENOMEM, or -EAGAIN when no helper thread exists and none could be
 * started. On error cb never runs. */
HP_EXPORT int hp_resolve_start(hp_resolve_t *r, hp_worker_t *w, const char *host, int family,
                               hp_resolve_cb cb, void *arg, hp_resolve_req_t **out);

/* Forgets a request whose callback has not run yet: the callback will
 * not run, and the request is freed now if it was still waiting, else
 * when its lookup ends. Call from the requesting worker's thread. */
HP_EXPORT void hp_resolve_cancel(hp_resolve_req_t *req);

/* The -errno reported for a getaddrinfo result (`sys_errno` is errno
 * after EAI_SYSTEM):
 *   EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY  -ENXIO   no such host, or no
 *                                                    address of the family
 *   EAI_AGAIN                               -EAGAIN  temporary: no DNS
 *                                                    server answered
 *   EAI_FAIL                                -EIO     a DNS server refused
 *   EAI_MEMORY                              -ENOMEM
 *   EAI_FAMILY                              -EAFNOSUPPORT
 *   EAI_SYSTEM                              -sys_errno (-EIO without one)
 *   anything else                           -EINVAL */
HP_EXPORT int hp_resolve_error(int eai, int sys_errno);

/* Requests allocated and not yet freed (waiting, being looked up, or
 * answered and not yet delivered). Any thread, while the resolver is not
 * destroyed; for tests and metrics. */
HP_EXPORT uint32_t hp_resolve_live(hp_resolve_t *r);

/* Helper threads started so far. Any thread. */
HP_EXPORT uint32_t hp_resolve_threads(hp_resolve_t *r);

/* Stops the helper threads and frees the resolver (its last part when
 * the last answer still in an inbox is opened). Lookups in progress are
 * waited for (getaddrinfo cannot be interrupted); their answers are still
 * posted to their workers, whose inboxes hp_worker_free drains, so
 * destroy the resolver after the workers' loops have ended and before the
 * workers. Waiting requests are freed without their callbacks, as are
 * answers whose worker's inbox stays full. NULL is ignored. */
HP_EXPORT void hp_resolve_destroy(hp_resolve_t *r);

#endif
