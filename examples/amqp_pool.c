/*
 * amqp_pool.c - publish and consume from every worker with a pool per
 * worker (include/hotpath/amqp_pool.h): publishers and consumers on
 * connections of their own, channels borrowed for each batch.
 *
 *     cc -O2 -o amqp_pool examples/amqp_pool.c $(pkg-config --cflags --libs hotpath)
 *     ./amqp_pool amqp://127.0.0.1 jobs --workers 2 --consume --seconds 10
 *         -> every 250 ms, one JSON line per worker:
 *            {"worker":0,"published":..,"acked":..,"consumed":..,
 *             "publish":{"ready":1,"blocked":0,"opened":1,"closed":0,"lent":0,"waiters":0},
 *             "consume":{...,"consumers":1}}
 *
 * Options: --workers N (2), --batch N messages per borrowed channel every
 * 10 ms (20; 0: no publishing), --consume, --prefetch N (50), --hold
 * (acknowledge nothing), --work MS (each message takes MS of work that
 * blocks the loop, a slow consumer), --shared (consumers on the publisher
 * connections), --seconds N (until SIGINT/SIGTERM when 0), --name
 * (connections' prefix, "amqp_pool"). The queue must exist.
 *
 * Each worker runs on a thread of its own and makes its pool on its own
 * thread (hp_worker_call): nothing is shared between workers but the
 * read-only options. Stopping closes each pool on its worker, waits for
 * them all, then stops the workers.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include <hotpath/amqp.h>
#include <hotpath/amqp_pool.h>
#include <hotpath/log.h>
#include <hotpath/loop.h>
#include <hotpath/resolve.h>
#include <hotpath/timer.h>
#include <hotpath/worker.h>

#define MAX_WORKERS 16
#define TICK_MS 10        /* a batch per tick */
#define REPORT_MS 250     /* a stats line per worker */

typedef struct {
    const char *queue;
    hp_amqp_pool_config_t cfg;
    uint32_t batch;
    bool consume, hold;
    uint16_t prefetch;
    unsigned work_ms; /* --work: a slow consumer */
} opts_t;

typedef struct {
    const opts_t *o;      /* borrowed, read-only */
    hp_worker_t *w;
    hp_amqp_pool_t *pool;
    hp_timer_t tick;
    uint64_t ticks;
    uint64_t published, acked, nacked, failed, consumed;
    bool stopping;
    atomic_bool closed;   /* set on the worker's thread, read by main */
} wstate_t;

static void print_side(const hp_amqp_pool_t *p, int side, char *buf, size_t len)
{
    hp_amqp_pool_stats_t s;
    hp_amqp_pool_stats(p, side, &s);
    snprintf(buf, len,
             "{\"ready\":%u,\"blocked\":%u,\"recovering\":%u,\"opened\":%llu,\"closed\":%llu,"
             "\"lent\":%u,\"idle\":%u,\"waiters\":%u,\"consumers\":%u}",
             s.ready, s.blocked, s.recovering, (unsigned long long)s.opened,
             (unsigned long long)s.closed, s.channels_lent, s.channels_idle, s.waiters,
             s.consumers);
}

static void report(wstate_t *ws)
{
    char pub[256], con[256];
    print_side(ws->pool, HP_AMQP_POOL_PUBLISH, pub, sizeof pub);
    print_side(ws->pool, HP_AMQP_POOL_CONSUME, con, sizeof con);
    printf("{\"worker\":%u,\"published\":%llu,\"acked\":%llu,\"nacked\":%llu,\"failed\":%llu,"
           "\"consumed\":%llu,\"publish\":%s,\"consume\":%s}\n",
           hp_worker_id(ws->w), (unsigned long long)ws->published,
           (unsigned long long)ws->acked, (unsigned long long)ws->nacked,
           (unsigned long long)ws->failed, (unsigned long long)ws->consumed, pub, con);
    fflush(stdout);
}

static void on_batch(hp_amqp_channel_t *ch, const hp_amqp_batch_result_t *r, void *arg)
{
    (void)ch;
    wstate_t *ws = arg;
    ws->acked += r->acked;
    ws->nacked += r->nacked;
    ws->failed += r->failed;
}

/* One batch on a borrowed channel, which goes back at once: its confirms
 * arrive later, on_batch counts them. */
static void publish_on(wstate_t *ws, hp_amqp_channel_t *ch)
{
    hp_amqp_msg_t msgs[64];
    uint32_t n = ws->o->batch < 64 ? ws->o->batch : 64;
    for (uint32_t i = 0; i < n; i++)
        msgs[i] = (hp_amqp_msg_t){.routing_key = ws->o->queue, .body = "pooled", .len = 6};
    if (hp_amqp_publish_batch(ch, msgs, n, on_batch, ws, NULL) == 0)
        ws->published += n;
    hp_amqp_pool_channel_release(ws->pool, ch);
}

static void on_channel(hp_amqp_pool_t *p, hp_amqp_channel_t *ch, int err, void *arg)
{
    (void)p;
    wstate_t *ws = arg;
    if (err == 0)
        publish_on(ws, ch);
}

static void on_tick(hp_timer_t *t)
{
    wstate_t *ws = HP_CONTAINER_OF(t, wstate_t, tick);
    if (ws->stopping)
        return;
    ws->ticks++;
    hp_amqp_pool_stats_t s;
    hp_amqp_pool_stats(ws->pool, HP_AMQP_POOL_PUBLISH, &s);
    /* One borrower waiting at a time is enough to keep publishing. */
    if (ws->o->batch && s.waiters == 0) {
        hp_amqp_channel_t *ch;
        if (hp_amqp_pool_channel_acquire(ws->pool, HP_AMQP_POOL_PUBLISH, on_channel, ws, &ch) == 1)
            publish_on(ws, ch);
    }
    if (ws->ticks % (REPORT_MS / TICK_MS) == 0)
        report(ws);
    hp_loop_timer_arm(hp_worker_loop(ws->w), &ws->tick, TICK_MS);
}

static void on_msg(hp_amqp_channel_t *ch, const hp_amqp_delivery_t *d, void *arg)
{
    wstate_t *ws = arg;
    if (!d)
        return;
    ws->consumed++;
    if (ws->o->work_ms)
        usleep((useconds_t)ws->o->work_ms * 1000);
    if (!ws->o->hold)
        hp_amqp_ack(ch, d->delivery_tag, false);
}

static void on_consuming(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    wstate_t *ws = arg;
    if (r->err)
        fprintf(stderr, "amqp_pool: worker %u: consume: %d %.*s\n", hp_worker_id(ws->w),
                r->reply_code, (int)r->reply_text.len, (const char *)r->reply_text.ptr);
}

static void start_pool(hp_worker_t *w, uint64_t a, void *ptr)
{
    (void)a;
    wstate_t *ws = ptr;
    int r = hp_amqp_pool_new(w, &ws->o->cfg, &ws->pool);
    if (r < 0) {
        fprintf(stderr, "amqp_pool: worker %u: %s\n", hp_worker_id(w), strerror(-r));
        exit(1);
    }
    if (ws->o->consume)
        hp_amqp_pool_consume(ws->pool, ws->o->queue, ws->o->prefetch, 0, HP_AMQP_NO_ARGS, on_msg,
                             ws, on_consuming, ws);
    hp_timer_init(&ws->tick, on_tick);
    hp_loop_timer_arm(hp_worker_loop(w), &ws->tick, TICK_MS);
}

static void pool_closed(void *arg)
{
    wstate_t *ws = arg;
    atomic_store(&ws->closed, true);
}

static void stop_pool(hp_worker_t *w, uint64_t a, void *ptr)
{
    (void)a;
    wstate_t *ws = ptr;
    ws->stopping = true;
    hp_loop_timer_cancel(hp_worker_loop(w), &ws->tick);
    report(ws);
    hp_amqp_pool_close(ws->pool, pool_closed, ws);
}

static int usage(void)
{
    fprintf(stderr, "usage: amqp_pool URL QUEUE [--workers N] [--batch N] [--consume] "
                    "[--prefetch N] [--hold] [--work MS] [--shared] [--seconds N] [--name S]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    static opts_t o;
    o.queue = argv[2];
    o.cfg = HP_AMQP_POOL_CONFIG_DEFAULT;
    o.batch = 20;
    o.prefetch = 50;
    o.cfg.amqp.name = "amqp_pool";
    o.cfg.amqp.recover_min_ms = 50;
    unsigned nworkers = 2;
    long seconds = 0;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--consume") == 0)
            o.consume = true;
        else if (strcmp(a, "--hold") == 0)
            o.hold = true;
        else if (strcmp(a, "--shared") == 0)
            o.cfg.shared = true;
        else if (v && strcmp(a, "--workers") == 0 && (i++, 1))
            nworkers = (unsigned)atoi(v);
        else if (v && strcmp(a, "--batch") == 0 && (i++, 1))
            o.batch = (uint32_t)atoi(v);
        else if (v && strcmp(a, "--prefetch") == 0 && (i++, 1))
            o.prefetch = (uint16_t)atoi(v);
        else if (v && strcmp(a, "--work") == 0 && (i++, 1))
            o.work_ms = (unsigned)atoi(v);
        else if (v && strcmp(a, "--seconds") == 0 && (i++, 1))
            seconds = atol(v);
        else if (v && strcmp(a, "--name") == 0 && (i++, 1))
            o.cfg.amqp.name = v;
        else
            return usage();
    }
    if (nworkers == 0 || nworkers > MAX_WORKERS)
        return usage();
    char buf[1024];
    const char *why;
    if (hp_amqp_url_parse(argv[1], &o.cfg.amqp, buf, sizeof buf, &why) < 0) {
        fprintf(stderr, "amqp_pool: %s: %s\n", argv[1], why);
        return 2;
    }
    hp_log_set_level(HP_LOG_ERROR);

    /* SIGINT and SIGTERM are taken by the main thread alone: blocked
     * before the workers' threads start (they inherit the mask). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    static wstate_t ws[MAX_WORKERS];
    hp_resolve_t *res = NULL;
    hp_worker_config_t wcfg = HP_WORKER_CONFIG_DEFAULT;
    int r = hp_resolve_new(&res, NULL);
    for (unsigned i = 0; i < nworkers && r == 0; i++) {
        ws[i].o = &o;
        if ((r = hp_worker_new(&ws[i].w, i, -1, &wcfg)) < 0)
            break;
        hp_worker_set_resolver(ws[i].w, res);
        if ((r = hp_worker_start(ws[i].w)) == 0)
            r = hp_worker_call(ws[i].w, start_pool, 0, &ws[i]);
    }
    if (r < 0) {
        fprintf(stderr, "amqp_pool: %s\n", strerror(-r));
        return 1;
    }

    struct timespec wait = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};
    for (long waited_ms = 0; seconds == 0 || waited_ms < seconds * 1000; waited_ms += 100) {
        if (sigtimedwait(&sigs, NULL, &wait) >= 0)
            break;
    }
    for (unsigned i = 0; i < nworkers; i++)
        hp_worker_call(ws[i].w, stop_pool, 0, &ws[i]);
    /* The pools close gracefully (connection.close, close-ok), within a
     * bound. */
    for (int tries = 0; tries < 100; tries++) {
        unsigned closed = 0;
        for (unsigned i = 0; i < nworkers; i++)
            closed += atomic_load(&ws[i].closed);
        if (closed == nworkers)
            break;
        nanosleep(&wait, NULL);
    }
    for (unsigned i = 0; i < nworkers; i++)
        hp_worker_ask_stop(ws[i].w, true);
    for (unsigned i = 0; i < nworkers; i++)
        hp_worker_free(ws[i].w);
    hp_resolve_destroy(res);
    return 0;
}
