/*
 * middleware.c - request IDs and CORS with the ready-made middleware: one
 * route, answered cross-origin for https://example.com only.
 *
 *     cc -O2 -o middleware examples/middleware.c $(pkg-config --cflags --libs hotpath)
 *     ./middleware 127.0.0.1:8080
 *     curl -i -H 'Origin: https://example.com' http://127.0.0.1:8080/api/hello
 *     curl -i -X OPTIONS -H 'Origin: https://example.com' \
 *          -H 'Access-Control-Request-Method: GET' http://127.0.0.1:8080/api/hello
 */
#include <stdio.h>

#include <hotpath/app.h>
#include <hotpath/middleware.h>

static const char *const origins[] = {"https://example.com", NULL};
static const hp_cors_config_t cors = {
    .origins = origins,
    .methods = "GET, HEAD, OPTIONS",
    .headers = "Content-Type, X-Request-Id",
    .expose = "X-Request-Id",
    .max_age = 600,
};

/* GET /api/hello: says hello and which request this was. OPTIONS is
 * registered on the same route so that preflights get past the router
 * (which answers 405 for methods a route lacks, before any middleware);
 * the CORS middleware answers them, and plain OPTIONS requests go on to
 * hp_middleware_options_handler. */
static int hello(hp_ctx_t *ctx, void *udata)
{
    if (hp_ctx_method_bit(ctx) == HP_ROUTER_OPTIONS)
        return hp_middleware_options_handler(ctx, udata);
    size_t len = 0;
    const char *id = hp_middleware_request_id_of(ctx, &len);
    char body[128];
    int n = snprintf(body, sizeof body, "hello, request %.*s\n", (int)len, id ? id : "");
    if (hp_ctx_send(ctx, "text/plain", body, (size_t)n) < 0)
        hp_ctx_send_status(ctx, 503);
    return HP_DONE;
}

int main(int argc, char **argv)
{
    char err[256];
    hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
    if (argc > 1)
        cfg.listen = argv[1];
    hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
    if (!app) {
        fprintf(stderr, "middleware: %s\n", err);
        return 1;
    }
    snprintf(err, sizeof err, "bad CORS configuration or too much middleware");
    /* The request ID first, so that CORS's early answers carry one too. */
    if (hp_middleware_cors_check(&cors) < 0 || hp_app_use(app, hp_middleware_request_id, NULL, NULL) < 0 ||
        hp_app_use(app, hp_middleware_cors_before, hp_middleware_cors_after, (void *)&cors) < 0 ||
        hp_app_route(app, HP_ROUTER_GET | HP_ROUTER_OPTIONS, "/api/hello", hello, NULL, err,
                     sizeof err) < 0) {
        fprintf(stderr, "middleware: %s\n", err);
        hp_app_free(app);
        return 1;
    }
    int rc = hp_app_run(app);
    if (rc < 0)
        fprintf(stderr, "middleware: %s\n", hp_app_error(app));
    hp_app_free(app);
    return rc < 0 ? 1 : 0;
}
