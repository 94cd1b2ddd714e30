/*
 * fuzz_config.c - libFuzzer target for the YAML configuration loader
 * (src/config/config.c, config_schema.c, on top of libyaml).
 *
 * Each input is loaded from a heap copy of exactly its bytes (so ASan
 * catches any read past the end) and must either succeed with values
 * inside their documented ranges, or fail with -EINVAL and a single
 * NUL-terminated line that starts with the file name, leaving the
 * configuration as it was. Loading the same input again must give the
 * same answer (no state between loads), a tiny error buffer must still be
 * terminated, and a run with an allocation failure injected (at a point
 * drawn from the input) must end in -ENOMEM or a normal answer with
 * nothing leaked.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hotpath/alloc.h"
#include "hotpath/app.h"
#include "hotpath/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.yaml"

static void check_err(int rc, const char *err, size_t errlen)
{
    const char *end = memchr(err, '\0', errlen);
    if (!end)
        abort(); /* not terminated */
    if (memchr(err, '\n', (size_t)(end - err)) || memchr(err, '\r', (size_t)(end - err)))
        abort(); /* not one line */
    if (rc == 0 && err[0])
        abort();
    if (rc < 0 && errlen > sizeof NAME && strncmp(err, NAME ":", sizeof NAME) != 0)
        abort(); /* every message starts with the file name */
}

static void check_ranges(const hp_config_t *c)
{
    if (c->nlisten < 1 || c->nlisten > HP_CONFIG_MAX_LISTEN || c->workers > 1024)
        abort();
    for (size_t i = 0; i < c->nlisten; i++)
        if (!c->listen[i] || !c->listen[i][0] || strchr(c->listen[i], ' '))
            abort();
    if (c->limits.max_request_line < 64 || c->limits.max_request_line > 32768 ||
        c->limits.max_header_bytes < 64 || c->limits.max_header_bytes > 32768 ||
        c->limits.max_headers < 1 || c->limits.max_headers > 1000 ||
        c->limits.max_body > (1ull << 40))
        abort();
    const uint64_t t[] = {c->timeouts.header_ms, c->timeouts.body_ms, c->timeouts.keepalive_ms,
                          c->timeouts.write_ms, c->timeouts.drain_ms, c->cache.ttl_ms};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i] < 1 || t[i] > 86400000)
            abort();
    if (c->tcp.backlog < 1 || c->tcp.backlog > 65535 || c->buffers.read_chunk % 64 ||
        c->buffers.write_chunk % 64 || c->nlocations > HP_CONFIG_MAX_LOCATIONS)
        abort();
    for (size_t i = 0; i < c->nlocations; i++)
        if (!c->locations[i].path || c->locations[i].path[0] != '/')
            abort();
    if (!c->root || !c->access_log.path || !c->metrics.path || c->metrics.path[0] != '/')
        abort();
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Two loads of one input hold the same values (a sample of every kind). */
static bool same(const hp_config_t *a, const hp_config_t *b)
{
    if (a->nlisten != b->nlisten || a->nlocations != b->nlocations || a->workers != b->workers ||
        !same_str(a->root, b->root) || a->limits.max_body != b->limits.max_body ||
        a->limits.max_headers != b->limits.max_headers ||
        memcmp(&a->timeouts, &b->timeouts, sizeof a->timeouts) != 0 ||
        memcmp(&a->buffers, &b->buffers, sizeof a->buffers) != 0 ||
        a->tcp.reuseport != b->tcp.reuseport || !same_str(a->metrics.path, b->metrics.path) ||
        !same_str(a->access_log.path, b->access_log.path))
        return false;
    for (size_t i = 0; i < a->nlisten; i++)
        if (!same_str(a->listen[i], b->listen[i]))
            return false;
    for (size_t i = 0; i < a->nlocations; i++)
        if (!same_str(a->locations[i].path, b->locations[i].path) ||
            !same_str(a->locations[i].root, b->locations[i].root) ||
            !same_str(a->locations[i].cache_control, b->locations[i].cache_control))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text)
        abort();
    memcpy(text, data, size);

    hp_config_t defaults, c, again;
    char err[512], small[12];
    hp_app_config_defaults(&defaults);
    hp_config_init(&c, &defaults);
    int rc = hp_config_load_string(&c, text, size, NAME, err, sizeof err);
    check_err(rc, err, sizeof err);
    if (rc == 0)
        check_ranges(&c);
    else if (rc != -EINVAL || c.mem || c.source || c.defaults != &defaults)
        abort(); /* only -EINVAL without OOM, and *c untouched */

    hp_config_init(&again, &defaults);
    int rc2 = hp_config_load_string(&again, text, size, NAME, small, sizeof small);
    check_err(rc2, small, sizeof small);
    if (rc2 != rc || (rc == 0 && !same(&c, &again)))
        abort();
    if (rc < 0 && strncmp(err, small, sizeof small - 1) != 0)
        abort(); /* the same message, cut */

    /* Reload over a loaded configuration with an allocation failing. */
    uint64_t n = 1;
    for (size_t i = 0; i < size && i < 8; i++)
        n = n * 31 + data[i];
    hp_alloc_fail_after(1 + n % 24, 0);
    int rc3 = hp_config_load_string(&again, text, size, NAME, err, sizeof err);
    hp_alloc_fail_after(0, 0);
    check_err(rc3, err, sizeof err);
    if (rc3 != rc && rc3 != -ENOMEM)
        abort();

    hp_config_free(&c);
    hp_config_free(&again);
    free(text);
    return 0;
}
