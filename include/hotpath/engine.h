/*
 * engine.h - N workers, each carrying the same protocols and listeners:
 * start, stop gracefully, wait.
 *
 * The engine opens one SO_REUSEPORT socket per worker and address up
 * front (so start-up errors are reported before any thread runs), pins
 * worker i to the i-th CPU the process may use, and collects the workers'
 * exit reports through its own MPSC inbox and eventfd. Its workers form
 * one group: a connection handle names a worker by its index in it. They
 * share one resolver (resolve.h), whose helper threads start on the first
 * lookup and stop in hp_engine_free.
 */
#ifndef HOTPATH_ENGINE_H
#define HOTPATH_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "hotpath/common.h"
#include "hotpath/listener.h"
#include "hotpath/resolve.h"
#include "hotpath/worker.h"

typedef struct hp_engine hp_engine_t; /* opaque */

/* The number of CPUs this process may run on, writing their ids to
 * cpus[0..max) when cpus is not NULL. Always at least 1. */
HP_EXPORT uint32_t hp_engine_cpus(int *cpus, uint32_t max);

/* Makes an engine of `nworkers` workers (cfg copied) with no protocol
 * and no listener yet. Returns 0 with *out set, or -errno (-EINVAL,
 * -ENOMEM); on failure nothing is left open or allocated. */
HP_EXPORT int hp_engine_new(hp_engine_t **out, uint32_t nworkers, const hp_worker_config_t *cfg);

/* Its workers (i below hp_engine_nworkers), e.g. to reach one with
 * hp_worker_call; they live as long as the engine. */
HP_EXPORT uint32_t hp_engine_nworkers(const hp_engine_t *e);
HP_EXPORT hp_worker_t *hp_engine_worker(hp_engine_t *e, uint32_t i);

/* An eventfd that becomes readable when a worker reports its exit: poll
 * it, then call hp_engine_reap. Owned by the engine. */
HP_EXPORT int hp_engine_wake_fd(const hp_engine_t *e);

/* Registers `proto` on every worker (proto->worker_init(w, arg, &data) for
 * each; see hp_worker_add_proto). Call before hp_engine_start. Returns 0
 * or -errno (workers already set up keep it until hp_engine_free). */
HP_EXPORT int hp_engine_add_proto(hp_engine_t *e, const hp_proto_t *proto, void *arg);

/* Opens a listening socket per worker on `addr` (one shared socket when
 * cfg.reuseport is false) whose connections run `proto`. One engine may
 * listen on several addresses with different protocols. Call before
 * hp_engine_start. Returns 0 or -errno: -EADDRINUSE, -EACCES,
 * -EADDRNOTAVAIL from binding, -ENOENT for a protocol that needs
 * registering first. */
HP_EXPORT int hp_engine_listen(hp_engine_t *e, const hp_listener_addr_t *addr, int backlog,
                               const hp_proto_t *proto);

/* Starts every worker thread. Returns 0 or -errno (threads already
 * started are stopped again). */
HP_EXPORT int hp_engine_start(hp_engine_t *e);

/* Asks every worker to drain (stop accepting, finish in-flight work). */
HP_EXPORT void hp_engine_shutdown(hp_engine_t *e);

/* Asks every worker to close everything and stop now. */
HP_EXPORT void hp_engine_stop_now(hp_engine_t *e);

/* Reads exit reports; returns true once every worker's loop has ended.
 * Call when hp_engine_wake_fd is readable (or to poll). */
HP_EXPORT bool hp_engine_reap(hp_engine_t *e);

/* Joins the threads (ask them to stop first, and reap) and frees
 * everything. NULL is ignored. */
HP_EXPORT void hp_engine_free(hp_engine_t *e);

#endif
