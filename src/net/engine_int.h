/*
 * engine_int.h - inside the engine: its struct, set up in place by the
 * app, which embeds it.
 */
#ifndef HOTPATH_ENGINE_INT_H
#define HOTPATH_ENGINE_INT_H

#include <stdint.h>

#include "core/mpsc_int.h"
#include "hotpath/engine.h"
#include "worker_int.h"

struct hp_engine {
    hp_worker_config_t cfg;
    hp_worker_t *workers;         /* owned: nworkers, cache-line aligned */
    uint32_t nworkers;
    uint32_t running;             /* workers whose loop has not reported exit */
    hp_mpsc_t inbox;              /* exit reports from the workers */
    int wake_fd;                  /* owned eventfd: readable when a report arrives */
    hp_resolve_t *resolver;       /* owned: host names for the workers'
                                     hp_worker_connect_host */
};

/* Sets an engine up in place, as hp_engine_new does: `nworkers` workers
 * with no protocol and no listener yet. Returns 0 or -errno (-EINVAL,
 * -ENOMEM); on failure nothing is left open or allocated. */
int hp_engine_init(hp_engine_t *e, uint32_t nworkers, const hp_worker_config_t *cfg);

/* Joins the threads and frees everything the engine holds, not the
 * struct. */
void hp_engine_destroy(hp_engine_t *e);

#endif
