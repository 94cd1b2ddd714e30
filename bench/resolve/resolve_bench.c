/*
 * resolve_bench.c - name resolution off a worker's loop: getaddrinfo on
 * helper threads against c-ares on the loop itself.
 *
 * Both run against one real hp_worker stepped on this thread:
 *   threads  N helper threads take names from a mutex-and-condvar queue,
 *            call getaddrinfo and hand the result back with
 *            hp_worker_call (the worker's inbox and eventfd);
 *   c-ares   one channel whose sockets the worker's loop watches
 *            (ARES_OPT_SOCK_STATE_CB -> hp_loop_add/del) and whose
 *            timeouts sit on the loop's timer wheel (ares_timeout).
 * For each name and each way it reports the latency from the request to
 * the callback on the loop (median, p99) and the process CPU time per
 * resolution (helper threads included), for requests one at a time and
 * with `conc` in flight. It then prints what each returned for each name,
 * so that the order of the addresses can be compared.
 *
 * Usage: resolve_bench [-n resolutions] [-c concurrency] [-t threads] name...
 */
#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "net/worker_int.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

typedef struct req {
    struct req *next;
    const char *name;
    uint64_t t0;
    int status;        /* 0, or the EAI_* / ARES_* code */
    char first[64];    /* the first address, for the semantics table */
    int naddr;
} req_t;

static struct {
    hp_worker_config_t cfg;
    hp_worker_t w;
    uint64_t *lat;     /* ns per completed request */
    int done, failed;
    req_t *last;       /* the latest completion */
    req_t *idle;       /* completed requests, free for the next name */
    /* threads */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    req_t *qhead, *qtail;
    bool quit;
    /* c-ares */
    ares_channel ch;
    hp_io_t aio[16];
    hp_timer_t atimer;
} B;

static void finished(req_t *r)
{
    B.lat[B.done++] = now_ns() - r->t0;
    if (r->status)
        B.failed++;
    B.last = r;
    r->next = B.idle;
    B.idle = r;
}

static void addr_text(const struct sockaddr *sa, char *out, size_t n)
{
    const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                              : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!inet_ntop(sa->sa_family, a, out, (socklen_t)n))
        snprintf(out, n, "?");
}

/* ---- (a) getaddrinfo on helper threads ---- */

static void gai_done(hp_worker_t *w, uint64_t arg, void *ptr)
{
    (void)w;
    (void)arg;
    finished(ptr);
}

static void *helper(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&B.mu);
        while (!B.qhead && !B.quit)
            pthread_cond_wait(&B.cv, &B.mu);
        req_t *r = B.qhead;
        if (r) {
            B.qhead = r->next;
            if (!B.qhead)
                B.qtail = NULL;
        }
        pthread_mutex_unlock(&B.mu);
        if (!r)
            return NULL;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_ADDRCONFIG}, *res = NULL;
        r->status = getaddrinfo(r->name, NULL, &hints, &res);
        r->naddr = 0;
        r->first[0] = 0;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if (r->naddr++ < 4) {
                char t[48];
                addr_text(ai->ai_addr, t, sizeof t);
                size_t l = strlen(r->first);
                snprintf(r->first + l, sizeof r->first - l, "%s%s", l ? " " : "", t);
            }
        }
        if (res)
            freeaddrinfo(res);
        while (hp_worker_call(&B.w, gai_done, 0, r) == -EAGAIN)
            sched_yield();
    }
}

static void gai_submit(req_t *r)
{
    r->next = NULL;
    pthread_mutex_lock(&B.mu);
    if (B.qtail)
        B.qtail->next = r;
    else
        B.qhead = r;
    B.qtail = r;
    pthread_cond_signal(&B.cv);
    pthread_mutex_unlock(&B.mu);
}

/* ---- (b) c-ares on the loop ---- */

static void ares_rearm(void)
{
    struct timeval tv, *tp = ares_timeout(B.ch, NULL, &tv);
    if (!tp) {
        hp_loop_timer_cancel(&B.w.loop, &B.atimer);
        return;
    }
    uint64_t ms = (uint64_t)tp->tv_sec * 1000 + ((uint64_t)tp->tv_usec + 999) / 1000;
    hp_loop_timer_arm(&B.w.loop, &B.atimer, ms);
}

static void ares_io(hp_io_t *io, uint32_t events)
{
    /* Edge-triggered: c-ares reads a UDP socket until it is empty. */
    ares_socket_t rd = (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? io->fd : ARES_SOCKET_BAD;
    ares_socket_t wr = (events & EPOLLOUT) ? io->fd : ARES_SOCKET_BAD;
    ares_process_fd(B.ch, rd, wr);
    ares_rearm();
}

static void ares_tick(hp_timer_t *t)
{
    (void)t;
    ares_process_fd(B.ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    ares_rearm();
}

static void ares_sock(void *data, ares_socket_t fd, int readable, int writable)
{
    (void)data;
    (void)writable;
    for (size_t i = 0; i < sizeof B.aio / sizeof B.aio[0]; i++) {
        if (B.aio[i].fd == fd && !readable && !writable) {
            hp_loop_del(&B.w.loop, &B.aio[i]);
            B.aio[i].fd = -1;
            return;
        }
        if (B.aio[i].fd == fd)
            return; /* already watched for both directions */
    }
    for (size_t i = 0; i < sizeof B.aio / sizeof B.aio[0]; i++) {
        if (B.aio[i].fd == -1) {
            hp_loop_add(&B.w.loop, &B.aio[i], fd, EPOLLIN | EPOLLOUT, ares_io);
            return;
        }
    }
}

static void ares_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    req_t *r = arg;
    r->status = status;
    r->naddr = 0;
    r->first[0] = 0;
    for (struct ares_addrinfo_node *n = res ? res->nodes : NULL; n; n = n->ai_next) {
        if (r->naddr++ < 4) {
            char t[48];
            addr_text(n->ai_addr, t, sizeof t);
            size_t l = strlen(r->first);
            snprintf(r->first + l, sizeof r->first - l, "%s%s", l ? " " : "", t);
        }
    }
    if (res)
        ares_freeaddrinfo(res);
    finished(r);
}

static void ares_submit(req_t *r)
{
    struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                        .ai_flags = ARES_AI_ADDRCONFIG};
    ares_getaddrinfo(B.ch, r->name, NULL, &hints, ares_done, r);
    ares_rearm();
}

/* ---- the runs ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs n resolutions of `name` with `conc` in flight; prints one row. */
static void run(const char *way, void (*submit)(req_t *), const char *name, int n, int conc)
{
    req_t *reqs = calloc((size_t)conc, sizeof *reqs);
    B.done = B.failed = 0;
    B.last = NULL;
    B.idle = NULL;
    for (int i = 0; i < conc; i++) {
        reqs[i].next = B.idle;
        B.idle = &reqs[i];
    }
    int started = 0;
    uint64_t c0 = cpu_ns(), l0 = thread_cpu_ns();
    while (B.done < n) {
        /* Each completion frees its request for the next submission; a
         * c-ares answer from the hosts file arrives inside submit, so the
         * loop goes round without waiting. */
        if (B.idle && started < n) {
            req_t *r = B.idle;
            B.idle = r->next;
            r->name = name;
            r->t0 = now_ns();
            started++;
            submit(r);
            continue;
        }
        hp_loop_run_once(&B.w.loop, 100);
    }
    uint64_t cpu = cpu_ns() - c0, loop = thread_cpu_ns() - l0;
    qsort(B.lat, (size_t)n, sizeof *B.lat, cmp_u64);
    printf("%-8s %-22s %5d %6d %10.1f %10.1f %10.1f %10.1f %8d\n", way, name, conc, n,
           (double)B.lat[n / 2] / 1000.0, (double)B.lat[(size_t)n * 99 / 100] / 1000.0,
           (double)cpu / n / 1000.0, (double)loop / n / 1000.0, B.failed);
    free(reqs);
}

/* The addresses one resolution returned, for the semantics table. */
static void show(const char *way, void (*submit)(req_t *), const char *name)
{
    req_t r = {.name = name, .t0 = now_ns()};
    B.done = 0;
    B.last = NULL;
    submit(&r);
    while (B.last != &r)
        hp_loop_run_once(&B.w.loop, 100);
    const char *err = !r.status ? "" : submit == ares_submit ? ares_strerror(r.status)
                                                            : gai_strerror(r.status);
    printf("%-8s %-22s %-6d %s%s\n", way, name, r.status, r.status ? err : r.first,
           r.naddr > 4 ? " ..." : "");
}

int main(int argc, char **argv)
{
    int n = 2000, conc = 50, nthreads = 2, opt;
    while ((opt = getopt(argc, argv, "n:c:t:")) != -1) {
        if (opt == 'n')
            n = atoi(optarg);
        else if (opt == 'c')
            conc = atoi(optarg);
        else if (opt == 't')
            nthreads = atoi(optarg);
        else
            return 2;
    }
    B.cfg = HP_WORKER_CONFIG_DEFAULT;
    if (hp_worker_init(&B.w, 0, -1, &B.cfg) < 0)
        return 1;
    B.lat = calloc((size_t)n, sizeof *B.lat);
    pthread_mutex_init(&B.mu, NULL);
    pthread_cond_init(&B.cv, NULL);
    pthread_t th[64];
    for (int i = 0; i < nthreads && i < 64; i++)
        pthread_create(&th[i], NULL, helper, NULL);
    for (size_t i = 0; i < sizeof B.aio / sizeof B.aio[0]; i++)
        B.aio[i].fd = -1;
    hp_timer_init(&B.atimer, ares_tick);
    ares_library_init(ARES_LIB_INIT_ALL);
    struct ares_options ao = {.sock_state_cb = ares_sock};
    if (ares_init_options(&B.ch, &ao, ARES_OPT_SOCK_STATE_CB) != ARES_SUCCESS)
        return 1;

    printf("median, p99: latency from request to callback on the loop (us)\n"
           "cpu: process CPU per resolution, helper threads included (us)\n"
           "loop cpu: CPU of the loop's own thread per resolution (us)\n\n");
    printf("%-8s %-22s %5s %6s %10s %10s %10s %10s %8s\n", "way", "name", "conc", "n", "median",
           "p99", "cpu", "loop cpu", "failed");
    for (int i = optind; i < argc; i++) {
        for (int c = 1; c; c = c == 1 && conc > 1 ? conc : 0) {
            run("threads", gai_submit, argv[i], n, c);
            run("c-ares", ares_submit, argv[i], n, c);
        }
    }
    printf("\nwhat each returned (AF_UNSPEC, SOCK_STREAM, ADDRCONFIG; first 4 addresses)\n\n");
    printf("%-8s %-22s %-6s %s\n", "way", "name", "status", "addresses or error");
    for (int i = optind; i < argc; i++) {
        show("threads", gai_submit, argv[i]);
        show("c-ares", ares_submit, argv[i]);
    }

    pthread_mutex_lock(&B.mu);
    B.quit = true;
    pthread_cond_broadcast(&B.cv);
    pthread_mutex_unlock(&B.mu);
    for (int i = 0; i < nthreads && i < 64; i++)
        pthread_join(th[i], NULL);
    ares_destroy(B.ch);
    ares_library_cleanup();
    hp_worker_destroy(&B.w);
    free(B.lat);
    return 0;
}
