/*
 * engine.c - start-up, CPU placement and shutdown of a set of workers.
 *
 * Invariant: e->running counts workers whose loop has not yet reported
 * HP_MSG_WORKER_EXIT; the engine is done when it reaches zero.
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hotpath/alloc.h"

uint32_t hp_engine_cpus(int *cpus, uint32_t max)
{
    cpu_set_t set;
    uint32_t n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int i = 0; i < CPU_SETSIZE; i++) {
            if (!CPU_ISSET(i, &set))
                continue;
            if (cpus && n < max)
                cpus[n] = i;
            n++;
        }
    }
    if (n == 0) {
        if (cpus && max)
            cpus[0] = -1;
        n = 1;
    }
    return n;
}

/* A plain bind without SO_REUSEPORT fails when anybody holds the address,
 * even another process with SO_REUSEPORT: without this probe a second
 * server would silently share the port with the first. */
static int probe_free(const hp_listener_addr_t *addr)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, r = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0)
        r = -errno;
    close(fd);
    return r;
}

int hp_engine_init(hp_engine_t *e, uint32_t nworkers, const hp_worker_config_t *cfg)
{
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    e->wake_fd = -1;
    if (nworkers == 0)
        return -EINVAL;
    int r;
    if ((r = hp_mpsc_init(&e->inbox, nworkers < 2 ? 2 : 1u << (32 - __builtin_clz(nworkers)))) < 0)
        return r;
    e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->wake_fd < 0) {
        r = -errno;
        goto fail;
    }
    e->workers = hp_calloc_aligned(nworkers * sizeof(hp_worker_t));
    if (!e->workers) {
        r = -ENOMEM;
        goto fail;
    }
    int cpus[CPU_SETSIZE];
    uint32_t ncpu = hp_engine_cpus(cpus, CPU_SETSIZE);
    for (uint32_t i = 0; i < nworkers; i++) {
        hp_worker_t *w = &e->workers[i];
        if ((r = hp_worker_init(w, i, cpus[i % ncpu], &e->cfg)) < 0)
            goto fail;
        e->nworkers++;
        w->report_to = &e->inbox;
        w->report_fd = e->wake_fd;
    }
    /* One resolver for all the workers (hp_worker_connect_host); its
     * helper threads start on the first lookup, so an engine that never
     * connects by name runs none. */
    if ((r = hp_resolve_new(&e->resolver, NULL)) < 0)
        goto fail;
    /* Handles name a worker by its index in this array. */
    for (uint32_t i = 0; i < nworkers; i++) {
        e->workers[i].group = e->workers;
        e->workers[i].ngroup = nworkers;
        e->workers[i].resolver = e->resolver;
    }
    return 0;
fail:
    hp_engine_destroy(e);
    return r;
}

int hp_engine_add_proto(hp_engine_t *e, const hp_proto_t *proto, void *arg)
{
    for (uint32_t i = 0; i < e->nworkers; i++) {
        int r = hp_worker_add_proto(&e->workers[i], proto, arg);
        if (r < 0)
            return r;
    }
    return 0;
}

int hp_engine_listen(hp_engine_t *e, const hp_listener_addr_t *addr, int backlog,
                     const hp_proto_t *proto)
{
    int r = probe_free(addr);
    if (r < 0)
        return r;
    int first = -1;
    for (uint32_t i = 0; i < e->nworkers; i++) {
        /* Without reuseport every worker watches the first socket (its own
         * descriptor for it, so each owns and closes one). */
        int fd = i == 0 || e->cfg.reuseport ? hp_listener_open(addr, backlog)
                                            : fcntl(first, F_DUPFD_CLOEXEC, 0);
        if (fd < 0 && i > 0 && !e->cfg.reuseport)
            fd = -errno;
        if (fd < 0)
            return fd;
        if (i == 0)
            first = fd;
        if ((r = hp_worker_listen(&e->workers[i], fd, proto)) < 0)
            return r;
    }
    return 0;
}

int hp_engine_start(hp_engine_t *e)
{
    for (uint32_t i = 0; i < e->nworkers; i++) {
        int r = hp_worker_start(&e->workers[i]);
        if (r < 0) {
            hp_engine_stop_now(e);
            return r;
        }
        e->running++;
    }
    return 0;
}

/* Stop requests are flags beside the workers' inboxes: they cannot fail. */
static void post_all(hp_engine_t *e, uint32_t type)
{
    for (uint32_t i = 0; i < e->nworkers; i++)
        hp_worker_post(&e->workers[i], type, 0, NULL);
}

void hp_engine_shutdown(hp_engine_t *e)
{
    post_all(e, HP_MSG_SHUTDOWN);
}

void hp_engine_stop_now(hp_engine_t *e)
{
    post_all(e, HP_MSG_STOP_NOW);
}

bool hp_engine_reap(hp_engine_t *e)
{
    uint64_t v;
    ssize_t n = read(e->wake_fd, &v, sizeof v);
    (void)n;
    hp_msg_t m;
    while (hp_mpsc_pop(&e->inbox, &m)) {
        if (m.type == HP_MSG_WORKER_EXIT && e->running > 0)
            e->running--;
    }
    return e->running == 0;
}

void hp_engine_destroy(hp_engine_t *e)
{
    for (uint32_t i = 0; i < e->nworkers; i++) {
        hp_worker_t *w = &e->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        w->started = false;
    }
    /* Between the loops' end and the workers' destruction: the answers
     * of lookups still in progress go to inboxes that hp_worker_destroy
     * then drains. */
    hp_resolve_destroy(e->resolver);
    e->resolver = NULL;
    for (uint32_t i = 0; i < e->nworkers; i++)
        hp_worker_destroy(&e->workers[i]);
    e->nworkers = 0;
    hp_free(e->workers);
    e->workers = NULL;
    if (e->wake_fd >= 0)
        close(e->wake_fd);
    e->wake_fd = -1;
    hp_mpsc_destroy(&e->inbox);
}

int hp_engine_new(hp_engine_t **out, uint32_t nworkers, const hp_worker_config_t *cfg)
{
    hp_engine_t *e = hp_malloc(sizeof(*e));
    if (!e)
        return -ENOMEM;
    int r = hp_engine_init(e, nworkers, cfg);
    if (r < 0) {
        hp_free(e);
        return r;
    }
    *out = e;
    return 0;
}

void hp_engine_free(hp_engine_t *e)
{
    if (!e)
        return;
    hp_engine_destroy(e);
    hp_free(e);
}

uint32_t hp_engine_nworkers(const hp_engine_t *e)
{
    return e->nworkers;
}

hp_worker_t *hp_engine_worker(hp_engine_t *e, uint32_t i)
{
    return i < e->nworkers ? &e->workers[i] : NULL;
}

int hp_engine_wake_fd(const hp_engine_t *e)
{
    return e->wake_fd;
}
