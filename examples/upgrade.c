/*
 * upgrade.c - a second protocol beside HTTP on the same workers: a line
 * protocol ("lineecho") reached by an HTTP upgrade on the HTTP port and
 * directly on a port of its own.
 *
 *     cc -O2 -o upgrade examples/upgrade.c $(pkg-config --cflags --libs hotpath)
 *     ./upgrade 127.0.0.1:8080 127.0.0.1:8081
 *     printf 'GET /lineecho HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n'\
 *            'Upgrade: lineecho\r\n\r\nhello\n' | nc 127.0.0.1 8080
 *         -> HTTP/1.1 101 Switching Protocols ... then "1: hello"
 *     printf 'hi\nthere\n' | nc 127.0.0.1 8081          -> "1: hi", "2: there"
 *     curl http://127.0.0.1:8080/metrics | grep upgrades  -> hotpath_upgrades_total
 *
 * The protocol answers each line with its number on the connection and the
 * line. The count lives in the connection's persistent state (cstate_size),
 * which the engine allocates from a per-worker pool when the connection
 * starts running the protocol and keeps while it is idle; the line being
 * read lives in the read buffer, as HTTP's request does. Lines longer than
 * ECHO_LINE_MAX close the connection with an error line.
 */
#include <stdio.h>
#include <string.h>

#include <hotpath/app.h>
#include <hotpath/conn.h>

#define ECHO_LINE_MAX 4096
#define IDLE_MS 30000

typedef struct {
    unsigned long lines; /* answered on this connection */
} echo_state_t;

static void echo_data(hp_conn_t *c)
{
    echo_state_t *st = hp_conn_cstate(c);
    while (!hp_conn_is_closed(c)) {
        char *d = hp_conn_data(c);
        uint32_t len = hp_conn_data_len(c);
        char *nl = memchr(d, '\n', len);
        if (!nl) {
            if (len > ECHO_LINE_MAX) {
                static const char msg[] = "error: line too long\n";
                hp_conn_write(c, msg, sizeof msg - 1);
                hp_conn_close_after_write(c);
            }
            break;
        }
        uint32_t n = (uint32_t)(nl - d);
        uint32_t keep = n > 0 && d[n - 1] == '\r' ? n - 1 : n; /* telnet's CRLF */
        char head[32];
        int hl = snprintf(head, sizeof head, "%lu: ", ++st->lines);
        /* The answer is copied into the output queue: the line's bytes are
         * consumed below and may be overwritten by the next read. */
        char *out = hp_conn_reserve(c, (uint32_t)hl + keep + 1);
        if (!out) {
            hp_conn_pause(c); /* the queue is full: go on once it drains */
            break;
        }
        memcpy(out, head, (size_t)hl);
        memcpy(out + hl, d, keep);
        out[hl + keep] = '\n';
        hp_conn_commit(c, (uint32_t)hl + keep + 1);
        hp_conn_consume(c, n + 1);
    }
    if (!hp_conn_is_closed(c))
        hp_conn_set_timer(c, IDLE_MS);
}

static void echo_open(hp_conn_t *c)
{
    hp_conn_set_timer(c, IDLE_MS); /* a silent client goes after a while */
}

/* The queue drained after a pause (or a slow reader): go on with what
 * waits, and re-arm the idle timer, which the write wait had taken. */
static void echo_drain(hp_conn_t *c)
{
    if (hp_conn_data_len(c) > 0)
        echo_data(c);
    else
        hp_conn_set_timer(c, IDLE_MS);
}

static const hp_proto_t lineecho = {
    .name = "lineecho",
    .on_open = echo_open,
    .on_data = echo_data,
    .on_drain = echo_drain,
    .cstate_size = sizeof(echo_state_t),
};

/* GET /lineecho with "Connection: upgrade" and "Upgrade: lineecho": 101,
 * then the connection speaks lineecho. Anything else: 426 saying what
 * to ask for (RFC 9110 §15.5.22). */
static int upgrade(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    int r = hp_ctx_upgrade(ctx, "lineecho", &lineecho, NULL);
    if (r == 0)
        return HP_DONE;
    static const char msg[] = "426 Upgrade Required: ask with Connection: upgrade and "
                              "Upgrade: lineecho on HTTP/1.1\n";
    hp_ctx_status(ctx, 426);
    hp_ctx_set_header(ctx, "Upgrade", "lineecho");
    hp_ctx_send_ref(ctx, "text/plain", msg, sizeof msg - 1, NULL, NULL);
    return HP_DONE;
}

int main(int argc, char **argv)
{
    char err[256];
    hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
    if (argc > 1)
        cfg.listen = argv[1];
    const char *echo_addr = argc > 2 ? argv[2] : "127.0.0.1:8081";
    hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
    if (!app) {
        fprintf(stderr, "upgrade: %s\n", err);
        return 1;
    }
    if (hp_app_route(app, HP_ROUTER_GET, "/lineecho", upgrade, NULL, err, sizeof err) < 0 ||
        hp_app_builtin_routes(app, HP_APP_BUILTIN_METRICS, "/metrics", err, sizeof err) < 0 ||
        hp_app_listen(app, echo_addr, &lineecho, err, sizeof err) < 0) {
        fprintf(stderr, "upgrade: %s\n", err);
        hp_app_free(app);
        return 1;
    }
    int rc = hp_app_run(app);
    if (rc < 0)
        fprintf(stderr, "upgrade: %s\n", hp_app_error(app));
    hp_app_free(app);
    return rc < 0 ? 1 : 0;
}
