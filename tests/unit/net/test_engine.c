/*
 * test_engine.c - unit tests for src/net/engine.c: the CPUs the process
 * may use, hp_engine_init's argument errors and out-of-memory sweep,
 * protocols registered on every worker (worker_init each, worker_fini at
 * destroy, a failing worker_init), hp_engine_listen (an address held by
 * another socket, one shared socket without reuseport, several
 * listeners), and running engines: connections served by the worker
 * threads pinned to their CPUs, graceful shutdown waiting for a request
 * in progress, stop_now, and destroy closing every descriptor.
 *
 * Unlike the other net tests the workers run on their own threads here:
 * the test thread is a plain blocking client, waits on the engine's
 * eventfd for exit reports, and never asserts anything about how fast a
 * thing happens, only that it does within a generous time. Each test
 * counts the process' open descriptors (/proc/self/fd) before and after;
 * ASan's leak check covers memory.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/alloc.h"
#include "net/engine_int.h"
#include "hotpath/log.h"

/* Everything a test waits for is given this long; none takes near it. */
#define WAIT_MS 10000

static struct {
    int inits, finis;
    uint32_t init_ids[16];   /* worker ids worker_init ran for, in order */
    void *fini_data[16];
    int fail_init_id;        /* worker_init fails for this worker id; -1: none */
    int partial;             /* (atomic) a worker holds an unfinished line */
    int fds_before;
    hp_worker_config_t cfg;
} T;

static int marker;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* ---- the protocol: each line is answered "<worker id>:<pinned>:<line>",
 * pinned being 1 when the thread may run on its worker's CPU alone ---- */
static void line_on_data(hp_conn_t *c)
{
    while (!(c->flags & HP_CONN_F_CLOSED)) {
        char *d = hp_conn_data(c);
        uint32_t len = hp_conn_data_len(c);
        char *nl = memchr(d, '\n', len);
        if (!nl) {
            /* BUSY keeps a half-read line from counting as idle. */
            hp_conn_set_busy(c, len > 0);
            if (len > 0)
                __atomic_store_n(&T.partial, 1, __ATOMIC_RELEASE);
            return;
        }
        uint32_t n = (uint32_t)(nl - d);
        cpu_set_t set;
        int pinned = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1 &&
                     c->worker->cpu >= 0 && CPU_ISSET(c->worker->cpu, &set);
        char out[160];
        int m = snprintf(out, sizeof out, "%u:%d:%.*s\n", c->worker->id, pinned,
                         (int)(n < 100 ? n : 100), d);
        hp_conn_consume(c, n + 1);
        hp_conn_set_busy(c, false);
        if (hp_conn_write(c, out, (uint32_t)m) < 0)
            hp_conn_close(c);
    }
}

static int line_init(hp_worker_t *w, void *arg, void **data)
{
    if ((int)w->id == T.fail_init_id)
        return -EIO;
    T.init_ids[T.inits++] = w->id;
    *data = arg;
    return 0;
}

static void line_fini(hp_worker_t *w, void *data)
{
    (void)w;
    T.fini_data[T.finis++] = data;
}

static const hp_proto_t proto_line = {
    .name = "line",
    .on_data = line_on_data,
    .worker_init = line_init,
    .worker_fini = line_fini,
};

/* The same without per-worker data. */
static const hp_proto_t proto_plain = {
    .name = "plain",
    .on_data = line_on_data,
};

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    T.fail_init_id = -1;
    T.cfg = HP_WORKER_CONFIG_DEFAULT;
    T.cfg.drain_timeout_ms = 60000; /* a drain that ends by timing out fails the test */
    T.fds_before = count_fds();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hp_alloc_fail_after(0, 0);
    assert_int_equal(count_fds(), T.fds_before);
    return 0;
}

/* A free loopback port (bind port 0, read it, let it go). */
static void free_addr(hp_listener_addr_t *la)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    char text[32];
    snprintf(text, sizeof text, "127.0.0.1:%u", ntohs(a.sin_port));
    assert_int_equal(hp_listener_addr_parse(text, la), 0);
}

/* A blocking client connected to la, reads giving up after WAIT_MS. */
static int dial(const hp_listener_addr_t *la)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (connect(fd, (const struct sockaddr *)&la->ss, la->len) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    struct timeval tv = {.tv_sec = WAIT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Reads one line into out (without its newline). */
static void read_line(int fd, char *out, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, out + n, 1);
        if (r <= 0)
            fail_msg("no line: read returned %zd (%s)", r, r < 0 ? strerror(errno) : "EOF");
        if (out[n] == '\n')
            break;
        n++;
    }
    out[n] = '\0';
}

/* Sends a line and returns the id of the worker that answered it. */
static uint32_t ask(int fd, const char *line)
{
    char req[128], got[160], want[160];
    int n = snprintf(req, sizeof req, "%s\n", line);
    assert_int_equal(write(fd, req, (size_t)n), n);
    read_line(fd, got, sizeof got);
    unsigned id;
    int pinned;
    assert_int_equal(sscanf(got, "%u:%d:", &id, &pinned), 2);
    assert_int_equal(pinned, 1);
    snprintf(want, sizeof want, "%u:1:%s", id, line);
    assert_string_equal(got, want);
    return id;
}

/* True once the peer has closed fd (EOF or reset). */
static bool closed_by_peer(int fd)
{
    char c;
    ssize_t r = read(fd, &c, 1);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

/* Waits on the engine's eventfd until every worker has reported exit. */
static void reap_all(hp_engine_t *e)
{
    uint64_t deadline = mono_ms() + WAIT_MS;
    while (!hp_engine_reap(e)) {
        assert_true(mono_ms() < deadline);
        struct pollfd p = {.fd = e->wake_fd, .events = POLLIN};
        poll(&p, 1, 100);
    }
}

/* ---- hp_engine_cpus ---- */

static void test_cpus(void **state)
{
    (void)state;
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    uint32_t n = hp_engine_cpus(NULL, 0);
    assert_int_equal(n, (uint32_t)CPU_COUNT(&set));
    int cpus[CPU_SETSIZE];
    assert_int_equal(hp_engine_cpus(cpus, CPU_SETSIZE), n);
    for (uint32_t i = 0; i < n; i++) {
        assert_true(CPU_ISSET(cpus[i], &set));
        if (i > 0)
            assert_true(cpus[i] > cpus[i - 1]); /* ascending, each once */
    }
    /* A short array gets the first ids; the count is still all of them. */
    int one[2] = {-7, -7};
    assert_int_equal(hp_engine_cpus(one, 1), n);
    assert_int_equal(one[0], cpus[0]);
    assert_int_equal(one[1], -7);

    /* It follows the affinity of the calling thread: restricted to the
     * last CPU, exactly that one. */
    cpu_set_t only;
    CPU_ZERO(&only);
    CPU_SET(cpus[n - 1], &only);
    assert_int_equal(sched_setaffinity(0, sizeof only, &only), 0);
    int got = -1;
    uint32_t n1 = hp_engine_cpus(&got, 1);
    assert_int_equal(sched_setaffinity(0, sizeof set, &set), 0);
    assert_int_equal(n1, 1);
    assert_int_equal(got, cpus[n - 1]);
}

/* ---- hp_engine_init ---- */

static void test_init_zero_workers(void **state)
{
    (void)state;
    hp_engine_t e;
    memset(&e, 0xa5, sizeof e);
    assert_int_equal(hp_engine_init(&e, 0, &T.cfg), -EINVAL);
    assert_null(e.workers);
    assert_int_equal(e.nworkers, 0);
    assert_int_equal(e.wake_fd, -1);
}

/* Every allocation of an init fails in turn (alone, then with all the
 * ones after it): each failure is -ENOMEM with nothing left open, until
 * the sweep passes the last allocation and init works. hp_alloc_count
 * only grows, so it shows how far each init got; what a failed init
 * leaves allocated is LeakSanitizer's to find (the C allocator's own
 * figures count its per-thread caches as in use, so they cannot). */
static void test_init_oom_sweep(void **state)
{
    (void)state;
    hp_engine_t e;
    for (int sticky = 0; sticky <= 1; sticky++) {
        uint64_t n;
        for (n = 1; n < 10000; n++) {
            uint64_t a0 = hp_alloc_count();
            hp_alloc_fail_after(n, sticky);
            int r = hp_engine_init(&e, 3, &T.cfg);
            hp_alloc_fail_after(0, 0);
            if (r == 0)
                break;
            assert_int_equal(r, -ENOMEM);
            assert_int_equal(hp_alloc_count() - a0, n - 1); /* the n-1 before the failure */
            assert_int_equal(count_fds(), T.fds_before);
            assert_null(e.workers);
            assert_int_equal(e.wake_fd, -1);
        }
        assert_true(n > 3); /* the engine and each worker allocate */
        assert_int_equal(e.nworkers, 3);
        hp_engine_destroy(&e);
        assert_int_equal(count_fds(), T.fds_before);
    }
}

/* ---- protocols ---- */

static void test_add_proto_every_worker(void **state)
{
    (void)state;
    hp_engine_t e;
    assert_int_equal(hp_engine_init(&e, 3, &T.cfg), 0);
    assert_int_equal(hp_engine_add_proto(&e, &proto_line, &marker), 0);
    assert_int_equal(T.inits, 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(T.init_ids[i], i);
        assert_ptr_equal(hp_worker_proto_data(&e.workers[i], &proto_line), &marker);
    }
    assert_int_equal(hp_engine_add_proto(&e, &proto_line, &marker), -EEXIST);
    assert_int_equal(T.inits, 3);
    assert_int_equal(hp_engine_add_proto(&e, &proto_plain, NULL), 0);
    assert_int_equal(T.finis, 0);
    hp_engine_destroy(&e);
    assert_int_equal(T.finis, 3);
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(T.fini_data[i], &marker);
    assert_null(e.workers);
    assert_int_equal(e.wake_fd, -1);
}

/* worker_init failing on the second worker: the error comes back, and the
 * worker that had it set up keeps it until destroy runs its worker_fini. */
static void test_add_proto_init_fails(void **state)
{
    (void)state;
    hp_engine_t e;
    T.fail_init_id = 1;
    assert_int_equal(hp_engine_init(&e, 3, &T.cfg), 0);
    assert_int_equal(hp_engine_add_proto(&e, &proto_line, &marker), -EIO);
    assert_int_equal(T.inits, 1);
    assert_ptr_equal(hp_worker_proto_data(&e.workers[0], &proto_line), &marker);
    assert_null(hp_worker_proto_data(&e.workers[1], &proto_line));
    hp_engine_destroy(&e);
    assert_int_equal(T.finis, 1);
}

/* ---- hp_engine_listen ---- */

static void test_listen_address_in_use(void **state)
{
    (void)state;
    hp_listener_addr_t la;
    free_addr(&la);
    hp_engine_t e;
    assert_int_equal(hp_engine_init(&e, 2, &T.cfg), 0);
    /* A listening socket of somebody else's, first a plain one, then one
     * with SO_REUSEPORT (which our own SO_REUSEPORT sockets could join
     * silently without the probe). */
    for (int reuse = 0; reuse <= 1; reuse++) {
        int other = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (reuse)
            setsockopt(other, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        assert_int_equal(bind(other, (const struct sockaddr *)&la.ss, la.len), 0);
        assert_int_equal(listen(other, 4), 0);
        int fds = count_fds();
        assert_int_equal(hp_engine_listen(&e, &la, 16, &proto_line), -EADDRINUSE);
        assert_int_equal(count_fds(), fds);
        for (uint32_t i = 0; i < 2; i++)
            assert_int_equal(e.workers[i].nlisteners, 0);
        close(other);
    }
    /* A protocol with per-worker data must be registered first. */
    assert_int_equal(hp_engine_listen(&e, &la, 16, &proto_line), -ENOENT);
    hp_engine_destroy(&e);
}

static ino_t sock_ino(int fd)
{
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    return sb.st_ino;
}

static uint16_t sock_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* With reuseport each worker has a socket of its own; without it they
 * share one socket, each through a descriptor of its own. */
static void test_listen_shared_or_not(void **state)
{
    (void)state;
    for (int reuse = 0; reuse <= 1; reuse++) {
        T.cfg.reuseport = reuse;
        hp_listener_addr_t la;
        free_addr(&la);
        hp_engine_t e;
        assert_int_equal(hp_engine_init(&e, 3, &T.cfg), 0);
        assert_int_equal(hp_engine_listen(&e, &la, 16, &proto_plain), 0);
        uint16_t port = ntohs(((struct sockaddr_in *)&la.ss)->sin_port);
        for (uint32_t i = 0; i < 3; i++) {
            assert_int_equal(e.workers[i].nlisteners, 1);
            int fd = e.workers[i].listeners[0].io.fd;
            assert_int_equal(sock_port(fd), port);
            assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
            for (uint32_t j = 0; j < i; j++) {
                int other = e.workers[j].listeners[0].io.fd;
                assert_int_not_equal(fd, other);
                if (reuse)
                    assert_int_not_equal(sock_ino(fd), sock_ino(other));
                else
                    assert_int_equal(sock_ino(fd), sock_ino(other));
            }
        }
        hp_engine_destroy(&e);
        assert_int_equal(count_fds(), T.fds_before);
    }
}

/* ---- running ---- */

/* Two listeners with two protocols, served by the worker threads (each
 * pinned to its CPU), then a graceful shutdown. */
static void test_serve_several_listeners(void **state)
{
    (void)state;
    hp_engine_t e;
    assert_int_equal(hp_engine_init(&e, 2, &T.cfg), 0);
    assert_int_equal(hp_engine_add_proto(&e, &proto_line, &marker), 0);
    hp_listener_addr_t la[2];
    free_addr(&la[0]);
    free_addr(&la[1]);
    assert_int_equal(hp_engine_listen(&e, &la[0], 64, &proto_line), 0);
    assert_int_equal(hp_engine_listen(&e, &la[1], 64, &proto_plain), 0);
    for (uint32_t i = 0; i < 2; i++)
        assert_int_equal(e.workers[i].nlisteners, 2);
    assert_int_equal(hp_engine_start(&e), 0);
    assert_int_equal(e.running, 2);
    assert_false(hp_engine_reap(&e));

    enum { CLIENTS = 8 };
    int fd[2][CLIENTS];
    for (int a = 0; a < 2; a++)
        for (int i = 0; i < CLIENTS; i++) {
            fd[a][i] = dial(&la[a]);
            assert_true(fd[a][i] >= 0);
        }
    uint64_t accepted = 0;
    for (int round = 0; round < 3; round++)
        for (int a = 0; a < 2; a++)
            for (int i = 0; i < CLIENTS; i++) {
                char line[48];
                snprintf(line, sizeof line, "a%d-c%d-r%d", a, i, round);
                assert_true(ask(fd[a][i], line) < 2);
            }
    for (uint32_t i = 0; i < 2; i++)
        accepted += hp_worker_stat(&e.workers[i].stats.accepted);
    assert_int_equal(accepted, 2 * CLIENTS);

    hp_engine_shutdown(&e);
    reap_all(&e);
    for (int a = 0; a < 2; a++)
        for (int i = 0; i < CLIENTS; i++) {
            assert_true(closed_by_peer(fd[a][i])); /* idle: closed by the drain */
            close(fd[a][i]);
        }
    hp_engine_destroy(&e);
    assert_int_equal(T.finis, 2);
}

/* Without reuseport the one shared socket serves every client. */
static void test_serve_shared_socket(void **state)
{
    (void)state;
    T.cfg.reuseport = false;
    hp_engine_t e;
    hp_listener_addr_t la;
    free_addr(&la);
    assert_int_equal(hp_engine_init(&e, 2, &T.cfg), 0);
    assert_int_equal(hp_engine_listen(&e, &la, 64, &proto_plain), 0);
    assert_int_equal(hp_engine_start(&e), 0);
    for (int i = 0; i < 20; i++) {
        int fd = dial(&la);
        assert_true(fd >= 0);
        assert_true(ask(fd, "hello") < 2);
        close(fd);
    }
    hp_engine_shutdown(&e);
    reap_all(&e);
    hp_engine_destroy(&e);
}

/* Waits until a connect to la is refused (every listener closed). */
static void wait_refused(const hp_listener_addr_t *la)
{
    uint64_t deadline = mono_ms() + WAIT_MS;
    for (;;) {
        int fd = dial(la);
        if (fd == -ECONNREFUSED)
            return;
        if (fd >= 0)
            close(fd);
        assert_true(mono_ms() < deadline);
        usleep(5000);
    }
}

/* A graceful shutdown stops accepting, lets the request in progress
 * finish, closes its connection once idle, and only then do the workers
 * exit. */
static void test_graceful_shutdown(void **state)
{
    (void)state;
    hp_engine_t e;
    hp_listener_addr_t la;
    free_addr(&la);
    assert_int_equal(hp_engine_init(&e, 2, &T.cfg), 0);
    assert_int_equal(hp_engine_listen(&e, &la, 64, &proto_plain), 0);
    assert_int_equal(hp_engine_start(&e), 0);
    int busy = dial(&la), idle = dial(&la);
    assert_true(busy >= 0 && idle >= 0);
    ask(busy, "first");
    ask(idle, "first");
    assert_int_equal(write(busy, "half", 4), 4);
    uint64_t deadline = mono_ms() + WAIT_MS;
    while (!__atomic_load_n(&T.partial, __ATOMIC_ACQUIRE)) {
        assert_true(mono_ms() < deadline);
        usleep(1000);
    }

    hp_engine_shutdown(&e);
    wait_refused(&la);
    assert_true(closed_by_peer(idle));
    /* The half-read request keeps its worker running. */
    assert_false(hp_engine_reap(&e));
    usleep(50 * 1000);
    assert_false(hp_engine_reap(&e));
    assert_int_equal(write(busy, "-done\n", 6), 6);
    char got[64];
    read_line(busy, got, sizeof got);
    assert_non_null(strstr(got, ":half-done"));
    assert_true(closed_by_peer(busy));
    reap_all(&e);
    close(busy);
    close(idle);
    hp_engine_destroy(&e);
}

/* stop_now closes every connection, busy or not, and the workers exit. */
static void test_stop_now(void **state)
{
    (void)state;
    hp_engine_t e;
    hp_listener_addr_t la;
    free_addr(&la);
    assert_int_equal(hp_engine_init(&e, 2, &T.cfg), 0);
    assert_int_equal(hp_engine_add_proto(&e, &proto_line, &marker), 0);
    assert_int_equal(hp_engine_listen(&e, &la, 64, &proto_line), 0);
    assert_int_equal(hp_engine_start(&e), 0);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = dial(&la);
        assert_true(fds[i] >= 0);
        ask(fds[i], "x");
    }
    assert_int_equal(write(fds[0], "unfinished", 10), 10);
    uint64_t deadline = mono_ms() + WAIT_MS;
    while (!__atomic_load_n(&T.partial, __ATOMIC_ACQUIRE)) {
        assert_true(mono_ms() < deadline);
        usleep(1000);
    }
    hp_engine_stop_now(&e);
    reap_all(&e);
    for (int i = 0; i < 4; i++) {
        assert_true(closed_by_peer(fds[i]));
        close(fds[i]);
    }
    hp_engine_destroy(&e);
    assert_int_equal(T.finis, 2);
}

/* Destroy right after start, without shutdown: the threads are stopped
 * by stop_now first, as an embedder on its error path would. Nothing is
 * left open either way. */
static void test_destroy_closes_everything(void **state)
{
    (void)state;
    hp_engine_t e;
    hp_listener_addr_t la[3];
    assert_int_equal(hp_engine_init(&e, 2, &T.cfg), 0);
    assert_int_equal(hp_engine_add_proto(&e, &proto_line, &marker), 0);
    for (int i = 0; i < 3; i++) {
        free_addr(&la[i]);
        assert_int_equal(hp_engine_listen(&e, &la[i], 16, i ? &proto_plain : &proto_line), 0);
    }
    /* The engine's eventfd, each worker's loop and eventfd, and 2 x 3
     * listening sockets. */
    assert_true(count_fds() >= T.fds_before + 1 + 2 * 2 + 6);
    assert_int_equal(hp_engine_start(&e), 0);
    int fd = dial(&la[2]);
    assert_true(fd >= 0);
    ask(fd, "y");
    hp_engine_stop_now(&e);
    hp_engine_destroy(&e); /* joins the threads */
    assert_true(closed_by_peer(fd));
    close(fd);
    assert_int_equal(count_fds(), T.fds_before);
    assert_int_equal(T.finis, 2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_cpus),
        T_(test_init_zero_workers),
        T_(test_init_oom_sweep),
        T_(test_add_proto_every_worker),
        T_(test_add_proto_init_fails),
        T_(test_listen_address_in_use),
        T_(test_listen_shared_or_not),
        T_(test_serve_several_listeners),
        T_(test_serve_shared_socket),
        T_(test_graceful_shutdown),
        T_(test_stop_now),
        T_(test_destroy_closes_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
