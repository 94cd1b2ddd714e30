/*
 * test_conn.c - unit tests for src/net/conn.c, driving a real worker on
 * this thread: a loopback listener, a small line protocol, client sockets
 * in the same thread, and hp_loop_run_once interleaved with client I/O
 * (the harness shared with test_worker.c is in net_harness.h).
 *
 * Covered: bytes in reach on_data and are consumed; responses (inline,
 * referenced, owned, file) arrive in order; one writev per read turn;
 * owned buffers are freed when sent, when dropped on close and when the
 * queue refuses them (ASan/LeakSanitizer); sendfile; borrowed file
 * descriptors (hp_conn_write_file_cb: done once, when sent, dropped or
 * refused, never closed by the connection); short writes and
 * EAGAIN from an injected writev; backpressure pauses parsing and on_drain
 * resumes it; write timeout; close-after-write; peer EOF after a request;
 * protocol timers; the receive low-water mark and hp_conn_read_soon;
 * running out of read chunks; idle connections hold no
 * chunk; zero allocations over 1,000 request/response cycles. (The read
 * budget and the ready queue are tested in test_worker.c.)
 *
 * Pools are small (4 KiB chunks, 8 KiB high water, set by h_reset) so
 * every boundary is crossed with little data.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/alloc.h"
#include "net/conn_int.h"
#include "hotpath/log.h"
#include "core/sys_int.h"
#include "net/worker_int.h"

#include "net_harness.h"

/* ---- the test protocol ----
 * Lines mode answers each "\n"-terminated line:
 *   BIG       a referenced 64 KiB buffer     MID    a referenced 12 KiB one
 *   OWN n     an owned n-byte buffer         OWNKILL  owned 64 KiB, then close
 *   OWNMANY   100 owned 1000-byte buffers, refusals counted
 *   FILE      the temp file by sendfile      CLOSE  "BYE\n", close after write
 *   FILECB    the temp file, borrowed (hp_conn_write_file_cb)
 *   FILECBMANY 100 borrowed copies of it, refusals counted
 *   FLUSH     "F\n", then hp_conn_flush      TIMER n  protocol timer, "T\n"
 *   anything else: "R:<line>\n"
 * Echo mode writes every byte back. */
enum { MODE_LINES, MODE_ECHO };
#define BIG_LEN (64 * 1024)
#define MID_LEN (12 * 1024)

static struct {
    int mode;
    unsigned on_data, on_drain, on_timeout, on_close, lines, enobufs;
    int file_fd, last_dup;
    unsigned file_done;
    uint64_t file_len;
} T;

static char g_big[BIG_LEN];
static char g_file[200 * 1024];

/* done callback of the borrowed file segments (FILECB): the descriptor
 * must still be open when it runs, since the connection never closes it. */
static void file_done(void *arg)
{
    assert_ptr_equal(arg, &T.file_fd);
    assert_true(fcntl(*(int *)arg, F_GETFD) != -1);
    T.file_done++;
}

static int handle_line(hp_conn_t *c, const char *l, uint32_t n)
{
#define IS(s) (n == sizeof(s) - 1 && memcmp(l, s, n) == 0)
    if (IS("BIG"))
        return hp_conn_write_ref(c, g_big, BIG_LEN, false);
    if (IS("MID"))
        return hp_conn_write_ref(c, g_big, MID_LEN, false);
    if (n > 4 && memcmp(l, "OWN ", 4) == 0) {
        size_t len = strtoul(l + 4, NULL, 10);
        char *b = hp_malloc(len);
        assert_non_null(b);
        for (size_t off = 0; off < len; off += BIG_LEN)
            memcpy(b + off, g_big, len - off < BIG_LEN ? len - off : BIG_LEN);
        return hp_conn_write_ref(c, b, len, true);
    }
    if (IS("OWNKILL")) {
        char *b = hp_malloc(BIG_LEN);
        assert_int_equal(hp_conn_write_ref(c, b, BIG_LEN, true), 0);
        hp_conn_close(c);
        return 0;
    }
    if (IS("OWNMANY")) {
        for (int i = 0; i < 100; i++) {
            char *b = hp_malloc(1000);
            memcpy(b, g_big, 1000);
            if (hp_conn_write_ref(c, b, 1000, true) == -ENOBUFS)
                T.enobufs++;
        }
        return 0;
    }
    if (IS("FILE")) {
        T.last_dup = dup(T.file_fd);
        return hp_conn_write_file(c, T.last_dup, 0, T.file_len);
    }
    if (IS("FILECB"))
        return hp_conn_write_file_cb(c, T.file_fd, 0, T.file_len, file_done, &T.file_fd);
    if (IS("FILECBMANY")) {
        for (int i = 0; i < 100; i++)
            if (hp_conn_write_file_cb(c, T.file_fd, 0, T.file_len, file_done, &T.file_fd) ==
                -ENOBUFS)
                T.enobufs++;
        return 0;
    }
    if (IS("CLOSE")) {
        hp_conn_close_after_write(c);
        return hp_conn_write(c, "BYE\n", 4);
    }
    if (IS("FLUSH")) {
        int r = hp_conn_write(c, "F\n", 2);
        hp_conn_flush(c);
        return r;
    }
    if (n > 6 && memcmp(l, "TIMER ", 6) == 0) {
        hp_conn_set_timer(c, strtoul(l + 6, NULL, 10));
        return hp_conn_write(c, "T\n", 2);
    }
    char *p = hp_conn_reserve(c, n + 3);
    if (!p)
        return -ENOBUFS;
    memcpy(p, "R:", 2);
    memcpy(p + 2, l, n);
    p[n + 2] = '\n';
    hp_conn_commit(c, n + 3);
    return 0;
#undef IS
}

static void process(hp_conn_t *c)
{
    c->flags |= HP_CONN_F_STATE_INIT; /* so that on_close is called */
    while (!(c->flags & (HP_CONN_F_CLOSED | HP_CONN_F_CLOSE_AFTER | HP_CONN_F_PAUSED))) {
        uint32_t len = hp_conn_data_len(c);
        if (len == 0)
            break;
        if (T.mode == MODE_ECHO) {
            uint32_t n = len < 700 ? len : 700;
            char *p = hp_conn_reserve(c, n);
            if (!p) {
                hp_conn_pause(c);
                break;
            }
            memcpy(p, hp_conn_data(c), n);
            hp_conn_commit(c, n);
            hp_conn_consume(c, n);
            continue;
        }
        char *d = hp_conn_data(c);
        char *nl = memchr(d, '\n', len);
        if (!nl)
            break;
        if (hp_conn_pending(c) > c->worker->cfg->high_water) {
            hp_conn_pause(c);
            break;
        }
        uint32_t ll = (uint32_t)(nl - d);
        if (handle_line(c, d, ll) == -ENOBUFS) {
            hp_conn_pause(c);
            break;
        }
        T.lines++;
        if (c->flags & HP_CONN_F_CLOSED)
            break;
        hp_conn_consume(c, ll + 1);
    }
}

static void p_on_data(hp_conn_t *c)
{
    assert_true(c->flags & HP_CONN_F_IN_DATA);
    assert_true(hp_conn_data_len(c) > 0);
    T.on_data++;
    process(c);
}

static void p_on_drain(hp_conn_t *c)
{
    T.on_drain++;
    if (c->rbuf)
        process(c);
}

static void p_on_timeout(hp_conn_t *c)
{
    T.on_timeout++;
    hp_conn_close(c);
}

static void p_on_close(hp_conn_t *c)
{
    assert_true(c->flags & HP_CONN_F_CLOSED);
    T.on_close++;
}

static const hp_proto_t proto = {
    .on_data = p_on_data,
    .on_drain = p_on_drain,
    .on_timeout = p_on_timeout,
    .on_close = p_on_close,
    .state_size = 16,
};

/* ---- syscall faults ---- */
enum { WV_REAL, WV_CHAOS, WV_EPIPE, WV_EAGAIN_ONCE };
static struct {
    int writev_mode;
    unsigned writev_calls, read_calls, sendfile_calls;
    unsigned seed;
    int mod_err; /* EPOLL_CTL_MOD fails with this while non-zero */
} F;

static int f_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (op == EPOLL_CTL_MOD && F.mod_err) {
        errno = F.mod_err;
        return -1;
    }
    return epoll_ctl(epfd, op, fd, ev);
}

static ssize_t f_read(int fd, void *buf, size_t len)
{
    F.read_calls++;
    return hp_sys_real.read(fd, buf, len);
}

static ssize_t f_writev(int fd, const struct iovec *iov, int cnt)
{
    F.writev_calls++;
    if (F.writev_mode == WV_EAGAIN_ONCE || F.writev_mode == WV_EPIPE) {
        errno = F.writev_mode == WV_EPIPE ? EPIPE : EAGAIN;
        F.writev_mode = F.writev_mode == WV_EPIPE ? WV_EPIPE : WV_REAL;
        return -1;
    }
    if (F.writev_mode == WV_CHAOS) {
        int r = rand_r(&F.seed) % 3;
        if (r == 0) {
            errno = EAGAIN;
            return -1;
        }
        size_t total = 0;
        for (int i = 0; i < cnt; i++)
            total += iov[i].iov_len;
        if (r == 1 && total > 1) {
            /* a short write: only the first k bytes go out */
            size_t k = 1 + (size_t)rand_r(&F.seed) % (total - 1);
            struct iovec cut[64];
            int n = 0;
            for (int i = 0; i < cnt && k > 0 && n < 64; i++, n++) {
                cut[n] = iov[i];
                if (cut[n].iov_len > k)
                    cut[n].iov_len = k;
                k -= cut[n].iov_len;
            }
            return hp_sys_real.writev(fd, cut, n);
        }
    }
    return hp_sys_real.writev(fd, iov, cnt);
}

static ssize_t f_sendfile(int out, int in, off_t *off, size_t n)
{
    F.sendfile_calls++;
    return hp_sys_real.sendfile(out, in, off, n);
}

static const hp_sys_ops_t fault_ops = {
    .read = f_read,
    .writev = f_writev,
    .sendfile = f_sendfile,
    .accept4 = accept4,
    .epoll_ctl = f_epoll_ctl,
};

/* ---- harness (net_harness.h): one worker, clients on this thread ---- */
static void h_start(void)
{
    h_start_with(&proto, 0);
}

/* A client that does not read, with small socket buffers on both sides,
 * so that the server's output blocks after a few KiB. */
static cli_t *cli_stalled(void)
{
    cli_t *k = cli_open(4096);
    setsockopt(conn_of(k)->io.fd, SOL_SOCKET, SO_SNDBUF, &(int){4096}, sizeof(int));
    k->reading = false;
    return k;
}

/* The file FILE sends: `len` bytes of `data`, announced as `claim`. */
static void temp_file(const void *data, size_t len, uint64_t claim)
{
    char path[] = "/tmp/hp_test_conn_XXXXXX";
    T.file_fd = mkstemp(path);
    assert_true(T.file_fd >= 0);
    unlink(path);
    assert_int_equal(write(T.file_fd, data, len), (ssize_t)len);
    T.file_len = claim;
}

static void assert_idle(hp_conn_t *c)
{
    assert_non_null(c);
    assert_null(c->rbuf);
    assert_null(c->out);
    assert_int_equal(c->flags & (HP_CONN_F_PAUSED | HP_CONN_F_WRITE_WAIT | HP_CONN_F_CLOSED), 0);
    /* EPOLLOUT is watched only while output waits (conn.c's watch_writable). */
    assert_int_equal(c->io.events & EPOLLOUT, 0);
    assert_true(c->io.events & EPOLLIN);
    assert_int_equal(hp_pool_in_use(&H.w.rpool), 0);
    assert_int_equal(hp_pool_in_use(&H.w.wpool), 0);
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    memset(&F, 0, sizeof F);
    F.seed = 12345;
    T.file_fd = -1;
    h_reset();
    hp_sys_set_ops(&fault_ops);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hp_sys_set_ops(NULL); /* the rest runs without injected faults */
    h_teardown();
    if (T.file_fd >= 0)
        close(T.file_fd);
    return 0;
}

/* ---- tests ---- */

static void test_request_response_and_idle(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_open(0);
    hp_conn_t *c = conn_of(k);
    assert_idle(c); /* accepted, nothing received: no chunk at all */
    cli_sends(k, "hel");
    PUMP_UNTIL(T.on_data == 1, 1000);
    /* partial line: the read chunk stays, nothing consumed, no output */
    assert_non_null(c->rbuf);
    assert_int_equal(hp_conn_data_len(c), 3);
    assert_memory_equal(hp_conn_data(c), "hel", 3);
    assert_null(c->out);
    assert_int_equal(hp_pool_in_use(&H.w.rpool), 1);
    cli_sends(k, "lo\nworld\n");
    PUMP_UNTIL(k->rxlen >= 16, 1000);
    assert_true(has(k, "R:hello\nR:world\n"));
    assert_idle(c);
    assert_int_equal(H.w.stats.bytes_in, 12);
    assert_int_equal(H.w.stats.bytes_out, 16);
    assert_int_equal(T.lines, 2);
}

static void test_one_writev_per_turn(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_open(0);
    char req[50 * 4 + 1], want[50 * 6 + 1];
    for (int i = 0; i < 50; i++) {
        char l[4] = {'L', (char)('0' + i / 10), (char)('0' + i % 10), '\n'};
        memcpy(req + 4 * i, l, 4);
        memcpy(want + 6 * i, "R:", 2);
        memcpy(want + 6 * i + 2, l, 4);
    }
    req[200] = want[300] = '\0';
    F.writev_calls = F.read_calls = 0;
    cli_sends(k, req);
    PUMP_UNTIL(k->rxlen >= 300, 1000);
    assert_true(has(k, want));
    assert_int_equal(T.lines, 50);
    assert_int_equal(F.writev_calls, 1);
    /* a short read emptied the socket: no read just to hear EAGAIN */
    assert_int_equal(F.read_calls, 1);
    assert_idle(conn_of(k));
}

static void test_mixed_segments_in_order(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof g_file; i++)
        g_file[i] = (char)('A' + (i * 13) % 26);
    temp_file(g_file, sizeof g_file, sizeof g_file);
    H.cfg.high_water = 1 << 20; /* no pause: see test_pause_then_immediate_drain */
    h_start();
    cli_t *k = cli_open(0);
    cli_sends(k, "a\nBIG\nb\nFILE\nOWN 5000\nc\n");
    size_t want = 4 + BIG_LEN + 4 + sizeof g_file + 5000 + 4;
    PUMP_UNTIL(k->rxlen >= want, 3000);
    assert_int_equal(k->rxlen, want);
    const struct { const void *p; size_t n; } parts[] = {
        {"R:a\n", 4}, {g_big, BIG_LEN}, {"R:b\n", 4}, {g_file, sizeof g_file},
        {g_big, 5000}, {"R:c\n", 4},
    };
    const char *p = k->rx;
    for (size_t i = 0; i < HP_ARRAY_LEN(parts); p += parts[i++].n)
        assert_memory_equal(p, parts[i].p, parts[i].n);
    assert_true(F.sendfile_calls >= 1);
    /* the file descriptor handed over was closed once sent */
    assert_int_equal(fcntl(T.last_dup, F_GETFD), -1);
    assert_idle(conn_of(k));
    /* length 0: closed at once, nothing queued */
    int d = dup(T.file_fd);
    assert_int_equal(hp_conn_write_file(conn_of(k), d, 0, 0), 0);
    assert_int_equal(fcntl(d, F_GETFD), -1);
    assert_null(conn_of(k)->out);
}

/* A file that is shorter than promised: the connection is closed as soon
 * as sendfile reports the end, not when the write timer gives up. */
static void test_file_shrank_closes(void **state)
{
    (void)state;
    temp_file(g_big, 1000, 5000); /* claims more than the file holds */
    h_start();
    cli_t *k = cli_open(0);
    cli_sends(k, "FILE\n");
    PUMP_UNTIL(k->eof, 1000); /* the write timer cannot: the clock stands still */
    assert_true(k->eof);
    assert_int_equal(k->rxlen, 1000);
    assert_int_equal(H.w.nconns, 0);
    assert_int_equal(fcntl(T.last_dup, F_GETFD), -1);
}

/* A borrowed file: every byte arrives between inline responses, done runs
 * once, after the last byte went out, and the descriptor stays open. */
static void test_borrowed_file_sent(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof g_file; i++)
        g_file[i] = (char)('a' + (i * 7) % 26);
    temp_file(g_file, sizeof g_file, sizeof g_file);
    H.cfg.high_water = 1 << 20;
    h_start();
    cli_t *k = cli_open(0);
    cli_sends(k, "a\nFILECB\nb\nFILECB\n");
    size_t want = 4 + sizeof g_file + 4 + sizeof g_file;
    PUMP_UNTIL(k->rxlen >= want, 3000);
    assert_int_equal(k->rxlen, want);
    assert_memory_equal(k->rx, "R:a\n", 4);
    assert_memory_equal(k->rx + 4, g_file, sizeof g_file);
    assert_memory_equal(k->rx + 4 + sizeof g_file, "R:b\n", 4);
    assert_memory_equal(k->rx + 8 + sizeof g_file, g_file, sizeof g_file);
    PUMP_UNTIL(T.file_done == 2, 1000);
    assert_int_equal(T.file_done, 2);
    pump_for(20);
    assert_int_equal(T.file_done, 2); /* exactly once per segment */
    assert_true(F.sendfile_calls >= 2);
    assert_true(fcntl(T.file_fd, F_GETFD) != -1);
    assert_idle(conn_of(k));
    /* A large file went out corked; the cork is off once the queue drained
     * (else the last partial segment would sit for 200 ms). */
    assert_true(sizeof g_file >= 64 * 1024);
    int corked = -1;
    socklen_t clen = sizeof corked;
    assert_int_equal(getsockopt(conn_of(k)->io.fd, IPPROTO_TCP, TCP_CORK, &corked, &clen), 0);
    assert_int_equal(corked, 0);
    assert_false(conn_of(k)->flags & (HP_CONN_F_CORK | HP_CONN_F_CORKED));
    /* length 0: done runs before the call returns, nothing is queued */
    int fd = T.file_fd;
    assert_int_equal(hp_conn_write_file_cb(conn_of(k), fd, 0, 0, file_done, &T.file_fd), 0);
    assert_int_equal(T.file_done, 3);
    assert_null(conn_of(k)->out);
    assert_true(fcntl(fd, F_GETFD) != -1);
}

/* A borrowed file still queued when the connection closes: done runs on
 * the close, before any byte beyond the socket buffers went out, and the
 * descriptor is left open. A full queue refuses with done already run. */
static void test_borrowed_file_dropped(void **state)
{
    (void)state;
    temp_file(g_file, sizeof g_file, sizeof g_file);
    h_start();
    cli_t *k = cli_stalled();
    hp_conn_t *c = conn_of(k);
    cli_sends(k, "FILECB\n");
    PUMP_UNTIL(c->flags & HP_CONN_F_WRITE_WAIT, 1000);
    assert_true(c->flags & HP_CONN_F_WRITE_WAIT);
    assert_true(hp_conn_pending(c) > 0);
    assert_int_equal(T.file_done, 0);
    hp_conn_close(c);
    assert_int_equal(T.file_done, 1);
    assert_true(fcntl(T.file_fd, F_GETFD) != -1);
    step(0);
    /* refusals: 100 queued on a stalled connection; every one of them,
     * refused or queued, reports done exactly once by the end */
    cli_t *k2 = cli_stalled();
    T.file_len = 1000;
    cli_sends(k2, "FILECBMANY\n");
    PUMP_UNTIL(T.lines >= 2, 1000);
    assert_true(T.enobufs > 0);
    assert_true(T.file_done >= 1 + T.enobufs);
    cli_close(k2);
    PUMP_UNTIL(H.w.nconns == 0, 1000);
    assert_int_equal(H.w.nconns, 0);
    assert_int_equal(T.file_done, 101);
    assert_true(fcntl(T.file_fd, F_GETFD) != -1);
}

static void test_owned_refs_freed(void **state)
{
    (void)state;
    h_start();
    /* closed with an owned buffer queued: dropped and freed */
    cli_t *k = cli_open(0);
    cli_sends(k, "OWNKILL\n");
    PUMP_UNTIL(k->eof, 1000);
    assert_true(k->eof);
    assert_int_equal(T.on_close, 1);
    /* refused by a full queue: freed by write_ref itself */
    cli_t *k2 = cli_stalled();
    hp_conn_t *c = conn_of(k2);
    cli_sends(k2, "OWNMANY\n");
    PUMP_UNTIL(T.lines == 2, 1000);
    assert_true(T.enobufs > 0);
    k2->reading = true;
    size_t want = (100 - T.enobufs) * 1000;
    PUMP_UNTIL(k2->rxlen >= want, 2000);
    assert_int_equal(k2->rxlen, want);
    assert_idle(c);
    /* the peer vanishes while owned output is blocked */
    k2->reading = false;
    cli_sends(k2, "OWN 300000\n");
    PUMP_UNTIL(hp_conn_pending(c) > 0 && (c->flags & HP_CONN_F_WRITE_WAIT), 1000);
    assert_true(c->flags & HP_CONN_F_WRITE_WAIT);
    cli_close(k2);
    PUMP_UNTIL(H.w.nconns == 0, 1000);
    assert_int_equal(H.w.nconns, 0);
}

/* Short writes and EAGAIN injected at random: every byte still arrives,
 * once, in order. The client keeps sending, so edges keep coming. */
static void test_injected_short_writes_and_eagain(void **state)
{
    (void)state;
    T.mode = MODE_ECHO;
    h_start();
    cli_t *k = cli_open(0);
    enum { TOTAL = 300 * 1024 };
    char *src = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        src[i] = (char)(i * 7 % 251);
    F.writev_mode = WV_CHAOS;
    size_t sent = 0;
    unsigned seed = 99;
    while (sent < TOTAL - 100) {
        size_t n = 1 + (size_t)rand_r(&seed) % 3000;
        if (n > TOTAL - 100 - sent)
            n = TOTAL - 100 - sent;
        ssize_t r = write(k->fd, src + sent, n);
        if (r > 0)
            sent += (size_t)r;
        step(0);
    }
    unsigned faulty = F.writev_calls;
    F.writev_mode = WV_REAL;
    cli_send(k, src + sent, TOTAL - sent);
    PUMP_UNTIL(k->rxlen >= TOTAL, 5000);
    assert_int_equal(k->rxlen, TOTAL);
    assert_memory_equal(k->rx, src, TOTAL);
    assert_true(faulty > 50);
    assert_int_equal(H.w.stats.bytes_out, TOTAL);
    assert_idle(conn_of(k));
    free(src);
}

static void test_fatal_write_error_closes(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_open(0);
    F.writev_mode = WV_EPIPE;
    cli_sends(k, "x\n");
    PUMP_UNTIL(k->eof, 1000);
    assert_true(k->eof);
    assert_int_equal(k->rxlen, 0);
    assert_int_equal(H.w.nconns, 0);
    assert_int_equal(H.w.stats.closed, 1);
}

/* A client that does not read: the queue passes the high watermark, the
 * socket fills, parsing stops; once it reads, on_drain resumes parsing. */
static void test_backpressure_pause_and_resume(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_stalled();
    hp_conn_t *c = conn_of(k);
    for (int i = 0; i < 10; i++)
        cli_sends(k, "BIG\n");
    pump_for(60);
    assert_true(c->flags & HP_CONN_F_PAUSED);
    assert_true(c->flags & HP_CONN_F_WRITE_WAIT);
    assert_true(c->io.events & EPOLLOUT); /* the edge that ends the wait */
    unsigned lines = T.lines, calls = T.on_data;
    assert_true(lines < 10);
    /* more requests while paused: not even read */
    for (int i = 0; i < 10; i++)
        cli_sends(k, "x\n");
    pump_for(60);
    assert_int_equal(T.on_data, calls);
    assert_int_equal(T.lines, lines);
    assert_true(hp_conn_pending(c) > 0);
    k->reading = true;
    size_t want = 10 * (size_t)BIG_LEN + 10 * 4;
    PUMP_UNTIL(k->rxlen >= want, 5000);
    assert_int_equal(k->rxlen, want);
    for (int i = 0; i < 10; i++)
        assert_memory_equal(k->rx + (size_t)i * BIG_LEN, g_big, BIG_LEN);
    for (int i = 0; i < 10; i++)
        assert_memory_equal(k->rx + 10 * (size_t)BIG_LEN + 4 * (size_t)i, "R:x\n", 4);
    assert_true(T.on_drain > 0);
    assert_int_equal(T.lines, 20);
    assert_idle(c);
    assert_int_equal(H.w.stats.timeouts, 0);
}

/* Output that must wait needs EPOLLOUT watched: when epoll_ctl cannot add
 * it, the connection is closed at once (counted), not left waiting for an
 * edge that would never come. */
static void test_write_wait_without_epollout_closes(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_stalled();
    F.mod_err = ENOMEM;
    for (int i = 0; i < 10; i++)
        cli_sends(k, "BIG\n");
    PUMP_UNTIL(H.w.nconns == 0, 2000);
    assert_int_equal(H.w.nconns, 0);
    assert_int_equal(H.w.stats.closed, 1);
    assert_int_equal(H.w.stats.timeouts, 0);
}

/* The protocol pauses because the queue passed the high watermark, but the
 * socket takes everything at the end of the turn: parsing must go on. */
static void test_pause_then_immediate_drain_resumes(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_open(0);
    hp_conn_t *c = conn_of(k);
    cli_sends(k, "MID\nnext\n");
    PUMP_UNTIL(k->rxlen >= MID_LEN + 7, 1000);
    if (k->rxlen != MID_LEN + 7)
        fail_msg("got %zu of %d bytes; flags %#x (paused with an empty queue)", k->rxlen,
                 MID_LEN + 7, c->flags);
    assert_memory_equal(k->rx + MID_LEN, "R:next\n", 7);
    assert_idle(c);
}

/* Same, over more requests than one read chunk holds: after resuming at
 * the end of the turn, the bytes still in the socket are read too, without
 * waiting for a new edge. */
static void test_pause_resume_reads_rest_of_socket(void **state)
{
    (void)state;
    H.cfg.high_water = 100;
    H.cfg.low_water = 50;
    h_start();
    cli_t *k = cli_open(0);
    enum { N = 40, L = 200 };
    static char req[N * (L + 1)];
    for (int i = 0; i < N; i++) {
        memset(req + i * (L + 1), 'a' + i % 26, L);
        req[i * (L + 1) + L] = '\n';
    }
    cli_send(k, req, sizeof req);
    PUMP_UNTIL(k->rxlen >= N * (L + 3), 1000);
    if (k->rxlen != N * (L + 3))
        fail_msg("%u of %d requests answered; flags %#x", T.lines, N, conn_of(k)->flags);
    for (int i = 0; i < N; i++)
        assert_int_equal(k->rx[i * (L + 3) + 2], 'a' + i % 26);
    assert_idle(conn_of(k));
}

/* A reader that takes nothing for write_timeout_ms is closed then, and
 * not a millisecond before. */
static void test_write_timeout(void **state)
{
    (void)state;
    H.cfg.write_timeout_ms = 150;
    h_start();
    cli_t *k = cli_stalled();
    hp_conn_t *c = conn_of(k);
    cli_sends(k, "BIG\nBIG\n");
    PUMP_UNTIL(c->flags & HP_CONN_F_WRITE_WAIT, 1000);
    assert_true(c->flags & HP_CONN_F_WRITE_WAIT);
    pump_for(20); /* anything else the kernel had to say */
    tick(149);
    assert_int_equal(H.w.nconns, 1);
    assert_int_equal(H.w.stats.timeouts, 0);
    tick(1);
    assert_int_equal(H.w.nconns, 0);
    assert_int_equal(H.w.stats.timeouts, 1);
    assert_int_equal(T.on_timeout, 0); /* the write timer is the engine's */
    assert_int_equal(T.on_close, 1);
}

/* A slow reader that keeps making progress is not a stalled one: it takes
 * a little every 100 ms, against a write timeout of 150 ms, for as long
 * as its responses take (many times the timeout). */
static void test_slow_reader_survives_write_timeout(void **state)
{
    (void)state;
    H.cfg.write_timeout_ms = 150;
    h_start();
    cli_t *k = cli_stalled();
    cli_sends(k, "BIG\nBIG\nBIG\n");
    char buf[16384];
    size_t got = 0;
    int rounds = 0;
    uint64_t dl = mono_ms() + NH_PATIENCE * 5000;
    while (got < 3 * (size_t)BIG_LEN && mono_ms() < dl) {
        tick(100);
        rounds++;
        ssize_t n = read(k->fd, buf, sizeof buf);
        if (n > 0)
            got += (size_t)n;
        if (n == 0)
            break;
    }
    assert_int_equal(got, 3 * (size_t)BIG_LEN);
    assert_true(rounds * 100 > 2 * 150); /* the stall timer had its chances */
    assert_int_equal(H.w.stats.timeouts, 0);
    assert_int_equal(H.w.nconns, 1);
}

static void test_close_after_write(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_open(0);
    cli_sends(k, "a\nCLOSE\nb\n");
    PUMP_UNTIL(k->eof, 1000);
    assert_true(k->eof);
    assert_true(has(k, "R:a\nBYE\n"));
    assert_int_equal(H.w.nconns, 0);
    /* with the output blocked first: all of it, then the close */
    cli_t *k2 = cli_stalled();
    cli_sends(k2, "BIG\nCLOSE\nc\n");
    pump_for(50);
    assert_int_equal(H.w.nconns, 1);
    k2->reading = true;
    PUMP_UNTIL(k2->eof, 2000);
    assert_int_equal(k2->rxlen, BIG_LEN + 4);
    assert_memory_equal(k2->rx + BIG_LEN, "BYE\n", 4);
    assert_int_equal(k2->err, 0);
}

/* The client half-closes after its request: it still gets the answer,
 * then the server closes. First with the FIN on its own, then with the
 * FIN in the same read as the request. */
static void test_peer_eof_after_request(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_open(0);
    cli_sends(k, "ping\n");
    PUMP_UNTIL(k->rxlen >= 7, 1000);
    shutdown(k->fd, SHUT_WR);
    PUMP_UNTIL(k->eof, 1000);
    assert_true(k->eof);
    assert_true(has(k, "R:ping\n"));
    assert_int_equal(H.w.nconns, 0);

    cli_t *k2 = cli_open(0);
    cli_sends(k2, "ping\nhalf");
    shutdown(k2->fd, SHUT_WR);
    PUMP_UNTIL(k2->eof, 1000);
    assert_true(has(k2, "R:ping\n"));
    if (!k2->eof)
        fail_msg("server never closed after the peer's FIN (flags %#x)",
                 conn_of(k2) ? conn_of(k2)->flags : 0);
    assert_int_equal(H.w.nconns, 0);
}

/* Pipelined requests, then FIN, with backpressure in between: every
 * request that arrived complete is answered. */
static void test_peer_eof_after_pipelined_backpressure(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_stalled();
    cli_sends(k, "BIG\nBIG\nBIG\nend\n");
    shutdown(k->fd, SHUT_WR);
    pump_for(30);
    k->reading = true;
    PUMP_UNTIL(k->eof, 3000);
    assert_int_equal(k->rxlen, 3 * (size_t)BIG_LEN + 6);
    assert_memory_equal(k->rx + 3 * (size_t)BIG_LEN, "R:end\n", 6);
    assert_true(k->eof);
}

/* writev says EAGAIN once (hp_conn_flush inside on_data), then the end of
 * the turn sends everything: the write wait is over, and its timer must not
 * kill the now idle connection. */
static void test_flush_eagain_then_sent_in_turn(void **state)
{
    (void)state;
    H.cfg.write_timeout_ms = 100;
    h_start();
    cli_t *k = cli_open(0);
    hp_conn_t *c = conn_of(k);
    F.writev_mode = WV_EAGAIN_ONCE;
    cli_sends(k, "FLUSH\n");
    PUMP_UNTIL(k->rxlen >= 2, 1000);
    assert_true(has(k, "F\n"));
    pump_for(20);
    tick(250); /* past any write timer the EAGAIN may have left */
    if (H.w.nconns != 1)
        fail_msg("idle connection closed by a stale write timer");
    assert_false(k->eof);
    assert_int_equal(c->flags & (HP_CONN_F_WRITE_WAIT | HP_CONN_F_PAUSED), 0);
    assert_idle(c);
}

/* Same start, then the next request: its EPOLLOUT must not find a write
 * wait without an output queue. */
static void test_flush_eagain_then_next_request(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_open(0);
    F.writev_mode = WV_EAGAIN_ONCE;
    cli_sends(k, "FLUSH\n");
    PUMP_UNTIL(k->rxlen >= 2, 1000);
    cli_sends(k, "next\n");
    PUMP_UNTIL(k->rxlen >= 9, 1000);
    assert_true(has(k, "F\nR:next\n"));
    assert_idle(conn_of(k));
}

static void test_protocol_timer(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_open(0);
    cli_sends(k, "TIMER 30\n");
    PUMP_UNTIL(T.lines >= 1, 1000);
    assert_int_equal(T.lines, 1);
    tick(29);
    assert_int_equal(T.on_timeout, 0);
    tick(1);
    assert_int_equal(T.on_timeout, 1);
    PUMP_UNTIL(k->eof, 1000);
    assert_true(k->eof);
    assert_true(has(k, "T\n"));
    assert_int_equal(T.on_timeout, 1);
    assert_int_equal(H.w.stats.timeouts, 0); /* counted by the protocol, if at all */
    /* cancelled: no timeout */
    cli_t *k2 = cli_open(0);
    cli_sends(k2, "TIMER 30\nTIMER 0\n");
    PUMP_UNTIL(T.lines >= 3, 1000);
    assert_int_equal(T.lines, 3);
    tick(80);
    pump_for(20);
    assert_false(k2->eof);
    assert_int_equal(T.on_timeout, 1);
}

/* The receive low-water mark: bytes below it wait unread until
 * hp_conn_read_soon; as many as the mark are read on their own; lowering
 * it reads what waited. */
static void test_read_lowat_and_read_soon(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_open(0);
    hp_conn_t *c = conn_of(k);
    assert_int_equal(hp_conn_set_read_lowat(c, 4096), 0);
    int v = 0;
    socklen_t len = sizeof v;
    assert_int_equal(getsockopt(c->io.fd, SOL_SOCKET, SO_RCVLOWAT, &v, &len), 0);
    assert_int_equal(v, 4096);
    cli_sends(k, "one\n");
    pump_for(30);
    assert_int_equal(T.lines, 0);
    hp_conn_read_soon(c);
    PUMP_UNTIL(T.lines == 1, 1000);
    assert_true(has(k, "R:one\n"));
    /* 513 lines of 8 bytes: past the mark, read without help. */
    static char many[513 * 8 + 1];
    for (int i = 0; i < 513; i++)
        memcpy(many + i * 8, "abcdefg\n", 8);
    cli_sends(k, many);
    PUMP_UNTIL(T.lines == 514, 1000);
    assert_int_equal(T.lines, 514);
    cli_sends(k, "two\n");
    pump_for(30);
    assert_int_equal(T.lines, 514);
    assert_int_equal(hp_conn_set_read_lowat(c, 1), 0);
    PUMP_UNTIL(T.lines == 515, 1000);
    assert_int_equal(T.lines, 515);
    assert_int_equal(getsockopt(c->io.fd, SOL_SOCKET, SO_RCVLOWAT, &v, &len), 0);
    assert_int_equal(v, 1);
    /* 0 means 1 too; a closed connection says so. */
    assert_int_equal(hp_conn_set_read_lowat(c, 0), 0);
    hp_conn_close(c);
    assert_int_equal(hp_conn_set_read_lowat(c, 4096), -EBADF);
    hp_conn_read_soon(c); /* closed: no effect */
    step(0);
}

static void test_read_chunk_exhausted_closes(void **state)
{
    (void)state;
    H.cfg.max_chunks = 1;
    h_start();
    cli_t *a = cli_open(0);
    cli_t *b = cli_open(0);
    cli_sends(a, "partial");
    PUMP_UNTIL(T.on_data == 1, 1000);
    cli_sends(b, "more");
    PUMP_UNTIL(b->eof, 1000);
    assert_true(b->eof);
    assert_int_equal(H.w.stats.oom_closed, 1);
    assert_int_equal(H.w.nconns, 1);
    cli_sends(a, "\n");
    PUMP_UNTIL(a->rxlen >= 10, 1000);
    assert_true(has(a, "R:partial\n"));
}

/* A request longer than the read chunk that the protocol cannot consume:
 * nothing sensible can follow, the connection is closed. */
static void test_full_read_chunk_closes(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_open(0);
    static char line[5000];
    memset(line, 'z', sizeof line);
    cli_send(k, line, sizeof line);
    PUMP_UNTIL(k->eof, 1000);
    assert_true(k->eof);
    assert_int_equal(k->rxlen, 0);
    assert_int_equal(H.w.nconns, 0);
    assert_int_equal(H.w.stats.bytes_in,
                     hp_conn_rbuf_capacity(&(hp_conn_t){.worker = &H.w, .proto = &proto}));
}

static void test_zero_alloc_steady_state(void **state)
{
    (void)state;
    h_start();
    cli_t *k = cli_open(0);
    hp_conn_t *c = conn_of(k);
    for (int i = 0; i < 20; i++) { /* warm-up: pools grow here */
        k->rxlen = 0;
        cli_sends(k, "ping\n");
        PUMP_UNTIL(k->rxlen >= 7, 1000);
    }
    uint64_t a0 = hp_alloc_count();
    for (int i = 0; i < 1000; i++) {
        k->rxlen = 0;
        cli_sends(k, "ping\n");
        PUMP_UNTIL(k->rxlen >= 7, 1000);
        assert_true(has(k, "R:ping\n"));
        assert_null(c->rbuf);
        assert_null(c->out);
    }
    assert_int_equal(hp_alloc_count(), a0);
    assert_idle(c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
    for (size_t i = 0; i < sizeof g_big; i++)
        g_big[i] = (char)(i * 31 % 253);
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_request_response_and_idle),
        T_(test_one_writev_per_turn),
        T_(test_mixed_segments_in_order),
        T_(test_file_shrank_closes),
        T_(test_borrowed_file_sent),
        T_(test_borrowed_file_dropped),
        T_(test_owned_refs_freed),
        T_(test_fatal_write_error_closes),
        T_(test_backpressure_pause_and_resume),
        T_(test_write_wait_without_epollout_closes),
        T_(test_pause_then_immediate_drain_resumes),
        T_(test_pause_resume_reads_rest_of_socket),
        T_(test_write_timeout),
        T_(test_slow_reader_survives_write_timeout),
        T_(test_close_after_write),
        T_(test_peer_eof_after_request),
        T_(test_peer_eof_after_pipelined_backpressure),
        T_(test_protocol_timer),
        T_(test_read_lowat_and_read_soon),
        T_(test_read_chunk_exhausted_closes),
        T_(test_full_read_chunk_closes),
        T_(test_zero_alloc_steady_state),
        T_(test_flush_eagain_then_sent_in_turn),
        T_(test_flush_eagain_then_next_request),
        T_(test_injected_short_writes_and_eagain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
