/*
 * fuzz_rcache.c - libFuzzer target for the response cache's parsing and
 * keys (src/http/rcache.c): the Cache-Control parser and the key builder,
 * and a store/lookup round trip with what they produced.
 *
 * The input is a Cache-Control value; it is copied to a heap block of
 * exactly its length so ASan catches a read past the end. Checks: the
 * max-age is -1, 0 or a positive number of milliseconds no larger than
 * the documented cap; the key of (method, path, query) split from the
 * input at two positions has exactly the documented length, differs for
 * different splits, and fails with -ENOSPC in a buffer one byte short;
 * a stored entry comes back byte for byte under its key and not under
 * the key of another split.
 */
#include "http/rcache_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ssize_t key_of(char *buf, size_t cap, const char *v, size_t len, size_t a, size_t b)
{
    const char *vary[1] = {NULL};
    size_t vlen[1] = {0};
    return hp_rcache_key(buf, cap, "GET", 3, v, a, v + a, b - a, vary, vlen, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *v = malloc(size ? size : 1);
    if (!v)
        abort();
    memcpy(v, data, size);

    int64_t ms = hp_rcache_max_age_ms(v, size);
    if (ms < -1 || ms > HP_RCACHE_MAX_AGE_CAP_S * 1000)
        abort();

    /* Two splits of the same bytes into path and query. */
    size_t a = size / 3, b = size;
    size_t a2 = a + 1 <= size ? a + 1 : a;
    size_t need = 4 + 3 + 4 + a + 4 + (b - a) + 4;
    char *k1 = malloc(need + 16), *k2 = malloc(need + 16);
    if (!k1 || !k2)
        abort();
    ssize_t n1 = key_of(k1, need + 16, v, size, a, b);
    if (n1 != (ssize_t)need)
        abort();
    if (key_of(k1, need - 1, v, size, a, b) != -ENOSPC)
        abort();
    ssize_t n2 = key_of(k2, need + 16, v, size, a2, b);
    if (n2 < 0 || (a2 != a && n2 == n1 && memcmp(k1, k2, (size_t)n1) == 0))
        abort(); /* different splits, same key */

    hp_rcache_t *rc;
    if (hp_rcache_new(&rc, 4, 1 << 20, 1000) < 0)
        abort();
    if (hp_rcache_put(rc, k1, (size_t)n1, 200, "text/plain", "X: y\r\n", 6, v, size, 0, 0) < 0)
        abort();
    hp_rcache_entry_t *e = hp_rcache_get(rc, k1, (size_t)n1, 1);
    if (!e || e->body_len != size || (size && memcmp(e->body, v, size) != 0) ||
        strcmp(e->ctype, "text/plain") != 0 || e->headers_len != 6)
        abort();
    hp_rcache_release(e);
    if (a2 != a && hp_rcache_get(rc, k2, (size_t)n2, 1))
        abort();
    if (hp_rcache_get(rc, k1, (size_t)n1, 1000)) /* expired at the TTL */
        abort();
    if (hp_rcache_validate(rc) < 0)
        abort();
    hp_rcache_free(rc);
    free(k1);
    free(k2);
    free(v);
    return 0;
}
