/*
 * test_amqp.c - unit tests for the pure parts of hpbench's AMQP mode
 * (tools/hpbench/amqp.c and amqp_report.c): the body header, the options'
 * checks and defaults, the masked URL, interval histograms, the
 * accounting of messages, the verdict, PerfTest's per-second line, and
 * the text, JSON and HTML reports of hand-built results.
 *
 * The files are checked for their keys, balance and the absence of
 * NaN/inf here, and, when /usr/bin/python3 exists, parsed with json.loads,
 * html.parser and xml.etree (the SVGs) as a reader would.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bench.h"
#include "hotpath/alloc.h"
#include "hotpath/hist.h"
#include "hpbench.h"

/* ---- the body header ---- */

static void test_header(void **state)
{
    (void)state;
    hb_amqp_header_t h = {.run = 0x01020304,
                          .producer = 0xa0b0c0d0,
                          .seq = 0x1122334455667788ull,
                          .intended_ns = 42,
                          .sent_ns = UINT64_MAX - 1};
    uint8_t body[40];
    memset(body, 0xee, sizeof body);
    hb_amqp_header_encode(body, &h);
    /* Big endian, in the documented order, and nothing past 32 bytes. */
    static const uint8_t want[HB_AMQP_HEADER_LEN] = {
        0x01, 0x02, 0x03, 0x04, 0xa0, 0xb0, 0xc0, 0xd0, 0x11, 0x22, 0x33,
        0x44, 0x55, 0x66, 0x77, 0x88, 0,    0,    0,    0,    0,    0,
        0,    42,   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    };
    assert_memory_equal(body, want, sizeof want);
    assert_int_equal(body[HB_AMQP_HEADER_LEN], 0xee);

    hb_amqp_header_t back;
    assert_int_equal(hb_amqp_header_decode(body, sizeof body, &back), 0);
    assert_int_equal(back.run, h.run);
    assert_int_equal(back.producer, h.producer);
    assert_true(back.seq == h.seq);
    assert_true(back.intended_ns == h.intended_ns);
    assert_true(back.sent_ns == h.sent_ns);
    assert_int_equal(hb_amqp_header_decode(body, HB_AMQP_HEADER_LEN, &back), 0);
    /* A body too short to hold it (another sender's message). */
    assert_int_equal(hb_amqp_header_decode(body, HB_AMQP_HEADER_LEN - 1, &back), -EINVAL);
    assert_int_equal(hb_amqp_header_decode(NULL, 0, &back), -EINVAL);
}

/* ---- options ---- */

static hb_options_t amqp_opts(void)
{
    return (hb_options_t){.url = "amqp://",
                          .amqp = true,
                          .connections = 10, /* the HTTP default, not given */
                          .threads = 1,
                          .producers = 1,
                          .consumers = 1,
                          .queues = 1,
                          .size = HB_AMQP_HEADER_LEN,
                          .multi_ack = 1,
                          .batch = 1};
}

/* Fails with an error that contains `want`. */
static void refused(hb_options_t o, const char *want)
{
    char err[256] = "";
    assert_int_equal(hb_amqp_options(&o, err, sizeof err), -EINVAL);
    if (!strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    assert_null(strchr(err, '\n'));
}

static void test_options(void **state)
{
    (void)state;
    char err[256];
    /* -c not given: one connection per producer. */
    hb_options_t o = amqp_opts();
    o.producers = 7;
    assert_int_equal(hb_amqp_options(&o, err, sizeof err), 0);
    assert_int_equal(o.connections, 7);
    /* Given: kept. */
    o = amqp_opts();
    o.producers = 300;
    o.connections = 3;
    o.connections_set = true;
    o.consumers = 2;
    o.queues = 2;
    o.threads = 5;
    assert_int_equal(hb_amqp_options(&o, err, sizeof err), 0);
    assert_int_equal(o.connections, 3);

    /* Publish only: queues need no consumer. */
    o = amqp_opts();
    o.producers = 4;
    o.consumers = 0;
    o.queues = 4;
    assert_int_equal(hb_amqp_options(&o, err, sizeof err), 0);
    /* No confirms: any batch; no prefetch limit: any multi-ack. */
    o = amqp_opts();
    o.batch = 100;
    o.multi_ack = 1000;
    assert_int_equal(hb_amqp_options(&o, err, sizeof err), 0);

    o = amqp_opts();
    o.http_flag = "-H";
    refused(o, "-H is for http:// URLs");
    o = amqp_opts();
    o.queues = 2;
    o.consumers = 2;
    refused(o, "--queues 2 is more than --producers 1");
    o = amqp_opts();
    o.producers = 3;
    o.queues = 3;
    o.consumers = 2;
    refused(o, "--queues 3 is more than --consumers 2");
    o = amqp_opts();
    o.size = 31;
    refused(o, "--size 31: at least 32 bytes");
    o = amqp_opts();
    o.confirm = 10;
    o.batch = 11;
    refused(o, "--batch 11 is more than the confirm window --confirm 10");
    o = amqp_opts();
    o.prefetch = 5;
    o.multi_ack = 6;
    refused(o, "--multi-ack 6 is more than --prefetch 5");
    o = amqp_opts();
    o.producers = 2;
    o.connections = 3;
    o.connections_set = true;
    refused(o, "-c 3 is more than --producers 2");
    o = amqp_opts();
    o.producers = 5000;
    o.connections = 2;
    o.connections_set = true;
    refused(o, "2500 channels on one");
    o = amqp_opts();
    o.threads = 3; /* 1 producer connection, 1 consumer */
    refused(o, "-t 3 is more than the 2 connections");
    o = amqp_opts();
    o.producers = 0;
    refused(o, "--producers and --queues must be at least 1");
}

static void test_url_display(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"amqp://guest:guest@127.0.0.1:5672/%2F", "amqp://guest:***@127.0.0.1:5672/%2F"},
        {"amqp://u:p%40ss@h/v", "amqp://u:***@h/v"},
        {"amqp://user@host/", "amqp://user@host/"},
        {"amqp://host:5672/vh", "amqp://host:5672/vh"},
        {"amqp://", "amqp://"},
        /* An '@' in the vhost is not the end of credentials. */
        {"amqp://host/a@b", "amqp://host/a@b"},
        {"amqp://[::1]:5672/", "amqp://[::1]:5672/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[128];
        hb_amqp_url_display(cases[i][0], out, sizeof out);
        assert_string_equal(out, cases[i][1]);
    }
    char tiny[8];
    hb_amqp_url_display("amqp://guest:guest@h/", tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), 7);
}

/* ---- interval histograms ---- */

static void test_hist_diff(void **state)
{
    (void)state;
    hp_hist_t live, before, now, diff;
    assert_int_equal(hp_hist_init_latency(&live), 0);
    assert_int_equal(hp_hist_init_latency(&before), 0);
    assert_int_equal(hp_hist_init_latency(&now), 0);
    assert_int_equal(hp_hist_init_latency(&diff), 0);
    for (int i = 0; i < 1000; i++)
        hp_hist_record(&live, 1000000); /* 1 ms */
    hp_hist_record(&live, 500000000);   /* one 500 ms */
    hp_hist_merge(&before, &live);
    for (int i = 0; i < 100; i++)
        hp_hist_record(&live, 5000000 + (uint64_t)i * 10000); /* 5 .. 5.99 ms */
    hp_hist_merge(&now, &live);
    hb_hist_diff(&diff, &now, &before);
    assert_int_equal(hp_hist_count(&diff), 100);
    uint64_t p[HB_AMQP_IPCTS];
    hb_amqp_ipcts(&diff, p);
    /* min, p50, p75, p95, p99 of 5.00 .. 5.99 ms, within 1/1024 above. */
    static const double want[HB_AMQP_IPCTS] = {5.00e6, 5.49e6, 5.74e6, 5.94e6, 5.98e6};
    for (int i = 0; i < HB_AMQP_IPCTS; i++) {
        if (!((double)p[i] >= want[i] && (double)p[i] <= want[i] * (1 + 1.0 / 1024)))
            fail_msg("interval figure %d: %llu, want about %.0f", i, (unsigned long long)p[i],
                     want[i]);
    }
    assert_true(p[0] <= p[1] && p[1] <= p[2] && p[2] <= p[3] && p[3] <= p[4]);
    /* Nothing new: empty, all zero. */
    hb_hist_diff(&diff, &now, &now);
    assert_int_equal(hp_hist_count(&diff), 0);
    hb_amqp_ipcts(&diff, p);
    for (int i = 0; i < HB_AMQP_IPCTS; i++)
        assert_true(p[i] == 0);
    /* From nothing: the whole histogram. */
    hp_hist_reset(&before);
    hb_hist_diff(&diff, &now, &before);
    assert_int_equal(hp_hist_count(&diff), 1101);
    hp_hist_destroy(&live);
    hp_hist_destroy(&before);
    hp_hist_destroy(&now);
    hp_hist_destroy(&diff);
}

/* ---- results, accounting, verdict ---- */

typedef struct fixture {
    hb_options_t opt;
    hb_amqp_results_t r;
    hb_amqp_sample_t samples[10];
    char dir[64];
    char json[96], html[96], text[96];
} fixture_t;

/* A run of n messages published, confirmed and consumed, with latencies
 * from 0.2 to 5 ms (and a bit more end to end). */
static void fill(fixture_t *fx, bool rate_mode, int n)
{
    hp_hist_destroy(&fx->r.confirm);
    hp_hist_destroy(&fx->r.confirm_unc);
    hp_hist_destroy(&fx->r.consumer);
    hp_hist_destroy(&fx->r.consumer_unc);
    memset(&fx->r, 0, sizeof fx->r);
    fx->opt = amqp_opts();
    fx->opt.url = "amqp://guest:secret@127.0.0.1:5672/%2F";
    fx->opt.producers = 2;
    fx->opt.connections = 2;
    fx->opt.consumers = 2;
    fx->opt.confirm = 100;
    fx->opt.duration_s = 10;
    fx->opt.timeout_s = 2;
    fx->opt.max_errors_pct = 1;
    fx->opt.rate = rate_mode ? 5000 : 0;
    fx->r.opt = &fx->opt;
    fx->r.url = "amqp://guest:***@127.0.0.1:5672/%2F<&\"x\">";
    fx->r.rate_mode = rate_mode;
    assert_int_equal(hp_hist_init_latency(&fx->r.confirm), 0);
    assert_int_equal(hp_hist_init_latency(&fx->r.confirm_unc), 0);
    assert_int_equal(hp_hist_init_latency(&fx->r.consumer), 0);
    assert_int_equal(hp_hist_init_latency(&fx->r.consumer_unc), 0);
    for (int i = 0; i < n; i++) {
        uint64_t v = 200000 + (uint64_t)(i % 1000) * 4800;
        hp_hist_record(&fx->r.confirm, v + (rate_mode ? 100000 : 0));
        hp_hist_record(&fx->r.confirm_unc, v);
        hp_hist_record(&fx->r.consumer, v + 50000 + (rate_mode ? 100000 : 0));
        hp_hist_record(&fx->r.consumer_unc, v + 50000);
    }
    fx->r.published = fx->r.confirmed = fx->r.consumed = (uint64_t)n;
    fx->r.queued_known = true;
    fx->r.duration_s = n ? 10.0 : 0.0;
    fx->r.drain_s = 0.05;
    if (n) {
        fx->r.client_user_s = 0.5;
        fx->r.client_sys_s = 1.5;
        fx->r.client_cpu_s = 2.0;
        for (int i = 0; i < 10; i++) {
            hb_amqp_sample_t *s = &fx->samples[i];
            *s = (hb_amqp_sample_t){.t = i + 1,
                                    .published = (uint64_t)n / 10,
                                    .confirmed = (uint64_t)n / 10,
                                    .consumed = (uint64_t)n / 10,
                                    .nacked = i == 4 ? 3 : 0};
            for (int k = 0; k < HB_AMQP_IPCTS; k++) {
                s->confirm_ns[k] = 200000 + (uint64_t)k * 1000000;
                s->consumer_ns[k] = 250000 + (uint64_t)k * 1000000;
            }
        }
        fx->r.samples = fx->samples;
        fx->r.nsamples = 10;
    }
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    strcpy(fx->dir, "/tmp/test_amqp.XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->json, sizeof fx->json, "%s/r.json", fx->dir);
    snprintf(fx->html, sizeof fx->html, "%s/r.html", fx->dir);
    snprintf(fx->text, sizeof fx->text, "%s/r.txt", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    hp_hist_destroy(&fx->r.confirm);
    hp_hist_destroy(&fx->r.confirm_unc);
    hp_hist_destroy(&fx->r.consumer);
    hp_hist_destroy(&fx->r.consumer_unc);
    unlink(fx->json);
    unlink(fx->html);
    unlink(fx->text);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void test_account(void **state)
{
    fixture_t *fx = *state;
    fill(fx, false, 1000);
    hb_amqp_account(&fx->r);
    assert_true(fx->r.lost == 0);
    /* 10 nacked, 5 returned, 5 unconfirmed, 30 left in the queues and 20
     * unaccounted for: lost. */
    fx->r.nacked = 10;
    fx->r.returned = 5;
    fx->r.unconfirmed = 5;
    fx->r.consumed = 1000 - 10 - 5 - 5 - 30 - 20;
    fx->r.queued = 30;
    hb_amqp_account(&fx->r);
    assert_true(fx->r.lost == 20);
    /* More in the queues than unaccounted (a warm-up's leftovers): 0. */
    fx->r.queued = 500;
    hb_amqp_account(&fx->r);
    assert_true(fx->r.lost == 0);
}

static void test_verdict(void **state)
{
    fixture_t *fx = *state;
    char why[512];
    fill(fx, false, 10000);
    hb_amqp_account(&fx->r);
    assert_int_equal(hb_amqp_verdict(&fx->r, why, sizeof why), 0);

    /* 0.5% nacked: passes at 1%, fails at 0.1%. */
    fx->r.nacked = 50;
    fx->r.confirmed -= 50;
    fx->r.consumed -= 50;
    hb_amqp_account(&fx->r);
    assert_true(fx->r.lost == 0);
    assert_int_equal(hb_amqp_verdict(&fx->r, why, sizeof why), 0);
    fx->opt.max_errors_pct = 0.1;
    assert_int_equal(hb_amqp_verdict(&fx->r, why, sizeof why), 1);
    assert_non_null(strstr(why, "0.50% of messages failed (50 of 10000: nacked 50, returned 0, "
                                "unconfirmed 0, lost 0), more than --max-errors 0.1%"));
    assert_null(strchr(why, '\n'));

    /* Lost messages count the same. */
    fx->opt.max_errors_pct = 1;
    fx->r.nacked = 0;
    fx->r.consumed = 9800;
    hb_amqp_account(&fx->r);
    assert_true(fx->r.lost == 200);
    assert_int_equal(hb_amqp_verdict(&fx->r, why, sizeof why), 1);
    assert_non_null(strstr(why, "2.00% of messages failed (200 of 10000"));
    assert_non_null(strstr(why, "lost 200"));
    /* ... unless they are still in the queues. */
    fx->r.queued = 200;
    hb_amqp_account(&fx->r);
    assert_int_equal(hb_amqp_verdict(&fx->r, why, sizeof why), 0);

    /* A broker error fails the run, whatever the counts. */
    fx->r.broker_errors = 2;
    snprintf(fx->r.broker_error, sizeof fx->r.broker_error,
             "producer connection 0 closed by the broker: 320 CONNECTION_FORCED - x");
    assert_int_equal(hb_amqp_verdict(&fx->r, why, sizeof why), 1);
    assert_non_null(strstr(why, "the broker closed 2 connections or channels: producer "
                                "connection 0 closed by the broker: 320 CONNECTION_FORCED"));
    fx->opt.max_errors_pct = 100;
    assert_int_equal(hb_amqp_verdict(&fx->r, why, sizeof why), 0);
    fx->opt.max_errors_pct = 1;
    fx->r.broker_errors = 0;

    /* Consumers that got nothing. */
    fx->r.consumed = 0;
    fx->r.queued = 10000;
    hb_amqp_account(&fx->r);
    assert_int_equal(hb_amqp_verdict(&fx->r, why, sizeof why), 1);
    assert_non_null(strstr(why, "the consumers received none of the 10000 messages"));
    fx->opt.consumers = 0; /* publish only: fine */
    assert_int_equal(hb_amqp_verdict(&fx->r, why, sizeof why), 0);

    /* Nothing published. */
    fill(fx, false, 0);
    assert_int_equal(hb_amqp_verdict(&fx->r, why, sizeof why), 1);
    assert_non_null(strstr(why, "no message published in the 0.00 s measured"));
    char tiny[8];
    assert_int_equal(hb_amqp_verdict(&fx->r, tiny, sizeof tiny), 1);
    assert_int_equal(strlen(tiny), 7);
}

/* ---- the per-second line ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    assert_int_equal(strlen(buf), (size_t)len);
    return buf;
}

static char *line_of(fixture_t *fx, const hb_amqp_sample_t *s, double len)
{
    FILE *f = fopen(fx->text, "w");
    assert_non_null(f);
    hb_amqp_interval_line(f, &fx->r, s, len);
    fclose(f);
    return slurp(fx->text);
}

static void test_interval_line(void **state)
{
    fixture_t *fx = *state;
    fill(fx, false, 1000);
    hb_amqp_sample_t s = {.t = 3,
                          .published = 14528,
                          .confirmed = 14456,
                          .nacked = 0,
                          .consumed = 14248,
                          .confirm_ns = {1012000, 5120000, 6977000, 10097000, 13545000},
                          .consumer_ns = {345000, 6732000, 9018000, 12203000, 16048000}};
    char *l = line_of(fx, &s, 1.0);
    assert_string_equal(l, "id: test, time: 3.000s, sent: 14528 msg/s, confirmed: 14456 msg/s, "
                           "nacked: 0 msg/s, received: 14248 msg/s, min/median/75th/95th/99th "
                           "consumer latency: 345/6732/9018/12203/16048 \xc2\xb5s, confirm "
                           "latency: 1012/5120/6977/10097/13545 \xc2\xb5s\n");
    free(l);
    /* Half a second: rates per second. No confirms, no consumers: only
     * what was measured. */
    fx->opt.confirm = 0;
    s.t = 3.5;
    l = line_of(fx, &s, 0.5);
    assert_string_equal(l, "id: test, time: 3.500s, sent: 29056 msg/s, received: 28496 msg/s, "
                           "min/median/75th/95th/99th consumer latency: "
                           "345/6732/9018/12203/16048 \xc2\xb5s\n");
    free(l);
    fx->opt.consumers = 0;
    l = line_of(fx, &s, 0.0); /* a zero length divides nothing */
    assert_string_equal(l, "id: test, time: 3.500s, sent: 0 msg/s\n");
    free(l);
}

/* ---- reports ---- */

static void assert_finite_text(const char *s)
{
    assert_null(strcasestr(s, "nan"));
    assert_null(strcasestr(s, "inf"));
}

/* Parses the JSON and the HTML the way a reader does: json.loads refusing
 * NaN, the documented keys and their relations, html.parser with every
 * element closed, each SVG with xml.etree, points inside the charts. */
static const char k_py[] =
    "import sys, json, re, html.parser, xml.etree.ElementTree as ET\n"
    "hpath, jpath, rate, empty = sys.argv[1], sys.argv[2], sys.argv[3] == '1', "
    "sys.argv[4] == '1'\n"
    "def bad(c): raise ValueError('non-finite ' + c)\n"
    "j = json.load(open(jpath, encoding='utf-8'), parse_constant=bad)\n"
    "assert j['tool'] == 'hpbench' and j['mode'] == 'amqp'\n"
    "assert j['url'] == 'amqp://guest:***@127.0.0.1:5672/%2F<&\"x\">', j['url']\n"
    "assert j['schedule'] == ('rate' if rate else 'closed')\n"
    "ints = ('producers','consumers','queues','connections','threads','size','confirm',\n"
    "        'prefetch','multi_ack','batch','published','confirmed','nacked','returned',\n"
    "        'unconfirmed','consumed','redelivered','foreign','queued','lost','errors_total',\n"
    "        'broker_errors')\n"
    "for k in ints: assert isinstance(j[k], int) and not isinstance(j[k], bool), k\n"
    "assert j['queue_type'] == 'classic' and j['persistent'] is False\n"
    "assert set(j['rates']) == {'published','confirmed','nacked','consumed'}\n"
    "lat = ('min','mean','stdev','max','p50','p75','p90','p99','p99_9','p99_99','p99_999',\n"
    "       'count','overflow')\n"
    "for name in ('confirm_latency', 'consumer_latency'):\n"
    "    assert set(j[name]) == set(lat), name\n"
    "    keys = ('p50','p75','p90','p99','p99_9','p99_99','p99_999')\n"
    "    assert all(j[name][a] <= j[name][b] for a, b in zip(keys, keys[1:]))\n"
    "    u = j[name + '_uncorrected']\n"
    "    assert (u is not None) == rate, name\n"
    "assert j['confirm_latency']['count'] == j['confirmed'] + j['nacked']\n"
    "assert j['consumer_latency']['count'] == j['consumed']\n"
    "assert set(j['client_cpu']) == {'user_s','sys_s','total_s','per_message_us'}\n"
    "assert (j['client_cpu']['per_message_us'] is None) == empty\n"
    "for s in j['samples']:\n"
    "    assert set(s) == {'t','published','confirmed','nacked','returned','consumed',\n"
    "                      'confirm_us','consumer_us'}, s\n"
    "    assert len(s['confirm_us']) == 5 and len(s['consumer_us']) == 5\n"
    "for name in ('confirm_percentiles', 'consumer_percentiles'):\n"
    "    ps = j[name]\n"
    "    assert all(a[0] < b[0] and a[1] <= b[1] for a, b in zip(ps, ps[1:])), name\n"
    "    if not empty: assert ps[0][0] == 0 and ps[-1][0] == 100\n"
    "VOID = {'meta','br','hr','img','input','link','col','area','base','wbr'}\n"
    "class P(html.parser.HTMLParser):\n"
    "    def __init__(s):\n"
    "        super().__init__(convert_charrefs=True); s.stack = []; s.text = []\n"
    "    def handle_starttag(s, t, a):\n"
    "        if t not in VOID: s.stack.append(t)\n"
    "    def handle_endtag(s, t):\n"
    "        assert t not in VOID and s.stack and s.stack[-1] == t, (t, s.stack)\n"
    "        s.stack.pop()\n"
    "    def handle_data(s, d): s.text.append(d)\n"
    "doc = open(hpath, encoding='utf-8').read()\n"
    "assert doc.startswith('<!DOCTYPE html>')\n"
    "p = P(); p.feed(doc); p.close()\n"
    "assert not p.stack, p.stack\n"
    "text = ''.join(p.text)\n"
    "assert 'amqp://guest:***@127.0.0.1:5672/%2F<&\"x\">' in text\n"
    "assert 'secret' not in doc\n"
    "svgs = re.findall(r'<svg\\b.*?</svg>', doc, re.S)\n"
    "assert len(svgs) == 2, len(svgs)\n"
    "for s in svgs: ET.fromstring(s)\n"
    "lines = re.findall(r'class=\"(s[1-5])\" points=\"([^\"]*)\"', doc)\n"
    "for cls, pts in lines:\n"
    "    for xy in pts.split():\n"
    "        x, y = map(float, xy.split(','))\n"
    "        assert 0 <= x <= 760 and 0 <= y <= 380, (x, y)\n"
    "if not empty:\n"
    "    got = sorted(c for c, _ in lines)\n"
    "    want = ['s1','s1','s2','s3','s4','s4'] + (['s2','s5'] if rate else [])\n"
    "    assert got == sorted(want), got\n";

static void python_check(const fixture_t *fx, bool rate_mode, bool empty)
{
    if (access("/usr/bin/python3", X_OK) != 0) {
        print_message("python3 not found: skipping the parser checks\n");
        return;
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"python3",          "-c",
                        (char *)k_py,       (char *)fx->html,
                        (char *)fx->json,   rate_mode ? "1" : "0",
                        empty ? "1" : "0",  NULL};
        execv("/usr/bin/python3", argv);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static char *text_of(fixture_t *fx)
{
    FILE *f = fopen(fx->text, "w");
    assert_non_null(f);
    hb_amqp_report_text(&fx->r, f);
    fclose(f);
    return slurp(fx->text);
}

static void check_reports(fixture_t *fx, bool rate_mode)
{
    uint64_t allocs = hp_alloc_count();
    assert_int_equal(hb_amqp_report_json(&fx->r, fx->json), 0);
    assert_int_equal(hb_amqp_report_html(&fx->r, fx->html), 0);
    /* The writers allocate nothing through hp_*. */
    assert_int_equal(hp_alloc_count(), allocs);
    char *j = slurp(fx->json);
    assert_finite_text(j);
    assert_non_null(strstr(j, "\"mode\": \"amqp\""));
    assert_non_null(strstr(j, "\"published\": 100000,"));
    assert_non_null(strstr(j, "\"url\": \"amqp://guest:***@127.0.0.1:5672/%2F<&\\\"x\\\">\""));
    assert_null(strstr(j, "secret"));
    free(j);
    char *h = slurp(fx->html);
    assert_finite_text(h);
    assert_non_null(strstr(h, "%2F&lt;&amp;&quot;x&quot;&gt;"));
    assert_non_null(strstr(h, ">99.999%<"));
    free(h);

    char *t = text_of(fx);
    static const char *const want[] = {
        "1 thread, 2 producers on 2 connections, 2 consumers, 1 classic queue (transient), "
        "32-byte messages, confirm window 100, prefetch 0, multi-ack 1, ",
        "p50 ", "p99 ", "p99.9 ", "max ",
        "100000 messages published in 10.00s, 100000 confirmed, 0 nacked, 0 unconfirmed, "
        "0 returned\n",
        "100000 consumed, 0 left in the queues, 0 lost (drained in 0.05s)\n",
        "Published/sec: 10000.00\n", "Confirmed/sec: 10000.00\n", "Consumed/sec: 10000.00\n",
        "Client CPU: 2.00 s (user 0.50, sys 1.50) = 20.00 us per message published\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(t, want[i]))
            fail_msg("text lacks \"%s\":\n%s", want[i], t);
    }
    if (rate_mode) {
        assert_non_null(strstr(t, "constant rate 5000 msg/s\n"));
        assert_non_null(strstr(t, "  Confirm (corrected)      p50 "));
        assert_non_null(strstr(t, "  Confirm (uncorrected)    p50 "));
        assert_non_null(strstr(t, "  End-to-end (corrected)   p50 "));
        assert_non_null(strstr(t, "  End-to-end (uncorrected) p50 "));
    } else {
        assert_non_null(strstr(t, "closed loop\n"));
        assert_non_null(strstr(t, "  Confirm latency          p50 "));
        assert_non_null(strstr(t, "  End-to-end latency       p50 "));
        assert_null(strstr(t, "orrected"));
    }
    assert_finite_text(t);
    free(t);
    python_check(fx, rate_mode, false);
}

static void test_reports_closed(void **state)
{
    fixture_t *fx = *state;
    fill(fx, false, 100000);
    check_reports(fx, false);
}

static void test_reports_rate(void **state)
{
    fixture_t *fx = *state;
    fill(fx, true, 100000);
    check_reports(fx, true);
    /* --latency: the distributions, corrected and not, confirm and end
     * to end, in that order. */
    fx->opt.latency = true;
    char *t = text_of(fx);
    const char *d = strstr(t, "Latency distribution (HdrHistogram)");
    assert_non_null(d);
    const char *a = strstr(d, "Confirm, from the intended send time:");
    const char *b = strstr(d, "Confirm, from the actual send time:");
    const char *c = strstr(d, "End-to-end, from the intended send time:");
    const char *e = strstr(d, "End-to-end, from the actual send time:");
    assert_true(a && b && c && e && a < b && b < c && c < e);
    free(t);
}

/* Nothing measured: every file still parses, nothing divides by zero. */
static void test_reports_empty(void **state)
{
    fixture_t *fx = *state;
    fill(fx, false, 0);
    assert_int_equal(hb_amqp_report_json(&fx->r, fx->json), 0);
    assert_int_equal(hb_amqp_report_html(&fx->r, fx->html), 0);
    char *j = slurp(fx->json);
    assert_finite_text(j);
    assert_non_null(strstr(j, "\"samples\": []"));
    assert_non_null(strstr(j, "\"per_message_us\": null"));
    assert_non_null(strstr(j, "\"confirm_percentiles\": []"));
    free(j);
    char *h = slurp(fx->html);
    assert_non_null(strstr(h, "no latency measured"));
    assert_non_null(strstr(h, "no samples"));
    free(h);
    char *t = text_of(fx);
    assert_finite_text(t);
    assert_non_null(strstr(t, "0 messages published in 0.00s"));
    assert_non_null(strstr(t, "Published/sec: 0.00\n"));
    free(t);
    python_check(fx, false, true);

    /* Publish only, no confirms: those latencies are null, not zeros. */
    fx->opt.consumers = 0;
    fx->opt.confirm = 0;
    fx->r.queued_known = false;
    assert_int_equal(hb_amqp_report_json(&fx->r, fx->json), 0);
    j = slurp(fx->json);
    assert_non_null(strstr(j, "\"confirm_latency\": null"));
    assert_non_null(strstr(j, "\"consumer_latency\": null"));
    assert_non_null(strstr(j, "\"confirm_percentiles\": null"));
    assert_non_null(strstr(j, "\"queued\": null"));
    free(j);
    t = text_of(fx);
    assert_null(strstr(t, "Confirmed/sec"));
    assert_null(strstr(t, "Consumed/sec"));
    assert_non_null(strstr(t, "left in the queues (unknown)"));
    free(t);
    assert_int_equal(hb_amqp_report_json(&fx->r, "/nonexistent-dir/x.json"), -ENOENT);
    assert_int_equal(hb_amqp_report_html(&fx->r, "/nonexistent-dir/x.html"), -ENOENT);
}

/* Each of want[] in the HTML report, in that order. */
static void html_in_order(const fixture_t *fx, const char *const *want, size_t n)
{
    char *h = slurp(fx->html);
    const char *at = h;
    for (size_t i = 0; i < n; i++) {
        const char *hit = strstr(at, want[i]);
        if (!hit)
            fail_msg("the HTML lacks \"%s\" (in this order) after byte %td", want[i], at - h);
        at = hit + strlen(want[i]);
    }
    free(h);
}

/* The HTML report's sections and rows, in order, for every option that
 * changes them: all on (rate, confirms, consumers, nacks, a broker error,
 * a quorum queue) and all off. */
static void test_report_html_rows(void **state)
{
    fixture_t *fx = *state;
    fill(fx, true, 100000);
    fx->opt.quorum = true;
    fx->opt.persistent = true;
    fx->opt.read_coalesce_ms = 5;
    fx->opt.warmup_s = 1.5;
    fx->r.nacked = 4;
    fx->r.broker_errors = 1;
    strcpy(fx->r.broker_error, "406 <x>");
    assert_int_equal(hb_amqp_report_html(&fx->r, fx->html), 0);
    static const char *const on[] = {
        "<!DOCTYPE html>",
        "<h2>Run parameters</h2>\n<table>\n",
        "<tr><th>Producers</th><td>2</td></tr>",
        "<tr><th>Producer connections</th><td>2</td></tr>",
        "<tr><th>Consumers</th><td>2</td></tr>",
        "<tr><th>Queues</th><td>1 (quorum, durable)</td></tr>",
        "<tr><th>Threads</th><td>1</td></tr>",
        "<tr><th>Message size</th><td>32 bytes, persistent</td></tr>",
        "<tr><th>Publisher confirms</th><td>100 unconfirmed per producer</td></tr>",
        "<tr><th>Batch</th><td>1</td></tr>",
        "<tr><th>Prefetch</th><td>0</td></tr>",
        "<tr><th>Multi-ack</th><td>1</td></tr>",
        "<tr><th>Read coalescing (ms)</th><td>5</td></tr>",
        "<tr><th>Mode</th><td>constant rate, 5000 msg/s</td></tr>",
        "<tr><th>Measured duration</th><td>10.00 s (warm-up 1.50 s, drained in 0.05 s)</td></tr>",
        "</table>\n<h2>Summary</h2>\n<table>\n",
        "<tr><th>Published</th><td>100000</td></tr>",
        "<tr><th>Confirmed</th><td>100000</td></tr>",
        "<tr><th>Nacked</th><td>4</td></tr>",
        "<tr><th>Unconfirmed</th><td>0</td></tr>",
        "<tr><th>Returned</th><td>0</td></tr>",
        "<tr><th>Consumed</th><td>100000</td></tr>",
        "<tr><th>Left in the queues</th><td>0</td></tr>",
        "<tr><th>Lost</th><td>0</td></tr>",
        "<tr><th>Published/sec</th><td>10000.00</td></tr>",
        "<tr><th>Confirmed/sec</th><td>10000.00</td></tr>",
        "<tr><th>Consumed/sec</th><td>10000.00</td></tr>",
        "<tr><th>Confirm (corrected) p50</th>",
        "<tr><th>Confirm (uncorrected) p50</th>",
        "<tr><th>End-to-end (corrected) p50</th>",
        "<tr><th>End-to-end (uncorrected) p50</th>",
        "<tr><th>Broker errors</th><td>1 (first: 406 &lt;x&gt;)</td></tr>",
        "<tr><th>Client CPU</th><td>2.00 s (user 0.50, sys 1.50)</td></tr>",
        "<tr><th>Client CPU per message published</th><td>20.00 us</td></tr>",
        "</table>\n<h2>Latency by percentile</h2>\n",
        ">end to end (intended send time)<",
        ">confirm (intended send time)<",
        ">end to end (actual send time)<",
        ">confirm (actual send time)<",
        "<h2>Messages per second over time</h2>\n",
        ">published/s<", ">confirmed/s<", ">consumed/s<", ">nacked/s<",
        "<p>Generated by hpbench. Confirm latency runs from publishing a message to the "
        "broker's ack; end-to-end latency from publishing it to its delivery to a consumer, "
        "both from each message's intended send time on the schedule (corrected for "
        "coordinated omission) and from its actual send time (uncorrected).</p>\n"
        "</body>\n</html>\n",
    };
    html_in_order(fx, on, sizeof on / sizeof on[0]);

    /* Closed loop, publish only, nothing nacked, the queues unknown. */
    fill(fx, false, 100000);
    fx->opt.confirm = 0;
    fx->opt.consumers = 0;
    fx->r.queued_known = false;
    for (int i = 0; i < fx->r.nsamples; i++)
        fx->samples[i].nacked = 0;
    assert_int_equal(hb_amqp_report_html(&fx->r, fx->html), 0);
    static const char *const off[] = {
        "<tr><th>Queues</th><td>1 (classic, transient)</td></tr>",
        "<tr><th>Message size</th><td>32 bytes</td></tr>",
        "<tr><th>Publisher confirms</th><td>off</td></tr>",
        "<tr><th>Mode</th><td>closed loop</td></tr>",
        "<tr><th>Published</th><td>100000</td></tr>\n<tr><th>Returned</th>",
        "<tr><th>Left in the queues</th><td>unknown</td></tr>",
        "<tr><th>Published/sec</th><td>10000.00</td></tr>\n"
        "<tr><th>Client CPU</th>",
        "</table>\n<h2>Latency by percentile</h2>\n",
        "no latency measured",
        ">published/s<",
        "delivery to a consumer.</p>\n</body>\n</html>\n",
    };
    html_in_order(fx, off, sizeof off / sizeof off[0]);
    char *h = slurp(fx->html);
    assert_null(strstr(h, "Confirmed"));
    assert_null(strstr(h, "Broker errors"));
    assert_null(strstr(h, "nacked/s"));
    assert_null(strstr(h, "consumed/s"));
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_url_display),
        cmocka_unit_test(test_hist_diff),
        cmocka_unit_test_setup_teardown(test_account, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interval_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_html_rows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
