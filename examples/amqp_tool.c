/*
 * amqp_tool.c - publish to and read from RabbitMQ with hotpath's AMQP
 * client: one worker on the main thread, no blocking call.
 *
 *     cc -O2 -o amqp_tool examples/amqp_tool.c $(pkg-config --cflags --libs hotpath) -lcjson
 *     ./amqp_tool amqp://guest:guest@127.0.0.1:5672/ declare jobs
 *     ./amqp_tool amqp://127.0.0.1 publish "" jobs -n 3 --confirm --type text/plain \
 *                 --header trace=abc 'hello'
 *         -> {"published":3,"acked":3,"nacked":0,"returned":0,"failed":0}
 *     ./amqp_tool amqp://127.0.0.1 publish "" jobs -n 100000 --confirm --queue-bytes 1000000 x
 *         (--queue-bytes: what finds no room waits in a queue of that many bytes;
 *          the report adds "refused", the publishes it answered -EAGAIN to, and
 *          "queued_max", the most bytes it held; each stall says so on stderr)
 *     ./amqp_tool amqp://127.0.0.1 publish "" jobs --json --compress '{"id":1}'
 *         (--json: the body is JSON text, checked, sent as application/json;
 *          --compress: gzip when the body is 1 KiB or more and that saves 10 %)
 *     ./amqp_tool amqp://127.0.0.1 get jobs -n 3 --ack
 *         -> one JSON line per message: body, routing key, properties, headers;
 *            a gzip body inflated, a JSON body parsed ("json": the document)
 *     ./amqp_tool amqp://127.0.0.1 consume jobs -n 3 --prefetch 10
 *         (--hold: acknowledge nothing, to watch the prefetch bound;
 *          --cancel: cancel the consumer after the n-th message)
 *     ./amqp_tool amqp://127.0.0.1 exchange logs topic; bind jobs logs 'a.*'; purge jobs ...
 *     ./amqp_tool amqp://127.0.0.1 subscribe logs a.x a.y=mine -n 10
 *         (a channel per key: a server-named exclusive queue, or the auto-delete
 *          queue named after '=', bound to the exchange with the key, consumed)
 *     --heartbeat S (any command): ask for S-second heartbeats;
 *     --recover-max MS (any command): reconnect attempts at most MS apart;
 *     --work MS (get, consume, subscribe): each message takes MS of work that
 *         blocks the loop, like a slow handler, before it is acknowledged;
 *     --rate R (publish): at most R messages a second (0.5: one every 2 s)
 *     ./amqp_tool amqp://node1:5672,node2:5672/ publish "" jobs --confirm x
 *         (several brokers: the first that answers; on a loss, the next)
 *     --blocked-timeout MS: a connection the broker blocks longer is closed
 *         and recovered; --declare Q: declares queue Q first (and again
 *         after a recovery, wherever it lands)
 *
 * Everything runs from callbacks on the worker's loop: connect, open a
 * channel, do the command, close. Errors are one line on stderr with the
 * broker's reply code and text, and exit status 1.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <hotpath/amqp.h>
#include <hotpath/amqp_payload.h>
#include <hotpath/log.h>
#include <hotpath/resolve.h>
#include <hotpath/worker.h>

#define MAX_HEADERS 16
#define MAX_SUBS 16
#define UNTIL_AFTER 1000 /* --until-recovered: messages after the last recovery */

typedef struct tool tool_t;

/* subscribe: one key's channel, queue and consumer. */
typedef struct {
    tool_t *t;
    const char *key;      /* the binding key */
    const char *queue;    /* the queue's name; "" for a server-named one */
    hp_amqp_channel_t *ch;
    char name[256];       /* the name the broker gave it */
    bool consuming;
} sub_t;

struct tool {
    /* the command line */
    const char *cmd, *queue, *exchange, *key, *body, *ctype, *type;
    const char *hdr_key[MAX_HEADERS], *hdr_val[MAX_HEADERS];
    int nhdr;
    long count, batch;
    uint64_t queue_bytes;  /* publish --queue-bytes; 0: none */
    bool confirm, mandatory, persistent, ack, no_ack, durable, hold, reject, nack, cancel;
    bool if_empty, cancelling, no_recover, republish, seq, summary;
    /* consume --summary: the distinct bodies seen (open addressing) */
    char **seen;
    size_t seen_cap, distinct;
    bool json, compress;  /* publish: --json, --compress */
    hp_amqp_body_t payload; /* publish: the body as it goes out */
    char tag[256];        /* consume: the consumer's tag, for --cancel */
    unsigned prefetch;
    unsigned heartbeat;   /* --heartbeat S; 0: the library's default */
    long recover_max_ms;  /* --recover-max MS; 0: the library's default */
    long work_ms;         /* --work MS: a slow handler */
    uint64_t pace_ms;     /* --rate R: a turn of pace_burst publishes every pace_ms */
    long pace_burst, pace_left;
    hp_timer_t pace;      /* --rate: the next turn */
    bool pace_due;
    long until_recovered; /* --until-recovered K: -n is a cap, K recoveries end the run */
    long recoveries;
    sub_t subs[MAX_SUBS]; /* subscribe */
    int nsubs, nconsuming;
    unsigned long blocked_timeout_ms; /* --blocked-timeout */
    const char *declare_first;  /* --declare Q: declared before the command */
    /* the run */
    hp_worker_t *w;
    hp_amqp_conn_t *conn;
    hp_amqp_channel_t *ch;
    long published, acked, nacked, returned, failed, received;
    long refused;          /* --queue-bytes: publishes answered -EAGAIN */
    bool stalled;          /* --queue-bytes: the last publish was refused */
    uint64_t queued_max;   /* --queue-bytes: the most bytes the queue held */
    int status;           /* exit status */
    bool done;
    uint8_t headers[2048];
    hp_amqp_props_t props;
};

static void finish(tool_t *t, int status)
{
    if (t->done)
        return;
    t->done = true;
    t->status = status;
    hp_amqp_close(t->conn);
}

static void fail(tool_t *t, const char *what, const hp_amqp_result_t *r)
{
    if (r && r->reply_code)
        fprintf(stderr, "amqp_tool: %s: %u %.*s\n", what, r->reply_code, (int)r->reply_text.len,
                (const char *)r->reply_text.ptr);
    else
        fprintf(stderr, "amqp_tool: %s: %s\n", what, strerror(r ? -r->err : EIO));
    t->status = 1;
    finish(t, 1);
}

/* ---- printing a message as JSON ---- */

static void json_str(const void *p, size_t n)
{
    const unsigned char *s = p;
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            printf("\\%c", s[i]);
        else if (s[i] < 0x20)
            printf("\\u%04x", s[i]);
        else
            putchar(s[i]);
    }
    putchar('"');
}

static void json_table(hp_amqp_bytes_t table);

static void json_array(hp_amqp_bytes_t array);

static void json_value(const hp_amqp_value_t *v)
{
    switch (v->type) {
    case HP_AMQP_T_BOOL: printf(v->b ? "true" : "false"); break;
    case HP_AMQP_T_I8: case HP_AMQP_T_I16: case HP_AMQP_T_I32: case HP_AMQP_T_I64:
        printf("%lld", (long long)v->i);
        break;
    case HP_AMQP_T_U8: case HP_AMQP_T_U16: case HP_AMQP_T_U32: case HP_AMQP_T_TIMESTAMP:
        printf("%llu", (unsigned long long)v->u);
        break;
    case HP_AMQP_T_FLOAT: printf("%g", (double)v->f); break;
    case HP_AMQP_T_DOUBLE: printf("%g", v->d); break;
    case HP_AMQP_T_DECIMAL: printf("%u.e-%u", v->dec.value, v->dec.scale); break;
    case HP_AMQP_T_STRING: case HP_AMQP_T_BYTES: json_str(v->bytes.ptr, v->bytes.len); break;
    case HP_AMQP_T_TABLE: json_table(v->bytes); break;
    case HP_AMQP_T_ARRAY: json_array(v->bytes); break;
    default: printf("null"); break;
    }
}

static void json_table(hp_amqp_bytes_t table)
{
    hp_amqp_iter_t it = hp_amqp_table_iter(table);
    hp_amqp_bytes_t key;
    hp_amqp_value_t v;
    putchar('{');
    for (int n = 0; hp_amqp_table_next(&it, &key, &v) == 1; n++) {
        printf(n ? "," : "");
        json_str(key.ptr, key.len);
        putchar(':');
        json_value(&v);
    }
    putchar('}');
}

static void json_array(hp_amqp_bytes_t array)
{
    hp_amqp_iter_t it = hp_amqp_array_iter(array);
    hp_amqp_value_t v;
    putchar('[');
    for (int n = 0; hp_amqp_array_next(&it, &v) == 1; n++) {
        printf(n ? "," : "");
        json_value(&v);
    }
    putchar(']');
}

/* Counts a body once (consume --summary). FNV-1a into a table kept at
 * most half full. */
static void count_distinct(tool_t *t, hp_amqp_bytes_t body)
{
    if (2 * (t->distinct + 1) > t->seen_cap) {
        size_t cap = t->seen_cap ? 2 * t->seen_cap : 1024;
        char **old = t->seen, **grown = calloc(cap, sizeof *grown);
        if (!grown) {
            fprintf(stderr, "amqp_tool: out of memory\n");
            exit(1);
        }
        t->seen = grown;
        size_t old_cap = t->seen_cap;
        t->seen_cap = cap;
        t->distinct = 0;
        for (size_t i = 0; i < old_cap; i++) {
            if (old[i]) {
                count_distinct(t, hp_amqp_str(old[i]));
                free(old[i]);
            }
        }
        free(old);
    }
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < body.len; i++)
        h = (h ^ ((const unsigned char *)body.ptr)[i]) * 1099511628211ull;
    for (size_t i = h & (t->seen_cap - 1);; i = (i + 1) & (t->seen_cap - 1)) {
        if (!t->seen[i]) {
            t->seen[i] = strndup(body.ptr, body.len);
            t->distinct++;
            return;
        }
        if (strlen(t->seen[i]) == body.len && !memcmp(t->seen[i], body.ptr, body.len))
            return;
    }
}

static void print_message(const hp_amqp_delivery_t *d)
{
    const hp_amqp_props_t *p = &d->props;
    /* The body as its properties say: inflated when content_encoding is
     * gzip (or deflate, br), parsed when content_type is JSON. */
    hp_amqp_payload_t pl;
    int prc = hp_amqp_payload_decode(p, d->body.ptr, d->body.len, NULL, &pl);
    printf("{\"body\":");
    if (prc == 0)
        json_str(pl.ptr, pl.len);
    else
        json_str(d->body.ptr, d->body.len);
    if (prc == 0 && pl.json) {
        char *text = cJSON_PrintUnformatted(pl.json);
        if (text)
            printf(",\"json\":%s", text);
        cJSON_free(text);
    } else if (prc < 0) {
        printf(",\"payload_error\":");
        json_str(strerror(-prc), strlen(strerror(-prc)));
    }
    hp_amqp_payload_free(&pl);
    printf(",\"exchange\":");
    json_str(d->exchange.ptr, d->exchange.len);
    printf(",\"routing_key\":");
    json_str(d->routing_key.ptr, d->routing_key.len);
    printf(",\"redelivered\":%s", d->redelivered ? "true" : "false");
    if (p->flags & HP_AMQP_PROP_CONTENT_TYPE) {
        printf(",\"content_type\":");
        json_str(p->content_type.ptr, p->content_type.len);
    }
    if (p->flags & HP_AMQP_PROP_CONTENT_ENCODING) {
        printf(",\"content_encoding\":");
        json_str(p->content_encoding.ptr, p->content_encoding.len);
    }
    if (p->flags & HP_AMQP_PROP_DELIVERY_MODE)
        printf(",\"delivery_mode\":%u", p->delivery_mode);
    if (p->flags & HP_AMQP_PROP_MESSAGE_ID) {
        printf(",\"message_id\":");
        json_str(p->message_id.ptr, p->message_id.len);
    }
    if (p->flags & HP_AMQP_PROP_HEADERS) {
        printf(",\"headers\":");
        json_table(p->headers);
    }
    printf("}\n");
    fflush(stdout);
}

/* ---- the commands ---- */

static void report(tool_t *t)
{
    printf("{\"published\":%ld,\"acked\":%ld,\"nacked\":%ld,\"returned\":%ld,\"failed\":%ld",
           t->published, t->acked, t->nacked, t->returned, t->failed);
    if (t->queue_bytes)
        printf(",\"refused\":%ld,\"queued_max\":%llu", t->refused,
               (unsigned long long)t->queued_max);
    printf("}\n");
    finish(t, t->nacked || t->failed ? 1 : 0);
}

/* --queue-bytes: a publish was taken (queued_max follows the queue) or
 * refused (the queue is full: said once per stall, on stderr). */
static void watch_queue(tool_t *t, int r)
{
    hp_amqp_stats_t st;
    hp_amqp_stats(t->conn, &st);
    if (st.queued_bytes > t->queued_max)
        t->queued_max = st.queued_bytes;
    if (r != -EAGAIN) {
        t->stalled = false;
        return;
    }
    t->refused++;
    if (!t->stalled)
        fprintf(stderr, "amqp_tool: the publish queue is full: %llu messages, %llu bytes\n",
                (unsigned long long)st.queued, (unsigned long long)st.queued_bytes);
    t->stalled = true;
}

static void on_confirm(hp_amqp_channel_t *ch, uint64_t seq, int status, void *arg)
{
    (void)ch;
    tool_t *t = arg;
    if (status == HP_AMQP_ACKED)
        t->acked++;
    else if (status == HP_AMQP_NACKED)
        t->nacked++;
    else
        t->failed++;
    /* --seq: which one was not taken. The channel numbers its publishes
     * 1, 2, 3 ... (recoveries included), so message n is seq n + 1. */
    if (t->seq && status != HP_AMQP_ACKED)
        printf("{\"%s\":\"%.400s-%llu\"}\n",
               status == HP_AMQP_NACKED ? "nacked_body" : "failed_body", t->body,
               (unsigned long long)seq - 1);
    if (t->acked + t->nacked + t->failed == t->count)
        report(t);
}

static void on_return(hp_amqp_channel_t *ch, const hp_amqp_delivery_t *d, void *arg)
{
    (void)ch;
    (void)d;
    ((tool_t *)arg)->returned++;
}

static void publish_more(tool_t *t);

static void on_writable(hp_amqp_conn_t *c, void *arg)
{
    (void)c;
    publish_more(arg);
}

static void on_batch(hp_amqp_channel_t *ch, const hp_amqp_batch_result_t *r, void *arg)
{
    (void)ch;
    tool_t *t = arg;
    t->acked += r->acked;
    t->nacked += r->nacked;
    t->failed += r->failed;
    if (t->acked + t->nacked + t->failed == t->count)
        report(t);
}

/* --batch N: the messages go N at a time, each batch in one writev with
 * one callback for its confirms. */
static void publish_batches(tool_t *t)
{
    hp_amqp_msg_t msgs[64];
    while (t->published < t->count) {
        long n = t->count - t->published < t->batch ? t->count - t->published : t->batch;
        for (long i = 0; i < n; i++)
            msgs[i] = (hp_amqp_msg_t){.exchange = t->exchange,
                                      .routing_key = t->key,
                                      .props = &t->props,
                                      .body = t->payload.ptr,
                                      .len = t->payload.len,
                                      .mandatory = t->mandatory};
        int r = hp_amqp_publish_batch(t->ch, msgs, (uint32_t)n, on_batch, t, NULL);
        if (t->queue_bytes)
            watch_queue(t, r);
        if (r == -EAGAIN)
            return; /* on_writable goes on */
        if (r < 0) {
            fail(t, "publish", &(hp_amqp_result_t){.err = r});
            return;
        }
        t->published += n;
    }
    if (!t->confirm) {
        printf("{\"published\":%ld}\n", t->published);
        finish(t, 0);
    }
}

/* --rate: the next message's turn has come. */
static void pace_fired(hp_timer_t *tm)
{
    tool_t *t = HP_CONTAINER_OF(tm, tool_t, pace);
    t->pace_due = true;
    if (!t->done)
        publish_more(t);
}

static void publish_more(tool_t *t)
{
    if (t->batch > 1) {
        publish_batches(t);
        return;
    }
    while (t->published < t->count) {
        if (t->pace_ms && !t->pace_due) {
            if (!hp_timer_armed(&t->pace))
                hp_loop_timer_arm(hp_worker_loop(t->w), &t->pace, t->pace_ms);
            return; /* pace_fired goes on */
        }
        char numbered[512];
        const char *body = t->body;
        if (t->seq) { /* --seq: "<body>-<n>", to tell the messages apart */
            snprintf(numbered, sizeof numbered, "%.400s-%ld", t->body, t->published);
            body = numbered;
        }
        hp_amqp_msg_t m = {.exchange = t->exchange,
                           .routing_key = t->key,
                           .props = &t->props,
                           /* --seq numbers the plain text; else the payload */
                           .body = t->seq ? (const void *)body : t->payload.ptr,
                           .len = t->seq ? strlen(body) : t->payload.len,
                           .mandatory = t->mandatory};
        int r = hp_amqp_publish(t->ch, &m, t->confirm ? on_confirm : NULL, t, NULL);
        if (t->queue_bytes)
            watch_queue(t, r);
        if (r == -EAGAIN)
            return; /* on_writable goes on */
        if (r < 0) {
            fail(t, "publish", &(hp_amqp_result_t){.err = r});
            return;
        }
        t->published++;
        if (t->pace_ms && --t->pace_left == 0) {
            t->pace_due = false;
            t->pace_left = t->pace_burst;
            hp_loop_timer_arm(hp_worker_loop(t->w), &t->pace, t->pace_ms);
        }
    }
    if (!t->confirm) {
        printf("{\"published\":%ld}\n", t->published);
        finish(t, 0);
    }
}

/* Copies a name a callback was lent into dst[cap], NUL-terminated
 * (truncated past cap - 1 bytes: AMQP names are at most 255). */
static void keep(char *dst, size_t cap, hp_amqp_bytes_t b)
{
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    memcpy(dst, b.ptr, n);
    dst[n] = '\0';
}

static void on_cancelled(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    tool_t *t = arg;
    if (r->err) {
        fail(t, "cancel", r);
        return;
    }
    printf("{\"cancelled\":");
    json_str(r->consumer_tag.ptr, r->consumer_tag.len);
    printf("}\n");
    finish(t, 0);
}

static void on_consuming(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    tool_t *t = arg;
    if (r->err) {
        fail(t, "consume", r);
        return;
    }
    keep(t->tag, sizeof t->tag, r->consumer_tag);
}

static void on_message(hp_amqp_channel_t *ch, const hp_amqp_delivery_t *d, void *arg)
{
    tool_t *t = arg;
    if (t->done || t->cancelling)
        return; /* one sent before the cancel reached the broker: requeued at close */
    if (!d) {
        if (strcmp(t->cmd, "get") == 0) {
            finish(t, t->received ? 0 : 3); /* 3: the queue was empty */
        } else {
            fprintf(stderr, "amqp_tool: the broker cancelled the consumer\n");
            finish(t, 1);
        }
        return;
    }
    if (t->summary)
        count_distinct(t, d->body);
    else
        print_message(d);
    t->received++;
    if (t->work_ms > 0) {
        /* --work: a handler that takes its time on the loop's thread, as
         * a careless application's would; nothing else runs meanwhile. */
        struct timespec ts = {.tv_sec = t->work_ms / 1000, .tv_nsec = t->work_ms % 1000 * 1000000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
    }
    bool manual = t->ack || t->reject || t->nack;
    bool consumer = !strcmp(t->cmd, "consume") || !strcmp(t->cmd, "subscribe");
    if (t->reject)
        hp_amqp_reject(ch, d->delivery_tag, true);
    else if (t->nack)
        hp_amqp_nack(ch, d->delivery_tag, false, true);
    else if (t->ack || (consumer && !t->no_ack && !t->hold))
        hp_amqp_ack(ch, d->delivery_tag, false);
    if (t->received >= t->count) {
        if (t->cancel) {
            t->cancelling = true;
            hp_amqp_cancel(ch, t->tag, on_cancelled, t);
        }
        else {
            if (t->summary)
                printf("{\"received\":%ld,\"distinct\":%zu}\n", t->received, t->distinct);
            finish(t, 0);
        }
    } else if (strcmp(t->cmd, "get") == 0) {
        hp_amqp_get(ch, t->queue, manual ? 0 : HP_AMQP_NO_ACK, on_message, t, NULL, NULL);
    }
}

static void on_step(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    tool_t *t = arg;
    if (r->err)
        fail(t, t->cmd, r);
    else if (strcmp(t->cmd, "declare") == 0) {
        printf("{\"queue\":");
        json_str(r->queue.ptr, r->queue.len);
        printf(",\"messages\":%u,\"consumers\":%u}\n", r->message_count, r->consumer_count);
        finish(t, 0);
    } else if (strcmp(t->cmd, "purge") == 0 || strcmp(t->cmd, "delete") == 0) {
        printf("{\"%s\":%u}\n", t->cmd[0] == 'p' ? "purged" : "deleted", r->message_count);
        finish(t, 0);
    } else if (!strcmp(t->cmd, "exchange") || !strcmp(t->cmd, "bind") ||
               !strcmp(t->cmd, "unbind") || !strcmp(t->cmd, "delete-exchange")) {
        printf("{\"ok\":true}\n");
        finish(t, 0);
    }
}

static void on_channel_closed(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg);

/* subscribe: each key's queue declared, then bound and consumed under
 * the name the broker gave it; one line once every consumer is on. */
static void on_sub_consuming(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    sub_t *s = arg;
    tool_t *t = s->t;
    if (r->err) {
        fail(t, "consume", r);
        return;
    }
    s->consuming = true;
    if (++t->nconsuming < t->nsubs)
        return;
    printf("{\"consuming\":[");
    for (int i = 0; i < t->nsubs; i++) {
        printf(i ? "," : "");
        json_str(t->subs[i].name, strlen(t->subs[i].name));
    }
    printf("]}\n");
    fflush(stdout);
}

static void on_sub_step(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    sub_t *s = arg;
    if (r->err)
        fail(s->t, "subscribe", r);
}

static void on_sub_declared(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    sub_t *s = arg;
    tool_t *t = s->t;
    if (r->err) {
        fail(t, "declare", r);
        return;
    }
    keep(s->name, sizeof s->name, r->queue);
    hp_amqp_queue_bind(ch, s->name, t->exchange, s->key, HP_AMQP_NO_ARGS, on_sub_step, s);
    if (t->prefetch)
        hp_amqp_qos(ch, (uint16_t)t->prefetch, false, on_sub_step, s);
    hp_amqp_consume(ch, s->name, NULL, t->no_ack ? HP_AMQP_NO_ACK : 0, HP_AMQP_NO_ARGS,
                    on_message, t, on_sub_consuming, s);
}

static void on_sub_open(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    sub_t *s = arg;
    if (r->err) {
        fail(s->t, "channel", r);
        return;
    }
    hp_amqp_channel_on_close(ch, on_channel_closed, s->t);
    /* A server-named queue is exclusive (this connection's); a named one
     * goes when its last consumer does. */
    unsigned flags = s->queue[0] ? HP_AMQP_AUTO_DELETE : HP_AMQP_EXCLUSIVE | HP_AMQP_AUTO_DELETE;
    hp_amqp_queue_declare(ch, s->queue, flags, HP_AMQP_NO_ARGS, on_sub_declared, s);
}

/* The broker closed the channel: something sent without waiting for a
 * reply (a publish to an exchange that does not exist) was refused. */
static void on_channel_closed(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    tool_t *t = arg;
    fail(t, "channel closed", r); /* after the confirms failed: say why */
}

static void on_open(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    tool_t *t = arg;
    if (r->err) {
        fail(t, "channel", r);
        return;
    }
    hp_amqp_channel_on_close(ch, on_channel_closed, t);
    /* Declared through this connection, it is declared again wherever a
     * recovery lands (another node of the address list too). */
    if (t->declare_first)
        hp_amqp_queue_declare(ch, t->declare_first, 0, HP_AMQP_NO_ARGS, on_step, t);
    if (strcmp(t->cmd, "declare") == 0) {
        hp_amqp_queue_declare(ch, t->queue, t->durable ? HP_AMQP_DURABLE : 0, HP_AMQP_NO_ARGS,
                              on_step, t);
    } else if (strcmp(t->cmd, "publish") == 0) {
        hp_amqp_channel_on_return(ch, on_return, t);
        if (t->confirm)
            hp_amqp_confirm_select(ch, 0, on_step, t);
        publish_more(t);
    } else if (strcmp(t->cmd, "get") == 0) {
        bool manual = t->ack || t->reject || t->nack;
        hp_amqp_get(ch, t->queue, manual ? 0 : HP_AMQP_NO_ACK, on_message, t, on_step, t);
    } else if (strcmp(t->cmd, "consume") == 0) {
        if (t->prefetch)
            hp_amqp_qos(ch, (uint16_t)t->prefetch, false, on_step, t);
        hp_amqp_consume(ch, t->queue, NULL, t->no_ack ? HP_AMQP_NO_ACK : 0, HP_AMQP_NO_ARGS,
                        on_message, t, on_consuming, t);
    } else if (strcmp(t->cmd, "purge") == 0) {
        hp_amqp_queue_purge(ch, t->queue, on_step, t);
    } else if (strcmp(t->cmd, "delete") == 0) {
        hp_amqp_queue_delete(ch, t->queue, t->if_empty ? HP_AMQP_IF_EMPTY : 0, on_step, t);
    } else if (strcmp(t->cmd, "exchange") == 0) {
        hp_amqp_exchange_declare(ch, t->exchange, t->type, t->durable ? HP_AMQP_DURABLE : 0,
                                 HP_AMQP_NO_ARGS, on_step, t);
    } else if (strcmp(t->cmd, "delete-exchange") == 0) {
        hp_amqp_exchange_delete(ch, t->exchange, 0, on_step, t);
    } else if (strcmp(t->cmd, "bind") == 0) {
        hp_amqp_queue_bind(ch, t->queue, t->exchange, t->key, HP_AMQP_NO_ARGS, on_step, t);
    } else {
        hp_amqp_queue_unbind(ch, t->queue, t->exchange, t->key, HP_AMQP_NO_ARGS, on_step, t);
    }
}

/* Why a connection went: the broker's reply, or the error and the
 * client's own words ("blocked by the broker for longer than ..."). */
static void print_reason(const char *what, const hp_amqp_result_t *r, const char *then)
{
    if (r->reply_code)
        fprintf(stderr, "amqp_tool: %s: %u %.*s%s\n", what, r->reply_code,
                (int)r->reply_text.len, (const char *)r->reply_text.ptr, then);
    else if (r->reply_text.len)
        fprintf(stderr, "amqp_tool: %s: %s (%.*s)%s\n", what, strerror(-r->err),
                (int)r->reply_text.len, (const char *)r->reply_text.ptr, then);
    else
        fprintf(stderr, "amqp_tool: %s: %s%s\n", what, strerror(-r->err), then);
}

static void on_event(hp_amqp_conn_t *c, int ev, const hp_amqp_result_t *r, void *arg)
{
    tool_t *t = arg;
    if (ev == HP_AMQP_EV_READY) {
        fprintf(stderr, "amqp_tool: connected to %s\n", hp_amqp_address(c, NULL));
        hp_amqp_on_writable(c, on_writable, t);
        int rc = 0;
        if (strcmp(t->cmd, "subscribe") == 0) {
            for (int i = 0; i < t->nsubs && rc == 0; i++)
                rc = hp_amqp_channel_open(c, on_sub_open, &t->subs[i], &t->subs[i].ch);
        } else {
            rc = hp_amqp_channel_open(c, on_open, t, &t->ch);
        }
        if (rc < 0)
            fail(t, "channel", &(hp_amqp_result_t){.err = rc});
    } else if (ev == HP_AMQP_EV_RECOVERING) {
        print_reason("connection lost", r, ": recovering");
    } else if (ev == HP_AMQP_EV_RECOVERED) {
        fprintf(stderr, "amqp_tool: recovered on %s\n", hp_amqp_address(c, NULL));
        /* --until-recovered K: after the K-th recovery, UNTIL_AFTER more
         * messages (within -n) and the run ends. */
        if (t->until_recovered && ++t->recoveries == t->until_recovered &&
            t->published + UNTIL_AFTER < t->count)
            t->count = t->published + UNTIL_AFTER;
    } else if (ev == HP_AMQP_EV_CLOSED) {
        if (!t->done) {
            t->done = true;
            t->status = 1;
            print_reason("connection closed", r, "");
        }
        hp_worker_shutdown(t->w);
    }
}

static int usage(void)
{
    fprintf(stderr,
            "usage: amqp_tool URL declare QUEUE [--durable]\n"
            "       amqp_tool URL publish EXCHANGE KEY [-n N] [--batch B] [--confirm] [--mandatory]\n"
            "                 [--persistent] [--type CT] [--header K=V ...] [--json]\n"
            "                 [--compress] [--seq] [--republish] [--queue-bytes N] [--rate R]\n"
            "                 [--until-recovered K] BODY\n"
            "       amqp_tool URL get QUEUE [-n N] [--ack | --reject | --nack] [--work MS]\n"
            "       amqp_tool URL consume QUEUE [-n N] [--prefetch P] [--no-ack | --hold]\n"
            "                 [--cancel] [--summary] [--work MS]\n"
            "       amqp_tool URL subscribe EXCHANGE KEY[=QUEUE] ... [-n N] [--prefetch P]\n"
            "                 [--no-ack] [--work MS]\n"
            "       amqp_tool URL purge QUEUE | delete QUEUE [--if-empty]\n"
            "       amqp_tool URL exchange NAME TYPE [--durable] | delete-exchange NAME\n"
            "       amqp_tool URL bind|unbind QUEUE EXCHANGE KEY\n"
            "any command: --no-recover   a lost connection ends the run (default: recover)\n"
            "             --heartbeat S  ask for heartbeats every S seconds (default 60)\n"
            "             --recover-max MS  wait at most MS between reconnections (10000)\n"
            "             --blocked-timeout MS  blocked by the broker longer, it is closed\n"
            "             --declare Q    declare queue Q first, and again after a recovery\n"
            "URL may name several brokers: amqp://user:pass@host1:port,host2:port/vhost\n"
            "--rate R:      publish R messages a second at most (0.5: one every 2 s)\n"
            "--until-recovered K: -n is a cap; the run ends 1000 messages after the\n"
            "               connection's K-th recovery\n"
            "--work MS:     each message takes MS of work that blocks the loop, then its ack\n"
            "subscribe:     a channel per KEY, with a server-named exclusive queue (or the\n"
            "               auto-delete QUEUE) bound to EXCHANGE with KEY and consumed;\n"
            "               prints {\"consuming\":[queues]} once all are, then the messages\n"
            "--seq --confirm: a message not acked is printed as {\"failed_body\":BODY}\n"
            "               (or {\"nacked_body\":BODY}), before the summary\n");
    return 2;
}

static int build_props(tool_t *t)
{
    hp_amqp_props_t *p = &t->props;
    if (t->ctype) {
        p->flags |= HP_AMQP_PROP_CONTENT_TYPE;
        p->content_type = hp_amqp_str(t->ctype);
    }
    if (t->persistent) {
        p->flags |= HP_AMQP_PROP_DELIVERY_MODE;
        p->delivery_mode = 2;
    }
    if (t->nhdr) {
        hp_amqp_table_builder_t b;
        hp_amqp_table_init(&b, t->headers, sizeof t->headers);
        for (int i = 0; i < t->nhdr; i++) {
            char *stop;
            long long v = strtoll(t->hdr_val[i], &stop, 10);
            if (*t->hdr_val[i] && !*stop)
                hp_amqp_table_add_int(&b, t->hdr_key[i], v);
            else
                hp_amqp_table_add_str(&b, t->hdr_key[i], t->hdr_val[i]);
        }
        if (hp_amqp_table_finish(&b, &p->headers) < 0)
            return -1;
        p->flags |= HP_AMQP_PROP_HEADERS;
    }
    return 0;
}

/* The body to publish: --json checks it is JSON and sets content_type;
 * --compress gzips it when it is at least 1 KiB and that saves 10 %
 * (content_encoding gzip); without either it goes as it is. */
static int prepare_body(tool_t *t)
{
    hp_amqp_payload_opts_t o = {.compress_min = t->compress ? 0 : HP_AMQP_PAYLOAD_NO_COMPRESS};
    size_t n = strlen(t->body);
    int rc;
    if (t->json)
        rc = hp_amqp_payload_json_text(t->body, n, &o, &t->props, &t->payload);
    else
        rc = hp_amqp_payload_encode(t->body, n, NULL, &o, &t->props, &t->payload);
    if (rc == -EINVAL && t->json)
        fprintf(stderr, "amqp_tool: --json: the body is not JSON\n");
    else if (rc < 0)
        fprintf(stderr, "amqp_tool: %s\n", strerror(-rc));
    return rc;
}

/* A refused command line: the message on stderr after "amqp_tool: ";
 * returns the exit status, 2. */
static __attribute__((format(printf, 1, 2))) int refuse(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("amqp_tool: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

/* subscribe: one KEY[=QUEUE] argument (the '=' is cut, in place). */
static int add_sub(tool_t *t, char *arg)
{
    if (t->nsubs == MAX_SUBS)
        return refuse("at most %d keys", MAX_SUBS);
    sub_t *sub = &t->subs[t->nsubs++];
    char *eq = strchr(arg, '=');
    sub->t = t;
    sub->key = arg;
    sub->queue = eq ? eq + 1 : "";
    if (eq)
        *eq = '\0';
    return 0;
}

/* The command (argv[2]) and its positional arguments; *next: the index of
 * the first argument after them. 0, or the exit status after a message. */
static int parse_command(tool_t *t, int argc, char **argv, int *next)
{
    if (argc < 4)
        return usage();
    const char *cmd = t->cmd = argv[2];
    int i = 3;
    if (strcmp(cmd, "publish") == 0) {
        if (argc < 6)
            return usage();
        t->exchange = argv[3];
        t->key = argv[4];
        i = 5;
    } else if (!strcmp(cmd, "declare") || !strcmp(cmd, "get") || !strcmp(cmd, "consume") ||
               !strcmp(cmd, "purge") || !strcmp(cmd, "delete")) {
        t->queue = argv[3];
        i = 4;
    } else if (!strcmp(cmd, "exchange")) {
        if (argc < 5)
            return usage();
        t->exchange = argv[3];
        t->type = argv[4];
        i = 5;
    } else if (!strcmp(cmd, "delete-exchange")) {
        t->exchange = argv[3];
        i = 4;
    } else if (!strcmp(cmd, "subscribe")) {
        t->exchange = argv[3];
        for (i = 4; i < argc && argv[i][0] != '-'; i++) {
            int st = add_sub(t, argv[i]);
            if (st)
                return st;
        }
        if (t->nsubs == 0)
            return usage();
    } else if (!strcmp(cmd, "bind") || !strcmp(cmd, "unbind")) {
        if (argc < 6)
            return usage();
        t->queue = argv[3];
        t->exchange = argv[4];
        t->key = argv[5];
        i = 6;
    } else {
        return usage();
    }
    *next = i;
    return 0;
}

/* An option without a value: the field it sets, or NULL. */
static bool *flag_of(tool_t *t, const char *a)
{
    if (!strcmp(a, "--no-recover"))
        return &t->no_recover;
    if (!strcmp(a, "--republish"))
        return &t->republish;
    if (!strcmp(a, "--summary"))
        return &t->summary; /* consume: count distinct bodies, print no message */
    if (!strcmp(a, "--seq"))
        return &t->seq;
    if (!strcmp(a, "--confirm"))
        return &t->confirm;
    if (!strcmp(a, "--mandatory"))
        return &t->mandatory;
    if (!strcmp(a, "--persistent"))
        return &t->persistent;
    if (!strcmp(a, "--durable"))
        return &t->durable;
    if (!strcmp(a, "--ack"))
        return &t->ack;
    if (!strcmp(a, "--reject"))
        return &t->reject;
    if (!strcmp(a, "--nack"))
        return &t->nack;
    if (!strcmp(a, "--cancel"))
        return &t->cancel;
    if (!strcmp(a, "--if-empty"))
        return &t->if_empty;
    if (!strcmp(a, "--hold"))
        return &t->hold; /* consume: acknowledge nothing (to watch prefetch) */
    if (!strcmp(a, "--no-ack"))
        return &t->no_ack;
    if (!strcmp(a, "--json"))
        return &t->json;
    if (!strcmp(a, "--compress"))
        return &t->compress;
    return NULL;
}

/* --rate R: the pace of publish. 0, or the exit status after a message. */
static int set_rate(tool_t *t, const char *v)
{
    double rate = strtod(v, NULL);
    if (!(rate > 0))
        return refuse("--rate takes a positive number");
    /* Up to 1000 a second, one message per turn; faster, a
     * burst every millisecond. */
    t->pace_ms = rate <= 1000 ? (uint64_t)(1000.0 / rate) : 1;
    t->pace_burst = rate <= 1000 ? 1 : (long)(rate / 1000);
    return 0;
}

/* --header K=V (the '=' is cut, in place). 0, or the exit status after
 * the usage. */
static int add_header(tool_t *t, char *kv)
{
    char *eq = strchr(kv, '=');
    if (!eq)
        return usage();
    *eq = '\0';
    t->hdr_key[t->nhdr] = kv;
    t->hdr_val[t->nhdr++] = eq + 1;
    return 0;
}

/* An option that takes a value, v (the argument after it): 0 when it took
 * v, -1 when `a` is no such option (or --header is one too many), or the
 * exit status after a message. */
static int option_value(tool_t *t, const char *a, char *v)
{
    if (!strcmp(a, "-n")) {
        t->count = strtol(v, NULL, 10);
    } else if (!strcmp(a, "--batch")) {
        t->batch = strtol(v, NULL, 10);
        if (t->batch < 1 || t->batch > 64)
            return refuse("--batch takes 1 to 64");
    } else if (!strcmp(a, "--queue-bytes")) {
        t->queue_bytes = strtoull(v, NULL, 10);
    } else if (!strcmp(a, "--heartbeat")) {
        t->heartbeat = (unsigned)strtoul(v, NULL, 10);
    } else if (!strcmp(a, "--recover-max")) {
        t->recover_max_ms = strtol(v, NULL, 10);
    } else if (!strcmp(a, "--work")) {
        t->work_ms = strtol(v, NULL, 10);
    } else if (!strcmp(a, "--rate")) {
        return set_rate(t, v);
    } else if (!strcmp(a, "--until-recovered")) {
        t->until_recovered = strtol(v, NULL, 10);
        if (t->until_recovered < 1)
            return refuse("--until-recovered takes a count of at least 1");
    } else if (!strcmp(a, "--type")) {
        t->ctype = v;
    } else if (!strcmp(a, "--declare")) {
        t->declare_first = v;
    } else if (!strcmp(a, "--blocked-timeout")) {
        t->blocked_timeout_ms = strtoul(v, NULL, 10);
    } else if (!strcmp(a, "--prefetch")) {
        t->prefetch = (unsigned)strtoul(v, NULL, 10);
    } else if (!strcmp(a, "--header") && t->nhdr < MAX_HEADERS) {
        return add_header(t, v);
    } else {
        return -1;
    }
    return 0;
}

/* The options from argv[i] on, publish's BODY among them. 0, or the exit
 * status after a message. */
static int parse_options(tool_t *t, int i, int argc, char **argv)
{
    for (; i < argc; i++) {
        const char *a = argv[i];
        bool *flag = flag_of(t, a);
        if (flag) {
            *flag = true;
            continue;
        }
        int st = i + 1 < argc ? option_value(t, a, argv[i + 1]) : -1;
        if (st > 0)
            return st;
        if (st == 0)
            i++;
        else if (a[0] != '-' && strcmp(t->cmd, "publish") == 0 && !t->body)
            t->body = a;
        else
            return usage();
    }
    return 0;
}

/* What needs the whole command line, then the message's properties and
 * body. 0, or the exit status after a message. */
static int check_options(tool_t *t)
{
    if (strcmp(t->cmd, "publish") == 0 && !t->body)
        return usage();
    if (t->until_recovered && strcmp(t->cmd, "publish") != 0)
        return refuse("--until-recovered is for publish");
    if (t->count < 1)
        return refuse("-n must be at least 1");
    if (build_props(t) < 0)
        return refuse("the headers do not fit");
    if (t->body && prepare_body(t) < 0)
        return 2;
    return 0;
}

/* The connection's config (cfg holds the defaults) from the URL and the
 * options. 0, or the exit status after a message. The strings it points
 * to are static; hp_amqp_connect copies them anyway. */
static int build_config(const tool_t *t, const char *url, hp_amqp_config_t *cfg)
{
    static char buf[HP_AMQP_URL_BUFSIZE(4096)];
    static char name[64];
    const char *why = "longer than 4096 bytes";
    if (strlen(url) > 4096 || hp_amqp_url_parse(url, cfg, buf, sizeof buf, &why) < 0)
        return refuse("%s: %s", url, why);
    /* Named after the process and command, so that a test can tell its
     * connections apart at the broker. */
    snprintf(name, sizeof name, "amqp_tool[%d] %s", (int)getpid(), t->cmd);
    cfg->name = name;
    if (t->heartbeat)
        cfg->heartbeat_s = (uint16_t)t->heartbeat;
    if (t->recover_max_ms > 0)
        cfg->recover_max_ms = (uint64_t)t->recover_max_ms;
    cfg->blocked_timeout_ms = t->blocked_timeout_ms;
    cfg->recover = !t->no_recover;
    cfg->recover_min_ms = 50;
    cfg->unconfirmed = t->republish ? HP_AMQP_REPUBLISH : HP_AMQP_FAIL_UNCONFIRMED;
    cfg->publish_queue_bytes = t->queue_bytes;
    return 0;
}

/* Connects and runs the command on one worker until it is done; returns
 * the exit status. */
static int run(tool_t *t, const hp_amqp_config_t *cfg)
{
    hp_timer_init(&t->pace, pace_fired);
    t->pace_due = true; /* the first turn comes at once */
    t->pace_left = t->pace_burst;
    hp_log_set_level(HP_LOG_ERROR);
    hp_worker_config_t wcfg = HP_WORKER_CONFIG_DEFAULT;
    hp_resolve_t *res = NULL;
    int r;
    if ((r = hp_worker_new(&t->w, 0, -1, &wcfg)) < 0 || (r = hp_resolve_new(&res, NULL)) < 0) {
        fprintf(stderr, "amqp_tool: %s\n", strerror(-r));
        t->status = 1;
        goto out;
    }
    hp_worker_set_resolver(t->w, res);
    r = hp_amqp_connect(t->w, cfg, on_event, t, &t->conn);
    if (r < 0) {
        fprintf(stderr, "amqp_tool: connect: %s\n", strerror(-r));
        t->status = 1;
    } else {
        hp_worker_run(t->w);
    }
out: /* each free takes NULL: what was not made */
    hp_resolve_destroy(res);
    hp_worker_free(t->w);
    hp_amqp_body_free(&t->payload);
    return t->status;
}

int main(int argc, char **argv)
{
    static tool_t t = {.count = 1};
    int i = 0, st; /* i: set by parse_command */
    if ((st = parse_command(&t, argc, argv, &i)) != 0 ||
        (st = parse_options(&t, i, argc, argv)) != 0 || (st = check_options(&t)) != 0)
        return st;
    hp_amqp_config_t cfg = HP_AMQP_CONFIG_DEFAULT;
    if ((st = build_config(&t, argv[1], &cfg)) != 0)
        return st;
    return run(&t, &cfg);
}
