/*
 * main.c - hpbench: command line, the run's timeline, progress and reports.
 *
 * Timeline: resolve and probe the URL (a one-line error and exit 2 if it
 * cannot be reached), start the threads, let the warm-up pass, then sample
 * the live counters once a second (progress line on a terminal, samples
 * for the HTML plot) until the duration is over or a first SIGINT/SIGTERM
 * cuts it short, stop, merge, report, and judge the run against
 * --max-errors: the exit status says whether it passed, the last line on
 * stderr why not.
 *
 * An amqp:// URL runs the PerfTest-like AMQP mode instead (amqp_main):
 * the same timeline around more phases (declare the queues, connect,
 * publish, drain what is in flight, close, delete the queues), with
 * PerfTest's line every second.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "hotpath/alloc.h"
#include "hotpath/clock.h"
#include "hotpath/http_parser.h"
#include "hotpath/log.h"
#include "hpbench.h"

#define PROG "hpbench"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " URL [options]\n"
            "\n"
            "HTTP/1.1 load generator: closed loop (like wrk), pipelined, or at a constant\n"
            "rate with latency corrected for coordinated omission (like wrk2). An\n"
            "amqp://user:pass@host:port/vhost URL benchmarks an AMQP 0-9-1 broker\n"
            "instead, like RabbitMQ's PerfTest (AMQP options below).\n"
            "\n"
            "  -c, --connections N   connections to keep open (default 10; AMQP: the\n"
            "                        connections carrying the producers, default one each)\n"
            "  -t, --threads N       threads, each pinned to a CPU (default 1)\n"
            "  -d, --duration T      measured duration: 10, 10s, 2m, 1h (default 10s)\n"
            "  -H, --header 'K: V'   add a request header (repeatable)\n"
            "  -m, --method M        request method (default GET)\n"
            "      --body FILE       send FILE as the request body\n"
            "      --pipeline N      requests in flight per connection (default 1)\n"
            "  -R, --rate RATE       constant rate: RATE requests/s in total\n"
            "      --warmup T        run T before measuring (default 0)\n"
            "      --timeout T       a response taking longer is an error (default 2s)\n"
            "      --max-errors PCT  fail (exit 1) when more than PCT %% of the requests\n"
            "                        failed, or the server stopped answering (default 1;\n"
            "                        100: never fail on errors)\n"
            "      --latency         print the full latency distribution\n"
            "      --json FILE       write every figure as JSON (- for stdout)\n"
            "      --html FILE       write a self-contained HTML report\n"
            "  -h, --help            this text\n"
            "  -V, --version         print the version\n"
            "\n"
            "AMQP (amqp:// URLs; -c, -t, -d, -R msg/s, --warmup, --timeout, --max-errors,\n"
            "--latency, --json, --html apply too):\n"
            "      --producers N     publishing channels (default 1)\n"
            "      --consumers N     consumers, one connection each (default 1; 0: none)\n"
            "      --queues N        queues, producers and consumers spread over them\n"
            "                        round robin (default 1)\n"
            "      --size N          message body bytes, at least 32 (default 32)\n"
            "      --confirm W       publisher confirms, at most W unconfirmed per\n"
            "                        producer (default 0: off)\n"
            "      --batch N         publish N messages per call (default 1)\n"
            "      --prefetch N      consumers' basic.qos (default 0: no limit)\n"
            "      --multi-ack K     ack every K deliveries at once (default 1)\n"
            "      --read-coalesce MS  while messages stream in, wake for a read only\n"
            "                        every MS ms or 64 KiB (default 0: on each arrival)\n"
            "      --persistent      persistent messages, durable queues\n"
            "      --queue-type T    classic or quorum (default classic)\n"
            "\n"
            "Exit status: 0 after a run within --max-errors; 1 when it failed (the last\n"
            "line on stderr says why) or a report could not be written; 2 for a bad\n"
            "option or an unreachable URL. A first SIGINT/SIGTERM ends the run early\n"
            "with its report; a second one kills hpbench at once (no report).\n");
}

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int parse_int(const char *flag, const char *v, int min, int max)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < min || n > max)
        die("%s: expected a number from %d to %d, got '%s' (see " PROG " --help)", flag, min,
            max, v);
    return (int)n;
}

/* "10", "10s", "1.5s", "250ms", "2m", "1h" to seconds. */
static double parse_time(const char *flag, const char *v, double min)
{
    char *end;
    errno = 0;
    double s = strtod(v, &end);
    if (end == v || errno || !isfinite(s))
        goto bad;
    if (strcmp(end, "ms") == 0)
        s /= 1000;
    else if (strcmp(end, "m") == 0)
        s *= 60;
    else if (strcmp(end, "h") == 0)
        s *= 3600;
    else if (*end && strcmp(end, "s") != 0)
        goto bad;
    if (s < min || s > 86400)
        goto bad;
    return s;
bad:
    die("%s: expected a time such as 10, 10s, 500ms, 2m (at least %g s), got '%s' (see " PROG
        " --help)",
        flag, min, v);
}

/* "1", "0.5", "5%" to a percentage from 0 to 100. */
static double parse_pct(const char *flag, const char *v)
{
    char *end;
    errno = 0;
    double p = strtod(v, &end);
    if (end != v && strcmp(end, "%") == 0)
        end++;
    if (end == v || *end || errno || !(p >= 0.0 && p <= 100.0))
        die("%s: expected a percentage from 0 to 100 such as 1 or 0.5, got '%s' (see " PROG
            " --help)",
            flag, v);
    return p;
}

static void parse_url(hb_options_t *o)
{
    const char *u = o->url;
    if (strncmp(u, "https://", 8) == 0)
        die("https is not supported (plain http:// only): '%s'", u);
    if (strncmp(u, "http://", 7) != 0)
        die("expected a URL like http://127.0.0.1:8080/path, got '%s'", u);
    const char *h = u + 7, *end = h + strcspn(h, "/?#");
    const char *colon = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb)
            die("bad IPv6 host in URL '%s'", u);
        if ((size_t)(rb - h - 1) >= sizeof o->host)
            die("host too long in URL '%s'", u);
        memcpy(o->host, h + 1, (size_t)(rb - h - 1));
        o->host[rb - h - 1] = '\0';
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        const char *hend = colon ? colon : end;
        if (hend == h || (size_t)(hend - h) >= sizeof o->host)
            die("bad host in URL '%s'", u);
        memcpy(o->host, h, (size_t)(hend - h));
        o->host[hend - h] = '\0';
    }
    if (colon) {
        size_t plen = (size_t)(end - colon - 1);
        if (plen == 0 || plen >= sizeof o->port || strspn(colon + 1, "0123456789") < plen)
            die("bad port in URL '%s'", u);
        memcpy(o->port, colon + 1, plen);
        o->port[plen] = '\0';
        long p = strtol(o->port, NULL, 10);
        if (p < 1 || p > 65535)
            die("bad port in URL '%s'", u);
    } else {
        strcpy(o->port, "80");
    }
    const char *path = *end == '/' ? end : "/";
    const char *frag = strchr(path, '#');
    size_t plen = frag ? (size_t)(frag - path) : strlen(path);
    if (*end == '?') /* "http://h?q" */
        plen = 0;
    if (plen + (*end == '?' ? strlen(end) + 1 : 0) >= sizeof o->path)
        die("path too long in URL '%s'", u);
    if (*end == '?')
        snprintf(o->path, sizeof o->path, "/%s", end);
    else
        snprintf(o->path, sizeof o->path, "%.*s", (int)plen, path);
}

/* The long options without a short form. */
enum {
    O_BODY = 256, O_PIPELINE, O_WARMUP, O_TIMEOUT, O_LATENCY, O_JSON, O_HTML, O_MAX_ERRORS,
    O_PRODUCERS, O_CONSUMERS, O_QUEUES, O_SIZE, O_CONFIRM, O_BATCH, O_PREFETCH, O_MULTI_ACK,
    O_PERSISTENT, O_QUEUE_TYPE, O_READ_COALESCE,
};

/* The flags that belong to one mode, as the errors name them. */
static const char *mode_flag(int ch)
{
    switch (ch) {
    case 'H': return "-H";
    case 'm': return "-m";
    case O_BODY: return "--body";
    case O_PIPELINE: return "--pipeline";
    case O_PRODUCERS: return "--producers";
    case O_CONSUMERS: return "--consumers";
    case O_QUEUES: return "--queues";
    case O_SIZE: return "--size";
    case O_CONFIRM: return "--confirm";
    case O_BATCH: return "--batch";
    case O_PREFETCH: return "--prefetch";
    case O_MULTI_ACK: return "--multi-ack";
    case O_PERSISTENT: return "--persistent";
    case O_QUEUE_TYPE: return "--queue-type";
    case O_READ_COALESCE: return "--read-coalesce";
    default: return NULL;
    }
}

/* getopt_long's table: the options of both modes. */
static const struct option longopts[] = {
    {"connections", required_argument, NULL, 'c'},
    {"threads", required_argument, NULL, 't'},
    {"duration", required_argument, NULL, 'd'},
    {"header", required_argument, NULL, 'H'},
    {"method", required_argument, NULL, 'm'},
    {"rate", required_argument, NULL, 'R'},
    {"body", required_argument, NULL, O_BODY},
    {"pipeline", required_argument, NULL, O_PIPELINE},
    {"warmup", required_argument, NULL, O_WARMUP},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"latency", no_argument, NULL, O_LATENCY},
    {"json", required_argument, NULL, O_JSON},
    {"html", required_argument, NULL, O_HTML},
    {"max-errors", required_argument, NULL, O_MAX_ERRORS},
    {"producers", required_argument, NULL, O_PRODUCERS},
    {"consumers", required_argument, NULL, O_CONSUMERS},
    {"queues", required_argument, NULL, O_QUEUES},
    {"size", required_argument, NULL, O_SIZE},
    {"confirm", required_argument, NULL, O_CONFIRM},
    {"batch", required_argument, NULL, O_BATCH},
    {"prefetch", required_argument, NULL, O_PREFETCH},
    {"multi-ack", required_argument, NULL, O_MULTI_ACK},
    {"persistent", no_argument, NULL, O_PERSISTENT},
    {"queue-type", required_argument, NULL, O_QUEUE_TYPE},
    {"read-coalesce", required_argument, NULL, O_READ_COALESCE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Remembers the first flag of each mode, for the other mode to refuse it. */
static void note_mode(hb_options_t *o, int ch)
{
    if (ch == 'H' || ch == 'm' || ch == O_BODY || ch == O_PIPELINE) {
        if (!o->http_flag)
            o->http_flag = mode_flag(ch);
    } else if (ch >= O_PRODUCERS && ch <= O_READ_COALESCE && !o->amqp_flag) {
        o->amqp_flag = mode_flag(ch);
    }
}

/* -H 'Name: value', kept as given; exits on a bad one. */
static void add_header(hb_options_t *o, char *v)
{
    if (o->nheaders == (int)(sizeof o->headers / sizeof o->headers[0]))
        die("-H: at most 64 headers");
    if (!strchr(v, ':') || v[0] == ':' || strpbrk(v, "\r\n"))
        die("-H: expected 'Name: value', got '%s'", v);
    o->headers[o->nheaders++] = v;
}

/* -R: requests (or messages) per second, from 1 to 1e8. */
static double parse_rate(const char *v)
{
    char *end;
    errno = 0;
    double rate = strtod(v, &end);
    if (*end || errno || !(rate >= 1) || rate > 1e8)
        die("-R: expected requests per second from 1 to 100000000, got '%s'", v);
    return rate;
}

/* One option getopt_long returned (its value in optarg) into o; exits on
 * a bad value, an unknown option, --help and --version. */
static void parse_option(hb_options_t *o, int ch, char **argv)
{
    switch (ch) {
    case 'c':
        o->connections = parse_int("-c", optarg, 1, 100000);
        o->connections_set = true;
        break;
    case 't': o->threads = parse_int("-t", optarg, 1, 256); break;
    case 'd': o->duration_s = parse_time("-d", optarg, 0.1); break;
    case 'H': add_header(o, optarg); break;
    case 'm':
        if (!*optarg || strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(optarg))
            die("-m: expected a method such as GET or POST, got '%s'", optarg);
        o->method = optarg;
        break;
    case 'R': o->rate = parse_rate(optarg); break;
    case O_BODY: o->body_file = optarg; break;
    case O_PIPELINE: o->pipeline = parse_int("--pipeline", optarg, 1, 1024); break;
    case O_WARMUP: o->warmup_s = parse_time("--warmup", optarg, 0); break;
    case O_TIMEOUT: o->timeout_s = parse_time("--timeout", optarg, 0.001); break;
    case O_LATENCY: o->latency = true; break;
    case O_JSON: o->json_path = optarg; break;
    case O_HTML: o->html_path = optarg; break;
    case O_MAX_ERRORS: o->max_errors_pct = parse_pct("--max-errors", optarg); break;
    case O_PRODUCERS: o->producers = parse_int("--producers", optarg, 1, 100000); break;
    case O_CONSUMERS: o->consumers = parse_int("--consumers", optarg, 0, 10000); break;
    case O_QUEUES: o->queues = parse_int("--queues", optarg, 1, 10000); break;
    case O_SIZE: o->size = parse_int("--size", optarg, 0, 128 << 20); break;
    case O_CONFIRM: o->confirm = parse_int("--confirm", optarg, 0, 65535); break;
    case O_BATCH: o->batch = parse_int("--batch", optarg, 1, 1000); break;
    case O_PREFETCH: o->prefetch = parse_int("--prefetch", optarg, 0, 65535); break;
    case O_MULTI_ACK: o->multi_ack = parse_int("--multi-ack", optarg, 1, 65535); break;
    case O_READ_COALESCE: o->read_coalesce_ms = parse_int("--read-coalesce", optarg, 0, 1000); break;
    case O_PERSISTENT: o->persistent = true; break;
    case O_QUEUE_TYPE:
        if (strcmp(optarg, "quorum") != 0 && strcmp(optarg, "classic") != 0)
            die("--queue-type: expected classic or quorum, got '%s'", optarg);
        o->quorum = strcmp(optarg, "quorum") == 0;
        break;
    case 'h': usage(stdout); exit(0);
    case 'V': printf(PROG " " HP_VERSION "\n"); exit(0);
    case ':': die("option '%s' needs a value (see " PROG " --help)", argv[optind - 1]);
    default: die("unknown option '%s' (see " PROG " --help)", argv[optind - 1]);
    }
}

/* The one URL after the options; for http://, the checks that need the
 * mode and the URL's parts (amqp_main checks an amqp:// run). */
static void parse_target(hb_options_t *o, int argc, char **argv)
{
    if (optind == argc)
        die("no URL given (see " PROG " --help)");
    if (optind + 1 < argc)
        die("unexpected argument '%s' (see " PROG " --help)", argv[optind + 1]);
    o->url = argv[optind];
    if (strncmp(o->url, "amqp://", 7) == 0 || strncmp(o->url, "amqps://", 8) == 0) {
        o->amqp = true;
        return; /* amqp_main checks the rest */
    }
    if (o->amqp_flag)
        die("%s is for amqp:// URLs; an http:// run does not take it", o->amqp_flag);
    if (o->threads > o->connections)
        die("-t %d is more than -c %d: every thread needs a connection", o->threads,
            o->connections);
    parse_url(o);
}

/* The command line into o; exits 0 after --help or --version and 2 with
 * one line on stderr for a bad option or argument. */
static void parse_args(int argc, char **argv, hb_options_t *o)
{
    opterr = 0;
    for (;;) {
        int ch = getopt_long(argc, argv, ":c:t:d:H:m:R:hV", longopts, NULL);
        if (ch == -1)
            break;
        note_mode(o, ch);
        parse_option(o, ch, argv);
    }
    parse_target(o, argc, argv);
}

/* Resolves the host and checks that something listens there, so that a
 * typo fails in a second with one line instead of a run of errors. */
static void resolve_and_probe(const hb_options_t *o, hb_plan_t *plan)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int r = getaddrinfo(o->host, o->port, &hints, &res);
    if (r != 0)
        die("cannot resolve '%s': %s", o->host, gai_strerror(r));
    memcpy(&plan->addr, res->ai_addr, res->ai_addrlen);
    plan->addr_len = res->ai_addrlen;
    freeaddrinfo(res);

    int fd = socket(plan->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    int err = 0;
    if (connect(fd, (struct sockaddr *)&plan->addr, plan->addr_len) < 0) {
        if (errno != EINPROGRESS) {
            err = errno;
        } else {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, 3000) != 1) {
                err = ETIMEDOUT;
            } else {
                socklen_t len = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            }
        }
    }
    close(fd);
    if (err)
        die("cannot connect to %s: %s", o->url, strerror(err));
}

static double cpu_seconds(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return *user + *sys;
}

/* The first SIGINT or SIGTERM, once the run has started: the main thread
 * then ends the measured part early and reports it. Written by the
 * handler only. */
static volatile sig_atomic_t g_stop_signal;

/* A second signal means "now", even if hpbench is stuck joining its
 * threads: it dies of that signal, so whoever waits for it (a shell, CI)
 * sees a killed run rather than a success, after a last line that says
 * so. Only async-signal-safe calls here. */
static void on_stop_signal(int sig)
{
    if (!g_stop_signal) {
        g_stop_signal = sig;
        return;
    }
    static const char msg[] = PROG ": second signal: exiting at once, without a report\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)n;
    signal(sig, SIG_DFL);
    raise(sig); /* blocked until this handler returns, then fatal */
}

/* Naps this long at most, so that a signal landing between the flag
 * check and nanosleep (which it then does not interrupt) is seen soon. */
#define HB_NAP_NS 100000000ull

/* Sleeps until t_ns. Returns false, early, once a stop signal came. */
static bool sleep_until(uint64_t t_ns)
{
    while (!g_stop_signal) {
        uint64_t now = hp_clock_mono_ns();
        if (now >= t_ns)
            return true;
        uint64_t d = t_ns - now < HB_NAP_NS ? t_ns - now : HB_NAP_NS;
        struct timespec ts = {.tv_sec = (time_t)(d / 1000000000), .tv_nsec = (long)(d % 1000000000)};
        nanosleep(&ts, NULL); /* EINTR when the handler ran */
    }
    return false;
}

/* Sleeps `ns`, signal or not (a signal may cut it short). */
static void nap(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000), .tv_nsec = (long)(ns % 1000000000)};
    nanosleep(&ts, NULL);
}

static void fmt_latency(char *out, size_t n, uint64_t ns)
{
    if (ns < 1000000)
        snprintf(out, n, "%.0fus", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(out, n, "%.2fms", (double)ns / 1e6);
    else
        snprintf(out, n, "%.2fs", (double)ns / 1e9);
}

/* The measured window: [*t_start, *t_end) on the monotonic clock. The
 * rate schedule starts a little ahead, so the threads are up before its
 * first request is due. Without a warm-up every response counts, from the
 * first connect, and the measured time begins now: what the server served
 * and what hpbench counted then agree. */
static void plan_window(const hb_options_t *opt, hb_plan_t *plan, uint64_t *t_start,
                        uint64_t *t_end)
{
    uint64_t t0 = hp_clock_mono_ns() + 1000000;
    if (plan->rate_mode)
        hp_rate_init(&plan->rate, opt->rate, (uint32_t)opt->connections, t0);
    if (opt->warmup_s > 0) {
        plan->record_from_ns = t0 + (uint64_t)(opt->warmup_s * 1e9);
        *t_start = plan->record_from_ns;
    } else {
        plan->record_from_ns = 0;
        *t_start = plan->rate_mode ? t0 : hp_clock_mono_ns();
    }
    *t_end = *t_start + (uint64_t)(opt->duration_s * 1e9);
    plan->record_until_ns = *t_end;
}

/* Signals and timer slack for the run. No SA_RESTART: the signal
 * interrupts the main thread's sleep. The load threads block both
 * signals (they inherit the mask block_stop_signals sets around their
 * start), so the handler always runs on this thread. */
static void install_signals(void)
{
    /* Threads inherit the timer slack: 1 ns lets the rate schedule's
     * wake-ups land on time instead of up to 50 us late. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    /* A write to a connection the server has reset is an error to count
     * (EPIPE), not a reason to die without a report: in -R mode requests
     * leave on schedule, answered or not, so a server going away makes
     * such writes certain. */
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Blocks (on) or restores (off) SIGINT and SIGTERM around starting
 * threads. */
static void block_stop_signals(bool on, sigset_t *old)
{
    if (on) {
        sigset_t stop_sigs;
        sigemptyset(&stop_sigs);
        sigaddset(&stop_sigs, SIGINT);
        sigaddset(&stop_sigs, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &stop_sigs, old);
    } else {
        pthread_sigmask(SIG_SETMASK, old, NULL);
    }
}

/* Signals and timer slack for the run, then the load threads. */
static hb_threads_t *start_threads(hb_plan_t *plan)
{
    install_signals();
    sigset_t old_sigs;
    block_stop_signals(true, &old_sigs);
    hb_threads_t *ts = hb_threads_start(plan);
    int start_err = errno;
    block_stop_signals(false, &old_sigs);
    if (!ts)
        die("cannot start threads: %s", strerror(start_err));
    return ts;
}

/* One sample a second until t_end (or a stop signal), with the progress
 * line on a terminal. Returns when the measured part ended: *t_stop. A
 * stop during the warm-up leaves nothing measured: the report is empty
 * and the verdict says so. */
static void sample_run(hb_threads_t *ts, hb_results_t *res, int nsamples_max, uint64_t t_start,
                       uint64_t t_end, uint64_t *t_stop)
{
    bool measuring = sleep_until(t_start);
    double u0, s0;
    double cpu0 = cpu_seconds(&u0, &s0);
    bool tty = isatty(STDERR_FILENO);
    uint64_t last_req = 0, last_err = 0, last_ok = 0;
    bool cut = !measuring;
    *t_stop = measuring ? t_end : t_start;
    for (int sec = 1; measuring; sec++) {
        uint64_t next = t_start + (uint64_t)sec * 1000000000ull;
        bool last = next >= t_end;
        uint64_t until = last ? t_end : next;
        if (!sleep_until(until)) {
            /* Cut short: this sample ends now. Responses that complete
             * before the threads stop, a few milliseconds on, still
             * count. */
            uint64_t now = hp_clock_mono_ns();
            until = now < until ? now : until;
            last = cut = true;
        }
        uint64_t req, errs, ok, p99;
        hb_threads_peek(ts, &req, &errs, &ok, &p99);
        if (res->nsamples < nsamples_max) {
            double t = last ? (double)(until - t_start) / 1e9 : sec;
            res->samples[res->nsamples++] =
                (hb_sample_t){.t = t, .requests = req - last_req, .errors = errs - last_err,
                              .ok = ok - last_ok, .p99_ns = p99};
        }
        if (tty && !last) {
            char p[32];
            fmt_latency(p, sizeof p, p99);
            fprintf(stderr, "\r  %3ds  %10llu req/s  %8llu errors  p99 %-10s", sec,
                    (unsigned long long)(req - last_req), (unsigned long long)errs, p);
        }
        last_req = req;
        last_err = errs;
        last_ok = ok;
        if (last) {
            *t_stop = until;
            break;
        }
    }
    if (tty)
        fputs("\r\033[K", stderr);
    if (cut)
        fprintf(stderr, PROG ": SIG%s: run stopped after %.2f s of %g s measured\n",
                sigabbrev_np(g_stop_signal), (double)(*t_stop - t_start) / 1e9,
                res->opt->duration_s);
    double u1, s1;
    double cpu1 = cpu_seconds(&u1, &s1);
    res->duration_s = (double)(*t_stop - t_start) / 1e9;
    res->client_cpu_s = cpu1 - cpu0;
    res->client_user_s = u1 - u0;
    res->client_sys_s = s1 - s0;
}

/* The text report, the files asked for, and the verdict. Returns true
 * when the run failed (a file could not be written, or hb_verdict says
 * so, in one line on stderr). */
static bool report(const hb_results_t *res, const hb_options_t *opt)
{
    hb_report_text(res, stdout);
    bool failed = false;
    int rc;
    if (opt->json_path && (rc = hb_report_json(res, opt->json_path)) < 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", opt->json_path, strerror(-rc));
        failed = true;
    }
    if (opt->html_path && (rc = hb_report_html(res, opt->html_path)) < 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", opt->html_path, strerror(-rc));
        failed = true;
    }
    char why[512];
    if (hb_verdict(res, why, sizeof why) != 0) {
        fprintf(stderr, PROG ": failed: %s\n", why);
        failed = true;
    }
    return failed;
}

/* ---------------------------------------------------------------------- */
/* The amqp:// mode                                                         */

/* Set-up (declare, connect every producer and consumer) may take this
 * long at most: the connect timeout of the client, plus room for a few
 * hundred connections on a busy machine. */
#define HB_AMQP_SETUP_NS (30 * 1000000000ull)
/* Closing the connections and deleting the queues at the end each wait
 * this long for the broker at most, then the connections are dropped. */
#define HB_AMQP_CLOSE_NS (5 * 1000000000ull)
/* How often the main thread looks at the threads while it waits. */
#define HB_AMQP_POLL_NS 5000000ull

typedef bool (*amqp_cond_t)(const hb_amqp_live_t *l, const hb_options_t *o);

static bool amqp_topology(const hb_amqp_live_t *l, const hb_options_t *o)
{
    (void)o;
    return l->topology;
}

static bool amqp_all_ready(const hb_amqp_live_t *l, const hb_options_t *o)
{
    return l->ready == (uint32_t)(o->producers + o->consumers);
}

static bool amqp_all_closed(const hb_amqp_live_t *l, const hb_options_t *o)
{
    (void)o;
    return l->open == 0;
}

static bool amqp_admin_done(const hb_amqp_live_t *l, const hb_options_t *o)
{
    (void)o;
    return l->admin_done;
}

/* Waits until cond holds (true), or a set-up step failed, a stop signal
 * came or `limit` ns passed (false; err says which when it can). */
static bool amqp_wait(hb_athreads_t *ts, const hb_options_t *o, amqp_cond_t cond, uint64_t limit,
                      hb_amqp_live_t *l, char *err, size_t errlen, bool setup)
{
    uint64_t deadline = hp_clock_mono_ns() + limit;
    for (;;) {
        hb_amqp_peek(ts, l, err, errlen);
        if (setup && l->setup_failed)
            return false;
        if (cond(l, o))
            return true;
        if (setup && g_stop_signal) {
            snprintf(err, errlen, "SIG%s during the set-up: nothing measured",
                     sigabbrev_np(g_stop_signal));
            return false;
        }
        if (hp_clock_mono_ns() >= deadline) {
            snprintf(err, errlen,
                     "the broker did not answer within %.0f s (queues declared: %s, producers "
                     "and consumers ready: %u of %d)",
                     (double)limit / 1e9, l->topology ? "yes" : "no", l->ready,
                     o->producers + o->consumers);
            return false;
        }
        nap(HB_AMQP_POLL_NS);
    }
}

/* The end, whatever happened: connections closed gracefully, queues
 * deleted (collecting what was left in them), threads stopped and their
 * figures merged into r (when not NULL). */
static void amqp_teardown(hb_athreads_t *ts, const hb_options_t *o, hb_amqp_results_t *r)
{
    hb_amqp_live_t l;
    char ignored[8];
    hb_amqp_finish(ts);
    amqp_wait(ts, o, amqp_all_closed, HB_AMQP_CLOSE_NS, &l, ignored, sizeof ignored, false);
    hb_amqp_delete(ts);
    amqp_wait(ts, o, amqp_admin_done, HB_AMQP_CLOSE_NS, &l, ignored, sizeof ignored, false);
    hb_amqp_stop(ts, r);
    hb_amqp_destroy(ts);
}

/* The measured part: one sample and one PerfTest line a second until
 * t_end or a stop signal (then publishing stops at once). Returns when it
 * ended, in *t_stop, with the process's CPU time over it in r. */
static void amqp_sample_run(hb_athreads_t *ts, hb_aplan_t *plan, hb_amqp_results_t *r,
                            int nsamples_max, uint64_t t_start, uint64_t t_end, uint64_t *t_stop)
{
    hp_hist_t h[6]; /* confirm: before, now, interval; consumer: the same */
    for (int i = 0; i < 6; i++) {
        if (hp_hist_init_latency(&h[i]) < 0)
            die("out of memory");
    }
    bool measuring = sleep_until(t_start);
    double u0, s0;
    double cpu0 = cpu_seconds(&u0, &s0);
    hb_amqp_live_t prev, now;
    char ignored[8];
    hb_amqp_peek(ts, &prev, ignored, sizeof ignored);
    hb_amqp_peek_hists(ts, &h[0], &h[3]);
    bool cut = !measuring;
    *t_stop = measuring ? t_end : t_start;
    if (!measuring) /* a signal in the warm-up: nothing counted, nothing more leaves */
        __atomic_store_n(&plan->stop_ns, hp_clock_mono_ns(), __ATOMIC_RELAXED);
    for (int sec = 1; measuring; sec++) {
        uint64_t next = t_start + (uint64_t)sec * 1000000000ull;
        bool last = next >= t_end;
        uint64_t until = last ? t_end : next;
        if (!sleep_until(until)) {
            uint64_t t = hp_clock_mono_ns();
            until = t < until ? t : until;
            last = cut = true;
            /* Nothing leaves after this: what is in flight is drained. */
            __atomic_store_n(&plan->stop_ns, until, __ATOMIC_RELAXED);
        }
        hb_amqp_peek(ts, &now, ignored, sizeof ignored);
        hb_amqp_peek_hists(ts, &h[1], &h[4]);
        hb_hist_diff(&h[2], &h[1], &h[0]);
        hb_hist_diff(&h[5], &h[4], &h[3]);
        double t = last ? (double)(until - t_start) / 1e9 : sec;
        double len = t - (r->nsamples ? r->samples[r->nsamples - 1].t : 0.0);
        if (r->nsamples < nsamples_max) {
            hb_amqp_sample_t *smp = &r->samples[r->nsamples++];
            *smp = (hb_amqp_sample_t){.t = t,
                                      .published = now.published - prev.published,
                                      .confirmed = now.confirmed - prev.confirmed,
                                      .nacked = now.nacked - prev.nacked,
                                      .returned = now.returned - prev.returned,
                                      .consumed = now.consumed - prev.consumed};
            hb_amqp_ipcts(&h[2], smp->confirm_ns);
            hb_amqp_ipcts(&h[5], smp->consumer_ns);
            /* A last sliver of a second would show rates from a handful
             * of messages: it is kept for the files, not printed. */
            if (len >= 0.5 || !last)
                hb_amqp_interval_line(stdout, r, smp, len);
            fflush(stdout);
        }
        prev = now;
        hp_hist_t tmp = h[0];
        h[0] = h[1], h[1] = tmp;
        tmp = h[3];
        h[3] = h[4], h[4] = tmp;
        if (last) {
            *t_stop = until;
            break;
        }
    }
    if (cut)
        fprintf(stderr, PROG ": SIG%s: run stopped after %.2f s of %g s measured\n",
                sigabbrev_np(g_stop_signal), (double)(*t_stop - t_start) / 1e9,
                r->opt->duration_s);
    double u1, s1;
    double cpu1 = cpu_seconds(&u1, &s1);
    r->duration_s = (double)(*t_stop - t_start) / 1e9;
    r->client_cpu_s = cpu1 - cpu0;
    r->client_user_s = u1 - u0;
    r->client_sys_s = s1 - s0;
    for (int i = 0; i < 6; i++)
        hp_hist_destroy(&h[i]);
}

/* After the end: waits until every message published has been confirmed
 * (or nacked) and consumed (or returned), --timeout at most, or until a
 * first stop signal comes now. What the consumers have not received by
 * then is counted in the queues when they are deleted; a confirm that has
 * not come is "unconfirmed". Returns how long it took. */
static double amqp_drain(hb_athreads_t *ts, const hb_options_t *o, uint64_t t_stop)
{
    int sig0 = g_stop_signal;
    uint64_t limit = (uint64_t)(o->timeout_s * 1e9), t0 = hp_clock_mono_ns(), t;
    /* Producers stop on their own clock at t_stop: give the last publish
     * under way a moment to be counted. */
    nap(HB_AMQP_POLL_NS);
    for (;;) {
        hb_amqp_live_t l;
        char ignored[8];
        hb_amqp_peek(ts, &l, ignored, sizeof ignored);
        bool confirmed = !o->confirm || l.confirmed + l.nacked + l.failed >= l.published;
        bool consumed = !o->consumers || l.consumed + l.returned + l.nacked >= l.published;
        t = hp_clock_mono_ns();
        if ((confirmed && consumed) || t - t0 >= limit || (g_stop_signal && !sig0))
            break;
        nap(HB_AMQP_POLL_NS);
    }
    return t > t_stop ? (double)(t - t_stop) / 1e9 : 0.0;
}

static int amqp_main(hb_options_t *opt)
{
    char err[1024];
    if (hb_amqp_options(opt, err, sizeof err) < 0)
        die("%s (see " PROG " --help)", err);
    static hb_aplan_t plan; /* one per process; large */
    if (hb_aplan_init(&plan, opt, err, sizeof err) < 0)
        die("%s", err);
    /* The client's warnings would repeat the one line hpbench prints. */
    hp_log_set_level(HP_LOG_ERROR);

    hb_amqp_results_t res = {.opt = opt, .url = plan.url, .rate_mode = opt->rate > 0};
    if (hp_hist_init_latency(&res.confirm) < 0 || hp_hist_init_latency(&res.confirm_unc) < 0 ||
        hp_hist_init_latency(&res.consumer) < 0 || hp_hist_init_latency(&res.consumer_unc) < 0)
        die("out of memory");
    int nsamples_max = (int)ceil(opt->duration_s) + 2;
    res.samples = hp_calloc((size_t)nsamples_max, sizeof *res.samples);
    if (!res.samples)
        die("out of memory");

    install_signals();
    sigset_t old_sigs;
    block_stop_signals(true, &old_sigs);
    hb_athreads_t *ts = hb_amqp_start(&plan);
    int start_err = errno;
    block_stop_signals(false, &old_sigs);
    if (!ts)
        die("cannot start threads: %s", strerror(start_err));

    /* Set-up: the queues, then every producer and consumer. A refused
     * login, an unknown vhost, a refused declare: one line, exit 2. */
    hb_amqp_live_t l;
    bool ok = amqp_wait(ts, opt, amqp_topology, HB_AMQP_SETUP_NS, &l, err, sizeof err, true) &&
              hb_amqp_connect(ts) == 0 &&
              amqp_wait(ts, opt, amqp_all_ready, HB_AMQP_SETUP_NS, &l, err, sizeof err, true);
    if (!ok) {
        bool sig = g_stop_signal != 0;
        amqp_teardown(ts, opt, NULL);
        fprintf(stderr, PROG ": %s\n", err);
        exit(sig ? 1 : 2);
    }

    /* The measured window, as in the HTTP mode (plan_window). */
    uint64_t now = hp_clock_mono_ns(), t0 = now + 1000000, t_start, t_stop;
    if (res.rate_mode)
        hp_rate_init(&plan.rate, opt->rate, (uint32_t)opt->producers, t0);
    uint64_t from = opt->warmup_s > 0 ? t0 + (uint64_t)(opt->warmup_s * 1e9) : 0;
    t_start = from ? from : res.rate_mode ? t0 : now;
    uint64_t t_end = t_start + (uint64_t)(opt->duration_s * 1e9);
    __atomic_store_n(&plan.record_from_ns, from, __ATOMIC_RELAXED);
    __atomic_store_n(&plan.stop_ns, t_end, __ATOMIC_RELAXED);
    printf("Running %gs test @ %s\n", opt->duration_s, plan.url);
    fflush(stdout);
    if (hb_amqp_go(ts) < 0) {
        amqp_teardown(ts, opt, NULL);
        die("cannot start the run: the threads do not answer");
    }
    amqp_sample_run(ts, &plan, &res, nsamples_max, t_start, t_end, &t_stop);
    res.drain_s = amqp_drain(ts, opt, t_stop);
    amqp_teardown(ts, opt, &res);

    if (opt->confirm && res.published > res.confirmed + res.nacked)
        res.unconfirmed = res.published - res.confirmed - res.nacked;
    hb_amqp_account(&res);
    hb_amqp_report_text(&res, stdout);
    bool failed = false;
    int rc;
    if (opt->json_path && (rc = hb_amqp_report_json(&res, opt->json_path)) < 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", opt->json_path, strerror(-rc));
        failed = true;
    }
    if (opt->html_path && (rc = hb_amqp_report_html(&res, opt->html_path)) < 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", opt->html_path, strerror(-rc));
        failed = true;
    }
    char why[1024];
    if (hb_amqp_verdict(&res, why, sizeof why) != 0) {
        fprintf(stderr, PROG ": failed: %s\n", why);
        failed = true;
    }
    hp_free(res.samples);
    hp_hist_destroy(&res.confirm);
    hp_hist_destroy(&res.confirm_unc);
    hp_hist_destroy(&res.consumer);
    hp_hist_destroy(&res.consumer_unc);
    hb_aplan_destroy(&plan);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    hb_options_t opt = {
        .connections = 10,
        .threads = 1,
        .duration_s = 10,
        .timeout_s = 2,
        .pipeline = 1,
        .method = "GET",
        .max_errors_pct = 1.0,
        .producers = 1,
        .consumers = 1,
        .queues = 1,
        .size = HB_AMQP_HEADER_LEN,
        .multi_ack = 1,
        .batch = 1,
    };
    parse_args(argc, argv, &opt);
    if (opt.amqp)
        return amqp_main(&opt);
    hp_http_parser_init(); /* response scanning: the best SIMD the CPU has */

    hb_plan_t plan;
    char err[256];
    if (hb_plan_init(&plan, &opt, err, sizeof err) < 0)
        die("%s", err);
    resolve_and_probe(&opt, &plan);

    hb_results_t res = {.opt = &opt, .rate_mode = opt.rate > 0};
    if (hp_hist_init_latency(&res.latency) < 0 || hp_hist_init_latency(&res.uncorrected) < 0)
        die("out of memory");
    int nsamples_max = (int)ceil(opt.duration_s) + 2;
    res.samples = hp_calloc((size_t)nsamples_max, sizeof *res.samples);
    if (!res.samples)
        die("out of memory");

    uint64_t t_start, t_end, t_stop;
    plan.rate_mode = res.rate_mode;
    plan_window(&opt, &plan, &t_start, &t_end);
    printf("Running %gs test @ %s\n", opt.duration_s, opt.url);
    fflush(stdout);
    hb_threads_t *ts = start_threads(&plan);
    sample_run(ts, &res, nsamples_max, t_start, t_end, &t_stop);
    hb_threads_stop(ts, &res);
    hb_threads_destroy(ts);

    bool failed = report(&res, &opt);
    hp_free(res.samples);
    hp_hist_destroy(&res.latency);
    hp_hist_destroy(&res.uncorrected);
    hb_plan_destroy(&plan);
    return failed ? 1 : 0;
}
