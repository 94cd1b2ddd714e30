/*
 * app_amqp_metrics.c - the hotpath_amqp_* metrics of the app's AMQP
 * side: each worker's shard, which the worker writes, and /metrics,
 * which sums the shards of all workers.
 *
 * Central structure: amqp_shard_t (app_amqp_worker_int.h), one per
 * worker, cache-line aligned: the worker's connection counters (its
 * closed connections' in aw->base plus its live ones'), its publishing
 * requests by outcome, its links by state and its breaker's state.
 *
 * Invariant: a shard is written only by its own worker, with relaxed
 * stores, and read by any worker with relaxed loads (hp_worker_stat);
 * its counters only grow, so a sum read mid-refresh is at most a second
 * (TICK_MS) behind, never wrong. The histograms (latency, deliver) are
 * merged by the reading worker into its own scratch (merged,
 * deliver_merged).
 */
#include "app_amqp_worker_int.h"

#include <assert.h>
#include <stdio.h>

#include "hotpath/amqp.h"
#include "net/worker_int.h"

/* ---- the shard -------------------------------------------------------------- */

static inline void shard_set(uint64_t *counter, uint64_t v)
{
    __atomic_store_n(counter, v, __ATOMIC_RELAXED);
}

/* The outcomes' labels, by OUT_*. */
static const char *const outcome_names[OUT_COUNT] = {
    "accepted",  "nacked",    "unroutable", "no_exchange", "unconfirmed",  "unavailable",
    "timeout",   "too_large", "bad_request", "aborted",    "circuit_open",
};

/* Moves the publish-to-deliver samples of connection c into the
 * worker's histogram, which only grows (other workers merge it). */
static void deliver_take(amqp_worker_t *aw, hp_amqp_conn_t *c)
{
    const hp_hist_t *h = hp_amqp_deliver_latency(c);
    if (!h || hp_hist_count(h) == 0)
        return;
    hp_hist_merge(&aw->deliver, h);
    hp_amqp_deliver_latency_reset(c);
}

/* Copies the breaker's state into the shard. */
void app_amqp_shard_breaker(amqp_worker_t *aw)
{
    if (!aw->has_breaker)
        return;
    shard_set(&aw->shard.breaker_state, (uint64_t)hp_amqp_breaker_state(&aw->breaker));
    shard_set(&aw->shard.breaker_opened, hp_amqp_breaker_opened(&aw->breaker));
}

/* Adds connection c's counters to *sum (only those /metrics shows). */
static void stats_add(hp_amqp_stats_t *sum, hp_amqp_conn_t *c)
{
    hp_amqp_stats_t s;
    hp_amqp_stats(c, &s);
    sum->published += s.published;
    sum->confirmed += s.confirmed;
    sum->nacked += s.nacked;
    sum->unconfirmed_failed += s.unconfirmed_failed;
    sum->returned += s.returned;
    sum->delivered += s.delivered;
    sum->redelivered += s.redelivered;
    sum->acked += s.acked;
    sum->recoveries += s.recoveries;
    sum->bytes_in += s.bytes_in;
    sum->bytes_out += s.bytes_out;
}

/* Copies this worker's connection counters and its links' states into
 * the shard. */
void app_amqp_shard_refresh(amqp_worker_t *aw)
{
    hp_amqp_stats_t s = {0};
    uint64_t states[HP_ARRAY_LEN(aw->shard.states)] = {0};
    for (uint32_t i = 0; i < aw->nlinks; i++) {
        amqp_link_t *l = &aw->links[i];
        if (l->conn) {
            stats_add(&s, l->conn);
            deliver_take(aw, l->conn);
        }
        states[link_state(l)]++;
    }
    const hp_amqp_stats_t *b = &aw->base;
    uint64_t v[S_COUNT] = {
        [S_PUBLISHED] = b->published + s.published,
        [S_CONFIRMED] = b->confirmed + s.confirmed,
        [S_NACKED] = b->nacked + s.nacked,
        [S_UNCONFIRMED] = b->unconfirmed_failed + s.unconfirmed_failed,
        [S_RETURNED] = b->returned + s.returned,
        [S_DELIVERED] = b->delivered + s.delivered,
        [S_REDELIVERED] = b->redelivered + s.redelivered,
        [S_ACKED] = b->acked + s.acked,
        [S_RECOVERIES] = b->recoveries + s.recoveries,
        [S_BYTES_IN] = b->bytes_in + s.bytes_in,
        [S_BYTES_OUT] = b->bytes_out + s.bytes_out,
    };
    for (int i = 0; i < S_COUNT; i++)
        shard_set(&aw->shard.conn[i], v[i]);
    for (size_t k = 0; k < HP_ARRAY_LEN(states); k++)
        shard_set(&aw->shard.states[k], states[k]);
    app_amqp_shard_breaker(aw);
}

/* Adds a closing connection's counters to the base. */
void app_amqp_base_add(amqp_worker_t *aw, hp_amqp_conn_t *c)
{
    deliver_take(aw, c);
    stats_add(&aw->base, c);
}

void app_amqp_tick_cb(hp_timer_t *t)
{
    amqp_worker_t *aw = HP_CONTAINER_OF(t, amqp_worker_t, tick_timer);
    app_amqp_shard_refresh(aw);
    for (uint32_t i = 0; i < aw->nlinks; i++) {
        if (aw->links[i].conn) {
            hp_loop_timer_arm(aw->loop, &aw->tick_timer, TICK_MS);
            break;
        }
    }
}

/* ---- /metrics --------------------------------------------------------------- */

static const char *const state_names[] = {
    [HP_AMQP_STATE_CONNECTING] = "connecting", [HP_AMQP_STATE_READY] = "ready",
    [HP_AMQP_STATE_BLOCKED] = "blocked",       [HP_AMQP_STATE_RECOVERING] = "recovering",
    [HP_AMQP_STATE_CLOSED] = "closed",
};

static const char *const breaker_names[] = {
    [HP_AMQP_BREAKER_CLOSED] = "closed",
    [HP_AMQP_BREAKER_OPEN] = "open",
    [HP_AMQP_BREAKER_HALF_OPEN] = "half_open",
};

/* A family with one sample per name: family{key="names[k]"} values[k]. */
static void prom_by_label(hp_prom_t *p, const char *family, const char *type, const char *help,
                          const char *key, const char *const *names, const uint64_t *values,
                          size_t n)
{
    hp_prom_family(p, family, type, help);
    for (size_t k = 0; k < n; k++) {
        char label[48];
        snprintf(label, sizeof label, "%s=\"%s\"", key, names[k]);
        hp_prom_sample(p, family, label, values[k]);
    }
}

void app_amqp_metrics(hp_prom_t *p, hp_worker_t *me, hp_worker_t *ws, uint32_t nw)
{
    amqp_worker_t *mine = hp_worker_proto_data(me, &app_amqp_proto);
    if (!mine)
        return;
    app_amqp_shard_refresh(mine);
    static const struct {
        int idx;
        const char *name, *help;
    } counters[] = {
        {S_PUBLISHED, "hotpath_amqp_published_total", "Messages published to the broker."},
        {S_CONFIRMED, "hotpath_amqp_confirmed_total",
         "Publisher confirms received: messages the broker acked."},
        {S_NACKED, "hotpath_amqp_nacked_total", "Messages the broker nacked."},
        {S_UNCONFIRMED, "hotpath_amqp_unconfirmed_total",
         "Messages whose channel or connection closed before the broker answered."},
        {S_RETURNED, "hotpath_amqp_returned_total",
         "Mandatory messages the broker returned as unroutable."},
        {S_DELIVERED, "hotpath_amqp_delivered_total", "Messages delivered to consumers."},
        {S_REDELIVERED, "hotpath_amqp_redelivered_total",
         "Deliveries the broker had delivered before."},
        {S_ACKED, "hotpath_amqp_acked_total", "Deliveries acknowledged to the broker."},
        {S_RECOVERIES, "hotpath_amqp_recoveries_total",
         "Connections to the broker re-established after a loss."},
        {S_BYTES_IN, "hotpath_amqp_bytes_received_total", "Bytes read from the broker."},
        {S_BYTES_OUT, "hotpath_amqp_bytes_sent_total", "Bytes written to the broker."},
    };
    for (size_t k = 0; k < HP_ARRAY_LEN(counters); k++) {
        uint64_t v = 0;
        for (uint32_t i = 0; i < nw; i++) {
            amqp_worker_t *aw = hp_worker_proto_data(&ws[i], &app_amqp_proto);
            if (aw)
                v += hp_worker_stat(&aw->shard.conn[counters[k].idx]);
        }
        hp_prom_family(p, counters[k].name, "counter", counters[k].help);
        hp_prom_sample(p, counters[k].name, NULL, v);
    }
    uint64_t states[HP_ARRAY_LEN(state_names)] = {0};
    static_assert(HP_ARRAY_LEN(state_names) == HP_AMQP_STATE_CLOSED + 1, "a name per state");
    uint64_t outcomes[OUT_COUNT] = {0};
    uint64_t breakers[HP_ARRAY_LEN(breaker_names)] = {0}, opened = 0;
    hp_hist_reset(&mine->merged);
    hp_hist_reset(&mine->deliver_merged);
    for (uint32_t i = 0; i < nw; i++) {
        amqp_worker_t *aw = hp_worker_proto_data(&ws[i], &app_amqp_proto);
        if (!aw)
            continue;
        for (size_t k = 0; k < HP_ARRAY_LEN(aw->shard.states); k++)
            states[k] += hp_worker_stat(&aw->shard.states[k]);
        for (int k = 0; k < OUT_COUNT; k++)
            outcomes[k] += hp_worker_stat(&aw->shard.outcomes[k]);
        hp_hist_merge(&mine->merged, &aw->latency);
        hp_hist_merge(&mine->deliver_merged, &aw->deliver);
        uint64_t bs = hp_worker_stat(&aw->shard.breaker_state);
        if (bs < HP_ARRAY_LEN(breakers))
            breakers[bs]++;
        opened += hp_worker_stat(&aw->shard.breaker_opened);
    }
    prom_by_label(p, "hotpath_amqp_connections", "gauge",
                  "The workers' broker connections, by state.", "state", state_names, states,
                  HP_ARRAY_LEN(states));
    prom_by_label(p, "hotpath_amqp_publish_requests_total", "counter",
                  "Requests to the publishing route, by how they ended.", "outcome",
                  outcome_names, outcomes, OUT_COUNT);
    hp_prom_family(p, "hotpath_amqp_confirm_duration_seconds", "histogram",
                   "Time from publishing a message to the broker's ack or nack.");
    hp_prom_histogram(p, "hotpath_amqp_confirm_duration_seconds", NULL, &mine->merged,
                      hp_prom_latency_bounds, hp_prom_latency_nbounds);
    /* Workers without a breaker count as closed: they refuse nothing. */
    prom_by_label(p, "hotpath_amqp_breaker_state", "gauge",
                  "The workers' publishing circuit breakers, by state.", "state", breaker_names,
                  breakers, HP_ARRAY_LEN(breakers));
    hp_prom_family(p, "hotpath_amqp_breaker_opened_total", "counter",
                   "Times a worker's circuit breaker opened.");
    hp_prom_sample(p, "hotpath_amqp_breaker_opened_total", NULL, opened);
    /* Only with samples: the server consumes nothing itself, so only a
     * connection that an embedder consumes on has any. */
    if (hp_hist_count(&mine->deliver_merged)) {
        hp_prom_family(p, "hotpath_amqp_publish_to_deliver_seconds", "histogram",
                       "Time from a message's timestamp_in_ms header to its delivery.");
        hp_prom_histogram(p, "hotpath_amqp_publish_to_deliver_seconds", NULL,
                          &mine->deliver_merged, hp_prom_latency_bounds,
                          hp_prom_latency_nbounds);
    }
}
