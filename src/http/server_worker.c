/*
 * server_worker.c - the HTTP server's state on each worker: set-up and
 * teardown (worker_init/worker_fini of the protocol), the caches' lifecycle
 * (response cache, open-file cache, their counters published for
 * /metrics), the cached Date header, and the switch to a reloaded
 * configuration.
 *
 * Central structure: hp_http_worker_t (http_server.h), one per worker,
 * written only by its worker; other workers read its statistics shard.
 */
#include <errno.h>
#include <time.h>

#include "hotpath/alloc.h"
#include "fcache_int.h"
#include "rcache_int.h"
#include "hotpath/log.h"
#include "net/worker_int.h"
#include "server_int.h"

/* Keeps the Date header current: formatted at most once a second. */
const hp_clock_date_t *http_date(hp_conn_t *c)
{
    hp_http_worker_t *hw = http_worker(c);
    uint64_t now = hp_conn_now(c);
    if (HP_UNLIKELY(now >= hw->date_next_ms)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        hp_clock_date_update(&hw->date, ts.tv_sec);
        hw->date_sec = ts.tv_sec;
        hw->date_next_ms = now + 1000 - (uint64_t)(ts.tv_nsec / 1000000);
    }
    return &hw->date;
}

/* Route latencies: 1 us to 60 s at 2 significant digits (21 KiB each);
 * Prometheus buckets need no finer. */
#define ROUTE_HIST_LOWEST 1000ull
#define ROUTE_HIST_HIGHEST (60ull * 1000000000ull)
#define ROUTE_HIST_DIGITS 2

/* Copies the caches' counters into the statistics shard, where /metrics
 * on any worker may read them. */
void http_cache_publish(hp_http_worker_t *hw)
{
    hp_http_stats_t *st = &hw->stats;
    if (hw->rcache) {
        hp_rcache_stats_t r;
        hp_rcache_stats(hw->rcache, &r);
        __atomic_store_n(&st->cache_hits, hw->cache_base[0] + r.hits, __ATOMIC_RELAXED);
        __atomic_store_n(&st->cache_misses, hw->cache_base[1] + r.misses, __ATOMIC_RELAXED);
        __atomic_store_n(&st->cache_evictions, hw->cache_base[2] + r.evictions, __ATOMIC_RELAXED);
        __atomic_store_n(&st->cache_entries, r.entries, __ATOMIC_RELAXED);
        __atomic_store_n(&st->cache_bytes, r.bytes, __ATOMIC_RELAXED);
    }
    hp_fcache_stats_t f;
    hp_fcache_stats(hw->fcache, &f);
    __atomic_store_n(&st->file_hits, f.hits, __ATOMIC_RELAXED);
    __atomic_store_n(&st->file_misses, f.misses, __ATOMIC_RELAXED);
    __atomic_store_n(&st->file_evictions, f.evictions, __ATOMIC_RELAXED);
    __atomic_store_n(&st->file_entries, f.entries, __ATOMIC_RELAXED);
}

/* Drops the response cache, keeping its counts for /metrics. */
static void rcache_stop(hp_http_worker_t *hw)
{
    if (!hw->rcache)
        return;
    hp_rcache_stats_t r;
    hp_rcache_stats(hw->rcache, &r);
    hw->cache_base[0] += r.hits;
    hw->cache_base[1] += r.misses;
    hw->cache_base[2] += r.evictions;
    hp_rcache_free(hw->rcache); /* entries being sent live on until sent */
    hw->rcache = NULL;
    __atomic_store_n(&hw->stats.cache_entries, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hw->stats.cache_bytes, 0, __ATOMIC_RELAXED);
}

/* The response cache cfg asks for (none when off). */
static int rcache_start(hp_http_worker_t *hw)
{
    const hp_http_config_t *cfg = hw->cfg;
    hw->rcache = NULL;
    if (!cfg->cache.enabled)
        return 0;
    return hp_rcache_new(&hw->rcache, cfg->cache.max_entries ? cfg->cache.max_entries : 1,
                         cfg->cache.max_bytes, cfg->cache.ttl_ms);
}

/* A reloaded configuration: from now on every request uses it. What is
 * cached for the old one (open files, responses) goes; the old one is
 * handed back. The limits that size the request state never change on a
 * reload (the app refuses such a change), so requests in progress go on.
 * Runs on the worker's thread; arg is the protocol. */
static void reload(hp_worker_t *w, uint64_t arg, void *ptr)
{
    hp_http_worker_t *hw = hp_worker_proto_data(w, (const hp_proto_t *)(uintptr_t)arg);
    const hp_http_config_t *old = hw->cfg;
    http_log_stop(w, hw);
    rcache_stop(hw);
    hp_fcache_clear(hw->fcache); /* roots may have been reopened under the same numbers */
    hw->cfg = ptr;
    if (http_log_start(hw) < 0)
        hp_log(WARN, "worker %u: no memory for the access log buffer; not logging", w->id);
    if (rcache_start(hw) < 0)
        hp_log(WARN, "worker %u: no memory for the response cache; not caching", w->id);
    http_cache_publish(hw);
    if (old->retire)
        old->retire(old);
}

int hp_http_post_config(hp_worker_t *w, const hp_proto_t *proto, const hp_http_config_t *cfg)
{
    return hp_worker_call(w, reload, (uintptr_t)proto, (void *)cfg);
}

void http_worker_fini(hp_worker_t *w, void *data)
{
    hp_http_worker_t *hw = data;
    if (!hw)
        return;
    http_log_stop(w, hw);
    hp_rcache_free(hw->rcache);
    hp_fcache_free(hw->fcache);
    for (uint32_t i = 0; i < hw->nroutes; i++)
        hp_hist_destroy(&hw->routes[i].latency);
    hp_free(hw->routes);
    hp_hist_destroy(&hw->merged);
    hp_free(hw->scratch);
    hp_free(hw);
}

int http_worker_init(hp_worker_t *w, void *arg, void **data)
{
    hp_http_worker_t *hw = hp_calloc_aligned(sizeof *hw);
    if (!hw)
        return -ENOMEM;
    hw->cfg = arg;
    hw->date = (hp_clock_date_t)HP_CLOCK_DATE_INIT;
    hw->date_next_ms = 0;
    if (http_log_start(hw) < 0 || rcache_start(hw) < 0)
        goto oom;
    /* Entries are revalidated once a second: a file changed on disk is
     * seen within that. */
    uint32_t files = hw->cfg->file_cache_entries ? hw->cfg->file_cache_entries : 1;
    if (hp_fcache_new(&hw->fcache, files, hw->cfg->file_cache_bytes, 1000) < 0)
        goto oom;
    /* Routes are fixed before workers start: size the shards now. */
    uint32_t n = hw->cfg->routes ? hw->cfg->routes->npatterns : 0;
    hw->scratch_len = HP_HTTP_SCRATCH + (size_t)n * HP_HTTP_SCRATCH_PER_ROUTE;
    if (!(hw->scratch = hp_malloc(hw->scratch_len)))
        goto oom;
    if (n) {
        if (!(hw->routes = hp_calloc(n, sizeof *hw->routes)))
            goto oom;
        hw->nroutes = n;
        for (uint32_t i = 0; i < n; i++)
            if (hp_hist_init(&hw->routes[i].latency, ROUTE_HIST_LOWEST, ROUTE_HIST_HIGHEST,
                             ROUTE_HIST_DIGITS) < 0)
                goto oom;
        if (hp_hist_init(&hw->merged, ROUTE_HIST_LOWEST, ROUTE_HIST_HIGHEST, ROUTE_HIST_DIGITS) < 0)
            goto oom;
    }
    *data = hw;
    return 0;
oom:
    http_worker_fini(w, hw);
    return -ENOMEM;
}
