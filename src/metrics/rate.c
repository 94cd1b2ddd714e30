/*
 * rate.c - the constant-rate schedule (see rate.h).
 *
 * Due times are computed from the request's number, never accumulated, so
 * rounding never drifts: request j is due at start + round(j * period).
 */
#include "rate_int.h"

#include <errno.h>
#include <math.h>

int hp_rate_init(hp_rate_t *r, double rate, uint32_t nconns, uint64_t start_ns)
{
    if (!(rate > 0) || !isfinite(rate) || nconns == 0)
        return -EINVAL;
    r->start_ns = start_ns;
    r->period_ns = 1e9 / rate;
    r->nconns = nconns;
    return 0;
}

uint64_t hp_rate_due(const hp_rate_t *r, uint32_t conn, uint64_t k)
{
    double j = (double)k * r->nconns + conn;
    return r->start_ns + (uint64_t)llround(j * r->period_ns);
}

uint64_t hp_rate_due_count(const hp_rate_t *r, uint32_t conn, uint64_t now_ns)
{
    if (now_ns < r->start_ns)
        return 0;
    /* Requests of the run due by now: j <= (now - start) / period. This
     * connection owns j = conn, conn + n, conn + 2n ... */
    double jmax = floor((double)(now_ns - r->start_ns) / r->period_ns);
    uint64_t n = jmax < conn ? 0 : (uint64_t)((jmax - conn) / r->nconns) + 1;
    /* Due times are rounded to whole nanoseconds: step the estimate so the
     * count agrees exactly with hp_rate_due at every boundary. */
    while (n > 0 && hp_rate_due(r, conn, n - 1) > now_ns)
        n--;
    while (hp_rate_due(r, conn, n) <= now_ns)
        n++;
    return n;
}
