/*
 * main.c - the hotpath binary: command line to an hp_app with the
 * built-in endpoints and static files, run until signalled.
 *
 * Every start-up error is one line on stderr and exit status 1.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hotpath/app.h"
#include "hotpath/config.h"
#include "hotpath/listener.h"
#include "hotpath/log.h"

#define PROG "hotpath"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " [--config FILE] [--listen ADDR:PORT] [--workers N] [--root DIR] [options]\n"
            "       " PROG " --check-config FILE\n"
            "\n"
            "A thread-per-core HTTP/1.1 server: built-in /plaintext, /json, /health,\n"
            "/metrics and POST /echo, and static files from the document root.\n"
            "\n"
            "  --config FILE            YAML configuration (docs/configuration.md); flags\n"
            "                           given with it override the file\n"
            "  --check-config FILE      validate FILE, print the verdict, exit 0 or 1\n"
            "  --listen ADDR:PORT       address to listen on (default 127.0.0.1:8080;\n"
            "                           IPv6 as [::1]:8080)\n"
            "  --workers N              worker threads, one per CPU (default: the CPUs\n"
            "                           this process may run on)\n"
            "  --root DIR               document root (default www)\n"
            "  --header-timeout SEC     request head must arrive within SEC (default 10)\n"
            "  --body-timeout SEC       request body may stall SEC at most (default 10)\n"
            "  --keepalive-timeout SEC  idle keep-alive connections close (default 5)\n"
            "  --write-timeout SEC      a client not reading for SEC is closed (default 10)\n"
            "  --drain-timeout SEC      graceful shutdown limit (default 10)\n"
            "  --max-request-line N     bytes, longer gets 414 (default 8192)\n"
            "  --max-header-bytes N     bytes of header fields, more gets 431 (default 16384)\n"
            "  --max-headers N          header fields, more gets 431 (default 100)\n"
            "  --max-body N             request body bytes, more gets 413 (default 1048576)\n"
            "  --backlog N              listen backlog (default 2048)\n"
            "  --quiet                  no start-up line\n"
            "  -h, --help               this text\n"
            "  -V, --version            print the version\n"
            "\n"
            "SIGTERM or SIGINT drains gracefully; a second one exits at once. SIGHUP\n"
            "reloads the --config file (flags still apply); SIGUSR1 reopens the access log.\n");
}

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t parse_uint(const char *flag, const char *v, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-' || n < min || n > max)
        die("%s: expected a number from %llu to %llu, got '%s' (see " PROG " --help)", flag,
            (unsigned long long)min, (unsigned long long)max, v);
    return n;
}

/* Seconds with an optional fraction ("0.5"), to milliseconds. */
static uint64_t parse_seconds(const char *flag, const char *v)
{
    char *end;
    errno = 0;
    double s = strtod(v, &end);
    if (!*v || *end || errno || !(s > 0) || s > 86400 || isnan(s))
        die("%s: expected seconds (e.g. 10 or 0.5) from 0.001 to 86400, got '%s' (see " PROG
            " --help)",
            flag, v);
    uint64_t ms = (uint64_t)(s * 1000.0 + 0.5);
    return ms ? ms : 1;
}

enum {
    O_CONFIG = 200, O_CHECK,
    O_LISTEN = 256, O_ROOT, O_WORKERS, O_HEADER_TMO, O_BODY_TMO, O_KA_TMO, O_WRITE_TMO,
    O_DRAIN_TMO, O_MAX_LINE, O_MAX_HDR, O_MAX_FIELDS, O_MAX_BODY, O_BACKLOG, O_QUIET
};

static void parse_args(int argc, char **argv, hp_app_config_t *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, O_CONFIG},
        {"check-config", required_argument, NULL, O_CHECK},
        {"listen", required_argument, NULL, O_LISTEN},
        {"root", required_argument, NULL, O_ROOT},
        {"workers", required_argument, NULL, O_WORKERS},
        {"header-timeout", required_argument, NULL, O_HEADER_TMO},
        {"body-timeout", required_argument, NULL, O_BODY_TMO},
        {"keepalive-timeout", required_argument, NULL, O_KA_TMO},
        {"write-timeout", required_argument, NULL, O_WRITE_TMO},
        {"drain-timeout", required_argument, NULL, O_DRAIN_TMO},
        {"max-request-line", required_argument, NULL, O_MAX_LINE},
        {"max-header-bytes", required_argument, NULL, O_MAX_HDR},
        {"max-headers", required_argument, NULL, O_MAX_FIELDS},
        {"max-body", required_argument, NULL, O_MAX_BODY},
        {"backlog", required_argument, NULL, O_BACKLOG},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    for (;;) {
        int ch = getopt_long(argc, argv, ":hV", longopts, NULL);
        if (ch == -1)
            break;
        switch (ch) {
        case O_CONFIG: case O_CHECK: break; /* taken in the first pass */
        case O_LISTEN: o->listen = optarg; break;
        case O_ROOT: o->root = optarg; break;
        case O_WORKERS: o->workers = (uint32_t)parse_uint("--workers", optarg, 1, 1024); break;
        case O_HEADER_TMO: o->http.header_timeout_ms = parse_seconds("--header-timeout", optarg); break;
        case O_BODY_TMO: o->http.body_timeout_ms = parse_seconds("--body-timeout", optarg); break;
        case O_KA_TMO: o->http.keepalive_timeout_ms = parse_seconds("--keepalive-timeout", optarg); break;
        case O_WRITE_TMO: o->engine.write_timeout_ms = parse_seconds("--write-timeout", optarg); break;
        case O_DRAIN_TMO: o->engine.drain_timeout_ms = parse_seconds("--drain-timeout", optarg); break;
        case O_MAX_LINE:
            o->http.limits.max_request_line = (uint32_t)parse_uint("--max-request-line", optarg, 64, 32768);
            break;
        case O_MAX_HDR:
            o->http.limits.max_header_bytes = (uint32_t)parse_uint("--max-header-bytes", optarg, 64, 32768);
            break;
        case O_MAX_FIELDS:
            o->http.limits.max_fields = (uint32_t)parse_uint("--max-headers", optarg, 1, 1000);
            break;
        case O_MAX_BODY:
            o->http.limits.max_body = parse_uint("--max-body", optarg, 0, (uint64_t)1 << 40);
            break;
        case O_BACKLOG: o->backlog = (int)parse_uint("--backlog", optarg, 1, 65535); break;
        case O_QUIET: o->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf(PROG " " HP_VERSION "\n"); exit(0);
        case ':': die("option '%s' needs a value (see " PROG " --help)", argv[optind - 1]);
        default: die("unknown option '%s' (see " PROG " --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s' (see " PROG " --help)", argv[optind]);
}

/* Maps the file's values onto the app's configuration. */
static void apply_config(const hp_config_t *c, hp_app_config_t *o, uint32_t *builtins,
                         const char **metrics_path)
{
    if (c->nlisten > 1)
        die("%s: listen: one address per process for now, got %zu", c->source, c->nlisten);
    o->listen = c->listen[0];
    o->workers = c->workers;
    o->root = c->root;
    o->backlog = (int)c->tcp.backlog;
    o->http.limits.max_request_line = c->limits.max_request_line;
    o->http.limits.max_header_bytes = c->limits.max_header_bytes;
    o->http.limits.max_fields = c->limits.max_headers;
    o->http.limits.max_body = c->limits.max_body;
    o->http.header_timeout_ms = c->timeouts.header_ms;
    o->http.body_timeout_ms = c->timeouts.body_ms;
    o->http.keepalive_timeout_ms = c->timeouts.keepalive_ms;
    o->engine.write_timeout_ms = c->timeouts.write_ms;
    o->engine.drain_timeout_ms = c->timeouts.drain_ms;
    o->engine.rbuf_size = c->buffers.read_chunk;
    o->engine.wbuf_size = c->buffers.write_chunk;
    o->engine.max_chunks = c->buffers.max_chunks;
    o->engine.nodelay = c->tcp.nodelay;
    o->engine.reuseport = c->tcp.reuseport;
    o->http.keepalive = c->keepalive.enabled;
    o->http.max_requests = c->keepalive.max_requests;
    o->http.compress_level = c->compression.enabled ? (int)c->compression.level : 0;
    o->http.compress_min = (uint32_t)c->compression.min_size;
    o->http.cache.enabled = c->cache.enabled;
    o->http.cache.max_entries = c->cache.max_entries;
    o->http.cache.max_bytes = c->cache.max_bytes;
    o->http.cache.ttl_ms = c->cache.ttl_ms;
    o->locations = c->locations;
    o->nlocations = c->nlocations;
    o->access_log = c->access_log.enabled ? c->access_log.path : NULL;
    *builtins = (c->endpoints.plaintext ? HP_APP_BUILTIN_PLAINTEXT : 0) |
                (c->endpoints.json ? HP_APP_BUILTIN_JSON : 0) |
                (c->endpoints.health ? HP_APP_BUILTIN_HEALTH : 0) |
                (c->endpoints.echo ? HP_APP_BUILTIN_ECHO : 0) |
                (c->metrics.enabled ? HP_APP_BUILTIN_METRICS : 0);
    *metrics_path = c->metrics.path;
}

/* What SIGHUP needs to build the configuration again: the file, then the
 * same flags on top. */
typedef struct reload_ctx {
    const char *file;
    int argc;
    char **argv;
    hp_config_t conf;          /* the file as last loaded; the app borrows from it */
    uint32_t builtins;         /* the endpoints running (routes: fixed while running) */
    char metrics_path[1025];
} reload_ctx_t;

static int reload_config(void *arg, hp_app_config_t *out, char *err, size_t errlen)
{
    reload_ctx_t *rc = arg;
    hp_config_t next;
    hp_config_defaults(&next);
    if (hp_config_load(&next, rc->file, err, errlen) < 0)
        return -1;
    uint32_t builtins;
    const char *metrics_path;
    if (next.nlisten > 1) {
        snprintf(err, errlen, "%s: listen: one address per process for now, got %zu", rc->file,
                 next.nlisten);
        hp_config_free(&next);
        return -1;
    }
    apply_config(&next, out, &builtins, &metrics_path);
    /* Endpoints are routes, fixed while running: not reloaded, but said. */
    if (builtins != rc->builtins || strcmp(metrics_path, rc->metrics_path) != 0)
        hp_log(WARN, "SIGHUP: endpoints or metrics changed: restart to apply (running ones kept)");
    optind = 0; /* the flags were checked at start-up: this cannot fail */
    parse_args(rc->argc, rc->argv, out);
    hp_config_free(&rc->conf);
    rc->conf = next;
    return 0;
}

/* First pass over the flags: --config and --check-config, which must be
 * read before the other flags override what they set. */
static const char *config_flag(int argc, char **argv, bool *check)
{
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool c = strcmp(a, "--check-config") == 0 || strncmp(a, "--check-config=", 15) == 0;
        if (!c && strcmp(a, "--config") != 0 && strncmp(a, "--config=", 9) != 0)
            continue;
        const char *eq = strchr(a, '=');
        if (!eq && i + 1 >= argc)
            die("option '%s' needs a value (see " PROG " --help)", a);
        file = eq ? eq + 1 : argv[++i];
        *check = *check || c;
    }
    return file;
}

int main(int argc, char **argv)
{
    /* The signals hp_app_run answers stay blocked in this process from
     * start to exit: one sent during start-up then waits for the run
     * (SIGTERM drains at once) instead of killing the server, and one
     * landing after the run, before the exit, is dropped with the process
     * instead of killing it with a non-zero status. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
    cfg.root = "www";
    uint32_t builtins = HP_APP_BUILTIN_ALL;
    const char *metrics_path = "/metrics";

    bool check = false;
    const char *file = config_flag(argc, argv, &check);
    reload_ctx_t rc = {.file = file, .argc = argc, .argv = argv};
    hp_config_defaults(&rc.conf);
    if (file) {
        char cerr[512];
        if (hp_config_load(&rc.conf, file, cerr, sizeof cerr) < 0) {
            fprintf(stderr, PROG ": %s\n", cerr);
            return 1;
        }
        if (check) {
            printf(PROG ": %s: configuration is valid\n", file);
            hp_config_free(&rc.conf);
            return 0;
        }
        apply_config(&rc.conf, &cfg, &builtins, &metrics_path);
        cfg.reload = reload_config;
        cfg.reload_arg = &rc;
    }
    parse_args(argc, argv, &cfg);
    rc.builtins = builtins;
    snprintf(rc.metrics_path, sizeof rc.metrics_path, "%s", metrics_path);
    if (cfg.quiet)
        hp_log_set_level(HP_LOG_WARN);

    hp_listen_addr_t addr;
    if (hp_listen_addr_parse(cfg.listen, &addr) < 0)
        die("--listen: expected ADDR:PORT such as 127.0.0.1:8080 or [::1]:8080, got '%s'",
            cfg.listen);

    char err[256];
    hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
    if (!app)
        die("%s", err);
    if (hp_app_builtin_routes(app, builtins, metrics_path, err, sizeof err) < 0)
        die("%s", err);
    int r = hp_app_run(app);
    if (r < 0)
        fprintf(stderr, PROG ": %s\n", hp_app_error(app));
    hp_app_free(app);
    hp_config_free(&rc.conf); /* after the app: it borrowed the file's strings */
    return r < 0 ? 1 : 0;
}
