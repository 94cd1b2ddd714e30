/*
 * app.c - an HTTP application: routes, middleware, and the engine that
 * runs them, from configuration to graceful stop.
 *
 * Central structure: hp_app_t, which owns the router, the middleware list
 * (hp_http_routes_t, shared read-only by the workers once running), the
 * document root and the engine. hp_app_run blocks in poll() on the
 * engine's exit-report eventfd, a stop eventfd (hp_app_stop, any thread)
 * and, when asked to, a signalfd for SIGINT/SIGTERM: the first starts a
 * graceful drain, a second exits at once.
 */
#include "hotpath/app.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "hotpath/engine.h"
#include "hotpath/http_mime.h"
#include "hotpath/http_static.h"
#include "hotpath/listener.h"
#include "hotpath/log.h"
#include "server_int.h"

struct hp_app {
    hp_app_config_t cfg;       /* copied; cfg.http.routes points at routes */
    hp_mime_t *mime;           /* owned: /etc/mime.types, NULL when absent */
    hp_http_routes_t routes;
    hp_listen_addr_t addr;
    int stop_fd;               /* owned eventfd: hp_app_stop */
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

hp_app_t *hp_app_new(const hp_app_config_t *cfg, char *err, size_t errlen)
{
    hp_app_t *app = hp_calloc(1, sizeof *app);
    if (!app) {
        set_error(err, errlen, "out of memory");
        return NULL;
    }
    app->cfg = *cfg;
    app->stop_fd = -1;
    app->cfg.http.root_fd = -1;
    app->cfg.http.routes = &app->routes;
    if (hp_listen_addr_parse(cfg->listen, &app->addr) < 0) {
        set_error(err, errlen,
                  "listen: expected ADDR:PORT such as 127.0.0.1:8080 or [::1]:8080, got '%s'",
                  cfg->listen);
        goto fail;
    }
    if (cfg->root) {
        int fd = hp_static_open_root(cfg->root);
        if (fd < 0) {
            set_error(err, errlen, "cannot open root '%s': %s", cfg->root, strerror(-fd));
            goto fail;
        }
        app->cfg.http.root_fd = fd;
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
        app->cfg.http.mime = app->mime;
    }
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
    rt->regs[rt->nregs++] = (hp_http_reg_t){fn, udata, pid};
    return 0;
oom:
    set_error(err, errlen, "out of memory");
    return -ENOMEM;
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
static void log_totals(const hp_engine_t *e)
{
    uint64_t requests = 0, accepted = 0, in = 0, out = 0;
    for (uint32_t i = 0; i < e->nworkers; i++) {
        const hp_worker_t *w = &e->workers[i];
        const hp_http_worker_t *hw = w->proto_data;
        requests += hw->stats.requests;
        accepted += w->stats.accepted;
        in += w->stats.bytes_in;
        out += w->stats.bytes_out;
    }
    hp_log(INFO, "stopped: %llu requests on %llu connections, %llu bytes in, %llu out",
           (unsigned long long)requests, (unsigned long long)accepted, (unsigned long long)in,
           (unsigned long long)out);
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
        if (poll(pfd, sfd >= 0 ? 3 : 2, -1) < 0 && errno != EINTR)
            return;
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

int hp_app_run(hp_app_t *app)
{
    hp_http_parser_init();
    hp_proto_t proto;
    if (hp_http_proto_init(&proto, &app->cfg.http, app->cfg.engine.rbuf_size) < 0) {
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
    int r = hp_engine_init(&engine, &app->addr, app->cfg.backlog, nworkers, &app->cfg.engine,
                           &proto, &app->cfg.http);
    if (r < 0) {
        set_error(app->error, sizeof app->error, "cannot listen on %s: %s", app->addr.text,
                  strerror(-r));
        goto out;
    }
    app->cfg.http.engine = &engine;
    if ((r = hp_engine_start(&engine)) < 0) {
        set_error(app->error, sizeof app->error, "cannot start workers: %s", strerror(-r));
        hp_engine_destroy(&engine);
        goto out;
    }
    if (!app->cfg.quiet)
        fprintf(stderr, "hotpath " HP_VERSION ": listening on http://%s (%u worker%s, root %s)\n",
                app->addr.text, nworkers, nworkers == 1 ? "" : "s",
                app->cfg.root ? app->cfg.root : "none");
    wait_until_stopped(app, &engine, sfd);
    if (!app->cfg.quiet)
        log_totals(&engine);
    hp_engine_destroy(&engine);
    app->cfg.http.engine = NULL;
out:
    __atomic_store_n(&app->running, false, __ATOMIC_RELEASE);
    if (sfd >= 0)
        close(sfd);
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
    hp_mime_free(app->mime);
    if (app->cfg.http.root_fd >= 0)
        close(app->cfg.http.root_fd);
    if (app->stop_fd >= 0)
        close(app->stop_fd);
    hp_free(app);
}
