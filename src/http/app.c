/*
 * app.c - an HTTP application: routes, middleware, and the engine that
 * runs them, from configuration to graceful stop.
 *
 * Central structure: hp_app_t, which owns the router, the middleware list
 * (hp_http_routes_t, shared read-only by the workers once running), the
 * document root and the engine. hp_app_run blocks in poll() on the
 * engine's exit-report eventfd, a stop eventfd (hp_app_stop, any thread)
 * and, when asked to, a signalfd for SIGINT/SIGTERM (the first starts a
 * graceful drain, a second exits at once), SIGHUP (reload) and SIGUSR1
 * (reopen the access log).
 *
 * What a reload may change lives in a generation (app_gen_t): the HTTP
 * configuration the workers read, with the root descriptors, locations
 * and access-log file it refers to. A reload builds a new generation and
 * posts it to every worker; each switches between two events and retires
 * the old one. A generation no worker uses any more is freed by this
 * thread (never by a worker, so nothing is closed under a worker's feet).
 */
#include "hotpath/app.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "app_amqp_int.h"
#include "hotpath/alloc.h"
#include "net/engine_int.h"
#include "mime_int.h"
#include "static_int.h"
#include "hotpath/listener.h"
#include "hotpath/log.h"
#include "core/loop_int.h"
#include "server_int.h"

/* One configuration generation. */
typedef struct app_gen {
    hp_http_config_t http;     /* what the workers read (hw->cfg) */
    uint32_t users;            /* workers that have not retired it (atomic) */
    struct app_gen *next;      /* the app's list, newest (current) first */
    hp_http_location_t *locs;  /* owned: http.locations, strings in the same block */
    int fds[HP_CONFIG_MAX_LOCATIONS + 1]; /* owned root descriptors, -1 unused */
    uint32_t nfds;
    hp_accesslog_file_t *alog;      /* owned: http.access_log */
} app_gen_t;

struct hp_app {
    hp_app_config_t cfg;       /* copied; cfg.http.routes points at routes */
    hp_app_config_t asked;     /* as given (before rbuf_size was raised), for reload checks */
    app_gen_t *gens;           /* owned: newest first; gens->http is in force */
    uint32_t nworkers;         /* while running */
    hp_worker_t *workers;      /* borrowed while running: where reloads go */
    hp_proto_t proto;          /* HTTP for cfg.http's limits, while running */
    struct {                   /* other protocols on every worker (hp_app_add_proto) */
        const hp_proto_t *proto; /* borrowed */
        void *arg;
    } protos[HP_WORKER_MAX_PROTOS - 1];
    uint32_t nprotos;
    struct {                   /* other listeners (hp_app_listen) */
        hp_listener_addr_t addr;
        const hp_proto_t *proto; /* borrowed */
    } listeners[HP_WORKER_MAX_LISTENERS - 1];
    uint32_t nlisteners;
    hp_mime_t *mime;           /* owned: /etc/mime.types, NULL when absent */
    hp_http_routes_t routes;
    hp_listener_addr_t addr;
    int stop_fd;               /* owned eventfd: hp_app_stop */
    hp_clock_src_t clock;      /* the workers' clock (HP_CLOCK_MONO but in tests) */
    app_amqp_t *amqp;          /* owned: AMQP settings (cfg.amqp's strings); NULL: none */
    bool running;
    char error[256];
};

static void set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void gen_free(app_gen_t *g)
{
    for (uint32_t i = 0; i < g->nfds; i++)
        if (g->fds[i] >= 0)
            close(g->fds[i]);
    hp_accesslog_file_close(g->alog);
    hp_free(g->locs);
    hp_free(g);
}

/* Called by each worker for a generation it stopped using. */
static void gen_retire(const hp_http_config_t *cfg)
{
    app_gen_t *g = HP_CONTAINER_OF(cfg, app_gen_t, http);
    __atomic_sub_fetch(&g->users, 1, __ATOMIC_ACQ_REL);
}

/* Frees the generations every worker has retired (all but the current
 * one once the workers are gone). */
static void gens_sweep(hp_app_t *app, bool all)
{
    app_gen_t **pp = &app->gens->next;
    while (*pp) {
        app_gen_t *g = *pp;
        if (all || __atomic_load_n(&g->users, __ATOMIC_ACQUIRE) == 0) {
            *pp = g->next;
            gen_free(g);
        } else {
            pp = &g->next;
        }
    }
}

/* Opens a root directory for a generation. */
static int gen_root(app_gen_t *g, const char *path, char *err, size_t errlen)
{
    int fd = hp_static_open_root(path);
    if (fd < 0) {
        set_error(err, errlen, "cannot open root '%s': %s", path, strerror(-fd));
        return fd;
    }
    g->fds[g->nfds++] = fd;
    return fd;
}

/* Builds a generation from `cfg`: opens its roots and access log and
 * copies the location strings. Returns NULL with the reason in err. */
static app_gen_t *gen_new(hp_app_t *app, const hp_app_config_t *cfg, char *err, size_t errlen)
{
    app_gen_t *g = hp_calloc(1, sizeof *g);
    if (!g) {
        set_error(err, errlen, "out of memory");
        return NULL;
    }
    g->http = cfg->http;
    g->http.root_fd = -1;
    g->http.routes = &app->routes;
    g->http.retire = gen_retire;
    g->http.access_log = NULL;
    g->http.locations = NULL;
    g->http.nlocations = 0;
    if (cfg->root && (g->http.root_fd = gen_root(g, cfg->root, err, errlen)) < 0)
        goto fail;
    if (cfg->nlocations > HP_CONFIG_MAX_LOCATIONS) {
        set_error(err, errlen, "more than %d locations", HP_CONFIG_MAX_LOCATIONS);
        goto fail;
    }
    size_t strings = 0;
    for (size_t i = 0; i < cfg->nlocations; i++) {
        const hp_config_location_t *l = &cfg->locations[i];
        strings += strlen(l->path) + 1 + (l->cache_control ? strlen(l->cache_control) + 1 : 0);
    }
    if (cfg->nlocations) {
        g->locs = hp_malloc(cfg->nlocations * sizeof *g->locs + strings);
        if (!g->locs) {
            set_error(err, errlen, "out of memory");
            goto fail;
        }
        char *p = (char *)(g->locs + cfg->nlocations);
        for (size_t i = 0; i < cfg->nlocations; i++) {
            const hp_config_location_t *l = &cfg->locations[i];
            hp_http_location_t *d = &g->locs[i];
            size_t n = strlen(l->path);
            memcpy(p, l->path, n + 1);
            *d = (hp_http_location_t){.prefix = p, .prefix_len = (uint32_t)n,
                                      .root_fd = g->http.root_fd, .cache_control = NULL,
                                      .compress = l->compression};
            p += n + 1;
            if (l->cache_control) {
                n = strlen(l->cache_control);
                memcpy(p, l->cache_control, n + 1);
                d->cache_control = p;
                p += n + 1;
            }
            if (l->root && (d->root_fd = gen_root(g, l->root, err, errlen)) < 0)
                goto fail;
        }
        g->http.locations = g->locs;
        g->http.nlocations = (uint32_t)cfg->nlocations;
    }
    if ((cfg->root || cfg->nlocations) && !app->mime) {
        /* The system's types, read once and shared read-only; a missing
         * file leaves the built-in table. */
        int r = hp_mime_load(&app->mime, "/etc/mime.types");
        if (r < 0) {
            if (r == -ENOMEM)
                set_error(err, errlen, "out of memory");
            else
                set_error(err, errlen, "/etc/mime.types: %s", strerror(-r));
            goto fail;
        }
    }
    g->http.mime = app->mime;
    if (cfg->access_log) {
        int r = hp_accesslog_file_open(&g->alog, cfg->access_log);
        if (r < 0) {
            set_error(err, errlen, "cannot open access log '%s': %s", cfg->access_log,
                      strerror(-r));
            goto fail;
        }
        g->http.access_log = g->alog;
    }
    return g;
fail:
    gen_free(g);
    return NULL;
}

/* AMQP: the settings checked and copied (app->cfg.amqp then points at
 * the copies), and the publishing route. */
static int amqp_setup(hp_app_t *app, const hp_app_config_t *cfg, char *err, size_t errlen)
{
    hp_app_amqp_t *mine = &app->cfg.amqp;
    if (!cfg->amqp.enabled) {
        const char *key;
        char why[320];
        if (app_amqp_check(&cfg->amqp, &key, why, sizeof why) < 0) {
            set_error(err, errlen, "%s: %s", key, why);
            return -EINVAL;
        }
        /* Nothing of it runs: keep no pointer into the caller's strings. */
        mine->url = mine->publish_route = mine->content_type = NULL;
        app->asked.amqp = *mine;
        return 0;
    }
    int r = app_amqp_new(&app->amqp, &cfg->amqp, err, errlen);
    if (r < 0)
        return r;
    *mine = *app_amqp_settings(app->amqp);
    app->asked.amqp = *mine;
    const char *pattern = app_amqp_pattern(app->amqp);
    if (pattern)
        return hp_app_route(app, HP_ROUTER_POST, pattern, app_amqp_publish, app->amqp, err,
                            errlen);
    return 0;
}

hp_app_t *hp_app_new(const hp_app_config_t *cfg, char *err, size_t errlen)
{
    hp_app_t *app = hp_calloc(1, sizeof *app);
    if (!app) {
        set_error(err, errlen, "out of memory");
        return NULL;
    }
    app->cfg = *cfg;
    app->asked = *cfg;
    /* Only the scalar settings are compared on a reload; the strings need
     * not outlive this call. */
    app->asked.listen = app->asked.root = app->asked.access_log = NULL;
    app->asked.locations = NULL;
    app->stop_fd = -1;
    app->cfg.http.root_fd = -1;
    app->cfg.http.routes = &app->routes;
    if (hp_listener_addr_parse(cfg->listen, &app->addr) < 0) {
        set_error(err, errlen,
                  "listen: expected ADDR:PORT such as 127.0.0.1:8080 or [::1]:8080, got '%s'",
                  cfg->listen);
        goto fail;
    }
    if (!(app->gens = gen_new(app, cfg, err, errlen)))
        goto fail;
    /* A read chunk holds the request state and the largest head the
     * limits allow; a larger configured size is kept. */
    uint32_t need = hp_http_rbuf_size(&app->cfg.http);
    if (app->cfg.engine.rbuf_size < need)
        app->cfg.engine.rbuf_size = need;
    app->routes.router = hp_router_new();
    app->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!app->routes.router || app->stop_fd < 0) {
        set_error(err, errlen, "out of memory");
        goto fail;
    }
    if (amqp_setup(app, cfg, err, errlen) < 0)
        goto fail;
    return app;
fail:
    hp_app_free(app);
    return NULL;
}

int hp_app_route(hp_app_t *app, uint32_t methods, const char *pattern, hp_handler_fn fn,
                 void *udata, char *err, size_t errlen)
{
    if (__atomic_load_n(&app->running, __ATOMIC_ACQUIRE)) {
        set_error(err, errlen, "routes are fixed once the app runs");
        return -EBUSY;
    }
    hp_http_routes_t *rt = &app->routes;
    uint32_t pid = 0;
    while (pid < rt->npatterns && strcmp(rt->patterns[pid], pattern) != 0)
        pid++;
    /* Grow both tables first, so that a failure leaves everything as it
     * was (the router's add is all-or-nothing too). */
    hp_http_reg_t *regs = hp_realloc(rt->regs, (rt->nregs + 1) * sizeof *regs);
    if (!regs)
        goto oom;
    rt->regs = regs;
    const char **pats = rt->patterns;
    char *copy = NULL;
    if (pid == rt->npatterns) {
        pats = hp_realloc(rt->patterns, (rt->npatterns + 1) * sizeof *pats);
        if (!pats)
            goto oom;
        rt->patterns = pats;
        size_t n = strlen(pattern) + 1;
        if (!(copy = hp_malloc(n)))
            goto oom;
        memcpy(copy, pattern, n);
    }
    int r = hp_router_add(rt->router, methods, pattern, (void *)fn,
                          (void *)(uintptr_t)rt->nregs, err, errlen);
    if (r < 0) {
        hp_free(copy);
        return r;
    }
    if (copy)
        rt->patterns[rt->npatterns++] = copy;
    rt->regs[rt->nregs++] = (hp_http_reg_t){fn, udata, pid, false, 0};
    return 0;
oom:
    set_error(err, errlen, "out of memory");
    return -ENOMEM;
}

int hp_app_cache_route(hp_app_t *app, const char *pattern, uint64_t ttl_ms)
{
    if (__atomic_load_n(&app->running, __ATOMIC_ACQUIRE))
        return -EBUSY;
    hp_http_routes_t *rt = &app->routes;
    int found = -ENOENT;
    for (uint32_t i = 0; i < rt->nregs; i++)
        if (strcmp(rt->patterns[rt->regs[i].pattern_id], pattern) == 0) {
            rt->regs[i].cache = true;
            rt->regs[i].cache_ttl_ms = ttl_ms;
            found = 0;
        }
    return found;
}

int hp_app_use(hp_app_t *app, hp_middleware_fn before, hp_middleware_fn after, void *udata)
{
    if (__atomic_load_n(&app->running, __ATOMIC_ACQUIRE))
        return -EBUSY;
    if (app->routes.nmw == HP_HTTP_MAX_MIDDLEWARE)
        return -ENOSPC;
    app->routes.mw[app->routes.nmw++] = (hp_http_mw_t){before, after, udata};
    return 0;
}

int hp_app_add_proto(hp_app_t *app, const hp_proto_t *proto, void *arg)
{
    if (__atomic_load_n(&app->running, __ATOMIC_ACQUIRE))
        return -EBUSY;
    for (uint32_t i = 0; i < app->nprotos; i++)
        if (app->protos[i].proto == proto)
            return -EEXIST;
    if (app->nprotos == HP_ARRAY_LEN(app->protos))
        return -ENOSPC;
    app->protos[app->nprotos].proto = proto;
    app->protos[app->nprotos++].arg = arg;
    return 0;
}

int hp_app_listen(hp_app_t *app, const char *addr, const hp_proto_t *proto, char *err,
                  size_t errlen)
{
    if (__atomic_load_n(&app->running, __ATOMIC_ACQUIRE))
        return -EBUSY;
    if (app->nlisteners == HP_ARRAY_LEN(app->listeners)) {
        set_error(err, errlen, "listen %s: at most %zu listeners besides HTTP's", addr,
                  HP_ARRAY_LEN(app->listeners));
        return -ENOSPC;
    }
    if (hp_listener_addr_parse(addr, &app->listeners[app->nlisteners].addr) < 0) {
        set_error(err, errlen, "listen: expected ADDR:PORT such as 127.0.0.1:9000, got '%s'",
                  addr);
        return -EINVAL;
    }
    app->listeners[app->nlisteners++].proto = proto;
    return 0;
}

/* HTTP and the embedder's protocols on every worker, and every listener.
 * On failure the error is set and the engine is left to the caller to
 * destroy. */
static int engine_setup(hp_app_t *app, hp_engine_t *engine)
{
    int r = hp_engine_add_proto(engine, &app->proto, &app->gens->http);
    if (r < 0) {
        set_error(app->error, sizeof app->error, "cannot set up HTTP on the workers: %s",
                  strerror(-r));
        return r;
    }
    for (uint32_t i = 0; i < app->nprotos; i++) {
        if ((r = hp_engine_add_proto(engine, app->protos[i].proto, app->protos[i].arg)) < 0) {
            set_error(app->error, sizeof app->error, "cannot set up protocol %s: %s",
                      app->protos[i].proto->name ? app->protos[i].proto->name : "?",
                      strerror(-r));
            return r;
        }
    }
    /* Each worker dials its AMQP connection from here on. */
    if (app->amqp && (r = hp_engine_add_proto(engine, &app_amqp_proto, app->amqp)) < 0) {
        set_error(app->error, sizeof app->error, "cannot set up AMQP on the workers: %s",
                  strerror(-r));
        return r;
    }
    if ((r = hp_engine_listen(engine, &app->addr, app->cfg.backlog, &app->proto)) < 0) {
        set_error(app->error, sizeof app->error, "cannot listen on %s: %s", app->addr.text,
                  strerror(-r));
        return r;
    }
    for (uint32_t i = 0; i < app->nlisteners; i++) {
        const hp_listener_addr_t *a = &app->listeners[i].addr;
        if ((r = hp_engine_listen(engine, a, app->cfg.backlog, app->listeners[i].proto)) < 0) {
            set_error(app->error, sizeof app->error, "cannot listen on %s: %s", a->text,
                      strerror(-r));
            return r;
        }
    }
    return 0;
}

const char *hp_app_error(const hp_app_t *app)
{
    return app->error;
}

void hp_app_stop(hp_app_t *app)
{
    uint64_t one = 1;
    ssize_t n = write(app->stop_fd, &one, sizeof one);
    (void)n;
}

/* Sums what the workers counted, once they stopped (their exit reports
 * came through the engine's inbox, so the shards are final). */
static void log_totals(const hp_engine_t *e, const hp_proto_t *proto)
{
    uint64_t requests = 0, accepted = 0, in = 0, out = 0;
    for (uint32_t i = 0; i < e->nworkers; i++) {
        const hp_worker_t *w = &e->workers[i];
        const hp_http_worker_t *hw = hp_worker_proto_data(w, proto);
        requests += hw->stats.requests;
        accepted += w->stats.accepted;
        in += w->stats.bytes_in;
        out += w->stats.bytes_out;
    }
    hp_log(INFO, "stopped: %llu requests on %llu connections, %llu bytes in, %llu out",
           (unsigned long long)requests, (unsigned long long)accepted, (unsigned long long)in,
           (unsigned long long)out);
}

/* The settings a running app cannot change, named by their key in the
 * configuration file; this table is the one list of them (the docs,
 * hp_app_reload's report and the values it keeps all follow it). The
 * limits size each connection's parser state and so the read chunks,
 * the buffers and TCP options shaped the pools and sockets the workers
 * built at start-up, and the write and drain timeouts are the engine's.
 * `listen` leads the list but is compared as an address, apart. The
 * engine's watermarks have no key: they stay as they are, unnamed. */
#define RESTART(key, field) \
    {key, offsetof(hp_app_config_t, field), sizeof(((hp_app_config_t *)0)->field)}
static const struct restart_setting {
    const char *key;
    size_t off, size;
} restart_settings[] = {
    RESTART("workers", workers),
    RESTART("tcp.backlog", backlog),
    RESTART("tcp.reuseport", engine.reuseport),
    RESTART("tcp.nodelay", engine.nodelay),
    RESTART("buffers.read_chunk", engine.rbuf_size),
    RESTART("buffers.write_chunk", engine.wbuf_size),
    RESTART("buffers.max_chunks", engine.max_chunks),
    RESTART("timeouts.write", engine.write_timeout_ms),
    RESTART("timeouts.drain", engine.drain_timeout_ms),
    RESTART("limits.max_request_line", http.limits.max_request_line),
    RESTART("limits.max_header_bytes", http.limits.max_header_bytes),
    RESTART("limits.max_headers", http.limits.max_fields),
    RESTART("amqp.heartbeat", amqp.conn.heartbeat_s),
    RESTART("amqp.blocked_timeout", amqp.conn.blocked_timeout_ms),
    RESTART("amqp.read_coalesce", amqp.conn.read_coalesce_ms),
    RESTART("amqp.confirm_window", amqp.confirm_window),
    RESTART("amqp.connections", amqp.connections),
    RESTART("amqp.channels", amqp.channels),
    RESTART("amqp.publish_queue", amqp.conn.publish_queue_bytes),
    RESTART("amqp.timeout", amqp.timeout_ms),
    RESTART("amqp.breaker_failures", amqp.breaker.failures),
    RESTART("amqp.breaker_window", amqp.breaker.window_ms),
    RESTART("amqp.breaker_open", amqp.breaker.open_ms),
    RESTART("amqp.breaker_open_max", amqp.breaker.open_max_ms),
    RESTART("amqp.stamp", amqp.stamp),
};

/* Appends `name` to the list of settings a reload could not change. */
static void restart_note(char *buf, size_t len, size_t *used, const char *name)
{
    if (!buf || len == 0)
        return;
    int n = snprintf(buf + *used, len - *used, "%s%s", *used ? ", " : "", name);
    if (n > 0)
        *used = *used + (size_t)n < len ? *used + (size_t)n : len - 1;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The AMQP settings a reload asks for that differ from the running ones,
 * by key (all need a restart: each worker's connection and the route
 * were made at start-up). The scalars are in restart_settings. */
static void amqp_restart_notes(const hp_app_t *app, const hp_app_amqp_t *next, char *buf,
                               size_t len, size_t *used)
{
    const hp_app_amqp_t *run = &app->cfg.amqp;
    if (!run->enabled && !next->enabled) {
        if (next->publish_route)
            restart_note(buf, len, used, "amqp.publish_route");
        return;
    }
    /* The URL as written (a URL spelt otherwise is taken as another: the
     * note only asks for a restart), or the address given without one. */
    const hp_amqp_config_t *a = &run->conn, *b = &next->conn;
    bool url_same = run->enabled == next->enabled && same_str(run->url, next->url) &&
                    (run->url || (a->port == b->port && same_str(a->host, b->host) &&
                                  same_str(a->vhost, b->vhost) && same_str(a->user, b->user) &&
                                  same_str(a->password, b->password)));
    if (!url_same)
        restart_note(buf, len, used, "amqp.url");
    /* The running route is kept as routed, without a trailing '/'. */
    const char *route = next->publish_route;
    size_t rl = route ? strlen(route) : 0;
    if (rl > 1 && route[rl - 1] == '/')
        rl--;
    if (!run->enabled || !next->enabled || (route == NULL) != (run->publish_route == NULL) ||
        (route && (strlen(run->publish_route) != rl || memcmp(route, run->publish_route, rl))))
        restart_note(buf, len, used, "amqp.publish_route");
    if (run->enabled && next->enabled && !same_str(next->content_type, run->content_type))
        restart_note(buf, len, used, "amqp.content_type");
}

int hp_app_reload(hp_app_t *app, const hp_app_config_t *cfg, char *restart, size_t rlen,
                  char *err, size_t errlen)
{
    size_t used = 0;
    if (restart && rlen)
        restart[0] = '\0';
    hp_app_config_t next = *cfg;
    /* What needs a restart keeps its running value (app->asked holds the
     * values in force, as given). */
    hp_listener_addr_t addr;
    if (!cfg->listen || hp_listener_addr_parse(cfg->listen, &addr) < 0 ||
        strcmp(addr.text, app->addr.text) != 0)
        restart_note(restart, rlen, &used, "listen");
    for (size_t i = 0; i < HP_ARRAY_LEN(restart_settings); i++) {
        const struct restart_setting *r = &restart_settings[i];
        const char *running = (const char *)&app->asked + r->off;
        if (memcmp((const char *)cfg + r->off, running, r->size) != 0)
            restart_note(restart, rlen, &used, r->key);
        memcpy((char *)&next + r->off, running, r->size);
    }
    amqp_restart_notes(app, &cfg->amqp, restart, rlen, &used);
    next.amqp = app->cfg.amqp;
    next.engine.high_water = app->asked.engine.high_water;
    next.engine.low_water = app->asked.engine.low_water;
    next.http.engine = app->gens->http.engine;

    app_gen_t *g = gen_new(app, &next, err, errlen);
    if (!g)
        return -EINVAL;
    g->next = app->gens;
    app->gens = g;
    /* The scalar settings now in force (those needing a restart kept
     * theirs above). */
    app->asked = next;
    app->asked.listen = app->asked.root = app->asked.access_log = NULL;
    app->asked.locations = NULL;
    if (!app->workers) {
        gens_sweep(app, true);
        return 0;
    }
    __atomic_store_n(&g->users, app->nworkers, __ATOMIC_RELEASE);
    for (uint32_t i = 0; i < app->nworkers; i++) {
        /* The inbox only fills while a worker is wedged: wait a little. */
        for (int tries = 0; hp_http_post_config(&app->workers[i], &app->proto, &g->http) < 0;
             tries++) {
            if (tries == 1000) {
                hp_log(WARN, "reload: worker %u does not take messages; it keeps the old configuration", i);
                gen_retire(&g->http);
                break;
            }
            usleep(1000);
        }
    }
    return 0;
}

/* SIGHUP: the configuration again, through cfg.reload. */
static void reload_on_signal(hp_app_t *app)
{
    if (!app->cfg.reload) {
        hp_log(WARN, "SIGHUP: no configuration file to reload; ignored");
        return;
    }
    hp_app_config_t next = app->cfg;
    char err[512], restart[256];
    if (app->cfg.reload(app->cfg.reload_arg, &next, err, sizeof err) < 0 ||
        hp_app_reload(app, &next, restart, sizeof restart, err, sizeof err) < 0) {
        hp_log(WARN, "SIGHUP: %s; keeping the running configuration", err);
        return;
    }
    if (restart[0])
        hp_log(WARN, "SIGHUP: reloaded, but %s changed: restart to apply (running values kept)",
               restart);
    else
        hp_log(INFO, "SIGHUP: configuration reloaded");
}

/* SIGUSR1: log rotation. */
static void reopen_on_signal(hp_app_t *app)
{
    if (!app->gens->alog)
        return;
    int r = hp_accesslog_file_reopen(app->gens->alog);
    if (r < 0)
        hp_log(WARN, "SIGUSR1: cannot reopen the access log: %s; still writing the old file",
               strerror(-r));
}

/* The main thread's wait: engine exit reports, hp_app_stop, signals. */
static void wait_until_stopped(hp_app_t *app, hp_engine_t *engine, int sfd)
{
    int signals = 0;
    bool draining = false;
    struct pollfd pfd[3] = {{.fd = engine->wake_fd, .events = POLLIN},
                            {.fd = app->stop_fd, .events = POLLIN},
                            {.fd = sfd, .events = POLLIN}};
    for (;;) {
        /* While old generations wait for their last worker, look again
         * every second so their files close promptly. */
        if (poll(pfd, sfd >= 0 ? 3 : 2, app->gens->next ? 1000 : -1) < 0 && errno != EINTR)
            return;
        gens_sweep(app, false);
        if (pfd[0].revents && hp_engine_reap(engine))
            return;
        if (pfd[1].revents && !draining) {
            uint64_t v;
            ssize_t n = read(app->stop_fd, &v, sizeof v);
            (void)n;
            draining = true;
            hp_engine_shutdown(engine);
        }
        struct signalfd_siginfo si;
        while (sfd >= 0 && read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            if (si.ssi_signo == SIGHUP) {
                if (!draining)
                    reload_on_signal(app);
                continue;
            }
            if (si.ssi_signo == SIGUSR1) {
                reopen_on_signal(app);
                continue;
            }
            if (++signals == 1) {
                hp_log(INFO, "%s: draining connections (signal again to exit at once)",
                       strsignal((int)si.ssi_signo));
                draining = true;
                hp_engine_shutdown(engine);
            } else {
                hp_log(INFO, "second signal: exiting now");
                _exit(0);
            }
        }
    }
}

int hp_app_set_clock(hp_app_t *app, const hp_clock_src_t *src)
{
    if (__atomic_load_n(&app->running, __ATOMIC_ACQUIRE))
        return -EBUSY;
    app->clock = src ? *src : HP_CLOCK_MONO;
    return 0;
}

int hp_app_run(hp_app_t *app)
{
    hp_http_parser_init();
    hp_proto_t *proto = &app->proto;
    if (hp_http_proto_init(proto, &app->cfg.http, app->cfg.engine.rbuf_size) < 0) {
        set_error(app->error, sizeof app->error, "the request limits do not fit a read buffer");
        return -EINVAL;
    }
    /* Signals go to this thread's signalfd only: block them before any
     * worker starts so the workers inherit the mask. */
    int sfd = -1;
    sigset_t sigs, old;
    sigemptyset(&sigs);
    if (app->cfg.handle_signals) {
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGHUP);
        sigaddset(&sigs, SIGUSR1);
    }
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    signal(SIGPIPE, SIG_IGN);
    if (app->cfg.handle_signals && (sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        int r = -errno;
        set_error(app->error, sizeof app->error, "signalfd: %s", strerror(errno));
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return r;
    }

    uint32_t nworkers = app->cfg.workers ? app->cfg.workers : hp_engine_cpus(NULL, 0);
    hp_engine_t engine;
    __atomic_store_n(&app->running, true, __ATOMIC_RELEASE);
    app->gens->http.engine = &engine;
    int r = hp_engine_init(&engine, nworkers, &app->cfg.engine);
    if (r < 0) {
        set_error(app->error, sizeof app->error, "cannot start the engine: %s", strerror(-r));
        goto out;
    }
    /* Before the protocols are set up and the workers start: nothing is
     * armed on their loops yet, and no other thread reads them. */
    for (uint32_t i = 0; app->clock.now_ns && i < engine.nworkers; i++) {
        r = hp_loop_set_clock(&engine.workers[i].loop, &app->clock);
        assert(r == 0);
    }
    if ((r = engine_setup(app, &engine)) < 0) {
        hp_engine_destroy(&engine);
        goto out;
    }
    app->cfg.http.engine = &engine;
    app->workers = engine.workers;
    app->nworkers = engine.nworkers;
    __atomic_store_n(&app->gens->users, nworkers, __ATOMIC_RELEASE);
    if ((r = hp_engine_start(&engine)) < 0) {
        set_error(app->error, sizeof app->error, "cannot start workers: %s", strerror(-r));
        hp_engine_destroy(&engine);
        goto out;
    }
    if (!app->cfg.quiet) {
        fprintf(stderr, "hotpath " HP_VERSION ": listening on http://%s (%u worker%s, root %s)\n",
                app->addr.text, nworkers, nworkers == 1 ? "" : "s",
                app->cfg.root ? app->cfg.root : "none");
        for (uint32_t i = 0; i < app->nlisteners; i++)
            fprintf(stderr, "hotpath " HP_VERSION ": listening on %s (%s)\n",
                    app->listeners[i].addr.text,
                    app->listeners[i].proto->name ? app->listeners[i].proto->name : "?");
    }
    wait_until_stopped(app, &engine, sfd);
    if (!app->cfg.quiet)
        log_totals(&engine, proto);
    hp_engine_destroy(&engine);
out:
    /* The workers are gone: every generation but the current one goes. */
    app->cfg.http.engine = NULL;
    app->workers = NULL;
    app->nworkers = 0;
    gens_sweep(app, true);
    app->gens->http.engine = NULL;
    app->gens->users = 0;
    __atomic_store_n(&app->running, false, __ATOMIC_RELEASE);
    if (sfd >= 0) {
        /* Signals that came once the last worker had stopped (a second
         * SIGTERM late in the drain, a SIGHUP sent with the SIGTERM) were
         * never read: they belong to this run and are moot now. Left
         * pending, they would be delivered as soon as the mask below is
         * restored, and their default action kills the process, which
         * then exits on a signal instead of with status 0. */
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
            ;
        close(sfd);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

void hp_app_free(hp_app_t *app)
{
    if (!app)
        return;
    hp_router_free(app->routes.router);
    for (uint32_t i = 0; i < app->routes.npatterns; i++)
        hp_free((void *)app->routes.patterns[i]);
    hp_free(app->routes.patterns);
    hp_free(app->routes.regs);
    if (app->gens) {
        gens_sweep(app, true);
        gen_free(app->gens);
    }
    hp_mime_free(app->mime);
    app_amqp_free(app->amqp);
    if (app->stop_fd >= 0)
        close(app->stop_fd);
    hp_free(app);
}
