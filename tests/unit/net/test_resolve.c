/*
 * test_resolve.c - unit tests for src/net/resolve.c and the worker's
 * outbound connections by host name (hp_worker_connect_host in
 * src/net/worker.c): real lookups of names that need no network
 * (localhost from /etc/hosts, numeric addresses), the error mapping,
 * connecting by name to a loopback listener, trying the next address when
 * one is refused, the connect timeout covering the lookup, closing while
 * the lookup runs or waits, the bounded queue, the engine's shared
 * resolver, and an out-of-memory sweep.
 *
 * Names that would need a DNS server (a nonexistent name, a lookup that
 * hangs) come from a substitute lookup (hp_resolve_config_t.lookup), so
 * no test sends a packet beyond loopback or depends on a server's speed:
 *   *.invalid   EAI_NONAME at once (no-hosts.localhost. too: a host
 *               without /etc/hosts)
 *   again.test  EAI_AGAIN at once
 *   slow.test   blocks until the test releases it, then is localhost
 *   two.test    127.0.0.2 (nothing listens there) then 127.0.0.1
 *   one.test    127.0.0.2 only
 * Everything else goes to the real getaddrinfo.
 *
 * The worker runs on the test's thread (net_harness.h); the resolver's
 * helpers are real threads.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/alloc.h"
#include "net/conn_int.h"
#include "net/engine_int.h"
#include "hotpath/log.h"
#include "hotpath/resolve.h"
#include "net/worker_int.h"

#include "net_harness.h"

/* ---- the substitute lookup ---- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered;  /* slow.test lookups that have started */
    bool release; /* slow.test lookups may finish */
} F = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false};

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

static int numeric(const char *addr, struct addrinfo **res)
{
    struct addrinfo h = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                         .ai_flags = AI_NUMERICHOST};
    return getaddrinfo(addr, NULL, &h, res);
}

static int fake_lookup(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    if (ends_with(node, ".invalid") || strcmp(node, "no-hosts.localhost.") == 0)
        return EAI_NONAME;
    if (strcmp(node, "again.test") == 0)
        return EAI_AGAIN;
    if (strcmp(node, "slow.test") == 0) {
        pthread_mutex_lock(&F.mu);
        F.entered++;
        pthread_cond_broadcast(&F.cv);
        while (!F.release)
            pthread_cond_wait(&F.cv, &F.mu);
        pthread_mutex_unlock(&F.mu);
        return numeric("127.0.0.1", res);
    }
    if (strcmp(node, "one.test") == 0)
        return numeric("127.0.0.2", res);
    if (strcmp(node, "two.test") == 0) {
        /* glibc's freeaddrinfo frees a list node by node, so two answers
         * chained are freed as one. */
        struct addrinfo *a, *b;
        if (numeric("127.0.0.2", &a) != 0)
            return EAI_FAIL;
        if (numeric("127.0.0.1", &b) != 0) {
            freeaddrinfo(a);
            return EAI_FAIL;
        }
        a->ai_next = b;
        *res = a;
        return 0;
    }
    return getaddrinfo(node, service, hints, res);
}

static void release_slow(void)
{
    pthread_mutex_lock(&F.mu);
    F.release = true;
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.mu);
}

/* Waits (stepping the worker) until n slow lookups have started. */
static void wait_entered(int n)
{
    uint64_t dl = mono_ms() + 5000;
    for (;;) {
        pthread_mutex_lock(&F.mu);
        int e = F.entered;
        pthread_mutex_unlock(&F.mu);
        if (e >= n || mono_ms() > dl)
            break;
        step(1);
    }
    pthread_mutex_lock(&F.mu);
    assert_true(F.entered >= n);
    pthread_mutex_unlock(&F.mu);
}

/* ---- what the callbacks saw ---- */

static struct {
    hp_resolve_t *r;
    int answers, err;
    uint32_t n;
    hp_resolve_addr_t addrs[HP_RESOLVE_MAX_ADDRS];
    int opened, conn_errors, conn_err, closed;
    void *open_udata, *error_udata, *close_udata;
    int marker;
} T;

static void answer_cb(void *arg, int err, const hp_resolve_addr_t *addrs, uint32_t n)
{
    assert_ptr_equal(arg, &T.marker);
    T.answers++;
    T.err = err;
    T.n = n;
    if (n)
        memcpy(T.addrs, addrs, n * sizeof *addrs);
}

/* The listener's accepted connections run the same protocol with no
 * udata; only the outbound ones (udata &T.marker) are counted. */
static void p_on_open(hp_conn_t *c)
{
    if (c->udata != &T.marker)
        return;
    T.opened++;
    T.open_udata = c->udata;
}

static void p_on_connect_error(hp_conn_t *c, int err)
{
    T.conn_errors++;
    T.conn_err = err;
    T.error_udata = c->udata;
}

static void p_on_close(hp_conn_t *c)
{
    if (c->udata != &T.marker)
        return;
    T.closed++;
    T.close_udata = c->udata;
}

static void p_on_data(hp_conn_t *c)
{
    hp_conn_consume(c, hp_conn_data_len(c));
}

static const hp_proto_t proto = {
    .name = "t",
    .on_open = p_on_open,
    .on_connect_error = p_on_connect_error,
    .on_data = p_on_data,
    .on_close = p_on_close,
    .state_size = 16,
    .cstate_size = 32,
};

/* The worker with a listener on 127.0.0.1 (H.addr) and a resolver with
 * the substitute lookup and cfg's sizes. */
static void start(uint32_t threads, uint32_t queue)
{
    hp_resolve_config_t rc = {.threads = threads, .queue = queue, .lookup = fake_lookup};
    assert_int_equal(hp_resolve_new(&T.r, &rc), 0);
    h_start_with(&proto, 0);
    H.w.resolver = T.r;
}

static uint16_t port(void)
{
    return ntohs(H.addr.sin_port);
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    F.entered = 0;
    F.release = false;
    h_reset();
    return 0;
}

/* Lookups still running are let go and answered before the worker and
 * then the resolver go, so nothing is left allocated. */
static int teardown(void **state)
{
    (void)state;
    release_slow();
    if (T.r && H.started) {
        PUMP_UNTIL(hp_resolve_live(T.r) == 0, 5000);
        assert_int_equal(hp_resolve_live(T.r), 0);
    }
    h_teardown();
    hp_resolve_destroy(T.r);
    T.r = NULL;
    return 0;
}

/* ---- the resolver ---- */

static void resolve(const char *host, int family)
{
    T.answers = 0;
    hp_resolve_req_t *q = NULL;
    assert_int_equal(hp_resolve_start(T.r, &H.w, host, family, answer_cb, &T.marker, &q), 0);
    assert_non_null(q);
    assert_int_equal(T.answers, 0); /* never before start returns */
    PUMP_UNTIL(T.answers == 1, 5000);
    assert_int_equal(T.answers, 1);
}

static bool is_loopback(const hp_resolve_addr_t *a)
{
    if (a->sa.sa_family == AF_INET)
        return a->len == sizeof a->in && ntohl(a->in.sin_addr.s_addr) >> 24 == 127;
    return a->sa.sa_family == AF_INET6 && a->len == sizeof a->in6 &&
           IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr);
}

/* Whether /etc/hosts gives localhost an IPv6 address: only then can its
 * IPv6 lookup be answered without asking a DNS server. */
static bool hosts_has_v6_localhost(void)
{
    FILE *f = fopen("/etc/hosts", "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        char *save, *addr = strtok_r(line, " \t\n", &save);
        if (!addr || addr[0] == '#' || !strchr(addr, ':'))
            continue;
        for (char *name; (name = strtok_r(NULL, " \t\n", &save)) && name[0] != '#';)
            found |= strcmp(name, "localhost") == 0;
    }
    fclose(f);
    return found;
}

/* Where the host cannot resolve a localhost name (no /etc/hosts), the
 * loopback addresses answer (RFC 6761 6.3); other failing names fail. */
static void test_localhost_names_fall_back_to_loopback(void **state)
{
    (void)state;
    start(1, 0);
    resolve("no-hosts.localhost.", AF_INET);
    assert_int_equal(T.err, 0);
    assert_int_equal(T.n, 1);
    assert_int_equal(T.addrs[0].sa.sa_family, AF_INET);
    assert_int_equal(ntohl(T.addrs[0].in.sin_addr.s_addr), INADDR_LOOPBACK);
    resolve("no-hosts.localhost.", AF_INET6);
    assert_int_equal(T.err, 0);
    assert_int_equal(T.n, 1);
    assert_true(IN6_IS_ADDR_LOOPBACK(&T.addrs[0].in6.sin6_addr));
    resolve("no-hosts.localhost.", AF_UNSPEC);
    assert_int_equal(T.err, 0);
    assert_int_equal(T.n, 2);
    assert_int_equal(T.addrs[0].sa.sa_family, AF_INET);
    assert_int_equal(T.addrs[1].sa.sa_family, AF_INET6);
    resolve("localhost.invalid", AF_INET); /* "localhost" only as the last label */
    assert_int_equal(T.err, -ENXIO);
}

static void test_resolve_localhost(void **state)
{
    (void)state;
    start(0, 0);
    resolve("localhost", AF_INET);
    assert_int_equal(T.err, 0);
    assert_true(T.n >= 1);
    assert_int_equal(T.addrs[0].sa.sa_family, AF_INET);
    assert_int_equal(ntohl(T.addrs[0].in.sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(T.addrs[0].in.sin_port, 0);
    resolve("localhost", AF_UNSPEC);
    assert_int_equal(T.err, 0);
    for (uint32_t i = 0; i < T.n; i++)
        assert_true(is_loopback(&T.addrs[i]));
    if (hosts_has_v6_localhost()) {
        resolve("localhost", AF_INET6);
        assert_int_equal(T.err, 0);
        assert_int_equal(T.addrs[0].sa.sa_family, AF_INET6);
        assert_true(IN6_IS_ADDR_LOOPBACK(&T.addrs[0].in6.sin6_addr));
    } else {
        print_message("/etc/hosts has no IPv6 localhost: its IPv6 lookup is not tried\n");
    }
    /* Helpers start on demand, one at a time. */
    assert_int_equal(hp_resolve_threads(T.r), 1);
}

static void test_resolve_numeric(void **state)
{
    (void)state;
    start(0, 0);
    resolve("127.0.0.1", AF_UNSPEC);
    assert_int_equal(T.err, 0);
    assert_int_equal(T.n, 1);
    assert_int_equal(ntohl(T.addrs[0].in.sin_addr.s_addr), INADDR_LOOPBACK);
    resolve("::1", AF_INET6);
    if (T.err == 0) {
        assert_int_equal(T.addrs[0].sa.sa_family, AF_INET6);
        assert_true(IN6_IS_ADDR_LOOPBACK(&T.addrs[0].in6.sin6_addr));
    } else {
        assert_int_equal(T.err, -ENXIO); /* AI_ADDRCONFIG on a host without IPv6 */
    }
    /* Bad names are refused at once. */
    char longname[HP_RESOLVE_MAX_HOST + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(hp_resolve_start(T.r, &H.w, "", AF_UNSPEC, answer_cb, &T.marker, NULL),
                     -EINVAL);
    assert_int_equal(hp_resolve_start(T.r, &H.w, longname, AF_UNSPEC, answer_cb, &T.marker, NULL),
                     -EINVAL);
}

static void test_resolve_errors(void **state)
{
    (void)state;
    start(0, 0);
    resolve("no-such-host.invalid", AF_UNSPEC);
    assert_int_equal(T.err, -ENXIO);
    assert_int_equal(T.n, 0);
    resolve("again.test", AF_UNSPEC);
    assert_int_equal(T.err, -EAGAIN);
    /* the documented mapping */
    assert_int_equal(hp_resolve_error(EAI_NONAME, 0), -ENXIO);
    assert_int_equal(hp_resolve_error(EAI_NODATA, 0), -ENXIO);
    assert_int_equal(hp_resolve_error(EAI_ADDRFAMILY, 0), -ENXIO);
    assert_int_equal(hp_resolve_error(EAI_AGAIN, 0), -EAGAIN);
    assert_int_equal(hp_resolve_error(EAI_FAIL, 0), -EIO);
    assert_int_equal(hp_resolve_error(EAI_MEMORY, 0), -ENOMEM);
    assert_int_equal(hp_resolve_error(EAI_FAMILY, 0), -EAFNOSUPPORT);
    assert_int_equal(hp_resolve_error(EAI_SYSTEM, EMFILE), -EMFILE);
    assert_int_equal(hp_resolve_error(EAI_SYSTEM, 0), -EIO);
    assert_int_equal(hp_resolve_error(EAI_SERVICE, 0), -EINVAL);
}

/* A request cancelled while it waits is freed at once; one cancelled
 * during its lookup is freed when the answer comes; neither calls back. */
static void test_resolve_cancel(void **state)
{
    (void)state;
    start(1, 4);
    hp_resolve_req_t *slow, *waiting;
    assert_int_equal(hp_resolve_start(T.r, &H.w, "slow.test", AF_UNSPEC, answer_cb, &T.marker,
                                      &slow), 0);
    wait_entered(1);
    assert_int_equal(hp_resolve_start(T.r, &H.w, "localhost", AF_UNSPEC, answer_cb, &T.marker,
                                      &waiting), 0);
    assert_int_equal(hp_resolve_live(T.r), 2);
    hp_resolve_cancel(waiting);
    assert_int_equal(hp_resolve_live(T.r), 1);
    hp_resolve_cancel(slow);
    release_slow();
    PUMP_UNTIL(hp_resolve_live(T.r) == 0, 5000);
    assert_int_equal(hp_resolve_live(T.r), 0);
    pump_for(10);
    assert_int_equal(T.answers, 0);
}

/* One helper, a queue of 4: one lookup runs, four wait, the next is
 * refused with -EBUSY, as is a connection by name (nothing left open);
 * once the lookup ends, all five are answered. */
static void test_queue_bounded(void **state)
{
    (void)state;
    start(1, 4);
    assert_int_equal(hp_resolve_start(T.r, &H.w, "slow.test", AF_UNSPEC, answer_cb, &T.marker,
                                      NULL), 0);
    wait_entered(1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(hp_resolve_start(T.r, &H.w, "localhost", AF_UNSPEC, answer_cb,
                                          &T.marker, NULL), 0);
    assert_int_equal(hp_resolve_start(T.r, &H.w, "localhost", AF_UNSPEC, answer_cb, &T.marker,
                                      NULL), -EBUSY);
    hp_conn_t *c = NULL;
    uint32_t open = H.w.nconns;
    assert_int_equal(hp_worker_connect_host(&H.w, "localhost", port(), &proto, &T.marker, NULL,
                                            &c), -EBUSY);
    assert_int_equal(H.w.nconns, open);
    assert_int_equal(T.closed, 0);
    assert_int_equal(hp_resolve_threads(T.r), 1);
    pump_for(20);
    assert_int_equal(T.answers, 0);
    release_slow();
    PUMP_UNTIL(T.answers == 5, 5000);
    assert_int_equal(T.answers, 5);
    assert_int_equal(hp_resolve_live(T.r), 0);
}

/* ---- connecting by name ---- */

static void test_connect_by_name(void **state)
{
    (void)state;
    start(0, 0);
    hp_conn_t *c = NULL;
    hp_connect_opts_t o = {.timeout_ms = 5000, .sock = {.nodelay = true}};
    assert_int_equal(hp_worker_connect_host(&H.w, "localhost", port(), &proto, &T.marker, &o, &c),
                     0);
    assert_non_null(c);
    assert_int_equal(T.opened + T.conn_errors, 0); /* never before it returns */
    PUMP_UNTIL(T.opened == 1, 5000);
    assert_int_equal(T.opened, 1);
    assert_int_equal(T.conn_errors, 0);
    assert_ptr_equal(c->proto, &proto);
    assert_ptr_equal(c->udata, &T.marker);
    assert_ptr_equal(T.open_udata, &T.marker);
    assert_non_null(c->cstate);
    assert_false(c->flags & HP_CONN_F_CONNECTING);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    assert_int_equal(getpeername(c->io.fd, (struct sockaddr *)&peer, &len), 0);
    assert_int_equal(peer.sin_port, H.addr.sin_port);
    /* Past the timeout it is still open: the timer went with the connect. */
    hp_conn_close(c);
    assert_int_equal(T.closed, 1);
    assert_ptr_equal(T.close_udata, &T.marker);
}

/* Numeric hosts need no resolver. */
static void test_connect_numeric_skips_resolver(void **state)
{
    (void)state;
    start(0, 0);
    H.w.resolver = NULL;
    hp_conn_t *c = NULL;
    char bracketed[] = "[::1]";
    assert_int_equal(hp_worker_connect_host(&H.w, "127.0.0.1", port(), &proto, &T.marker, NULL,
                                            &c), 0);
    PUMP_UNTIL(T.opened == 1, 5000);
    assert_int_equal(T.opened, 1);
    assert_ptr_equal(c->proto, &proto);
    hp_conn_close(c);
    /* IPv6 (bracketed as in a URL): nobody listens there, but it is
     * connected to, not looked up. */
    int r = hp_worker_connect_host(&H.w, bracketed, port(), &proto, &T.marker, NULL, &c);
    assert_int_not_equal(r, -EOPNOTSUPP);
    if (r == 0) {
        PUMP_UNTIL(T.conn_errors == 1, 5000);
        assert_int_equal(T.conn_errors, 1);
    }
    /* A name, though, needs one. */
    assert_int_equal(hp_worker_connect_host(&H.w, "localhost", port(), &proto, &T.marker, NULL,
                                            &c), -EOPNOTSUPP);
    assert_int_equal(hp_resolve_threads(T.r), 0);
}

static void test_connect_unknown_host(void **state)
{
    (void)state;
    start(0, 0);
    uint32_t open = H.w.nconns;
    hp_conn_t *c = NULL;
    assert_int_equal(hp_worker_connect_host(&H.w, "no-such-host.invalid", 80, &proto, &T.marker,
                                            NULL, &c), 0);
    assert_int_equal(H.w.nconns, open + 1); /* it exists at once */
    PUMP_UNTIL(T.conn_errors == 1, 5000);
    assert_int_equal(T.conn_errors, 1);
    assert_int_equal(T.conn_err, -ENXIO);
    assert_ptr_equal(T.error_udata, &T.marker);
    assert_int_equal(T.opened, 0);
    assert_int_equal(T.closed, 1);
    assert_int_equal(H.w.nconns, open);
    /* EAI_AGAIN the same way */
    assert_int_equal(hp_worker_connect_host(&H.w, "again.test", 80, &proto, &T.marker, NULL, &c),
                     0);
    PUMP_UNTIL(T.conn_errors == 2, 5000);
    assert_int_equal(T.conn_err, -EAGAIN);
    assert_int_equal(T.closed, 2);
}

/* The first address refuses: the next one is tried and connects. With
 * only the refusing one, the refusal is the error. */
static void test_connect_next_address(void **state)
{
    (void)state;
    start(0, 0);
    hp_conn_t *c = NULL;
    hp_connect_opts_t o = {.timeout_ms = 5000};
    assert_int_equal(hp_worker_connect_host(&H.w, "two.test", port(), &proto, &T.marker, &o, &c),
                     0);
    PUMP_UNTIL(T.opened == 1 || T.conn_errors, 5000);
    assert_int_equal(T.conn_errors, 0);
    assert_int_equal(T.opened, 1);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    assert_int_equal(getpeername(c->io.fd, (struct sockaddr *)&peer, &len), 0);
    assert_int_equal(ntohl(peer.sin_addr.s_addr), INADDR_LOOPBACK);
    hp_conn_close(c);
    assert_int_equal(hp_worker_connect_host(&H.w, "one.test", port(), &proto, &T.marker, &o, &c),
                     0);
    PUMP_UNTIL(T.conn_errors == 1, 5000);
    assert_int_equal(T.conn_errors, 1);
    assert_int_equal(T.conn_err, -ECONNREFUSED);
    assert_int_equal(T.closed, 2);
}

/* The connect timeout runs from the call: a lookup that does not answer
 * in time ends in -ETIMEDOUT, and its late answer reaches nobody. */
static void test_timeout_covers_lookup(void **state)
{
    (void)state;
    start(0, 0);
    uint32_t open = H.w.nconns;
    hp_conn_t *c = NULL;
    hp_connect_opts_t o = {.timeout_ms = 30};
    assert_int_equal(hp_worker_connect_host(&H.w, "slow.test", port(), &proto, &T.marker, &o, &c),
                     0);
    wait_entered(1);
    /* The worker's clock moves only when the test moves it. */
    tick(29);
    assert_int_equal(T.conn_errors, 0);
    tick(1);
    assert_int_equal(T.conn_errors, 1);
    assert_int_equal(T.conn_err, -ETIMEDOUT);
    assert_int_equal(T.closed, 1);
    assert_int_equal(H.w.nconns, open);
    assert_int_equal(hp_resolve_live(T.r), 1); /* the lookup still runs */
    release_slow();
    PUMP_UNTIL(hp_resolve_live(T.r) == 0, 5000);
    assert_int_equal(hp_resolve_live(T.r), 0);
    pump_for(10);
    assert_int_equal(T.opened, 0);
    assert_int_equal(T.conn_errors, 1);
    assert_int_equal(T.closed, 1);
}

/* Closing during the lookup, or while the lookup waits for a helper:
 * on_close runs with the caller's udata, nothing else ever does. */
static void test_close_while_resolving(void **state)
{
    (void)state;
    start(1, 4);
    uint32_t open = H.w.nconns;
    hp_conn_t *running = NULL, *waiting = NULL;
    assert_int_equal(hp_worker_connect_host(&H.w, "slow.test", port(), &proto, &T.marker, NULL,
                                            &running), 0);
    wait_entered(1);
    assert_int_equal(hp_worker_connect_host(&H.w, "localhost", port(), &proto, &T.marker, NULL,
                                            &waiting), 0);
    assert_int_equal(hp_resolve_live(T.r), 2);
    hp_conn_close(waiting);
    assert_int_equal(hp_resolve_live(T.r), 1); /* freed at once */
    hp_conn_close(running);
    assert_int_equal(T.closed, 2);
    assert_ptr_equal(T.close_udata, &T.marker);
    step(0);
    assert_int_equal(H.w.nconns, open);
    release_slow();
    PUMP_UNTIL(hp_resolve_live(T.r) == 0, 5000);
    assert_int_equal(hp_resolve_live(T.r), 0);
    pump_for(10);
    assert_int_equal(T.opened, 0);
    assert_int_equal(T.conn_errors, 0);
    assert_int_equal(T.closed, 2);
}

/* Many connections by name at once: each lookup waits its turn for one
 * of the two helpers, and every connection opens. */
static void test_many_concurrent(void **state)
{
    (void)state;
    enum { N = 60 };
    start(0, 0);
    hp_conn_t *c[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(hp_worker_connect_host(&H.w, "localhost", port(), &proto, &T.marker,
                                                NULL, &c[i]), 0);
    assert_true(hp_resolve_live(T.r) > 0);
    PUMP_UNTIL(T.opened == N || T.conn_errors, 10000);
    assert_int_equal(T.conn_errors, 0);
    assert_int_equal(T.opened, N);
    assert_true(hp_resolve_threads(T.r) <= HP_RESOLVE_THREADS);
    for (int i = 0; i < N; i++)
        hp_conn_close(c[i]);
    assert_int_equal(T.closed, N);
}

/* Every allocation of a resolver and of a connection by name fails in
 * turn: each failure is reported, leaves nothing open or allocated, and
 * the next try works. */
static void test_oom_sweep(void **state)
{
    (void)state;
    h_start_with(&proto, 0);
    uint64_t n;
    int r = -ENOMEM;
    for (n = 1; n < 100; n++) {
        hp_resolve_t *res = NULL;
        hp_conn_t *c = NULL;
        uint32_t open = H.w.nconns;
        int opened = T.opened, closed = T.closed;
        hp_alloc_fail_after(n, 0);
        r = hp_resolve_new(&res, &(hp_resolve_config_t){.lookup = fake_lookup});
        if (r == 0) {
            H.w.resolver = res;
            r = hp_worker_connect_host(&H.w, "localhost", port(), &proto, &T.marker, NULL, &c);
        }
        hp_alloc_fail_after(0, 0);
        if (r == 0) {
            PUMP_UNTIL(T.opened == opened + 1 || T.conn_errors, 5000);
            assert_int_equal(T.conn_errors, 0);
            assert_int_equal(T.opened, opened + 1);
            hp_conn_close(c);
            hp_resolve_destroy(res);
            H.w.resolver = NULL;
            break;
        }
        assert_true(r == -ENOMEM || r == -ENOBUFS);
        assert_int_equal(H.w.nconns, open);
        assert_int_equal(T.closed, closed);
        if (res)
            assert_int_equal(hp_resolve_live(res), 0);
        hp_resolve_destroy(res);
        H.w.resolver = NULL;
    }
    assert_int_equal(r, 0);
    assert_true(n > 2); /* the resolver, the dial state and the request were swept */
}

/* The engine makes one resolver for its workers; no helper runs until a
 * lookup, and destroying the engine stops what started. */
static void test_engine_shares_resolver(void **state)
{
    (void)state;
    hp_engine_t e;
    assert_int_equal(hp_engine_init(&e, 2, &H.cfg), 0);
    assert_non_null(e.resolver);
    assert_ptr_equal(e.workers[0].resolver, e.resolver);
    assert_ptr_equal(e.workers[1].resolver, e.resolver);
    assert_int_equal(hp_resolve_threads(e.resolver), 0);
    /* A lookup answered into a worker that never runs: the engine's
     * destroy drains it (hp_worker_destroy runs the call). */
    assert_int_equal(hp_resolve_start(e.resolver, &e.workers[1], "localhost", AF_UNSPEC,
                                      answer_cb, &T.marker, NULL), 0);
    assert_int_equal(hp_resolve_threads(e.resolver), 1);
    /* Its answer in the inbox first: a request still waiting when the
     * resolver goes is dropped, by design. */
    hp_mpsc_t *in = &e.workers[1].inbox;
    uint64_t dl = mono_ms() + 5000;
    while (atomic_load(&in->tail) == in->head && mono_ms() < dl)
        usleep(1000);
    hp_engine_destroy(&e);
    assert_int_equal(T.answers, 1);
    assert_int_equal(T.err, 0);
    assert_null(e.resolver);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_resolve_localhost),
        T_(test_localhost_names_fall_back_to_loopback),
        T_(test_resolve_numeric),
        T_(test_resolve_errors),
        T_(test_resolve_cancel),
        T_(test_queue_bounded),
        T_(test_connect_by_name),
        T_(test_connect_numeric_skips_resolver),
        T_(test_connect_unknown_host),
        T_(test_connect_next_address),
        T_(test_timeout_covers_lookup),
        T_(test_close_while_resolving),
        T_(test_many_concurrent),
        T_(test_oom_sweep),
        T_(test_engine_shares_resolver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
