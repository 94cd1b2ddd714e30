/*
 * main.c - the hotpath binary: command line, start-up, signals, shutdown.
 *
 * The main thread parses flags, opens the document root and the listening
 * sockets (so every start-up error is one line and exit 1 before any
 * thread runs), starts the workers, then sleeps in poll() on a signalfd
 * and the engine's exit-report eventfd. First SIGTERM/SIGINT: graceful
 * drain; second: exit at once.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "hotpath/engine.h"
#include "hotpath/http_server.h"
#include "hotpath/http_static.h"
#include "hotpath/log.h"

#define PROG "hotpath"

typedef struct options {
    const char *listen;
    const char *root;
    uint32_t workers; /* 0: one per available CPU */
    int backlog;
    bool quiet;
    hp_http_config_t http;
    hp_worker_config_t engine;
} options_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " [--listen ADDR:PORT] [--workers N] [--root DIR] [options]\n"
            "\n"
            "A thread-per-core HTTP/1.1 server: built-in /plaintext, /json, /health,\n"
            "/metrics and POST /echo, and static files from the document root.\n"
            "\n"
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
            "SIGTERM or SIGINT drains gracefully; a second one exits at once.\n");
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
    O_LISTEN = 256, O_ROOT, O_WORKERS, O_HEADER_TMO, O_BODY_TMO, O_KA_TMO, O_WRITE_TMO,
    O_DRAIN_TMO, O_MAX_LINE, O_MAX_HDR, O_MAX_FIELDS, O_MAX_BODY, O_BACKLOG, O_QUIET
};

static void parse_args(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {
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
        int idx = 0;
        int ch = getopt_long(argc, argv, ":hV", longopts, &idx);
        if (ch == -1)
            break;
        switch (ch) {
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

/* Sums what the workers reported on their way out (each exit report in
 * the engine's inbox says the worker is done, so its shards are final). */
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

int main(int argc, char **argv)
{
    options_t o = {
        .listen = "127.0.0.1:8080",
        .root = "www",
        .workers = 0,
        .backlog = 2048,
        .http = HP_HTTP_CONFIG_DEFAULT,
        .engine = HP_WORKER_CONFIG_DEFAULT,
    };
    parse_args(argc, argv, &o);
    if (o.quiet)
        hp_log_set_level(HP_LOG_WARN);

    hp_listen_addr_t addr;
    if (hp_listen_addr_parse(o.listen, &addr) < 0)
        die("--listen: expected ADDR:PORT such as 127.0.0.1:8080 or [::1]:8080, got '%s'",
            o.listen);
    int root_fd = hp_static_open_root(o.root);
    if (root_fd < 0)
        die("cannot open root '%s': %s", o.root, strerror(-root_fd));
    o.http.root_fd = root_fd;
    uint32_t nworkers = o.workers ? o.workers : hp_engine_cpus(NULL, 0);

    hp_http_parser_init();
    o.engine.rbuf_size = hp_http_rbuf_size(&o.http);
    hp_proto_t proto;
    if (hp_http_proto_init(&proto, &o.http, o.engine.rbuf_size) < 0)
        die("the request limits do not fit a read buffer");

    /* Signals are taken through a signalfd by this thread only: block
     * them before any worker starts so the workers inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        die("signalfd: %s", strerror(errno));

    hp_engine_t engine;
    int r = hp_engine_init(&engine, &addr, o.backlog, nworkers, &o.engine, &proto, &o.http);
    if (r < 0)
        die("cannot listen on %s: %s", addr.text, strerror(-r));
    o.http.engine = &engine;
    if ((r = hp_engine_start(&engine)) < 0)
        die("cannot start workers: %s", strerror(-r));
    if (!o.quiet)
        fprintf(stderr, PROG " " HP_VERSION ": listening on http://%s (%u worker%s, root %s)\n",
                addr.text, nworkers, nworkers == 1 ? "" : "s", o.root);

    int signals = 0;
    struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN}, {.fd = engine.wake_fd, .events = POLLIN}};
    for (;;) {
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            break;
        if (pfd[1].revents && hp_engine_reap(&engine))
            break;
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            if (++signals == 1) {
                hp_log(INFO, "%s: draining connections (signal again to exit at once)",
                       strsignal((int)si.ssi_signo));
                hp_engine_shutdown(&engine);
            } else {
                hp_log(INFO, "second signal: exiting now");
                _exit(0);
            }
        }
    }
    log_totals(&engine);
    hp_engine_destroy(&engine);
    close(root_fd);
    close(sfd);
    return 0;
}
