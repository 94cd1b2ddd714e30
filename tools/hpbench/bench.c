/*
 * bench.c - hpbench's load: client threads on the hotpath engine.
 *
 * Central structure: hb_conn_t, one per connection, with two rings of
 * `depth` send times (intended and actual) for the requests in flight.
 * Responses arrive in request order (HTTP/1.1), so the oldest slot always
 * belongs to the response that just completed: latency is per request even
 * when pipelining.
 *
 * Closed loop: each connection keeps `depth` requests in flight, sending
 * one as each response completes (all that completed in one read go out in
 * one write). Constant rate (-R): request k of connection i is due at a
 * fixed time (hp_rate); a 1 ms tick sends what is due on every connection
 * with room in flight, and latency is measured from the due time
 * ("corrected") as well as from the actual send ("uncorrected").
 *
 * Invariants: inflight <= depth; slots [head, head + inflight) mod depth
 * hold the in-flight requests; a connection's figures are counted only
 * for responses completing after the warm-up.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "hotpath/clock.h"
#include "net/engine_int.h"
#include "hotpath/http_method.h"
#include "hotpath/http_resp_parser.h"
#include "net/worker_int.h"

/* Failed connects retry every HB_TICK_MS * HB_RETRY_TICKS ms; in rate
 * mode the loop also wakes at least every HB_TICK_MS. */
#define HB_TICK_MS 1
#define HB_RETRY_TICKS 10

typedef struct hb_thread hb_thread_t;

typedef struct hb_conn {
    hb_thread_t *t;
    hp_conn_t *c;          /* NULL while not connected */
    uint32_t index;        /* in the whole run: its slot in the rate schedule */
    uint32_t inflight;
    uint32_t head;
    bool in_body;
    bool up;               /* connected */
    bool retry;            /* connect again at the next retry tick */
    uint64_t k;            /* rate mode: number of the next request to send */
    hp_resp_parser_t resp;
    uint64_t *intended;    /* owned rings of plan->depth entries */
    uint64_t *sent;
} hb_conn_t;

struct hb_thread {
    hp_worker_t w;         /* first: it wants cache-line alignment */
    const hb_plan_t *plan; /* borrowed */
    hb_conn_t *conns;      /* owned */
    uint32_t nconns;
    hp_timer_t tick;
    hp_worker_config_t cfg;
    /* Written by this thread only; read live by the main thread. */
    uint64_t requests, bytes, errors[HB_ERR_COUNT], status[6];
    hp_hist_t lat, unc;
};

struct hb_threads {
    hb_thread_t **t;
    uint32_t n;
};

static inline void bump(uint64_t *p, uint64_t n)
{
    __atomic_store_n(p, *p + n, __ATOMIC_RELAXED);
}

static inline bool recording(const hb_thread_t *t, uint64_t now)
{
    return now >= t->plan->record_from_ns && now < t->plan->record_until_ns;
}

static void count_error(hb_thread_t *t, int kind, uint64_t n)
{
    if (recording(t, hp_clock_mono_ns()))
        bump(&t->errors[kind], n);
}

/* ---- requests ---- */

/* Queues what may be sent now on this connection: closed loop, enough to
 * have `depth` in flight; rate mode, what is due, up to that. */
static void pump(hb_conn_t *bc, uint64_t now)
{
    const hb_plan_t *plan = bc->t->plan;
    /* Nothing leaves after the end: the server then serves exactly what
     * was counted, give or take the requests still in flight. */
    if (!bc->up || (bc->c->flags & HP_CONN_F_CLOSE_AFTER) || now >= plan->record_until_ns)
        return;
    uint32_t n = plan->depth - bc->inflight;
    if (plan->rate_mode) {
        uint64_t due = hp_rate_due_count(&plan->rate, bc->index, now) - bc->k;
        if (due < n)
            n = (uint32_t)due;
    }
    if (n == 0)
        return;
    bool was_idle = bc->inflight == 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t slot = (bc->head + bc->inflight + i) % plan->depth;
        bc->intended[slot] = plan->rate_mode ? hp_rate_due(&plan->rate, bc->index, bc->k++) : now;
        bc->sent[slot] = now;
    }
    bc->inflight += n;
    /* The requests are identical: one reference to n copies, one segment,
     * one writev at the end of the turn. */
    hp_conn_write_ref(bc->c, plan->reqs, (uint64_t)n * plan->req_len, false);
    if (was_idle)
        hp_conn_set_timer(bc->c, plan->timeout_ns / 1000000);
}

static const hp_proto_t hb_proto;

static void connect_one(hb_conn_t *bc)
{
    hb_thread_t *t = bc->t;
    hp_conn_t *c;
    bc->retry = false;
    int r = hp_worker_connect(&t->w, (const struct sockaddr *)&t->plan->addr,
                              t->plan->addr_len, &hb_proto, bc, NULL, &c);
    if (r < 0) {
        count_error(t, HB_ERR_CONNECT, 1);
        bc->retry = true;
        return;
    }
    bc->c = c;
}

/* ---- the protocol callbacks ---- */

static void on_open(hp_conn_t *c)
{
    hb_conn_t *bc = c->udata;
    bc->up = true;
    bc->inflight = bc->head = 0;
    bc->in_body = false;
    hp_resp_parser_init(&bc->resp, bc->t->plan->head_request);
    pump(bc, hp_clock_mono_ns());
}

static void on_connect_error(hp_conn_t *c, int err)
{
    (void)err;
    hb_conn_t *bc = c->udata;
    count_error(bc->t, HB_ERR_CONNECT, 1);
    bc->c = NULL;
    bc->retry = true;
}

/* The oldest request in flight got its complete response. */
static void complete(hb_conn_t *bc, uint64_t now)
{
    hb_thread_t *t = bc->t;
    uint32_t slot = bc->head;
    bc->head = slot + 1 == t->plan->depth ? 0 : slot + 1;
    bc->inflight--;
    if (!recording(t, now))
        return;
    bump(&t->requests, 1);
    hp_hist_record(&t->lat, now - bc->intended[slot]);
    if (t->plan->rate_mode)
        hp_hist_record(&t->unc, now - bc->sent[slot]);
    int cls = bc->resp.status / 100;
    bump(&t->status[cls >= 1 && cls <= 5 ? cls : 5], 1);
    if (cls != 2 && cls != 3)
        bump(&t->errors[HB_ERR_STATUS], 1);
}

static void fail(hb_conn_t *bc, int kind)
{
    count_error(bc->t, kind, 1);
    bc->inflight = 0; /* counted here, not again as a read error */
    hp_conn_close(bc->c);
}

static void on_data(hp_conn_t *c)
{
    hb_conn_t *bc = c->udata;
    hb_thread_t *t = bc->t;
    uint64_t now = hp_clock_mono_ns();
    uint32_t len;
    while ((len = hp_conn_data_len(c)) > 0 && !(c->flags & HP_CONN_F_CLOSE_AFTER)) {
        if (!bc->in_body) {
            int r = hp_resp_parser_head(&bc->resp, hp_conn_data(c), len);
            if (r == 0)
                break;
            if (r < 0 || bc->inflight == 0) {
                /* Malformed, or a response nobody asked for. */
                fail(bc, HB_ERR_PARSE);
                return;
            }
            hp_conn_consume(c, (uint32_t)r);
            if (recording(t, now))
                bump(&t->bytes, (uint64_t)r);
            bc->in_body = true;
        }
        if (!(bc->resp.flags & HP_RESP_PARSER_F_NO_BODY)) {
            size_t used = 0;
            int r = hp_resp_parser_body(&bc->resp, hp_conn_data(c), hp_conn_data_len(c), &used);
            hp_conn_consume(c, (uint32_t)used);
            if (recording(t, now))
                bump(&t->bytes, used);
            if (r < 0) {
                fail(bc, HB_ERR_PARSE);
                return;
            }
            if (r == 0)
                break;
        }
        bc->in_body = false;
        bool interim = bc->resp.status < 200;
        bool closing = bc->resp.flags & HP_RESP_PARSER_F_CLOSE;
        if (!interim)
            complete(bc, now);
        hp_resp_parser_init(&bc->resp, t->plan->head_request);
        if (closing && !interim) {
            /* The server closes after this response: finish here and
             * reconnect when it does. */
            hp_conn_close_after_write(c);
            break;
        }
    }
    pump(bc, now);
    if (bc->inflight == 0 || (c->flags & HP_CONN_F_CLOSE_AFTER))
        hp_conn_set_timer(c, 0);
    else
        hp_conn_set_timer(c, t->plan->timeout_ns / 1000000); /* progress restarts it */
}

static void on_timeout(hp_conn_t *c)
{
    hb_conn_t *bc = c->udata;
    count_error(bc->t, HB_ERR_TIMEOUT, bc->inflight ? bc->inflight : 1);
    bc->inflight = 0;
    hp_conn_close(c);
}

static void on_close(hp_conn_t *c)
{
    hb_conn_t *bc = c->udata;
    if (!bc || bc->c != c)
        return; /* a failed connect, already counted */
    hb_thread_t *t = bc->t;
    if (bc->in_body && hp_resp_parser_body_eof(&bc->resp) == 1) {
        /* A body delimited by the close is complete now. */
        complete(bc, hp_clock_mono_ns());
        bc->in_body = false;
    }
    if (bc->inflight > 0 && !t->w.draining)
        count_error(t, HB_ERR_READ, bc->inflight);
    bc->c = NULL;
    bc->up = false;
    bc->inflight = 0;
    /* Reconnect at once, as wrk does, unless the run is ending; the new
     * connection is added at the head of the worker's list, which the
     * close in progress does not disturb. */
    if (!t->w.draining)
        connect_one(bc);
}

static void on_drain(hp_conn_t *c)
{
    hb_conn_t *bc = c->udata;
    pump(bc, hp_clock_mono_ns());
}

static const hp_proto_t hb_proto = {
    .name = "hpbench",
    .on_open = on_open,
    .on_connect_error = on_connect_error,
    .on_data = on_data,
    .on_drain = on_drain,
    .on_timeout = on_timeout,
    .on_close = on_close,
    .state_size = 0,
};

/* Rate mode: sends what is due on every connection, then asks the loop to
 * wake at the next due time, with nanosecond precision, so requests leave
 * on schedule rather than on a millisecond tick. A connection without room
 * in flight sends when its responses come back (late: that is what the
 * corrected latency measures). */
static void rate_cb(hp_loop_t *loop, void *arg)
{
    hb_thread_t *t = arg;
    uint64_t now = hp_clock_mono_ns(), next = UINT64_MAX;
    for (uint32_t i = 0; i < t->nconns; i++) {
        hb_conn_t *bc = &t->conns[i];
        if (!bc->up)
            continue;
        pump(bc, now);
        hp_conn_flush(bc->c);
        if (bc->up && bc->inflight < t->plan->depth) {
            uint64_t due = hp_rate_due(&t->plan->rate, bc->index, bc->k);
            if (due < next)
                next = due;
        }
    }
    /* With every connection full, a response will call pump; still wake
     * within a tick to pick up connections that come back. */
    uint64_t cap = now + HB_TICK_MS * 1000000ull;
    hp_loop_set_deadline(loop, next < cap ? next : cap, rate_cb, t);
}

/* Every HB_RETRY_TICKS ms: connect again where a connect failed. */
static void tick_cb(hp_timer_t *tm)
{
    hb_thread_t *t = HP_CONTAINER_OF(tm, hb_thread_t, tick);
    for (uint32_t i = 0; i < t->nconns; i++) {
        hb_conn_t *bc = &t->conns[i];
        if (!bc->up && bc->retry)
            connect_one(bc);
    }
    hp_loop_timer_arm(&t->w.loop, tm, HB_TICK_MS * HB_RETRY_TICKS);
}

/* ---- threads ---- */

static void thread_free(hb_thread_t *t)
{
    if (t->conns) {
        for (uint32_t i = 0; i < t->nconns; i++) {
            hp_free(t->conns[i].intended);
            hp_free(t->conns[i].sent);
        }
    }
    hp_free(t->conns);
    hp_hist_destroy(&t->lat);
    hp_hist_destroy(&t->unc);
    hp_free(t);
}

static hb_thread_t *thread_new(const hb_plan_t *plan, uint32_t id, int cpu, uint32_t first,
                               uint32_t nconns)
{
    hb_thread_t *t = hp_calloc_aligned(sizeof *t);
    if (!t)
        return NULL;
    t->plan = plan;
    t->nconns = nconns;
    t->cfg = HP_WORKER_CONFIG_DEFAULT;
    t->cfg.write_timeout_ms = plan->timeout_ns / 1000000 + 1;
    t->cfg.drain_timeout_ms = 100;
    if (hp_hist_init_latency(&t->lat) < 0 || hp_hist_init_latency(&t->unc) < 0)
        goto fail;
    t->conns = hp_calloc(nconns ? nconns : 1, sizeof *t->conns);
    if (!t->conns)
        goto fail;
    for (uint32_t i = 0; i < nconns; i++) {
        hb_conn_t *bc = &t->conns[i];
        bc->t = t;
        bc->index = first + i;
        bc->intended = hp_calloc(plan->depth, sizeof(uint64_t));
        bc->sent = hp_calloc(plan->depth, sizeof(uint64_t));
        if (!bc->intended || !bc->sent)
            goto fail;
    }
    if (hp_worker_init(&t->w, id, cpu, &t->cfg) < 0)
        goto fail;
    hp_timer_init(&t->tick, tick_cb);
    hp_loop_timer_arm(&t->w.loop, &t->tick, HB_TICK_MS * HB_RETRY_TICKS);
    if (plan->rate_mode)
        hp_loop_set_deadline(&t->w.loop, plan->rate.start_ns, rate_cb, t);
    for (uint32_t i = 0; i < nconns; i++)
        connect_one(&t->conns[i]);
    return t;
fail:
    thread_free(t);
    return NULL;
}

hb_threads_t *hb_threads_start(const hb_plan_t *plan)
{
    const hb_options_t *opt = plan->opt;
    hb_threads_t *ts = hp_calloc(1, sizeof *ts);
    if (!ts)
        return NULL;
    ts->t = hp_calloc((size_t)opt->threads, sizeof *ts->t);
    if (!ts->t) {
        hp_free(ts);
        return NULL;
    }
    int cpus[CPU_SETSIZE];
    uint32_t ncpu = hp_engine_cpus(cpus, CPU_SETSIZE);
    uint32_t nthreads = (uint32_t)opt->threads, total = (uint32_t)opt->connections;
    uint32_t first = 0;
    for (uint32_t i = 0; i < nthreads; i++) {
        /* Connections split as evenly as they go; the first threads take
         * the remainder. */
        uint32_t n = total / nthreads + (i < total % nthreads ? 1 : 0);
        hb_thread_t *t = thread_new(plan, i, cpus[i % ncpu], first, n);
        if (!t || hp_worker_start(&t->w) < 0) {
            int err = errno ? errno : ENOMEM;
            if (t) {
                hp_worker_destroy(&t->w);
                thread_free(t);
            }
            hb_threads_stop(ts, NULL);
            hb_threads_destroy(ts);
            errno = err;
            return NULL;
        }
        ts->t[ts->n++] = t;
        first += n;
    }
    return ts;
}

void hb_threads_peek(hb_threads_t *ts, uint64_t *requests, uint64_t *errors, uint64_t *ok,
                     uint64_t *p99_ns)
{
    uint64_t req = 0, err = 0, good = 0, p99 = 0;
    for (uint32_t i = 0; i < ts->n; i++) {
        hb_thread_t *t = ts->t[i];
        req += __atomic_load_n(&t->requests, __ATOMIC_RELAXED);
        for (int k = 0; k < HB_ERR_COUNT; k++)
            err += __atomic_load_n(&t->errors[k], __ATOMIC_RELAXED);
        good += __atomic_load_n(&t->status[2], __ATOMIC_RELAXED) +
                __atomic_load_n(&t->status[3], __ATOMIC_RELAXED);
        /* Threads see similar load: the worst thread's p99 stands in for
         * the merged one, which would cost a merge every second. */
        uint64_t p = hp_hist_percentile(&t->lat, 99.0);
        if (p > p99)
            p99 = p;
    }
    *requests = req;
    *errors = err;
    *ok = good;
    *p99_ns = p99;
}

void hb_threads_stop(hb_threads_t *ts, hb_results_t *r)
{
    for (uint32_t i = 0; i < ts->n; i++)
        hp_worker_post(&ts->t[i]->w, HP_MSG_STOP_NOW, 0, NULL);
    for (uint32_t i = 0; i < ts->n; i++) {
        hb_thread_t *t = ts->t[i];
        hp_worker_destroy(&t->w); /* joins the thread */
        if (!r)
            continue;
        r->requests += t->requests;
        r->bytes_read += t->bytes;
        for (int k = 0; k < HB_ERR_COUNT; k++)
            r->errors[k] += t->errors[k];
        for (int k = 0; k < 6; k++)
            r->status_classes[k] += t->status[k];
        hp_hist_merge(&r->latency, &t->lat);
        hp_hist_merge(&r->uncorrected, &t->unc);
    }
}

void hb_threads_destroy(hb_threads_t *ts)
{
    if (!ts)
        return;
    for (uint32_t i = 0; i < ts->n; i++)
        thread_free(ts->t[i]);
    hp_free(ts->t);
    hp_free(ts);
}

/* ---- the plan ---- */

int hb_plan_init(hb_plan_t *plan, const hb_options_t *opt, char *err, size_t errlen)
{
    memset(plan, 0, sizeof *plan);
    plan->opt = opt;
    plan->depth = (uint32_t)opt->pipeline;
    plan->head_request = hp_method_lookup(opt->method, strlen(opt->method)) == HP_METHOD_HEAD;
    plan->timeout_ns = (uint64_t)(opt->timeout_s * 1e9);

    char *body = NULL;
    size_t body_len = 0;
    if (opt->body_file) {
        FILE *f = fopen(opt->body_file, "rb");
        if (!f) {
            snprintf(err, errlen, "--body: cannot open '%s': %s", opt->body_file, strerror(errno));
            return -errno;
        }
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        body = hp_malloc(sz > 0 ? (size_t)sz : 1);
        if (!body || (sz > 0 && fread(body, 1, (size_t)sz, f) != (size_t)sz)) {
            snprintf(err, errlen, "--body: cannot read '%s'", opt->body_file);
            fclose(f);
            hp_free(body);
            return -EIO;
        }
        fclose(f);
        body_len = (size_t)sz;
    }

    bool has_host = false;
    size_t head_cap = 256 + strlen(opt->path) + strlen(opt->host);
    for (int i = 0; i < opt->nheaders; i++) {
        head_cap += strlen(opt->headers[i]) + 2;
        if (strncasecmp(opt->headers[i], "host:", 5) == 0)
            has_host = true;
    }
    char *one = hp_malloc(head_cap + body_len);
    if (!one) {
        hp_free(body);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int n = snprintf(one, head_cap, "%s %s HTTP/1.1\r\n", opt->method, opt->path);
    if (!has_host) {
        bool default_port = strcmp(opt->port, "80") == 0;
        n += snprintf(one + n, head_cap - (size_t)n, "Host: %s%s%s\r\n", opt->host,
                      default_port ? "" : ":", default_port ? "" : opt->port);
    }
    for (int i = 0; i < opt->nheaders; i++)
        n += snprintf(one + n, head_cap - (size_t)n, "%s\r\n", opt->headers[i]);
    if (opt->body_file)
        n += snprintf(one + n, head_cap - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(one + n, head_cap - (size_t)n, "\r\n");
    if (body_len)
        memcpy(one + n, body, body_len);
    hp_free(body);
    plan->req_len = (uint32_t)((size_t)n + body_len);

    plan->reqs = hp_malloc((size_t)plan->req_len * plan->depth);
    if (!plan->reqs) {
        hp_free(one);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < plan->depth; i++)
        memcpy(plan->reqs + (size_t)i * plan->req_len, one, plan->req_len);
    hp_free(one);
    return 0;
}

void hb_plan_destroy(hb_plan_t *plan)
{
    hp_free(plan->reqs);
    plan->reqs = NULL;
}
