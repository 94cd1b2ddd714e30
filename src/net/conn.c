/*
 * conn.c - connection I/O: reads into a pooled chunk, queued output sent
 * with one writev per batch (sendfile for files), backpressure, timers,
 * deferred close.
 *
 * Central structure: hp_conn_out_t, a pool chunk holding a FIFO of output
 * segments followed by an inline byte area. Consecutive inline responses
 * extend one segment, so a batch of pipelined responses is one iovec.
 *
 * Invariants:
 *  - out->pending is the sum of seg[head..tail).len;
 *  - a connection holds a read chunk only while bytes are buffered or the
 *    protocol is busy, and an output chunk only while output is queued;
 *  - a CLOSED connection has no fd, no chunks and no armed timer, and is
 *    freed by its worker at the end of the loop iteration.
 */
#include "conn_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "core/sys_int.h"
#include "worker_int.h"

/* Reads per connection per wake-up. With 32 KiB chunks this bounds one
 * connection's turn to ~256 KiB of input before the others ready in the
 * same batch get theirs. */
#define HP_CONN_READ_BUDGET 8

/* Output segments per connection: 16 pipelined static-file responses need
 * two each; inline responses share one. */
#define HP_CONN_OUT_SEGS 64

/* iovecs per writev: well under IOV_MAX (1024), enough for any batch. */
#define HP_CONN_IOV 64

/* Bytes per sendfile call: big enough to fill a socket buffer in one go,
 * small enough not to hog the loop when the peer reads fast. */
#define HP_CONN_SENDFILE_MAX (1u << 20)
/* A file segment this large is sent with TCP_CORK on: the head and the
 * file leave in full-sized segments instead of one push per sendfile,
 * which on loopback doubles the throughput of 1 MiB files and costs two
 * setsockopt calls per response (nginx's tcp_nopush does the same). */
#define HP_CONN_CORK_MIN (64u << 10)

/* The connection struct comes from a 128-byte-chunk pool. */
_Static_assert(sizeof(hp_conn_t) <= 128, "hp_conn_t must fit its pool chunk");

enum { SEG_MEM = 0, SEG_REF, SEG_CHUNK, SEG_FILE };

/* 40 bytes. A file segment has no `base`, so the same word holds the
 * argument of a borrowed file's `done`: no field is added for it. */
typedef struct hp_seg {
    uint32_t kind;
    int32_t fd;          /* SEG_FILE: owned when done is NULL, else borrowed */
    union {
        const char *base; /* SEG_MEM, SEG_REF, SEG_CHUNK: next byte to send */
        void *farg;       /* SEG_FILE with done: done's argument */
    };
    uint64_t len;        /* bytes left */
    union {
        uint64_t off;    /* SEG_FILE: file offset of the next byte */
        void *alloc;     /* SEG_REF: done's argument; SEG_CHUNK: the pool chunk */
    };
    /* SEG_REF: called once the bytes are sent or dropped. SEG_FILE: NULL
     * means the fd is ours and is closed; otherwise it is borrowed and
     * done(farg) runs instead of close. */
    void (*done)(void *arg);
} hp_seg_t;

_Static_assert(sizeof(hp_seg_t) == 40, "output segments stay 40 bytes");

struct hp_conn_out {
    uint32_t head, tail; /* queued segments are seg[head, tail) */
    uint32_t used, cap;  /* inline bytes used / available in data[] */
    uint64_t pending;
    hp_seg_t seg[HP_CONN_OUT_SEGS];
    char data[];
};

/* The exported accessors: the names in parentheses are not the macros of
 * conn_int.h, whose inline bodies they reuse. */
char *(hp_conn_data)(hp_conn_t *c)
{
    return hp_conn_data(c);
}

uint32_t(hp_conn_data_len)(const hp_conn_t *c)
{
    return hp_conn_data_len(c);
}

void *(hp_conn_cstate)(const hp_conn_t *c)
{
    return hp_conn_cstate(c);
}

void(hp_conn_consume)(hp_conn_t *c, uint32_t n)
{
    hp_conn_consume(c, n);
}

void(hp_conn_set_busy)(hp_conn_t *c, bool busy)
{
    hp_conn_set_busy(c, busy);
}

void *(hp_conn_udata)(const hp_conn_t *c)
{
    return hp_conn_udata(c);
}

hp_worker_t *(hp_conn_worker)(const hp_conn_t *c)
{
    return hp_conn_worker(c);
}

bool(hp_conn_is_closed)(const hp_conn_t *c)
{
    return hp_conn_is_closed(c);
}

void hp_conn_set_udata(hp_conn_t *c, void *udata)
{
    c->udata = udata;
}

const hp_proto_t *hp_conn_proto(const hp_conn_t *c)
{
    return c->proto;
}

int hp_conn_fd(const hp_conn_t *c)
{
    return c->io.fd;
}

bool hp_conn_state_valid(const hp_conn_t *c)
{
    return c->rbuf && (c->flags & HP_CONN_F_STATE_INIT);
}

void hp_conn_state_set_valid(hp_conn_t *c)
{
    if (c->rbuf)
        c->flags |= HP_CONN_F_STATE_INIT;
}

void *hp_conn_state(hp_conn_t *c)
{
    return c->rbuf ? c->rbuf - hp_proto_state_bytes(c->proto) : NULL;
}

uint32_t hp_conn_rbuf_capacity(const hp_conn_t *c)
{
    return c->worker->cfg->rbuf_size - hp_proto_state_bytes(c->proto);
}

uint64_t hp_conn_now(const hp_conn_t *c)
{
    return hp_loop_now(&c->worker->loop);
}

void hp_conn_compact(hp_conn_t *c)
{
    if (c->rpos == 0)
        return;
    uint32_t n = c->rlen - c->rpos;
    memmove(c->rbuf, c->rbuf + c->rpos, n);
    c->rpos = 0;
    c->rlen = n;
}

static bool take_rbuf(hp_conn_t *c)
{
    char *chunk = hp_pool_get(&c->worker->rpool);
    if (!chunk)
        return false;
    /* The state area is left as it is: protocols initialise what they
     * use when HP_CONN_F_STATE_INIT is clear. Zeroing it cost a memset of
     * the whole state (kilobytes) for every request. */
    c->rbuf = chunk + hp_proto_state_bytes(c->proto);
    c->rpos = c->rlen = 0;
    return true;
}

static void release_rbuf(hp_conn_t *c)
{
    hp_pool_put(&c->worker->rpool, c->rbuf - hp_proto_state_bytes(c->proto));
    c->rbuf = NULL;
    c->rpos = c->rlen = 0;
    c->flags &= ~(uint32_t)(HP_CONN_F_BUSY | HP_CONN_F_STATE_INIT);
}

/* ---- output queue ---- */

static hp_conn_out_t *take_out(hp_conn_t *c)
{
    hp_conn_out_t *out = hp_pool_get(&c->worker->wpool);
    if (!out)
        return NULL;
    out->head = out->tail = out->used = 0;
    out->cap = c->worker->cfg->wbuf_size - (uint32_t)sizeof(hp_conn_out_t);
    out->pending = 0;
    c->out = out;
    return out;
}

/* Gives up a file segment's descriptor: closed when owned, else handed
 * back through done. */
static void file_release(int fd, void (*done)(void *arg), void *arg)
{
    if (done)
        done(arg);
    else
        close(fd);
}

static void drop_seg(hp_conn_t *c, hp_seg_t *s)
{
    if (s->kind == SEG_REF && s->done)
        s->done(s->alloc);
    else if (s->kind == SEG_CHUNK)
        hp_pool_put(&c->worker->rpool, s->alloc);
    else if (s->kind == SEG_FILE)
        file_release(s->fd, s->done, s->farg);
}

static void release_out(hp_conn_t *c)
{
    hp_conn_out_t *out = c->out;
    for (uint32_t i = out->head; i < out->tail; i++)
        drop_seg(c, &out->seg[i]);
    hp_pool_put(&c->worker->wpool, out);
    c->out = NULL;
}

/* Consumes `n` sent bytes from the head of the queue. */
static void out_advance(hp_conn_t *c, hp_conn_out_t *out, uint64_t n)
{
    out->pending -= n;
    hp_worker_stat_add(&c->worker->stats.bytes_out, n);
    while (n > 0) {
        hp_seg_t *s = &out->seg[out->head];
        if (n < s->len) {
            s->len -= n;
            if (s->kind == SEG_FILE)
                s->off += n;
            else
                s->base += n;
            return;
        }
        n -= s->len;
        drop_seg(c, s);
        out->head++;
    }
}

/* Sends the queue. Returns 0 when it is empty, -EAGAIN when the socket is
 * full, another -errno when the connection is broken. A short write means
 * the socket buffer is full, so it returns without a second call that
 * would only say EAGAIN. */
/* TCP_CORK on or off; a failure only costs throughput. */
static void cork(hp_conn_t *c, int on)
{
    setsockopt(c->io.fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    if (on)
        c->flags |= HP_CONN_F_CORKED;
    else
        c->flags &= ~(uint32_t)(HP_CONN_F_CORK | HP_CONN_F_CORKED);
}

static int out_send(hp_conn_t *c)
{
    hp_conn_out_t *out = c->out;
    if (HP_UNLIKELY((c->flags & (HP_CONN_F_CORK | HP_CONN_F_CORKED)) == HP_CONN_F_CORK))
        cork(c, 1);
    while (out->head < out->tail) {
        hp_seg_t *s = &out->seg[out->head];
        if (s->kind == SEG_FILE) {
            size_t want = s->len < HP_CONN_SENDFILE_MAX ? (size_t)s->len : HP_CONN_SENDFILE_MAX;
            off_t off = (off_t)s->off;
            ssize_t n = hp_sys_sendfile(c->io.fd, s->fd, &off, want);
            if (n < 0)
                return (int)n;
            if (n == 0)
                return -EIO; /* the file shrank under us */
            /* Short: the socket is full, or the file ended early; the
             * next call tells which (-EAGAIN or 0). */
            out_advance(c, out, (uint64_t)n);
            continue;
        }
        struct iovec iov[HP_CONN_IOV];
        int cnt = 0;
        uint64_t total = 0;
        for (uint32_t i = out->head; i < out->tail && cnt < HP_CONN_IOV; i++) {
            if (out->seg[i].kind == SEG_FILE)
                break;
            iov[cnt].iov_base = (void *)out->seg[i].base;
            iov[cnt].iov_len = out->seg[i].len;
            total += out->seg[i].len;
            cnt++;
        }
        ssize_t n = hp_sys_writev(c->io.fd, iov, cnt);
        if (n < 0)
            return (int)n;
        out_advance(c, out, (uint64_t)n);
        if ((uint64_t)n < total)
            return -EAGAIN;
    }
    out->head = out->tail = out->used = 0;
    if (HP_UNLIKELY(c->flags & HP_CONN_F_CORKED))
        cork(c, 0); /* pushes the last partial segment */
    return 0;
}

/* Whether the connection's timer is the write timer now: output waits
 * and the protocol has not suspended it. */
static inline bool write_timed(const hp_conn_t *c)
{
    return (c->flags & (HP_CONN_F_WRITE_WAIT | HP_CONN_F_NO_WRITE_TIMER)) == HP_CONN_F_WRITE_WAIT;
}

/* EPOLLOUT is registered exactly while output waits (and while a connect
 * is under way, whose outcome it tells): registered all the time, every
 * small write that an ACK later follows can end in a wake-up with nothing
 * to do (a consumer's acks made one wake-up in four EPOLLOUT-only). An
 * output wait costs two epoll_ctl calls instead, and a response that fits
 * the socket buffer (nearly all) none. When it cannot be added the
 * connection is closed and the error returned: without the edge, the
 * wait would never end. When it cannot be removed it stays, which costs
 * only wake-ups, and the next drain tries again. */
static int watch_writable(hp_conn_t *c, bool on)
{
    if (on == ((c->io.events & EPOLLOUT) != 0))
        return 0;
    uint32_t ev = on ? c->io.events | EPOLLOUT : c->io.events & ~(uint32_t)EPOLLOUT;
    int r = hp_loop_mod(&c->worker->loop, &c->io, ev & ~(uint32_t)EPOLLET);
    if (r < 0 && on) {
        hp_conn_close(c);
        return r;
    }
    return 0;
}

/* Output waits for the socket. Returns 0, or -errno when the connection
 * had to be closed (see watch_writable): c->out is gone then. */
static int arm_write_wait(hp_conn_t *c)
{
    if (!(c->flags & HP_CONN_F_WRITE_WAIT)) {
        c->flags |= HP_CONN_F_WRITE_WAIT;
        int r = watch_writable(c, true);
        if (r < 0)
            return r;
        if (write_timed(c))
            hp_loop_timer_arm(&c->worker->loop, &c->timer, c->worker->cfg->write_timeout_ms);
    }
    return 0;
}

int hp_conn_flush(hp_conn_t *c)
{
    if (!c->out || (c->flags & HP_CONN_F_CLOSED))
        return 0;
    int r = out_send(c);
    if (r == -EAGAIN) {
        int e = arm_write_wait(c);
        if (e < 0)
            return e; /* closed */
    } else if (r < 0) {
        hp_conn_close(c);
    }
    return r;
}

static HP_COLD char *reserve_slow(hp_conn_t *c, uint32_t n)
{
    hp_conn_out_t *out = c->out ? c->out : take_out(c);
    if (!out)
        return NULL;
    /* Full: try to send what is queued; the area is reusable only once
     * everything in it has gone out. */
    if (out->used + n > out->cap || out->tail == HP_CONN_OUT_SEGS) {
        if (hp_conn_flush(c) != 0)
            return NULL;
    }
    if (out->used + n > out->cap || out->tail == HP_CONN_OUT_SEGS)
        return NULL;
    return out->data + out->used;
}

char *hp_conn_reserve(hp_conn_t *c, uint32_t n)
{
    hp_conn_out_t *out = c->out;
    if (HP_LIKELY(out && out->used + n <= out->cap && out->tail < HP_CONN_OUT_SEGS))
        return out->data + out->used;
    return reserve_slow(c, n);
}

void hp_conn_commit(hp_conn_t *c, uint32_t n)
{
    hp_conn_out_t *out = c->out;
    char *at = out->data + out->used;
    hp_seg_t *last = out->tail > out->head ? &out->seg[out->tail - 1] : NULL;
    if (last && last->kind == SEG_MEM && last->base + last->len == at) {
        last->len += n;
    } else {
        out->seg[out->tail++] = (hp_seg_t){.kind = SEG_MEM, .fd = -1, .base = at, .len = n};
    }
    out->used += n;
    out->pending += n;
}

int hp_conn_write(hp_conn_t *c, const void *buf, uint32_t len)
{
    char *p = hp_conn_reserve(c, len);
    if (!p)
        return -ENOBUFS;
    memcpy(p, buf, len);
    hp_conn_commit(c, len);
    return 0;
}

/* A free segment slot, flushing first if the table is full. */
static hp_seg_t *seg_slot(hp_conn_t *c)
{
    hp_conn_out_t *out = c->out ? c->out : take_out(c);
    if (!out)
        return NULL;
    if (out->tail == HP_CONN_OUT_SEGS && hp_conn_flush(c) != 0)
        return NULL;
    if (out->tail == HP_CONN_OUT_SEGS)
        return NULL;
    return &out->seg[out->tail];
}

int hp_conn_write_ref_cb(hp_conn_t *c, const void *buf, uint64_t len, void (*done)(void *arg),
                         void *arg)
{
    hp_seg_t *s = seg_slot(c);
    if (!s) {
        if (done)
            done(arg);
        return -ENOBUFS;
    }
    *s = (hp_seg_t){.kind = SEG_REF, .fd = -1, .base = buf, .len = len, .done = done};
    s->alloc = arg;
    c->out->tail++;
    c->out->pending += len;
    return 0;
}

int hp_conn_write_ref(hp_conn_t *c, const void *buf, uint64_t len, bool owned)
{
    return hp_conn_write_ref_cb(c, buf, len, owned ? hp_free : NULL, (void *)buf);
}

void hp_conn_cut(hp_conn_t *c, uint32_t off, uint32_t n)
{
    char *d = c->rbuf + c->rpos;
    uint32_t len = c->rlen - c->rpos;
    memmove(d + off, d + off + n, len - off - n);
    c->rlen -= n;
}

void hp_conn_hold(hp_conn_t *c, bool hold)
{
    if (hold)
        c->flags |= HP_CONN_F_HOLD;
    else
        c->flags &= ~(uint32_t)HP_CONN_F_HOLD;
}

void *hp_conn_chunk_get(hp_conn_t *c)
{
    return hp_pool_get(&c->worker->rpool);
}

void hp_conn_chunk_put(hp_conn_t *c, void *chunk)
{
    hp_pool_put(&c->worker->rpool, chunk);
}

uint32_t hp_conn_chunk_size(const hp_conn_t *c)
{
    return c->worker->cfg->rbuf_size;
}

int hp_conn_write_chunk(hp_conn_t *c, void *chunk, const void *buf, uint64_t len)
{
    hp_seg_t *s = seg_slot(c);
    if (!s) {
        hp_conn_chunk_put(c, chunk);
        return -ENOBUFS;
    }
    *s = (hp_seg_t){.kind = SEG_CHUNK, .fd = -1, .base = buf, .len = len};
    s->alloc = chunk;
    c->out->tail++;
    c->out->pending += len;
    return 0;
}

/* Queues a file segment: the descriptor is owned (done NULL) or borrowed. */
static int queue_file(hp_conn_t *c, int fd, uint64_t offset, uint64_t len,
                      void (*done)(void *arg), void *arg)
{
    if (len == 0) {
        file_release(fd, done, arg);
        return 0;
    }
    hp_seg_t *s = seg_slot(c);
    if (!s) {
        file_release(fd, done, arg);
        return -ENOBUFS;
    }
    *s = (hp_seg_t){.kind = SEG_FILE, .fd = fd, .len = len, .off = offset, .done = done};
    s->farg = arg;
    if (len >= HP_CONN_CORK_MIN)
        c->flags |= HP_CONN_F_CORK;
    c->out->tail++;
    c->out->pending += len;
    return 0;
}

int hp_conn_write_file(hp_conn_t *c, int fd, uint64_t offset, uint64_t len)
{
    return queue_file(c, fd, offset, len, NULL, NULL);
}

int hp_conn_write_file_cb(hp_conn_t *c, int fd, uint64_t offset, uint64_t len,
                          void (*done)(void *arg), void *arg)
{
    /* Without a callback the descriptor would be neither closed nor
     * reported: it is treated as a plain owned file. */
    return queue_file(c, fd, offset, len, done, arg);
}

uint64_t hp_conn_pending(const hp_conn_t *c)
{
    return c->out ? c->out->pending : 0;
}

void hp_conn_flush_soon(hp_conn_t *c)
{
    /* The ready pass serves it after this iteration's events: with
     * nothing to read, that is settle(), which sends the queue. */
    if (!(c->flags & (HP_CONN_F_CLOSED | HP_CONN_F_IN_DATA)))
        hp_worker_enqueue_ready(c->worker, c);
}

void hp_conn_pause(hp_conn_t *c)
{
    c->flags |= HP_CONN_F_PAUSED;
}

/* ---- lifecycle ---- */

void hp_conn_close_after_write(hp_conn_t *c)
{
    c->flags |= HP_CONN_F_CLOSE_AFTER;
}

void hp_conn_set_timer(hp_conn_t *c, uint64_t timeout_ms)
{
    if (write_timed(c))
        return; /* the write timer keeps the slot until output drains */
    if (timeout_ms)
        hp_loop_timer_arm(&c->worker->loop, &c->timer, timeout_ms);
    else
        hp_loop_timer_cancel(&c->worker->loop, &c->timer);
}

void hp_conn_suspend_write_timer(hp_conn_t *c, bool suspend)
{
    if (suspend) {
        c->flags |= HP_CONN_F_NO_WRITE_TIMER;
        return;
    }
    c->flags &= ~(uint32_t)HP_CONN_F_NO_WRITE_TIMER;
    if (c->flags & HP_CONN_F_WRITE_WAIT)
        hp_loop_timer_arm(&c->worker->loop, &c->timer, c->worker->cfg->write_timeout_ms);
}

int hp_conn_set_read_lowat(hp_conn_t *c, uint32_t bytes)
{
    if (c->flags & HP_CONN_F_CLOSED)
        return -EBADF;
    int v = bytes > 1 && bytes <= INT32_MAX ? (int)bytes : 1;
    if (setsockopt(c->io.fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v) < 0)
        return -errno;
    /* Bytes below the old mark raised no edge and will raise none. */
    if (v == 1)
        hp_conn_read_soon(c);
    return 0;
}

void hp_conn_read_soon(hp_conn_t *c)
{
    if (c->flags & (HP_CONN_F_CLOSED | HP_CONN_F_CONNECTING))
        return;
    c->flags |= HP_CONN_F_READABLE;
    hp_worker_enqueue_ready(c->worker, c);
}

void hp_conn_close(hp_conn_t *c)
{
    if (c->flags & HP_CONN_F_CLOSED)
        return;
    hp_worker_t *w = c->worker;
    c->flags |= HP_CONN_F_CLOSED;
    if (c->proto->on_close)
        c->proto->on_close(c);
    hp_loop_timer_cancel(&w->loop, &c->timer);
    /* close() also removes the fd from epoll: no epoll_ctl needed. A
     * connection still resolving its host name has no socket yet. */
    if (c->io.fd >= 0)
        close(c->io.fd);
    c->io.fd = -1;
    if (c->out)
        release_out(c);
    if (c->rbuf)
        release_rbuf(c);
    if (c->cstate) {
        hp_worker_cstate_put(w, c->cstate, c->proto->cstate_size);
        c->cstate = NULL;
    }
    hp_worker_conn_closed(w, c);
}

static void feed_switched(hp_conn_t *c);

static void timer_cb(hp_timer_t *t)
{
    hp_conn_t *c = HP_CONTAINER_OF(t, hp_conn_t, timer);
    if (HP_UNLIKELY(c->flags & HP_CONN_F_CONNECTING)) {
        /* The connect timeout. */
        c->flags &= ~(uint32_t)HP_CONN_F_CONNECTING;
        if (c->proto->on_connect_error)
            c->proto->on_connect_error(c, -ETIMEDOUT);
        hp_conn_close(c);
        return;
    }
    if (write_timed(c) || !c->proto->on_timeout) {
        hp_worker_stat_add(&c->worker->stats.timeouts, 1);
        hp_conn_close(c);
        return;
    }
    c->proto->on_timeout(c);
}

static void drained(hp_conn_t *c);

/* Ends a turn: sends what the turn produced, gives back idle buffers,
 * closes when asked to. When the queue drained here although the protocol
 * had paused or a flush had found the socket full, the wait is over at
 * once (no EPOLLOUT edge will come to end it): the protocol resumes, and
 * what it queues and what the socket still holds are handled in the ready
 * pass. */
static void settle(hp_conn_t *c)
{
    if (c->flags & HP_CONN_F_CLOSED)
        return;
    if (c->out) {
        if (c->out->head < c->out->tail) {
            int r = out_send(c);
            if (r == -EAGAIN) {
                if (arm_write_wait(c) == 0 && c->out->pending > c->worker->cfg->high_water)
                    c->flags |= HP_CONN_F_PAUSED;
                return;
            }
            if (r < 0) {
                hp_conn_close(c);
                return;
            }
        }
        release_out(c);
    }
    if (c->flags & (HP_CONN_F_WRITE_WAIT | HP_CONN_F_PAUSED)) {
        drained(c);
        if (!(c->flags & HP_CONN_F_CLOSED))
            hp_worker_enqueue_ready(c->worker, c);
        return;
    }
    if (c->flags & HP_CONN_F_CLOSE_AFTER) {
        hp_conn_close(c);
        return;
    }
    bool busy = c->flags & HP_CONN_F_BUSY;
    if (c->rbuf && c->rpos == c->rlen && !busy)
        release_rbuf(c);
    if (c->worker->draining && !c->rbuf && !busy)
        hp_conn_close(c);
}

/* Hands the unconsumed bytes to the protocol. When the protocol switched
 * inside the call, the new one gets what the old one left, at once. */
static void feed(hp_conn_t *c)
{
    c->flags |= HP_CONN_F_IN_DATA;
    c->proto->on_data(c);
    c->flags &= ~(uint32_t)HP_CONN_F_IN_DATA;
    if (HP_UNLIKELY(c->flags & HP_CONN_F_SWITCHED))
        feed_switched(c);
}

static HP_COLD void feed_switched(hp_conn_t *c)
{
    /* Each round is another switch (an upgrade inside an upgrade): it
     * ends when a protocol keeps the connection. */
    while ((c->flags & (HP_CONN_F_SWITCHED | HP_CONN_F_CLOSED)) == HP_CONN_F_SWITCHED) {
        c->flags &= ~(uint32_t)HP_CONN_F_SWITCHED;
        if (!c->rbuf || c->rlen == c->rpos ||
            (c->flags & (HP_CONN_F_PAUSED | HP_CONN_F_CLOSE_AFTER | HP_CONN_F_HOLD)))
            break;
        c->flags |= HP_CONN_F_IN_DATA;
        c->proto->on_data(c);
        c->flags &= ~(uint32_t)HP_CONN_F_IN_DATA;
    }
}

void hp_conn_serve(hp_conn_t *c)
{
    if (HP_UNLIKELY(c->flags & HP_CONN_F_SWITCHED))
        feed_switched(c); /* switched outside a callback: bytes may wait */

    hp_worker_t *w = c->worker;
    int budget = HP_CONN_READ_BUDGET;
    while ((c->flags & (HP_CONN_F_READABLE | HP_CONN_F_CLOSED | HP_CONN_F_PAUSED |
                        HP_CONN_F_CLOSE_AFTER | HP_CONN_F_HOLD)) == HP_CONN_F_READABLE) {
        if (!c->rbuf && HP_UNLIKELY(!take_rbuf(c))) {
            hp_worker_stat_add(&w->stats.oom_closed, 1);
            hp_conn_close(c);
            return;
        }
        uint32_t cap = hp_conn_rbuf_capacity(c);
        if (c->rpos == c->rlen)
            c->rpos = c->rlen = 0;
        else if (cap - c->rlen < cap / 4)
            hp_conn_compact(c);
        uint32_t room = cap - c->rlen;
        if (HP_UNLIKELY(room == 0)) {
            /* The protocol left a full buffer unconsumed: its limits are
             * larger than the buffer. Nothing sensible can follow. */
            hp_conn_close(c);
            return;
        }
        ssize_t n = hp_sys_read(c->io.fd, c->rbuf + c->rlen, room);
        if (n > 0) {
            c->rlen += (uint32_t)n;
            hp_worker_stat_add(&w->stats.bytes_in, (uint64_t)n);
            /* A short read emptied the socket: skip the read that would
             * only return EAGAIN. New bytes bring a new edge. */
            if ((uint32_t)n < room && !(c->flags & HP_CONN_F_RDHUP))
                c->flags &= ~(uint32_t)HP_CONN_F_READABLE;
        } else if (n == 0) {
            c->flags &= ~(uint32_t)HP_CONN_F_READABLE;
            c->flags |= HP_CONN_F_PEER_EOF;
        } else if (n == -EAGAIN) {
            c->flags &= ~(uint32_t)HP_CONN_F_READABLE;
            break;
        } else {
            hp_conn_close(c);
            return;
        }
        if (c->rlen > c->rpos)
            feed(c);
        if (c->flags & HP_CONN_F_PEER_EOF) {
            /* Answer what was fully received, then close. */
            c->flags |= HP_CONN_F_CLOSE_AFTER;
            break;
        }
        if (--budget == 0) {
            if ((c->flags & (HP_CONN_F_READABLE | HP_CONN_F_PAUSED)) == HP_CONN_F_READABLE)
                hp_worker_enqueue_ready(w, c);
            break;
        }
    }
    settle(c);
}

/* Lets the protocol go on with bytes it left buffered while paused. */
static void resume(hp_conn_t *c)
{
    if (c->proto->on_drain && !(c->flags & HP_CONN_F_CLOSE_AFTER)) {
        c->flags |= HP_CONN_F_IN_DATA;
        c->proto->on_drain(c);
        c->flags &= ~(uint32_t)HP_CONN_F_IN_DATA;
        if (HP_UNLIKELY(c->flags & HP_CONN_F_SWITCHED))
            feed_switched(c);
    }
}

static void drained(hp_conn_t *c)
{
    c->flags &= ~(uint32_t)(HP_CONN_F_WRITE_WAIT | HP_CONN_F_PAUSED);
    watch_writable(c, false);
    hp_loop_timer_cancel(&c->worker->loop, &c->timer);
    resume(c);
}

/* An outbound connect finished: tell the protocol either way. Returns
 * true when the connection is up and the event should be handled. */
static HP_COLD bool connected(hp_conn_t *c, uint32_t events)
{
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return false;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    c->flags &= ~(uint32_t)HP_CONN_F_CONNECTING;
    hp_loop_timer_cancel(&c->worker->loop, &c->timer);
    if (err) {
        if (c->proto->on_connect_error)
            c->proto->on_connect_error(c, -err);
        /* A connection opened by host name may have gone on to its next
         * address (hp_worker_connect_host): it is connecting again. */
        if (!(c->flags & HP_CONN_F_CONNECTING))
            hp_conn_close(c);
        return false;
    }
    /* Up: EPOLLOUT is no longer wanted, unless output queued while
     * connecting waits (a write then says EAGAIN); on_open's writes add it
     * back if they wait. */
    if (!(c->flags & HP_CONN_F_WRITE_WAIT))
        watch_writable(c, false);
    if (c->proto->on_open)
        c->proto->on_open(c);
    return !(c->flags & HP_CONN_F_CLOSED);
}

static void io_cb(hp_io_t *io, uint32_t events)
{
    hp_conn_t *c = HP_CONTAINER_OF(io, hp_conn_t, io);
    if (HP_UNLIKELY(c->flags & HP_CONN_F_CLOSED))
        return;
    if (HP_UNLIKELY(c->flags & HP_CONN_F_CONNECTING)) {
        if (!connected(c, events))
            return;
    }
    /* An error or hang-up with nothing left to read ends the connection;
     * so does one while the protocol holds it (a pending handler reads
     * nothing, so the reset would otherwise go unnoticed). A FIN alone is
     * a half-close (EPOLLRDHUP), answered before closing. */
    if (HP_UNLIKELY((events & (EPOLLERR | EPOLLHUP)) &&
                    (!(events & EPOLLIN) || (c->flags & HP_CONN_F_HOLD)))) {
        hp_conn_close(c);
        return;
    }
    if ((events & EPOLLOUT) && (c->flags & HP_CONN_F_WRITE_WAIT)) {
        int r = out_send(c);
        if (r == 0) {
            drained(c);
        } else if (r == -EAGAIN) {
            /* Progress: the stall timer measures time without any. */
            if (write_timed(c))
                hp_loop_timer_arm(&c->worker->loop, &c->timer, c->worker->cfg->write_timeout_ms);
            if ((c->flags & HP_CONN_F_PAUSED) && c->out->pending < c->worker->cfg->low_water) {
                c->flags &= ~(uint32_t)HP_CONN_F_PAUSED;
                resume(c);
            }
        } else {
            hp_conn_close(c);
            return;
        }
        if (c->flags & HP_CONN_F_CLOSED)
            return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
        c->flags |= HP_CONN_F_READABLE;
    /* The FIN is in: a short read no longer means the socket is empty,
     * read on until it says 0. */
    if (events & (EPOLLRDHUP | EPOLLHUP))
        c->flags |= HP_CONN_F_RDHUP;
    hp_conn_serve(c);
}

int hp_conn_start(hp_conn_t *c, const hp_proto_t *proto, void *udata)
{
    hp_timer_init(&c->timer, timer_cb);
    c->io.cb = io_cb;
    c->proto = proto;
    c->udata = udata;
    c->cstate = NULL;
    if (proto->cstate_size && !(c->cstate = hp_worker_cstate_get(c->worker, proto->cstate_size)))
        return -ENOBUFS;
    return 0;
}

void hp_conn_release(hp_conn_t *c)
{
    hp_pool_put(&c->worker->conn_pool, c);
}

/* ---- protocols, options, handles ---- */

int hp_conn_switch(hp_conn_t *c, const hp_proto_t *proto, void *udata)
{
    hp_worker_t *w = c->worker;
    uint32_t size = w->cfg->rbuf_size;
    uint32_t old_state = hp_proto_state_bytes(c->proto);
    uint32_t new_state = hp_proto_state_bytes(proto);
    void *cstate = NULL;
    int r = 0;
    if (new_state + HP_CONN_MIN_RBUF > size) {
        r = -EINVAL;
    } else if (c->rbuf && c->rlen - c->rpos > size - new_state) {
        r = -ENOBUFS;
    } else if (proto->cstate_size && !(cstate = hp_worker_cstate_get(w, proto->cstate_size))) {
        r = -ENOBUFS;
    }
    if (r < 0) {
        hp_conn_close(c);
        return r;
    }
    if (c->rbuf) {
        /* The waiting bytes move to where the new protocol's state ends;
         * the chunk stays. */
        char *chunk = c->rbuf - old_state;
        uint32_t n = c->rlen - c->rpos;
        memmove(chunk + new_state, c->rbuf + c->rpos, n);
        c->rbuf = chunk + new_state;
        c->rpos = 0;
        c->rlen = n;
    }
    if (c->cstate)
        hp_worker_cstate_put(w, c->cstate, c->proto->cstate_size);
    c->cstate = cstate;
    c->proto = proto;
    c->udata = udata;
    c->flags &= ~(uint32_t)(HP_CONN_F_BUSY | HP_CONN_F_STATE_INIT | HP_CONN_F_HOLD);
    c->flags |= HP_CONN_F_SWITCHED;
    hp_conn_set_timer(c, 0); /* the old protocol's deadline is not the new one's */
    if (proto->on_open)
        proto->on_open(c);
    /* Outside a callback nobody would hand the waiting bytes over until
     * more arrive: the ready pass does. */
    if (!(c->flags & (HP_CONN_F_IN_DATA | HP_CONN_F_CLOSED)) && c->rbuf && c->rlen > c->rpos)
        hp_worker_enqueue_ready(w, c);
    return 0;
}

int hp_conn_set_sockopts(hp_conn_t *c, const hp_sockopts_t *o)
{
    int fd = c->io.fd, r = 0;
    struct {
        bool on;
        int level, name, value;
    } set[] = {
        {o->nodelay, IPPROTO_TCP, TCP_NODELAY, 1},
        {o->keepalive, SOL_SOCKET, SO_KEEPALIVE, 1},
        {o->keepalive && o->keepidle_s, IPPROTO_TCP, TCP_KEEPIDLE, (int)o->keepidle_s},
        {o->keepalive && o->keepintvl_s, IPPROTO_TCP, TCP_KEEPINTVL, (int)o->keepintvl_s},
        {o->keepalive && o->keepcnt, IPPROTO_TCP, TCP_KEEPCNT, (int)o->keepcnt},
        {o->sndbuf > 0, SOL_SOCKET, SO_SNDBUF, (int)o->sndbuf},
        {o->rcvbuf > 0, SOL_SOCKET, SO_RCVBUF, (int)o->rcvbuf},
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        if (set[i].on && setsockopt(fd, set[i].level, set[i].name, &set[i].value,
                                    sizeof set[i].value) < 0 && r == 0)
            r = -errno;
    }
    return r;
}

hp_conn_handle_t hp_conn_handle(const hp_conn_t *c)
{
    const hp_worker_t *w = c->worker;
    return (hp_conn_handle_t){.worker = (uint32_t)(w - w->group),
                              .slot = c->slot,
                              .gen = hp_worker_slot(w, c->slot)->gen};
}

int hp_conn_post(hp_worker_t *via, hp_conn_handle_t h, hp_conn_msg_cb cb, void *ptr)
{
    if (h.worker >= via->ngroup)
        return -EINVAL;
    hp_msg_t m = {.type = HP_MSG_CONN, .from = h.slot, .arg = h.gen, .ptr = ptr,
                  .fn = (void (*)(void))cb};
    return hp_worker_post_msg(&via->group[h.worker], &m);
}
