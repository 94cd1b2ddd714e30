/*
 * rmq_perf.c - a small PerfTest-like AMQP 0-9-1 client on Debian's
 * librabbitmq (rabbitmq-c 0.11), the C peer that bench/amqp.sh runs beside
 * hpbench. A comparison tool only: nothing of hotpath links librabbitmq.
 *
 * One thread, one producer channel on its own connection and, with
 * --consumers 1, one consumer on a second connection, both on one private
 * queue (rmq-perf-PID-RAND, deleted at the end, x-expires as a safety
 * net). It publishes --size byte messages for --warmup + -d seconds
 * (mandatory, default exchange, as hpbench does), optionally in confirm
 * mode with at most --confirm W unconfirmed, and the consumer acknowledges
 * every --multi-ack K deliveries (multiple) under --prefetch N.
 *
 * The loop is event driven like hpbench's: poll() on the sockets when
 * there is something to read (confirms, deliveries), a burst of at most
 * BURST publishes when the producer's socket has room. Each body starts
 * with its sequence number and send time (CLOCK_MONOTONIC ns); a message
 * counts when it was published in the measured part, and its confirm and
 * delivery count whenever they come (during the drain too), as in
 * hpbench. CPU is getrusage over the measured part only.
 *
 * Output: one JSON line on stdout (see bench/README.md, "amqp.sh").
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Publishes in a row before the sockets are looked at again: the same
 * burst as hpbench's HB_AMQP_BURST. */
#define BURST 64
/* Body bytes every message starts with: sequence number, send time. */
#define HEADER_LEN 16

typedef struct {
    amqp_connection_state_t prod, cons; /* cons: NULL without a consumer */
    char queue[64];
    uint32_t size, window, prefetch, multi_ack;
    bool consumer;
    uint64_t from_ns, stop_ns;          /* the measured part */
    /* producer */
    uint64_t seq;                       /* messages published */
    uint64_t first_counted;             /* seq of the first one in the measured part */
    uint64_t last_counted;              /* seq of the last one */
    uint64_t lowest;                    /* lowest unsettled seq */
    uint32_t outstanding;               /* published, not settled */
    uint8_t *pending;                   /* owned: 1 per unsettled seq, seq % window */
    uint64_t published, confirmed, nacked, returned;
    /* consumer */
    uint64_t consumed, redelivered, unacked, last_tag;
} perf_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "rmq_perf: %s: %s\n", what, why);
    exit(2);
}

static void check_reply(amqp_rpc_reply_t r, const char *what)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        die(what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD ||
            r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            /* connection.close and channel.close start alike. */
            const amqp_channel_close_t *m = r.reply.decoded;
            fprintf(stderr, "rmq_perf: %s: %u %.*s\n", what, m->reply_code,
                    (int)m->reply_text.len, (const char *)m->reply_text.bytes);
            exit(2);
        }
        die(what, "server exception");
        break;
    default:
        die(what, "no reply");
    }
}

static amqp_connection_state_t open_conn(const struct amqp_connection_info *ci)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
    if (!s)
        die("amqp_tcp_socket_new", "out of memory");
    int r = amqp_socket_open(s, ci->host, ci->port);
    if (r != AMQP_STATUS_OK)
        die("connect", amqp_error_string2(r));
    /* No heartbeats (hpbench's runs do not need them either); the
     * library's default frame_max. */
    check_reply(amqp_login(c, ci->vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN,
                           ci->user, ci->password),
                "login");
    amqp_channel_open(c, 1);
    check_reply(amqp_get_rpc_reply(c), "channel.open");
    return c;
}

/* ---- publishing and confirms ---- */

static void publish(perf_t *p, uint8_t *body, uint64_t now)
{
    uint64_t seq = p->seq + 1;
    memcpy(body, &seq, 8);
    memcpy(body + 8, &now, 8);
    amqp_bytes_t b = {.len = p->size, .bytes = body};
    int r = amqp_basic_publish(p->prod, 1, amqp_empty_bytes, amqp_cstring_bytes(p->queue), 1, 0,
                               NULL, b);
    if (r != AMQP_STATUS_OK)
        die("basic.publish", amqp_error_string2(r));
    p->seq = seq;
    if (now >= p->from_ns) {
        if (!p->first_counted)
            p->first_counted = seq;
        p->last_counted = seq;
        p->published++;
    }
    if (p->window) {
        p->pending[seq % p->window] = 1;
        p->outstanding++;
    }
}

static bool counted(const perf_t *p, uint64_t seq)
{
    return p->first_counted && seq >= p->first_counted && seq <= p->last_counted;
}

static void settle_one(perf_t *p, uint64_t seq, bool ack)
{
    uint8_t *slot = &p->pending[seq % p->window];
    if (seq < p->lowest || seq > p->seq || !*slot)
        return;
    *slot = 0;
    p->outstanding--;
    if (counted(p, seq))
        ack ? p->confirmed++ : p->nacked++;
}

/* basic.ack / basic.nack from the broker: `multiple` settles every
 * unsettled sequence number up to tag. */
static void settle(perf_t *p, uint64_t tag, bool multiple, bool ack)
{
    if (multiple) {
        for (uint64_t s = p->lowest; s <= tag && s <= p->seq; s++)
            settle_one(p, s, ack);
    } else {
        settle_one(p, tag, ack);
    }
    while (p->lowest <= p->seq && !p->pending[p->lowest % p->window])
        p->lowest++;
}

/* Reads what the producer's connection holds: confirms and returns. The
 * first call may read the socket; the others only what is buffered. */
static void read_producer(perf_t *p)
{
    struct timeval zero = {0, 0};
    do {
        amqp_frame_t f;
        int r = amqp_simple_wait_frame_noblock(p->prod, &f, &zero);
        if (r == AMQP_STATUS_TIMEOUT)
            break;
        if (r != AMQP_STATUS_OK)
            die("producer connection", amqp_error_string2(r));
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            settle(p, a->delivery_tag, a->multiple, true);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            const amqp_basic_nack_t *a = f.payload.method.decoded;
            settle(p, a->delivery_tag, a->multiple, false);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_message_t m;
            check_reply(amqp_read_message(p->prod, f.channel, &m, 0), "basic.return");
            uint64_t sent;
            if (m.body.len >= HEADER_LEN) {
                memcpy(&sent, (const uint8_t *)m.body.bytes + 8, 8);
                p->returned += sent >= p->from_ns && sent < p->stop_ns;
            }
            amqp_destroy_message(&m);
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            die("producer", "closed by the broker");
            break;
        default:
            break;
        }
    } while (amqp_frames_enqueued(p->prod) || amqp_data_in_buffer(p->prod));
    amqp_maybe_release_buffers(p->prod);
}

/* ---- consuming ---- */

static void ack(perf_t *p)
{
    if (!p->unacked)
        return;
    int r = amqp_basic_ack(p->cons, 1, p->last_tag, p->unacked > 1);
    if (r != AMQP_STATUS_OK)
        die("basic.ack", amqp_error_string2(r));
    p->unacked = 0;
}

static void read_consumer(perf_t *p)
{
    struct timeval zero = {0, 0};
    do {
        amqp_envelope_t env;
        amqp_maybe_release_buffers(p->cons);
        amqp_rpc_reply_t r = amqp_consume_message(p->cons, &env, &zero, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            break;
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            /* A frame other than a delivery (consume-ok, qos-ok ...). */
            amqp_frame_t f;
            if (amqp_simple_wait_frame_noblock(p->cons, &f, &zero) == AMQP_STATUS_OK &&
                f.frame_type == AMQP_FRAME_METHOD &&
                (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                 f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD))
                die("consumer", "closed by the broker");
            continue;
        }
        check_reply(r, "consumer");
        uint64_t sent = 0;
        if (env.message.body.len >= HEADER_LEN)
            memcpy(&sent, (const uint8_t *)env.message.body.bytes + 8, 8);
        if (sent >= p->from_ns && sent < p->stop_ns)
            env.redelivered ? p->redelivered++ : p->consumed++;
        p->last_tag = env.delivery_tag;
        amqp_destroy_envelope(&env);
        if (++p->unacked >= p->multi_ack)
            ack(p);
    } while (amqp_frames_enqueued(p->cons) || amqp_data_in_buffer(p->cons));
}

/* ---- the loop ---- */

/* One turn: waits (at most wait_ms) for the sockets when there is
 * something to read, publishes a burst when `publishing` and there is
 * room, reads confirms and deliveries. */
static void turn(perf_t *p, uint8_t *body, bool publishing, int wait_ms)
{
    uint32_t room = publishing ? BURST : 0;
    if (p->window && room > p->window - p->outstanding)
        room = p->window - p->outstanding;
    bool prod_in = p->window > 0, prod_out = room > 0;
    if (prod_in || p->consumer) {
        /* Frames already in the library's buffers need no wait. */
        bool buffered = (prod_in && (amqp_frames_enqueued(p->prod) ||
                                     amqp_data_in_buffer(p->prod))) ||
                        (p->consumer && (amqp_frames_enqueued(p->cons) ||
                                         amqp_data_in_buffer(p->cons)));
        struct pollfd fds[2] = {
            {.fd = amqp_get_sockfd(p->prod),
             .events = (short)((prod_in ? POLLIN : 0) | (prod_out ? POLLOUT : 0))},
            {.fd = p->consumer ? amqp_get_sockfd(p->cons) : -1, .events = POLLIN},
        };
        if (poll(fds, 2, buffered ? 0 : wait_ms) < 0)
            fds[0].revents = fds[1].revents = 0;
        if (!(fds[0].revents & POLLOUT))
            room = 0;
        if (p->window && (fds[0].revents & (POLLIN | POLLERR | POLLHUP) || buffered))
            read_producer(p);
        if (p->consumer && (fds[1].revents & (POLLIN | POLLERR | POLLHUP) || buffered))
            read_consumer(p);
    }
    /* Publish-only without confirms: nothing to read, the socket's
     * blocking send is the flow control. */
    if (room) {
        uint64_t now = now_ns();
        for (uint32_t i = 0; i < room && now < p->stop_ns; i++)
            publish(p, body, now);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: rmq_perf [-d SECONDS] [--warmup SECONDS] [--size BYTES] [--confirm W]\n"
            "                [--consumers 0|1] [--prefetch N] [--multi-ack K] [--timeout S] URL\n");
    exit(2);
}

int main(int argc, char **argv)
{
    double duration = 10, warmup = 0, timeout = 5;
    long size = 32, window = 0, consumers = 0, prefetch = 0, multi_ack = 1;
    static const struct option opts[] = {
        {"warmup", required_argument, NULL, 'w'},  {"size", required_argument, NULL, 's'},
        {"confirm", required_argument, NULL, 'C'}, {"consumers", required_argument, NULL, 'n'},
        {"prefetch", required_argument, NULL, 'q'}, {"multi-ack", required_argument, NULL, 'a'},
        {"timeout", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
        switch (o) {
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 's': size = atol(optarg); break;
        case 'C': window = atol(optarg); break;
        case 'n': consumers = atol(optarg); break;
        case 'q': prefetch = atol(optarg); break;
        case 'a': multi_ack = atol(optarg); break;
        case 't': timeout = atof(optarg); break;
        default: usage();
        }
    }
    if (optind != argc - 1 || duration <= 0 || size < HEADER_LEN || window < 0 || window > 65535 ||
        consumers < 0 || consumers > 1 || prefetch < 0 || prefetch > 65535 || multi_ack < 1)
        usage();

    struct amqp_connection_info ci;
    char *url = strdup(argv[optind]);
    amqp_default_connection_info(&ci);
    if (!url || amqp_parse_url(url, &ci) != AMQP_STATUS_OK)
        die(argv[optind], "cannot parse the URL");

    perf_t p = {.size = (uint32_t)size, .window = (uint32_t)window,
                .prefetch = (uint32_t)prefetch, .multi_ack = (uint32_t)multi_ack,
                .consumer = consumers == 1, .lowest = 1};
    uint8_t *body = calloc(1, (size_t)size);
    p.pending = calloc(window ? (size_t)window : 1, 1);
    if (!body || !p.pending)
        die("calloc", "out of memory");
    memset(body, 'x', (size_t)size);
    snprintf(p.queue, sizeof p.queue, "rmq-perf-%d-%08x", (int)getpid(),
             (unsigned)(now_ns() & 0xffffffffu));

    p.prod = open_conn(&ci);
    amqp_table_entry_t e = {.key = amqp_cstring_bytes("x-expires"),
                            .value = {.kind = AMQP_FIELD_KIND_I32,
                                      .value.i32 = (int32_t)((warmup + duration) * 1000) + 300000}};
    amqp_table_t args = {.num_entries = 1, .entries = &e};
    amqp_queue_declare(p.prod, 1, amqp_cstring_bytes(p.queue), 0, 0, 0, 0, args);
    check_reply(amqp_get_rpc_reply(p.prod), "queue.declare");
    if (p.window) {
        amqp_confirm_select(p.prod, 1);
        check_reply(amqp_get_rpc_reply(p.prod), "confirm.select");
    }
    if (p.consumer) {
        p.cons = open_conn(&ci);
        if (p.prefetch) {
            amqp_basic_qos(p.cons, 1, 0, (uint16_t)p.prefetch, 0);
            check_reply(amqp_get_rpc_reply(p.cons), "basic.qos");
        }
        amqp_basic_consume(p.cons, 1, amqp_cstring_bytes(p.queue), amqp_empty_bytes, 0, 0, 0,
                           amqp_empty_table);
        check_reply(amqp_get_rpc_reply(p.cons), "basic.consume");
    }

    uint64_t t0 = now_ns();
    p.from_ns = t0 + (uint64_t)(warmup * 1e9);
    p.stop_ns = p.from_ns + (uint64_t)(duration * 1e9);
    struct rusage ru0, ru1;
    bool measuring = false;
    for (uint64_t now = t0; now < p.stop_ns; now = now_ns()) {
        if (!measuring && now >= p.from_ns) {
            measuring = true;
            getrusage(RUSAGE_SELF, &ru0);
        }
        turn(&p, body, true, 10);
    }
    if (!measuring)
        getrusage(RUSAGE_SELF, &ru0);
    getrusage(RUSAGE_SELF, &ru1);
    uint64_t t1 = now_ns();

    /* Drain: every counted message confirmed and consumed (or returned),
     * --timeout at most. */
    uint64_t drain_end = t1 + (uint64_t)(timeout * 1e9);
    while (now_ns() < drain_end &&
           ((p.window && p.outstanding) ||
            (p.consumer && p.consumed + p.returned < p.published)))
        turn(&p, body, false, 10);
    uint64_t queued = 0;
    if (p.consumer) {
        ack(&p);
        amqp_channel_close(p.cons, 1, AMQP_REPLY_SUCCESS);
        amqp_connection_close(p.cons, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(p.cons);
    }
    amqp_queue_delete_ok_t *d = amqp_queue_delete(p.prod, 1, amqp_cstring_bytes(p.queue), 0, 0);
    if (d)
        queued = d->message_count;
    amqp_channel_close(p.prod, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(p.prod, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(p.prod);

    double user = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
    double sys = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
    double measured = (double)(t1 - p.from_ns) / 1e9;
    printf("{\"tool\": \"rmq_perf\", \"library\": \"librabbitmq %s\", \"size\": %u, "
           "\"confirm\": %u, \"consumers\": %d, \"prefetch\": %u, \"multi_ack\": %u, "
           "\"duration_s\": %.3f, \"published\": %llu, \"confirmed\": %llu, \"nacked\": %llu, "
           "\"unconfirmed\": %u, \"returned\": %llu, \"consumed\": %llu, \"redelivered\": %llu, "
           "\"queued\": %llu, \"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f}\n",
           amqp_version(), p.size, p.window, p.consumer, p.prefetch, p.multi_ack, measured,
           (unsigned long long)p.published, (unsigned long long)p.confirmed,
           (unsigned long long)p.nacked, p.outstanding, (unsigned long long)p.returned,
           (unsigned long long)p.consumed, (unsigned long long)p.redelivered,
           (unsigned long long)queued, user, sys);
    free(body);
    free(p.pending);
    free(url);
    return p.published ? 0 : 1;
}
