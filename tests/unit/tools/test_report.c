/*
 * test_report.c - unit tests for tools/hpbench/report.c: the text summary,
 * the JSON document and the HTML report of hand-built hb_results_t with
 * real histograms, in closed-loop, -R and empty-run shapes.
 *
 * The files are checked here for the documented keys, balanced brackets,
 * escaping and the absence of NaN/inf; when /usr/bin/python3 exists they are
 * also parsed with json.loads, html.parser and xml.etree (the SVGs), which
 * is what a reader of the files will do.
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

#include "hotpath/alloc.h"
#include "hotpath/hist.h"
#include "hpbench.h"

#define URL_NASTY "http://127.0.0.1:8080/a?x=<b>&y=\"q\"\xff"

typedef struct fixture {
    hb_options_t opt;
    hb_results_t r;
    hb_sample_t samples[10];
    char dir[64];
    char json[96], html[96], text[96];
} fixture_t;

static uint64_t g_alloc0;

/* A run of `n` requests with latencies spread from 0.5 ms to ~10 ms, a few
 * errors and one value above the histogram's range. */
static void fill(fixture_t *fx, bool rate_mode, int n)
{
    memset(&fx->r, 0, sizeof(fx->r));
    memset(&fx->opt, 0, sizeof(fx->opt));
    fx->opt.url = URL_NASTY;
    fx->opt.method = "GET";
    fx->opt.connections = 100;
    fx->opt.threads = 1;
    fx->opt.pipeline = 1;
    fx->opt.duration_s = 10;
    fx->opt.timeout_s = 2;
    fx->opt.warmup_s = 1;
    fx->opt.rate = rate_mode ? 50000 : 0;
    fx->opt.headers[0] = "X-Test: <a&b>";
    fx->opt.nheaders = 1;
    fx->r.opt = &fx->opt;
    fx->r.rate_mode = rate_mode;
    assert_int_equal(hp_hist_init(&fx->r.latency, 1000, 3600e9, 3), 0);
    assert_int_equal(hp_hist_init(&fx->r.uncorrected, 1000, 3600e9, 3), 0);
    for (int i = 0; i < n; i++) {
        uint64_t v = 500000 + (uint64_t)(i % 1000) * 9500;
        hp_hist_record(&fx->r.latency, v + (rate_mode ? 200000 : 0));
        hp_hist_record(&fx->r.uncorrected, v);
    }
    if (n > 0)
        hp_hist_record(&fx->r.latency, 7200ull * 1000000000ull); /* overflow */
    fx->r.requests = (uint64_t)n;
    fx->r.duration_s = n ? 10.0 : 0.0;
    fx->r.bytes_read = (uint64_t)n * 130;
    if (n > 0) {
        fx->r.errors[HB_ERR_TIMEOUT] = 3;
        fx->r.errors[HB_ERR_STATUS] = 12;
        fx->r.status_classes[2] = (uint64_t)n - 12;
        fx->r.status_classes[5] = 12;
        fx->r.client_user_s = 0.8;
        fx->r.client_sys_s = 3.4;
        fx->r.client_cpu_s = 4.2;
        for (int i = 0; i < 10; i++) {
            fx->samples[i].t = i + 1;
            fx->samples[i].requests = (uint64_t)n / 10;
            fx->samples[i].errors = i == 5 ? 3 : 0;
            fx->samples[i].p99_ns = 9000000;
        }
        fx->r.samples = fx->samples;
        fx->r.nsamples = 10;
    }
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (fx == NULL)
        return -1;
    strcpy(fx->dir, "/tmp/test_report.XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->json, sizeof(fx->json), "%s/r.json", fx->dir);
    snprintf(fx->html, sizeof(fx->html), "%s/r.html", fx->dir);
    snprintf(fx->text, sizeof(fx->text), "%s/r.txt", fx->dir);
    g_alloc0 = hp_alloc_count();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    hp_hist_destroy(&fx->r.latency);
    hp_hist_destroy(&fx->r.uncorrected);
    unlink(fx->json);
    unlink(fx->html);
    unlink(fx->text);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

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
    assert_int_equal(strlen(buf), (size_t)len); /* no NUL bytes inside */
    return buf;
}

/* No NaN or infinity in any spelling printf uses. */
static void assert_finite_text(const char *s)
{
    assert_null(strcasestr(s, "nan"));
    assert_null(strcasestr(s, "inf"));
}

/* Brackets and braces outside strings balance and never go negative. */
static void assert_json_balanced(const char *s)
{
    int depth_brace = 0, depth_bracket = 0;
    bool in_str = false;
    for (const char *p = s; *p; p++) {
        if (in_str) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                in_str = false;
            continue;
        }
        switch (*p) {
        case '"': in_str = true; break;
        case '{': depth_brace++; break;
        case '}': depth_brace--; break;
        case '[': depth_bracket++; break;
        case ']': depth_bracket--; break;
        }
        assert_true(depth_brace >= 0 && depth_bracket >= 0);
    }
    assert_false(in_str);
    assert_int_equal(depth_brace, 0);
    assert_int_equal(depth_bracket, 0);
}

static const char *const k_json_keys[] = {
    "\"url\"", "\"method\"", "\"connections\"", "\"threads\"", "\"pipeline\"",
    "\"mode\"", "\"target_rate\"", "\"duration_s\"", "\"warmup_s\"",
    "\"requests\"", "\"requests_per_s\"", "\"bytes_read\"", "\"bytes_per_s\"",
    "\"errors\"", "\"connect\"", "\"read\"", "\"write\"", "\"timeout\"",
    "\"status\"", "\"parse\"", "\"errors_total\"", "\"1xx\"", "\"2xx\"",
    "\"3xx\"", "\"4xx\"", "\"5xx\"", "\"latency\"", "\"min\"", "\"mean\"",
    "\"stdev\"", "\"max\"", "\"p50\"", "\"p75\"", "\"p90\"", "\"p99\"",
    "\"p99_9\"", "\"p99_99\"", "\"p99_999\"", "\"count\"", "\"overflow\"",
    "\"latency_uncorrected\"", "\"client_cpu\"", "\"user_s\"", "\"sys_s\"",
    "\"total_s\"", "\"per_1000_requests_s\"", "\"samples\"", "\"t\"",
    "\"p99_us\"", "\"percentiles\"", "\"percentiles_uncorrected\"",
    "\"headers\"", "\"body_file\"", "\"timeout_s\"", "\"tool\"",
};

/* Runs python3 on the JSON and HTML files: json.loads rejecting NaN and
 * Infinity, every documented key present, html.parser with every non-void
 * element closed in order, each <svg> parsed by xml.etree, and the URL
 * readable in the text. Skips when python3 is missing. */
static const char k_py[] =
    "import sys, json, re, html.parser, xml.etree.ElementTree as ET\n"
    "hpath, jpath, rate, nsvg = sys.argv[1], sys.argv[2], sys.argv[3] == '1', "
    "int(sys.argv[4])\n"
    "def bad(c): raise ValueError('non-finite ' + c)\n"
    "j = json.load(open(jpath, encoding='utf-8'), parse_constant=bad)\n"
    "assert j['url'].startswith('http://127.0.0.1:8080/a?x=<b>&y=\"q\"'), j['url']\n"
    "assert j['mode'] == ('rate' if rate else 'closed')\n"
    "for k in ('min','mean','stdev','max','p50','p75','p90','p99','p99_9',\n"
    "          'p99_99','p99_999','count','overflow'):\n"
    "    assert isinstance(j['latency'][k], (int, float)), k\n"
    "    if rate: assert isinstance(j['latency_uncorrected'][k], (int, float)), k\n"
    "if not rate: assert j['latency_uncorrected'] is None\n"
    "assert set(j['errors']) == {'connect','read','write','timeout','status','parse'}\n"
    "assert set(j['status']) == {'1xx','2xx','3xx','4xx','5xx'}\n"
    "assert set(j['client_cpu']) == {'user_s','sys_s','total_s','per_1000_requests_s'}\n"
    "for s in j['samples']: assert set(s) == {'t','requests','errors','p99_us'}\n"
    "ps = j['percentiles']\n"
    "assert all(len(p) == 2 for p in ps)\n"
    "assert all(a[0] < b[0] and a[1] <= b[1] for a, b in zip(ps, ps[1:])), ps\n"
    "if j['latency']['count']:\n"
    "    assert ps[0][0] == 0 and ps[-1][0] == 100 and len(ps) > 20\n"
    "    assert ps[-1][1] == j['latency']['max']\n"
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
    "assert 'http://127.0.0.1:8080/a?x=<b>&y=\"q\"' in text\n"
    "svgs = re.findall(r'<svg\\b.*?</svg>', doc, re.S)\n"
    "assert len(svgs) == nsvg, len(svgs)\n"
    "for s in svgs:\n"
    "    root = ET.fromstring(s)\n"
    "    assert root.tag == '{http://www.w3.org/2000/svg}svg'\n"
    "lines = re.findall(r'class=\"(s[123])\" points=\"([^\"]*)\"', doc)\n"
    "for cls, pts in lines:\n"
    "    for xy in pts.split():\n"
    "        x, y = map(float, xy.split(','))\n"
    "        assert 0 <= x <= 760 and 0 <= y <= 380, (x, y)\n"
    "if rate: assert 'uncorrected' in text\n"
    "if rate and j['latency']['count']: assert 's2' in [c for c, _ in lines]\n";

static void python_check(const fixture_t *fx, bool rate_mode)
{
    if (access("/usr/bin/python3", X_OK) != 0) {
        print_message("python3 not found: skipping the parser checks\n");
        return;
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"python3", "-c", (char *)k_py, (char *)fx->html,
                        (char *)fx->json, rate_mode ? "1" : "0", "2", NULL};
        execv("/usr/bin/python3", argv);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void check_json(const fixture_t *fx, bool rate_mode)
{
    char *j = slurp(fx->json);
    for (size_t i = 0; i < sizeof(k_json_keys) / sizeof(k_json_keys[0]); i++) {
        if (strstr(j, k_json_keys[i]) == NULL)
            fail_msg("JSON lacks %s", k_json_keys[i]);
    }
    assert_json_balanced(j);
    assert_finite_text(j);
    /* The URL is escaped: quote as \", the invalid byte as \ufffd. */
    assert_non_null(strstr(j, "a?x=<b>&y=\\\"q\\\"\\ufffd\""));
    assert_non_null(strstr(j, rate_mode ? "\"mode\": \"rate\"" : "\"mode\": \"closed\""));
    if (!rate_mode)
        assert_non_null(strstr(j, "\"latency_uncorrected\": null"));
    free(j);
}

static void check_html(const fixture_t *fx, bool rate_mode)
{
    char *h = slurp(fx->html);
    assert_true(strncmp(h, "<!DOCTYPE html>", 15) == 0);
    assert_non_null(strstr(h, "</html>"));
    const char *svg1 = strstr(h, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
    assert_non_null(svg1);
    const char *svg2 = strstr(svg1 + 1, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
    assert_non_null(svg2);
    assert_null(strstr(svg2 + 1, "<svg"));
    assert_null(strstr(h, "NaN"));
    assert_null(strcasestr(h, "nan,"));
    assert_null(strcasestr(h, "inf"));
    /* The URL and the header appear only escaped, never raw. */
    assert_non_null(strstr(h, "a?x=&lt;b&gt;&amp;y=&quot;q&quot;&#xFFFD;"));
    assert_null(strstr(h, "<b>"));
    assert_non_null(strstr(h, "X-Test: &lt;a&amp;b&gt;"));
    assert_null(strstr(h, "<a&b>"));
    assert_null(strstr(h, "\xff"));
    /* The nines axis. */
    assert_non_null(strstr(h, ">90%<"));
    assert_non_null(strstr(h, ">99.999%<"));
    assert_true((strstr(h, "uncorrected (actual send time)") != NULL) == rate_mode);
    free(h);
}

static void check_text(const fixture_t *fx, bool rate_mode)
{
    FILE *f = fopen(fx->text, "w");
    assert_non_null(f);
    hb_report_text(&fx->r, f);
    fclose(f);
    char *t = slurp(fx->text);
    static const char *const want[] = {
        "p50 ", "p90 ", "p99 ", "p99.9 ", "p99.99 ", "max ", "Mean ",
        "Requests/sec: ", "Transfer/sec: ", "Client CPU: ",
        "Errors: connect 0, read 0, write 0, timeout 3, status 12, parse 0",
        "1 threads and 100 connections, pipeline 1, ",
        "Non-2xx/3xx responses: 12", "100000 requests in 10.00s",
        "Requests/sec: 10000.00", "12.40MB read",
        "4.20 s (user 0.80, sys 3.40) = 0.042 s per 1,000 requests",
        "1 latencies above the histogram's range",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(t, want[i]) == NULL)
            fail_msg("text lacks \"%s\":\n%s", want[i], t);
    }
    if (rate_mode) {
        assert_non_null(strstr(t, "constant rate 50000 req/s"));
        assert_non_null(strstr(t, "Latency (corrected)"));
        assert_non_null(strstr(t, "Latency (uncorrected)"));
        /* corrected: rank 50001 of 100001 is 5.25 ms + 0.2 ms (within the
         * histogram's 1/1024); uncorrected: rank 50000 of 100000. */
        assert_non_null(strstr(t, "p50 5.45ms"));
        assert_non_null(strstr(t, "p50 5.24ms")); /* no overflow value */
    } else {
        assert_non_null(strstr(t, "closed loop"));
        assert_null(strstr(t, "uncorrected"));
        assert_non_null(strstr(t, "p50 5.25ms"));
        assert_non_null(strstr(t, "max 7200.00s"));
    }
    assert_finite_text(t);
    free(t);
}

static void run_all(fixture_t *fx, bool rate_mode)
{
    assert_int_equal(hb_report_json(&fx->r, fx->json), 0);
    assert_int_equal(hb_report_html(&fx->r, fx->html), 0);
    check_json(fx, rate_mode);
    check_html(fx, rate_mode);
    check_text(fx, rate_mode);
    python_check(fx, rate_mode);
    /* The writers allocate nothing through hp_*: only the fixture's two
     * histograms were allocated. */
    assert_int_equal(hp_alloc_count(), g_alloc0 + 2);
}

static void test_closed_loop(void **state)
{
    fixture_t *fx = *state;
    fill(fx, false, 100000);
    run_all(fx, false);
}

static void test_rate_mode(void **state)
{
    fixture_t *fx = *state;
    fill(fx, true, 100000);
    run_all(fx, true);
}

/* 0 requests, 0 duration, no samples, empty histograms: nothing divides by
 * zero and every file still parses. */
static void test_empty(void **state)
{
    fixture_t *fx = *state;
    fill(fx, true, 0);
    assert_true(hb_rps(&fx->r) == 0.0);
    assert_int_equal(hb_report_json(&fx->r, fx->json), 0);
    assert_int_equal(hb_report_html(&fx->r, fx->html), 0);
    char *j = slurp(fx->json);
    assert_json_balanced(j);
    assert_finite_text(j);
    assert_non_null(strstr(j, "\"percentiles\": []"));
    assert_non_null(strstr(j, "\"samples\": []"));
    assert_non_null(strstr(j, "\"per_1000_requests_s\": null"));
    assert_non_null(strstr(j, "\"requests_per_s\": 0,"));
    free(j);
    char *h = slurp(fx->html);
    assert_null(strcasestr(h, "nan"));
    assert_null(strcasestr(h, "inf"));
    assert_non_null(strstr(h, "no responses"));
    assert_non_null(strstr(h, "no samples"));
    free(h);
    FILE *f = fopen(fx->text, "w");
    assert_non_null(f);
    fx->opt.latency = true;
    hb_report_text(&fx->r, f);
    fclose(f);
    char *t = slurp(fx->text);
    assert_finite_text(t);
    assert_non_null(strstr(t, "0 requests in 0.00s, 0.00B read"));
    assert_non_null(strstr(t, "Requests/sec: 0.00"));
    assert_null(strstr(t, "Non-2xx"));
    free(t);
    python_check(fx, true);
}

/* --latency prints the HdrHistogram distribution: both in -R mode. */
static void test_latency_distribution(void **state)
{
    fixture_t *fx = *state;
    fill(fx, true, 1000);
    fx->opt.latency = true;
    FILE *f = fopen(fx->text, "w");
    assert_non_null(f);
    hb_report_text(&fx->r, f);
    fclose(f);
    char *t = slurp(fx->text);
    const char *d = strstr(t, "Latency distribution (HdrHistogram)");
    assert_non_null(d);
    const char *c = strstr(d, "Corrected");
    const char *u = strstr(d, "Uncorrected");
    assert_non_null(c);
    assert_non_null(u);
    assert_true(c < u);
    assert_non_null(strstr(c, "Percentile"));  /* the HdrHistogram header */
    assert_non_null(strstr(u, "Percentile"));
    assert_true(strstr(d, "Requests/sec:") > u);
    free(t);

    /* Closed loop: one distribution, no corrected/uncorrected headings. */
    fx->r.rate_mode = false;
    f = fopen(fx->text, "w");
    assert_non_null(f);
    hb_report_text(&fx->r, f);
    fclose(f);
    t = slurp(fx->text);
    d = strstr(t, "Latency distribution (HdrHistogram)");
    assert_non_null(d);
    assert_null(strstr(t, "orrected"));
    free(t);
}

static void test_errors_and_names(void **state)
{
    fixture_t *fx = *state;
    fill(fx, false, 10);
    static const char *const names[] = {"connect", "read", "write",
                                        "timeout", "status", "parse"};
    for (int i = 0; i < HB_ERR_COUNT; i++)
        assert_string_equal(hb_err_names[i], names[i]);
    assert_true(hb_rps(&fx->r) == 1.0);
    /* A directory that does not exist: the errno comes back. */
    assert_int_equal(hb_report_json(&fx->r, "/nonexistent-dir/x.json"), -ENOENT);
    assert_int_equal(hb_report_html(&fx->r, "/nonexistent-dir/x.html"), -ENOENT);
    assert_int_equal(hb_report_json(&fx->r, NULL), -EINVAL);
    /* /dev/full: the write error is reported at close, not lost. */
    if (access("/dev/full", W_OK) == 0) {
        assert_int_equal(hb_report_json(&fx->r, "/dev/full"), -ENOSPC);
        assert_int_equal(hb_report_html(&fx->r, "/dev/full"), -ENOSPC);
    }
}

/* The pass/fail judgement: the share of failed requests, the last second
 * of the run, an empty run, and --max-errors 100 that never fails. */
static void test_verdict(void **state)
{
    fixture_t *fx = *state;
    char why[512];
    fill(fx, false, 10000);
    for (int i = 0; i < 10; i++)
        fx->samples[i].ok = fx->samples[i].requests;
    /* 3 timeouts and 12 statuses in 10,003 requests: 0.15%. */
    fx->opt.max_errors_pct = 1.0;
    assert_int_equal(hb_verdict(&fx->r, why, sizeof(why)), 0);
    fx->opt.max_errors_pct = 0.1;
    assert_int_equal(hb_verdict(&fx->r, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "0.15% of requests failed (15 of 10003: timeout 3, status 12)"));
    assert_non_null(strstr(why, "more than --max-errors 0.1%"));
    assert_null(strchr(why, '\n'));

    /* Errors and nothing good in the last second: the server died. */
    fx->opt.max_errors_pct = 1.0;
    fx->samples[9].ok = 0;
    fx->samples[9].errors = 40;
    assert_int_equal(hb_verdict(&fx->r, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "no successful response in the last 1.00 s"));
    assert_non_null(strstr(why, "only 40 errors"));
    /* A last sample shorter than a second takes the one before along. */
    fx->samples[9].t = 9.25;
    assert_int_equal(hb_verdict(&fx->r, why, sizeof(why)), 0);
    fx->samples[8].ok = 0;
    assert_int_equal(hb_verdict(&fx->r, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "in the last 1.25 s"));
    fx->opt.max_errors_pct = 100.0;
    assert_int_equal(hb_verdict(&fx->r, why, sizeof(why)), 0);

    /* Every request failed; any threshold below 100 fails, 0 on one error. */
    fx->r.errors[HB_ERR_STATUS] = fx->r.requests;
    fx->opt.max_errors_pct = 99.9;
    assert_int_equal(hb_verdict(&fx->r, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "100.00% of requests failed"));
    fx->r.errors[HB_ERR_STATUS] = 0;
    fx->r.errors[HB_ERR_TIMEOUT] = 1;
    for (int i = 0; i < 10; i++)
        fx->samples[i].ok = fx->samples[i].requests;
    fx->opt.max_errors_pct = 0.0;
    assert_int_equal(hb_verdict(&fx->r, why, sizeof(why)), 1);
    fx->r.errors[HB_ERR_TIMEOUT] = 0;
    assert_int_equal(hb_verdict(&fx->r, why, sizeof(why)), 0);
    hp_hist_destroy(&fx->r.latency);
    hp_hist_destroy(&fx->r.uncorrected);

    /* Nothing at all: a failure too, with a reason that fits a tiny buffer. */
    fill(fx, false, 0);
    fx->opt.max_errors_pct = 1.0;
    assert_int_equal(hb_verdict(&fx->r, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "no response in the 0.00 s measured"));
    char tiny[8];
    assert_int_equal(hb_verdict(&fx->r, tiny, sizeof(tiny)), 1);
    assert_int_equal(strlen(tiny), 7);
}

/* Small values print in us, large ones in s; bytes in powers of 1024. */
static void test_units(void **state)
{
    fixture_t *fx = *state;
    fill(fx, false, 0);
    for (int i = 0; i < 100; i++)
        hp_hist_record(&fx->r.latency, 1000); /* 1 us */
    hp_hist_record(&fx->r.latency, 2500000000ull); /* 2.5 s */
    fx->r.requests = 101;
    fx->r.duration_s = 2.0;
    fx->r.bytes_read = 3u << 30; /* 3 GiB */
    FILE *f = fopen(fx->text, "w");
    assert_non_null(f);
    hb_report_text(&fx->r, f);
    fclose(f);
    char *t = slurp(fx->text);
    /* 1 us reads as the top of its 512 ns slot */
    char want[32];
    snprintf(want, sizeof(want), "p50 %.2fus",
             (double)hp_hist_percentile(&fx->r.latency, 50) / 1e3);
    assert_true(strncmp(want, "p50 1.", 6) == 0);
    assert_non_null(strstr(t, want));
    assert_non_null(strstr(t, "max 2.50s"));
    assert_non_null(strstr(t, "3.00GB read"));
    assert_non_null(strstr(t, "Transfer/sec: 1.50GB"));
    assert_non_null(strstr(t, "Requests/sec: 50.50"));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_closed_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_distribution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_units, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdict, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
