/*
 * app_amqp_int.h - the app's AMQP side (app_amqp*.c), for app.c,
 * app_config.c and builtin.c: the settings hp_app_new keeps, the
 * per-worker protocol that holds each worker's connection, the publishing
 * route's handler and the hotpath_amqp_* metrics.
 *
 * The app is where protocols meet: app_amqp.c, app_amqp_settings.c and
 * app_amqp_metrics.c are the only files of src/http that call the AMQP
 * client; the HTTP protocol's own (server.c, parser.c ...) never do
 * (app.h carries hp_amqp_config_t, nothing more).
 */
#ifndef HOTPATH_APP_AMQP_INT_H
#define HOTPATH_APP_AMQP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "hotpath/app.h"
#include "metrics/prom_int.h"

typedef struct app_amqp app_amqp_t;

/* Checks `cfg` (enabled or not) as app_amqp_new would. Returns 0, or
 * -EINVAL with the configuration key at fault in *key ("amqp.url",
 * "amqp.publish_route" ...) and a one-line reason, without the key, in
 * err. */
int app_amqp_check(const hp_app_amqp_t *cfg, const char **key, char *err, size_t errlen);

/* Checks `cfg` (which must be enabled) and copies it, its URL parsed over
 * cfg->conn, into *out (owned; app_amqp_free). Returns 0, -EINVAL with
 * "KEY: reason" in err, or -ENOMEM. */
int app_amqp_new(app_amqp_t **out, const hp_app_amqp_t *cfg, char *err, size_t errlen);
void app_amqp_free(app_amqp_t *a);

/* The settings in force, their strings owned by `a`. */
const hp_app_amqp_t *app_amqp_settings(const app_amqp_t *a);

/* The publishing route's pattern ("<publish_route>/{exchange}/{routing_key:*}")
 * and handler (udata: `a`); the pattern is NULL without a route. */
const char *app_amqp_pattern(const app_amqp_t *a);
int app_amqp_publish(hp_ctx_t *ctx, void *udata);

/* The per-worker protocol: worker_init (arg: the app_amqp_t, which must
 * outlive the workers) opens the worker's connection; no connection of
 * the engine runs it. */
extern const hp_proto_t app_amqp_proto;

/* Writes the hotpath_amqp_* families, summed over ws[0, nw), from worker
 * `me` (the caller's: its own shard is brought up to date first).
 * Nothing when the workers run no AMQP. About 5 KiB of text (7 with the
 * publish-to-deliver histogram, which only an embedder's consumers
 * fill), whatever the number of workers: /metrics' scratch has room for
 * it. */
void app_amqp_metrics(hp_prom_t *p, hp_worker_t *me, hp_worker_t *ws, uint32_t nw);

#endif
