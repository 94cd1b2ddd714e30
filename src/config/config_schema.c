/*
 * config_schema.c - what hotpath's configuration keys are and which values
 * each one takes: the schema tables that config.c walks, the parsers for
 * sizes ("32k") and durations ("0.5s"), the "expected ..."
 * text of every kind, and the edit distance behind "did you mean".
 *
 * Central structure: the hp_config_field_t tables, one per map, each entry
 * naming a key, the kind of its value, where it is stored and its range.
 * Invariant: every range here is the one docs/configuration.md states and
 * the one the command line enforces, and every default the owners supply
 * (hp_app_config_defaults) lies inside it; test_app checks that the
 * shipped config/hotpath.yaml, which spells the defaults out, loads and
 * equals them.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"

#define MEMBER_SIZE(T, m) ((uint8_t)sizeof(((T *)0)->m))
#define CF(n, k, m, lo, hi)                                                                        \
    {n, k, 0, MEMBER_SIZE(hp_config_t, m), offsetof(hp_config_t, m), lo, hi, NULL}
#define CFF(n, k, fl, m, lo, hi)                                                                   \
    {n, k, fl, MEMBER_SIZE(hp_config_t, m), offsetof(hp_config_t, m), lo, hi, NULL}
#define LF(n, k, fl, m, lo, hi)                                                                    \
    {n, k, fl, MEMBER_SIZE(hp_config_location_t, m), offsetof(hp_config_location_t, m), lo, hi, NULL}
#define MAP(n, s) {n, K_MAP, 0, 0, 0, 0, 0, s}

/* The limits match the command line's: a request line or header section
 * may not pass 32k because parser spans are 16-bit (HP_HTTP_MAX_HEAD). */
static const hp_config_field_t limits_fields[] = {
    CF("max_request_line", K_SIZE, limits.max_request_line, 64, 32 * KIB),
    CF("max_header_bytes", K_SIZE, limits.max_header_bytes, 64, 32 * KIB),
    CF("max_headers", K_COUNT, limits.max_headers, 1, 1000),
    CF("max_body", K_SIZE, limits.max_body, 0, 1024 * GIB),
    {0},
};

static const hp_config_field_t timeouts_fields[] = {
    CF("header", K_DURATION, timeouts.header_ms, 1, 24 * HOUR),
    CF("body", K_DURATION, timeouts.body_ms, 1, 24 * HOUR),
    CF("keepalive", K_DURATION, timeouts.keepalive_ms, 1, 24 * HOUR),
    CF("write", K_DURATION, timeouts.write_ms, 1, 24 * HOUR),
    CF("drain", K_DURATION, timeouts.drain_ms, 1, 24 * HOUR),
    {0},
};

static const hp_config_field_t keepalive_fields[] = {
    CF("enabled", K_BOOL, keepalive.enabled, 0, 1),
    CF("max_requests", K_COUNT, keepalive.max_requests, 0, 1000000000),
    {0},
};

static const hp_config_field_t tcp_fields[] = {
    CF("nodelay", K_BOOL, tcp.nodelay, 0, 1),
    CF("backlog", K_COUNT, tcp.backlog, 1, 65535),
    CF("reuseport", K_BOOL, tcp.reuseport, 0, 1),
    {0},
};

/* Chunk sizes feed hp_pool_init, which wants multiples of 64 bytes. */
static const hp_config_field_t buffers_fields[] = {
    CFF("read_chunk", K_SIZE, F_MUL64, buffers.read_chunk, 4 * KIB, 16 * MIB),
    CFF("write_chunk", K_SIZE, F_MUL64, buffers.write_chunk, 1 * KIB, 16 * MIB),
    CF("max_chunks", K_COUNT, buffers.max_chunks, 0, 100000000),
    {0},
};

static const hp_config_field_t location_fields[] = {
    LF("path", K_URLPATH, F_REQUIRED, path, 1, 1024),
    LF("root", K_STRING, F_NULLABLE, root, 1, 4096),
    LF("cache_control", K_HEADER, F_NULLABLE, cache_control, 0, 1024),
    LF("compression", K_BOOL, 0, compression, 0, 1),
    {0},
};

static const hp_config_field_t endpoints_fields[] = {
    CF("plaintext", K_BOOL, endpoints.plaintext, 0, 1),
    CF("json", K_BOOL, endpoints.json, 0, 1),
    CF("health", K_BOOL, endpoints.health, 0, 1),
    CF("echo", K_BOOL, endpoints.echo, 0, 1),
    {0},
};

static const hp_config_field_t cache_fields[] = {
    CF("enabled", K_BOOL, cache.enabled, 0, 1),
    CF("max_entries", K_COUNT, cache.max_entries, 1, 10000000),
    CF("max_bytes", K_SIZE, cache.max_bytes, 0, 1024 * GIB),
    CF("ttl", K_DURATION, cache.ttl_ms, 1, 24 * HOUR),
    {0},
};

static const hp_config_field_t compression_fields[] = {
    CF("enabled", K_BOOL, compression.enabled, 0, 1),
    CF("level", K_COUNT, compression.level, 1, 9),
    CF("min_size", K_SIZE, compression.min_size, 0, 1024 * MIB),
    {0},
};

static const hp_config_field_t access_log_fields[] = {
    CF("enabled", K_BOOL, access_log.enabled, 0, 1),
    CF("path", K_STRING, access_log.path, 1, 4096),
    {0},
};

static const hp_config_field_t metrics_fields[] = {
    CF("enabled", K_BOOL, metrics.enabled, 0, 1),
    CF("path", K_URLPATH, metrics.path, 1, 1024),
    {0},
};

/* The URL's syntax is the AMQP client's (hp_amqp_url_parse: one host or
 * several, host1:port,host2:port), checked by hp_app_config_check where
 * the URL was written. A heartbeat is
 * negotiated in whole seconds and sent as a 16-bit number
 * (connection.tune); a content type is a short string (255 bytes). The
 * window bounds the unconfirmed publishes of one channel and, with the
 * connections and channels per worker, sizes the table of requests
 * waiting for them, allocated at start-up: that their product stays
 * within a few megabytes per worker is app_amqp_check's to say, as is
 * that breaker_open_max is not below breaker_open. 64 connections of 64
 * channels is more than one worker's publishing needs; a publish queue
 * holds copies of messages, per channel, and 1 GiB is far past a
 * sensible one. The breaker's durations are the timeout's range. Read
 * coalescing adds its period to a confirm's wait: a second is past any
 * sensible one. */
static const hp_config_field_t amqp_fields[] = {
    CFF("url", K_URL, F_NULLABLE, amqp.url, 1, 1024),
    CFF("heartbeat", K_DURATION, F_SECONDS, amqp.heartbeat_ms, 0, 65535 * SEC),
    CF("blocked_timeout", K_DURATION, amqp.blocked_timeout_ms, 0, 24 * HOUR),
    CF("read_coalesce", K_DURATION, amqp.read_coalesce_ms, 0, 1 * SEC),
    CF("confirm_window", K_COUNT, amqp.confirm_window, 1, 65535),
    CF("connections", K_COUNT, amqp.connections, 1, 64),
    CF("channels", K_COUNT, amqp.channels, 1, 64),
    CF("publish_queue", K_SIZE, amqp.publish_queue, 0, 1 * GIB),
    CFF("publish_route", K_URLPATH, F_NULLABLE, amqp.publish_route, 1, 1024),
    CF("timeout", K_DURATION, amqp.timeout_ms, 1, 24 * HOUR),
    CF("content_type", K_HEADER, amqp.content_type, 1, 255),
    CF("breaker_failures", K_COUNT, amqp.breaker_failures, 0, 1000000),
    CF("breaker_window", K_DURATION, amqp.breaker_window_ms, 1, 24 * HOUR),
    CF("breaker_open", K_DURATION, amqp.breaker_open_ms, 1, 24 * HOUR),
    CF("breaker_open_max", K_DURATION, amqp.breaker_open_max_ms, 1, 24 * HOUR),
    CF("stamp", K_BOOL, amqp.stamp, 0, 1),
    {0},
};

const hp_config_field_t hp_config_top_fields[] = {
    {"listen", K_LISTEN, 0, 0, 0, 0, 0, NULL},
    CF("workers", K_WORKERS, workers, 1, 1024),
    CF("root", K_STRING, root, 1, 4096),
    MAP("limits", limits_fields),
    MAP("timeouts", timeouts_fields),
    MAP("keepalive", keepalive_fields),
    MAP("tcp", tcp_fields),
    MAP("buffers", buffers_fields),
    {"locations", K_LOCATIONS, 0, 0, 0, 0, 0, location_fields},
    MAP("endpoints", endpoints_fields),
    MAP("compression", compression_fields),
    MAP("cache", cache_fields),
    MAP("access_log", access_log_fields),
    MAP("metrics", metrics_fields),
    MAP("amqp", amqp_fields),
    {0},
};


/* ---- the "expected ..." texts --------------------------------------------- */

/* 1536 -> "1536", 32768 -> "32k", 1 << 30 -> "1g": how a user writes it. */
static void fmt_size(char *out, size_t len, uint64_t v)
{
    if (v && v % GIB == 0)
        snprintf(out, len, "%llug", (unsigned long long)(v / GIB));
    else if (v && v % MIB == 0)
        snprintf(out, len, "%llum", (unsigned long long)(v / MIB));
    else if (v && v % KIB == 0)
        snprintf(out, len, "%lluk", (unsigned long long)(v / KIB));
    else
        snprintf(out, len, "%llu", (unsigned long long)v);
}

static void fmt_ms(char *out, size_t len, uint64_t ms)
{
    if (ms == 0)
        snprintf(out, len, "0s");
    else if (ms % HOUR == 0)
        snprintf(out, len, "%lluh", (unsigned long long)(ms / HOUR));
    else if (ms && ms % (60 * SEC) == 0)
        snprintf(out, len, "%llum", (unsigned long long)(ms / (60 * SEC)));
    else if (ms && ms % SEC == 0)
        snprintf(out, len, "%llus", (unsigned long long)(ms / SEC));
    else
        snprintf(out, len, "%llums", (unsigned long long)ms);
}

/* The "expected ..." text for a field. */
void hp_config_what(const hp_config_field_t *f, char *out, size_t len)
{
    char lo[32], hi[32];
    switch (f->kind) {
    case K_BOOL:
        snprintf(out, len, "true or false");
        break;
    case K_COUNT:
        snprintf(out, len, "a whole number from %llu to %llu", (unsigned long long)f->min,
                 (unsigned long long)f->max);
        break;
    case K_WORKERS:
        snprintf(out, len, "'auto' or a whole number from %llu to %llu",
                 (unsigned long long)f->min, (unsigned long long)f->max);
        break;
    case K_SIZE:
        fmt_size(lo, sizeof lo, f->min);
        fmt_size(hi, sizeof hi, f->max);
        snprintf(out, len, "a size in bytes (a number, optionally with k, m or g) from %s to %s%s",
                 lo, hi, (f->flags & F_MUL64) ? " and a multiple of 64" : "");
        break;
    case K_DURATION:
        fmt_ms(lo, sizeof lo, f->min);
        fmt_ms(hi, sizeof hi, f->max);
        if (f->flags & F_SECONDS)
            snprintf(out, len, "a duration in whole seconds such as 30s, 2m or 1h (a plain "
                     "number is seconds) from %s to %s", lo, hi);
        else
            snprintf(out, len, "a duration such as 500ms, 10s, 2m or 1h (a plain number is "
                     "seconds) from %s to %s", lo, hi);
        break;
    case K_STRING:
        snprintf(out, len, "a path of %llu to %llu bytes without control characters",
                 (unsigned long long)f->min, (unsigned long long)f->max);
        break;
    case K_URLPATH:
        snprintf(out, len, "a URL path starting with '/' of at most %llu bytes "
                 "(printable ASCII without spaces, '?' or '#')", (unsigned long long)f->max);
        break;
    case K_HEADER:
        snprintf(out, len, "a header value of %s%llu printable ASCII characters",
                 f->min ? "1 to " : "at most ", (unsigned long long)f->max);
        break;
    case K_URL:
        snprintf(out, len, "a URL of at most %llu printable ASCII characters without spaces",
                 (unsigned long long)f->max);
        break;
    default:
        snprintf(out, len, "a mapping of keys");
        break;
    }
}


/* ---- value parsers ------------------------------------------------------------ */

static bool eq(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* Digits only, no sign, no overflow. *used gets the digits consumed. */
static bool parse_digits(const char *s, size_t len, uint64_t *v, size_t *used)
{
    uint64_t n = 0;
    size_t i = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, (uint64_t)(s[i] - '0'), &n))
            return false;
    *v = n;
    *used = i;
    return i > 0;
}

static bool parse_count(const char *s, size_t len, uint64_t *v)
{
    size_t used;
    return parse_digits(s, len, v, &used) && used == len;
}

/* "4096", "32k", "1m", "2g" (k = 1024). */
static bool parse_size(const char *s, size_t len, uint64_t *v)
{
    size_t used;
    if (!parse_digits(s, len, v, &used))
        return false;
    if (used == len)
        return true;
    if (used + 1 != len)
        return false;
    uint64_t mul;
    switch (s[used] | 0x20) {
    case 'k': mul = KIB; break;
    case 'm': mul = MIB; break;
    case 'g': mul = GIB; break;
    default: return false;
    }
    return !__builtin_mul_overflow(*v, mul, v);
}

/* "500ms", "10s", "2m", "1h", "0.5s", "10" (seconds), to milliseconds,
 * rounded to the nearest. Exact decimal arithmetic: no floating point, so
 * "0.1s" is 100 ms on every machine. */
static bool parse_duration(const char *s, size_t len, uint64_t *ms)
{
    uint64_t mant, scale = 1;
    size_t i;
    if (!parse_digits(s, len, &mant, &i))
        return false;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (i - start >= 9)
                return false; /* finer than a nanosecond means nothing here */
            if (__builtin_mul_overflow(mant, 10, &mant) ||
                __builtin_add_overflow(mant, (uint64_t)(s[i] - '0'), &mant))
                return false;
            scale *= 10;
        }
        if (i == start)
            return false;
    }
    uint64_t unit;
    size_t rest = len - i;
    if (rest == 0 || (rest == 1 && s[i] == 's'))
        unit = SEC;
    else if (rest == 2 && s[i] == 'm' && s[i + 1] == 's')
        unit = 1;
    else if (rest == 1 && s[i] == 'm')
        unit = 60 * SEC;
    else if (rest == 1 && s[i] == 'h')
        unit = HOUR;
    else
        return false;
    uint64_t t;
    if (__builtin_mul_overflow(mant, unit, &t) || __builtin_add_overflow(t, scale / 2, &t))
        return false;
    *ms = t / scale;
    return true;
}

/* Character classes of the string kinds. */
bool hp_config_string_ok(const hp_config_field_t *f, const char *s, size_t len)
{
    if (len < f->min || len > f->max)
        return false;
    if (f->kind == K_URLPATH && s[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (f->kind) {
        case K_STRING:
            if (ch < 0x20 || ch == 0x7f)
                return false;
            break;
        case K_URLPATH:
            if (ch <= 0x20 || ch >= 0x7f || ch == '?' || ch == '#')
                return false;
            break;
        case K_URL:
            if (ch <= 0x20 || ch >= 0x7f)
                return false;
            break;
        default: /* K_HEADER */
            if ((ch < 0x20 && ch != '\t') || ch >= 0x7f)
                return false;
            break;
        }
    }
    return true;
}


bool hp_config_number(const hp_config_field_t *f, const char *s, size_t len, uint64_t *v)
{
    switch (f->kind) {
    case K_BOOL:
        if (eq(s, len, "true") || eq(s, len, "yes") || eq(s, len, "on"))
            return *v = 1, true;
        if (eq(s, len, "false") || eq(s, len, "no") || eq(s, len, "off"))
            return *v = 0, true;
        return false;
    case K_WORKERS:
        if (eq(s, len, "auto"))
            return *v = 0, true;
        return parse_count(s, len, v) && *v >= f->min && *v <= f->max;
    case K_COUNT:
        return parse_count(s, len, v) && *v >= f->min && *v <= f->max;
    case K_SIZE:
        return parse_size(s, len, v) && *v >= f->min && *v <= f->max &&
               (!(f->flags & F_MUL64) || *v % 64 == 0);
    case K_DURATION:
        return parse_duration(s, len, v) && *v >= f->min && *v <= f->max &&
               (!(f->flags & F_SECONDS) || *v % SEC == 0);
    default:
        return false;
    }
}

/* ---- did you mean ------------------------------------------------------------ */

/* Damerau-Levenshtein distance (optimal string alignment: an adjacent
 * swap counts one), for keys of at most HP_CONFIG_SUGGEST_MAX bytes. */
int hp_config_edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    if (la > HP_CONFIG_SUGGEST_MAX || lb > HP_CONFIG_SUGGEST_MAX)
        return INT_MAX;
    int d[3][HP_CONFIG_SUGGEST_MAX + 1]; /* rows i-2, i-1, i (mod 3) */
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int *cur = d[i % 3], *prev = d[(i - 1) % 3], *prev2 = d[(i + 1) % 3];
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            if (prev[j - 1] + cost < v)
                v = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < v)
                v = prev2[j - 2] + 1;
            cur[j] = v;
        }
    }
    return d[la % 3][lb];
}

