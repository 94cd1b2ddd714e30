/*
 * hello.c - the smallest embedding of libhotpath: two routes, one typed
 * parameter, graceful stop on SIGINT/SIGTERM.
 *
 *     cc -O2 -o hello examples/hello.c $(pkg-config --cflags --libs hotpath)
 *     ./hello 127.0.0.1:8080
 *     curl http://127.0.0.1:8080/hello/world      -> Hello, world!
 */
#include <stdio.h>

#include <hotpath/app.h>

/* GET / : a constant body, sent by reference (no copy, nothing to free). */
static int root(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    static const char msg[] = "Hello from libhotpath!\n";
    hp_ctx_send_ref(ctx, "text/plain", msg, sizeof msg - 1, NULL, NULL);
    return HP_DONE;
}

/* GET /hello/{name:slug} : the router only lets [a-z0-9-]+ through, so the
 * name needs no escaping. It is not NUL-terminated, hence "%.*s"; the body
 * is built on the stack (names are cut at 256 bytes to fit) and
 * hp_ctx_send copies it. */
static int hello(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    size_t len;
    const char *name = hp_ctx_param(ctx, "name", &len);
    char body[300];
    int n = snprintf(body, sizeof body, "Hello, %.*s!\n", (int)(len > 256 ? 256 : len), name);
    if (hp_ctx_send(ctx, "text/plain", body, (size_t)n) < 0)
        hp_ctx_send_status(ctx, 503); /* out of memory: answer, and go on */
    return HP_DONE;
}

int main(int argc, char **argv)
{
    char err[256];
    hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT; /* handle_signals is on */
    if (argc > 1)
        cfg.listen = argv[1];
    hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
    if (!app) {
        fprintf(stderr, "hello: %s\n", err);
        return 1;
    }
    if (hp_app_route(app, HP_ROUTER_GET, "/", root, NULL, err, sizeof err) < 0 ||
        hp_app_route(app, HP_ROUTER_GET, "/hello/{name:slug}", hello, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "hello: %s\n", err);
        hp_app_free(app);
        return 1;
    }
    int rc = hp_app_run(app); /* blocks until SIGINT/SIGTERM has drained it */
    if (rc < 0)
        fprintf(stderr, "hello: %s\n", hp_app_error(app));
    hp_app_free(app);
    return rc < 0 ? 1 : 0;
}
