/*
 * resolve.c - getaddrinfo on a few helper threads, answers returned to
 * the requesting worker by message.
 *
 * Why threads and not c-ares (bench/resolve, bench/README.md "resolve";
 * the run of 2026-12-07 on this 2-core machine, 2,000 resolutions per
 * cell, loopback-only network namespace):
 *   - cost: c-ares answers a name from /etc/hosts in ~15 us, all of it on
 *     the worker's own thread (it reads the hosts file there, blocking,
 *     on every lookup); a helper thread needs ~40 us of CPU in all but
 *     only ~4-10 us of it on the worker's thread (a queue push and the
 *     answer's message). With 50 lookups in flight the threads' median
 *     latency is queueing behind two helpers (~1.7 ms), c-ares' stays
 *     flat, because its hosts-file answers arrive inside the request.
 *     For an outbound connection, which itself costs a connect and a
 *     round trip, either is small; what the worker's loop loses matters
 *     more, and there the threads win.
 *   - semantics: getaddrinfo resolves as every other program on the host
 *     does: every /etc/nsswitch.conf module (files, dns, but also
 *     myhostname, mdns, resolve, ldap ...), resolv.conf's search list and
 *     options, gai.conf's RFC 6724 order and AI_ADDRCONFIG. c-ares 1.18
 *     (Debian 12) reads only "files" and "dns" from nsswitch.conf, sorts
 *     by its own RFC 6724 rules without gai.conf, makes no interface
 *     query for AI_ADDRCONFIG, and even asks DNS about a numeric IPv4
 *     host before answering it (strace: 8 queries per lookup).
 *   - dependency: none, against libc-ares2 for the library and its users.
 *   - localhost: when the host's own resolution fails for a localhost
 *     name (RFC 6761 6.3: "localhost", "*.localhost"), as on a machine or
 *     chroot with no /etc/hosts, the loopback addresses answer; what the
 *     host's configuration says about them still wins.
 *   - what it costs us: a slow DNS server holds a helper for the whole
 *     lookup (resolv.conf's timeout and attempts), so with two helpers a
 *     burst of slow names waits in the queue; the queue is bounded and
 *     refuses at once when full, and a connection's connect timeout
 *     covers its wait.
 *
 * Central structure: one queue of waiting requests (doubly linked, so a
 * cancelled one leaves it in O(1)) under one mutex with one condition
 * variable the idle helpers wait on. The mutex is held only to link and
 * unlink, never across a lookup or a post.
 *
 * Invariants: a request is in exactly one place: waiting in the queue
 * (state QUEUED, owned by the queue), with a helper (RUNNING), or in its
 * worker's inbox (POSTED); `cancelled` is read and written only on the
 * requesting worker's thread, which is also where the answer is opened,
 * so a cancelled request is freed there without its callback running.
 * Every request holds a reference to the resolver, so an answer opened
 * after hp_resolve_destroy still finds the resolver it counts against.
 */
#include "hotpath/resolve.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "worker_int.h"

/* The most threads and queue slots a configuration may ask for. */
#define HP_RESOLVE_MAX_THREADS 64
#define HP_RESOLVE_MAX_QUEUE (1u << 20)

enum { REQ_QUEUED, REQ_RUNNING, REQ_POSTED };

struct hp_resolve_req {
    hp_resolve_req_t *next, *prev; /* the queue, while QUEUED */
    hp_resolve_t *r;               /* borrowed */
    hp_worker_t *worker;           /* borrowed: where the answer goes */
    hp_resolve_cb cb;
    void *arg;
    int family;
    int state;                     /* REQ_*, under r->mu */
    bool cancelled;                /* the worker's thread only */
    int err;
    uint32_t n;
    hp_resolve_addr_t addrs[HP_RESOLVE_MAX_ADDRS];
    char host[];                   /* owned copy */
};

struct hp_resolve {
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* idle helpers wait here */
    hp_resolve_req_t *head, *tail; /* waiting requests, oldest first */
    uint32_t queued, max_queued;
    uint32_t nthreads, idle, max_threads;
    bool quit;
    pthread_t threads[HP_RESOLVE_MAX_THREADS];
    /* References: one per request allocated and not yet freed, plus the
     * resolver's own until hp_resolve_destroy. An answer may be opened
     * (and its request freed) after the resolver is destroyed, so the
     * last reference frees the resolver. */
    atomic_uint refs;
    int (*lookup)(const char *node, const char *service, const struct addrinfo *hints,
                  struct addrinfo **res);
    void (*lookup_free)(struct addrinfo *res);
};

int hp_resolve_error(int eai, int sys_errno)
{
    switch (eai) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENXIO;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_FAIL:
        return -EIO;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_FAMILY:
        return -EAFNOSUPPORT;
    case EAI_SYSTEM:
        return sys_errno > 0 ? -sys_errno : -EIO;
    default:
        return -EINVAL;
    }
}

static void unref(hp_resolve_t *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    hp_free(r);
}

static void req_free(hp_resolve_req_t *q)
{
    hp_resolve_t *r = q->r;
    hp_free(q);
    unref(r);
}

int hp_resolve_new(hp_resolve_t **out, const hp_resolve_config_t *cfg)
{
    hp_resolve_config_t d = {0};
    if (!cfg)
        cfg = &d;
    if (cfg->queue > HP_RESOLVE_MAX_QUEUE)
        return -EINVAL;
    hp_resolve_t *r = hp_calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->max_threads = cfg->threads ? cfg->threads : HP_RESOLVE_THREADS;
    if (r->max_threads > HP_RESOLVE_MAX_THREADS)
        r->max_threads = HP_RESOLVE_MAX_THREADS;
    r->max_queued = cfg->queue ? cfg->queue : HP_RESOLVE_QUEUE;
    r->lookup = cfg->lookup ? cfg->lookup : getaddrinfo;
    r->lookup_free = cfg->lookup_free ? cfg->lookup_free : freeaddrinfo;
    atomic_init(&r->refs, 1);
    *out = r;
    return 0;
}

/* ---- the worker's side ---- */

/* Runs on the requesting worker's thread (an HP_MSG_CALL). */
static void deliver(hp_worker_t *w, uint64_t arg, void *ptr)
{
    (void)w;
    (void)arg;
    hp_resolve_req_t *q = ptr;
    if (!q->cancelled)
        q->cb(q->arg, q->err, q->addrs, q->n);
    req_free(q);
}

static void *helper_main(void *arg);

/* Starts one more helper when none is free for one more request and the
 * limit allows. Called with r->mu held. Returns 0, or -EAGAIN when no
 * helper exists and none could be started (with one or more running, the
 * request just waits its turn). */
static int grow(hp_resolve_t *r)
{
    if (r->idle > r->queued || r->nthreads == r->max_threads)
        return 0;
    /* Under the lock, but once per helper for the resolver's life: a
     * helper, once started, stays until hp_resolve_destroy. Helpers must
     * not take the process's signals (SIGHUP, SIGTERM are for the main
     * thread): they start with everything blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&r->threads[r->nthreads], NULL, helper_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0)
        return r->nthreads ? 0 : -EAGAIN;
    r->nthreads++;
    r->idle++;
    return 0;
}

int hp_resolve_start(hp_resolve_t *r, hp_worker_t *w, const char *host, int family,
                     hp_resolve_cb cb, void *arg, hp_resolve_req_t **out)
{
    size_t len = strlen(host);
    if (len == 0 || len > HP_RESOLVE_MAX_HOST)
        return -EINVAL;
    hp_resolve_req_t *q = hp_malloc(sizeof *q + len + 1);
    if (!q)
        return -ENOMEM;
    memset(q, 0, sizeof *q);
    q->r = r;
    q->worker = w;
    q->cb = cb;
    q->arg = arg;
    q->family = family;
    memcpy(q->host, host, len + 1);
    pthread_mutex_lock(&r->mu);
    int e = r->queued >= r->max_queued ? -EBUSY : grow(r);
    if (e == 0) {
        q->state = REQ_QUEUED;
        q->prev = r->tail;
        if (r->tail)
            r->tail->next = q;
        else
            r->head = q;
        r->tail = q;
        r->queued++;
        atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    if (e < 0) {
        hp_free(q);
        return e;
    }
    if (out)
        *out = q;
    return 0;
}

static void unlink_queued(hp_resolve_t *r, hp_resolve_req_t *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        r->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        r->tail = q->prev;
    q->next = q->prev = NULL;
    r->queued--;
}

void hp_resolve_cancel(hp_resolve_req_t *q)
{
    hp_resolve_t *r = q->r;
    pthread_mutex_lock(&r->mu);
    bool waiting = q->state == REQ_QUEUED;
    if (waiting)
        unlink_queued(r, q);
    pthread_mutex_unlock(&r->mu);
    if (waiting)
        req_free(q);
    else
        q->cancelled = true; /* deliver() frees it, on this thread */
}

/* ---- the helpers ---- */

/* Keeps the first HP_RESOLVE_MAX_ADDRS stream addresses of the answer. */
static void keep(hp_resolve_req_t *q, const struct addrinfo *res)
{
    for (const struct addrinfo *ai = res; ai && q->n < HP_RESOLVE_MAX_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof q->addrs[0].in6)
            continue;
        hp_resolve_addr_t *a = &q->addrs[q->n++];
        memset(a, 0, sizeof *a);
        memcpy(&a->sa, ai->ai_addr, ai->ai_addrlen);
        a->len = ai->ai_addrlen;
    }
    if (q->n == 0)
        q->err = -ENXIO; /* an answer of other families only */
}

/* Whether `host` is a localhost name (RFC 6761 6.3), ignoring case and
 * a final dot. */
static bool localhost_name(const char *host)
{
    size_t n = strlen(host);
    if (n && host[n - 1] == '.')
        n--;
    static const char tail[] = "localhost";
    size_t t = sizeof tail - 1;
    return n >= t && strncasecmp(host + n - t, tail, t) == 0 &&
           (n == t || host[n - t - 1] == '.');
}

/* The loopback addresses of `family` (AF_UNSPEC: IPv4's first, since it
 * is there even on a host without IPv6). */
static void loopback(hp_resolve_req_t *q)
{
    q->n = 0;
    q->err = 0;
    if (q->family != AF_INET6) {
        hp_resolve_addr_t *a = &q->addrs[q->n++];
        memset(a, 0, sizeof *a);
        a->in.sin_family = AF_INET;
        a->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->len = sizeof a->in;
    }
    if (q->family != AF_INET) {
        hp_resolve_addr_t *a = &q->addrs[q->n++];
        memset(a, 0, sizeof *a);
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_addr = in6addr_loopback;
        a->len = sizeof a->in6;
    }
}

static void lookup(hp_resolve_t *r, hp_resolve_req_t *q)
{
    /* AI_ADDRCONFIG: no IPv6 addresses on a host without IPv6, whose
     * connects would only fail before the IPv4 ones are tried. */
    struct addrinfo hints = {.ai_family = q->family, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    errno = 0;
    int eai = r->lookup(q->host, NULL, &hints, &res);
    if (eai != 0) {
        q->err = hp_resolve_error(eai, errno);
        if (localhost_name(q->host))
            loopback(q);
        return;
    }
    keep(q, res);
    r->lookup_free(res);
}

static void post(hp_resolve_t *r, hp_resolve_req_t *q)
{
    for (;;) {
        if (hp_worker_call(q->worker, deliver, 0, q) == 0)
            return;
        /* The worker's inbox is full: it is busy, and will drain it. Only
         * while the resolver is being destroyed can the worker have
         * stopped for good; then the answer is dropped. */
        pthread_mutex_lock(&r->mu);
        bool quit = r->quit;
        pthread_mutex_unlock(&r->mu);
        if (quit) {
            req_free(q);
            return;
        }
        usleep(100);
    }
}

static void *helper_main(void *arg)
{
    hp_resolve_t *r = arg;
    pthread_setname_np(pthread_self(), "resolve");
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->head && !r->quit)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->quit)
            break;
        hp_resolve_req_t *q = r->head;
        unlink_queued(r, q);
        q->state = REQ_RUNNING;
        r->idle--;
        pthread_mutex_unlock(&r->mu);
        lookup(r, q);
        /* Idle again before the answer goes: a worker that asks again as
         * soon as it has the answer finds this helper free, rather than
         * starting another for a moment's overlap. */
        pthread_mutex_lock(&r->mu);
        r->idle++;
        pthread_mutex_unlock(&r->mu);
        post(r, q);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

uint32_t hp_resolve_live(hp_resolve_t *r)
{
    return atomic_load_explicit(&r->refs, memory_order_relaxed) - 1;
}

uint32_t hp_resolve_threads(hp_resolve_t *r)
{
    pthread_mutex_lock(&r->mu);
    uint32_t n = r->nthreads;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void hp_resolve_destroy(hp_resolve_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->quit = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    for (uint32_t i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    while (r->head) {
        hp_resolve_req_t *q = r->head;
        unlink_queued(r, q);
        req_free(q);
    }
    unref(r);
}
