/*
 * main.c - the hotpath binary: command line to an hp_app with the
 * built-in endpoints and static files, run until signalled.
 *
 * Every start-up error is one line on stderr and exit status 1. A
 * configuration is built one way (build_config: defaults, file, flags,
 * then hp_app_config_check) at start-up, for --check-config and on
 * SIGHUP, so all three accept and refuse the same things with the same
 * line.
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

/* The flags' values in hp_config_t, over the defaults and the file. */
typedef struct flags {
    hp_config_t *conf;         /* OUT: the configuration the flags change */
    const char **listen;       /* storage for --listen's one-address list */
    bool quiet;                /* OUT: --quiet */
    bool oom;                  /* OUT: a flag's origin could not be recorded */
} flags_t;

/* Says where a flag's value came from, so the checks name the flag
 * rather than the file's line it replaced. Running out of memory here is
 * reported by build_config, not fatal: on SIGHUP the server carries on. */
static void from_flag(flags_t *f, const char *key, const char *flag)
{
    if (hp_config_override(f->conf, key, flag) < 0)
        f->oom = true;
}

static void parse_args(int argc, char **argv, flags_t *f)
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
    hp_config_t *c = f->conf;
    opterr = 0;
    for (;;) {
        int ch = getopt_long(argc, argv, ":hV", longopts, NULL);
        if (ch == -1)
            break;
        switch (ch) {
        case O_CONFIG: case O_CHECK: break; /* taken in the first pass */
        case O_LISTEN:
            f->listen[0] = optarg;
            c->listen = f->listen;
            c->nlisten = 1;
            from_flag(f, "listen", "--listen");
            break;
        case O_ROOT: c->root = optarg; from_flag(f, "root", "--root"); break;
        case O_WORKERS: c->workers = (uint32_t)parse_uint("--workers", optarg, 1, 1024); break;
        case O_HEADER_TMO: c->timeouts.header_ms = parse_seconds("--header-timeout", optarg); break;
        case O_BODY_TMO: c->timeouts.body_ms = parse_seconds("--body-timeout", optarg); break;
        case O_KA_TMO: c->timeouts.keepalive_ms = parse_seconds("--keepalive-timeout", optarg); break;
        case O_WRITE_TMO: c->timeouts.write_ms = parse_seconds("--write-timeout", optarg); break;
        case O_DRAIN_TMO: c->timeouts.drain_ms = parse_seconds("--drain-timeout", optarg); break;
        case O_MAX_LINE:
            c->limits.max_request_line = (uint32_t)parse_uint("--max-request-line", optarg, 64, 32768);
            break;
        case O_MAX_HDR:
            c->limits.max_header_bytes = (uint32_t)parse_uint("--max-header-bytes", optarg, 64, 32768);
            break;
        case O_MAX_FIELDS:
            c->limits.max_headers = (uint32_t)parse_uint("--max-headers", optarg, 1, 1000);
            break;
        case O_MAX_BODY:
            c->limits.max_body = parse_uint("--max-body", optarg, 0, (uint64_t)1 << 40);
            break;
        case O_BACKLOG: c->tcp.backlog = (uint32_t)parse_uint("--backlog", optarg, 1, 65535); break;
        case O_QUIET: f->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf(PROG " " HP_VERSION "\n"); exit(0);
        case ':': die("option '%s' needs a value (see " PROG " --help)", argv[optind - 1]);
        default: die("unknown option '%s' (see " PROG " --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s' (see " PROG " --help)", argv[optind]);
}

/* What builds the configuration, at start-up and again on SIGHUP: the
 * file, then the same flags on top. */
typedef struct reload_ctx {
    const char *file;          /* borrowed; NULL: defaults and flags only */
    int argc;
    char **argv;
    const hp_config_t *defaults; /* borrowed: the owners' values */
    const char *listen[1];     /* --listen's value, as a list */
    hp_config_t conf;          /* the configuration in force; the app borrows from it */
    uint32_t builtins;         /* the endpoints running (routes: fixed while running) */
    char metrics_path[1025];
} reload_ctx_t;

/* The one way to a configuration, for start-up, --check-config and
 * SIGHUP alike: the defaults, the file over them, the flags over both,
 * then every check the app makes of it (hp_app_config_check), so that
 * what one accepts the others accept and a refusal reads the same, at
 * the line that caused it. Returns 0 with *out filled (free it with
 * hp_config_free), or -1 with one line in err and nothing to free. Bad
 * flag values end the process (they were checked at start-up, so a
 * reload cannot meet one). */
static int build_config(reload_ctx_t *rc, hp_config_t *out, bool *quiet, char *err,
                        size_t errlen)
{
    hp_config_init(out, rc->defaults);
    if (rc->file && hp_config_load(out, rc->file, err, errlen) < 0)
        return -1;
    flags_t f = {.conf = out, .listen = rc->listen, .quiet = false, .oom = false};
    optind = 0;
    parse_args(rc->argc, rc->argv, &f);
    if (f.oom) {
        snprintf(err, errlen, "out of memory");
        hp_config_free(out);
        return -1;
    }
    if (hp_app_config_check(out, err, errlen) < 0) {
        hp_config_free(out);
        return -1;
    }
    if (quiet)
        *quiet = f.quiet;
    return 0;
}

static int reload_config(void *arg, hp_app_config_t *out, char *err, size_t errlen)
{
    reload_ctx_t *rc = arg;
    hp_config_t next;
    if (build_config(rc, &next, NULL, err, errlen) < 0)
        return -1;
    uint32_t builtins;
    hp_app_config_apply(&next, out, &builtins);
    /* Endpoints are routes, fixed while running: not reloaded, but said. */
    if (builtins != rc->builtins || strcmp(next.metrics.path, rc->metrics_path) != 0)
        hp_log(WARN, "SIGHUP: endpoints or metrics changed: restart to apply (running ones kept)");
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

    hp_config_t defaults; /* the owners' values, under the file and the flags */
    hp_app_config_defaults(&defaults);
    bool check = false;
    reload_ctx_t rc = {.file = config_flag(argc, argv, &check), .argc = argc, .argv = argv,
                       .defaults = &defaults};
    bool quiet;
    char err[512];
    if (build_config(&rc, &rc.conf, &quiet, err, sizeof err) < 0)
        die("%s", err);
    if (check) {
        printf(PROG ": %s: configuration is valid\n", rc.file);
        hp_config_free(&rc.conf);
        return 0;
    }

    hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
    hp_app_config_apply(&rc.conf, &cfg, &rc.builtins);
    cfg.quiet = quiet;
    if (rc.file) {
        cfg.reload = reload_config;
        cfg.reload_arg = &rc;
    }
    snprintf(rc.metrics_path, sizeof rc.metrics_path, "%s", rc.conf.metrics.path);
    if (quiet)
        hp_log_set_level(HP_LOG_WARN);

    hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
    if (!app)
        die("%s", err);
    if (hp_app_builtin_routes(app, rc.builtins, rc.conf.metrics.path, err, sizeof err) < 0)
        die("%s", err);
    int r = hp_app_run(app);
    if (r < 0)
        fprintf(stderr, PROG ": %s\n", hp_app_error(app));
    hp_app_free(app);
    hp_config_free(&rc.conf); /* after the app: it borrowed the configuration's strings */
    return r < 0 ? 1 : 0;
}
