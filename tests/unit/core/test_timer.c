/*
 * test_timer.c - unit tests for src/core/timer.c.
 *
 * The core test drives the wheel with random arm / re-arm / cancel / advance
 * steps (short, medium and multi-rotation timeouts, small steps and huge
 * jumps, callbacks that re-arm themselves, cancel and arm others) next to a
 * trivial reference model: an array of deadlines. Every firing must match
 * the model exactly (never before the deadline, and in the first advance
 * that reaches it), next_ms must equal the distance to the earliest
 * occupied slot the model predicts, and validate runs after every step and
 * inside callbacks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hotpath/common.h"
#include "core/timer_int.h"

#define SLOTS HP_TIMER_WHEEL_SLOTS

/* ---- simple scenarios ------------------------------------------------- */

typedef struct simple {
    hp_timer_t t;
    int fired;
    uint64_t fired_at;
    hp_timer_wheel_t *w;
} simple_t;

static void simple_cb(hp_timer_t *t)
{
    simple_t *s = HP_CONTAINER_OF(t, simple_t, t);
    assert_false(hp_timer_armed(t));
    assert_int_equal(hp_timer_wheel_validate(s->w), 0);
    s->fired++;
    s->fired_at = s->w->now_ms;
}

static void check(const hp_timer_wheel_t *w)
{
    assert_int_equal(hp_timer_wheel_validate(w), 0);
}

static void test_basic(void **state)
{
    (void)state;
    static hp_timer_wheel_t w;
    hp_timer_wheel_init(&w, 1000);
    check(&w);
    assert_int_equal(hp_timer_wheel_next_ms(&w), -1);
    assert_int_equal(hp_timer_wheel_advance(&w, 2000), 0);
    assert_int_equal(w.now_ms, 2000);

    simple_t a = {.w = &w};
    hp_timer_init(&a.t, simple_cb);
    assert_false(hp_timer_armed(&a.t));
    hp_timer_cancel(&w, &a.t); /* no-op */
    check(&w);
    hp_timer_arm(&w, &a.t, 10);
    assert_true(hp_timer_armed(&a.t));
    assert_int_equal(a.t.expire_ms, 2010);
    assert_int_equal(hp_timer_wheel_count(&w), 1);
    assert_int_equal(hp_timer_wheel_next_ms(&w), 10);
    check(&w);
    assert_int_equal(hp_timer_wheel_advance(&w, 2009), 0);
    assert_int_equal(hp_timer_wheel_next_ms(&w), 1);
    assert_int_equal(hp_timer_wheel_advance(&w, 2010), 1);
    assert_int_equal(a.fired, 1);
    assert_int_equal(a.fired_at, 2010);
    assert_false(hp_timer_armed(&a.t));
    assert_int_equal(hp_timer_wheel_count(&w), 0);
    assert_int_equal(hp_timer_wheel_next_ms(&w), -1);
    check(&w);

    /* re-arm moves; cancel removes */
    hp_timer_arm(&w, &a.t, 50);
    hp_timer_arm(&w, &a.t, 5);
    assert_int_equal(hp_timer_wheel_count(&w), 1);
    assert_int_equal(hp_timer_wheel_next_ms(&w), 5);
    check(&w);
    hp_timer_cancel(&w, &a.t);
    hp_timer_cancel(&w, &a.t);
    assert_false(hp_timer_armed(&a.t));
    assert_int_equal(hp_timer_wheel_count(&w), 0);
    check(&w);
    assert_int_equal(hp_timer_wheel_advance(&w, 3000), 0);
    assert_int_equal(a.fired, 1);

    /* timeout 0: due at once, fires on the next advance even if the clock
     * did not move */
    hp_timer_arm(&w, &a.t, 0);
    assert_int_equal(hp_timer_wheel_next_ms(&w), 0);
    assert_int_equal(hp_timer_wheel_advance(&w, 3000), 1);
    assert_int_equal(a.fired, 2);
    /* a cancelled due timer does not leave next_ms stuck at 0 */
    hp_timer_arm(&w, &a.t, 0);
    simple_t far = {.w = &w};
    hp_timer_init(&far.t, simple_cb);
    hp_timer_arm(&w, &far.t, SLOTS); /* same slot, next rotation */
    hp_timer_cancel(&w, &a.t);
    assert_int_equal(hp_timer_wheel_next_ms(&w), SLOTS);
    hp_timer_cancel(&w, &far.t);

    /* a clock going backwards is treated as no time passing */
    hp_timer_arm(&w, &a.t, 1);
    assert_int_equal(hp_timer_wheel_advance(&w, 10), 0);
    assert_int_equal(w.now_ms, 3000);
    assert_int_equal(hp_timer_wheel_advance(&w, 3001), 1);
    check(&w);
}

static void test_beyond_rotation(void **state)
{
    (void)state;
    static hp_timer_wheel_t w;
    hp_timer_wheel_init(&w, 0);
    simple_t t[4] = {{.w = &w}, {.w = &w}, {.w = &w}, {.w = &w}};
    for (int i = 0; i < 4; i++)
        hp_timer_init(&t[i].t, simple_cb);
    /* all in slot 7, in rotations 0..3 */
    for (int i = 0; i < 4; i++)
        hp_timer_arm(&w, &t[i].t, 7 + (uint64_t)i * SLOTS);
    check(&w);
    assert_int_equal(hp_timer_wheel_next_ms(&w), 7);
    /* step 1 ms at a time through four rotations */
    for (uint64_t now = 1; now <= 7 + 3 * SLOTS; now++) {
        size_t n = hp_timer_wheel_advance(&w, now);
        bool hit = now >= 7 && (now - 7) % SLOTS == 0;
        assert_int_equal(n, hit ? 1 : 0);
        if (hit)
            assert_int_equal(t[(now - 7) / SLOTS].fired_at, now);
        if (now % 97 == 0)
            check(&w);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(t[i].fired, 1);
    assert_int_equal(hp_timer_wheel_count(&w), 0);

    /* one big jump over several rotations fires them all, once */
    for (int i = 0; i < 4; i++)
        hp_timer_arm(&w, &t[i].t, 100 + (uint64_t)i * 3 * SLOTS + (uint64_t)i);
    assert_int_equal(hp_timer_wheel_advance(&w, w.now_ms + 10 * SLOTS), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(t[i].fired, 2);
    check(&w);

    /* huge timeouts saturate instead of wrapping into the past */
    hp_timer_arm(&w, &t[0].t, UINT64_MAX);
    assert_int_equal(t[0].t.expire_ms, UINT64_MAX);
    assert_int_equal(hp_timer_wheel_advance(&w, w.now_ms + 100 * SLOTS), 0);
    check(&w);
    hp_timer_cancel(&w, &t[0].t);
}

/* ---- callbacks that re-arm themselves -------------------------------- */

typedef struct rearm {
    hp_timer_t t;
    hp_timer_wheel_t *w;
    uint64_t period;
    int fired;
} rearm_t;

static void rearm_cb(hp_timer_t *t)
{
    rearm_t *r = HP_CONTAINER_OF(t, rearm_t, t);
    r->fired++;
    hp_timer_arm(r->w, t, r->period);
    assert_int_equal(hp_timer_wheel_validate(r->w), 0);
}

static void test_self_rearm(void **state)
{
    (void)state;
    static hp_timer_wheel_t w;
    hp_timer_wheel_init(&w, 0);
    /* period 0: fires once per advance, never loops */
    rearm_t z = {.w = &w, .period = 0};
    hp_timer_init(&z.t, rearm_cb);
    hp_timer_arm(&w, &z.t, 0);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(hp_timer_wheel_advance(&w, w.now_ms), 1);
        assert_int_equal(z.fired, i);
        assert_int_equal(hp_timer_wheel_next_ms(&w), 0);
    }
    /* across a time step: still once per advance, although its new slot
     * (now's) is passed later in the same walk */
    assert_int_equal(hp_timer_wheel_advance(&w, w.now_ms + 1000), 1);
    assert_int_equal(hp_timer_wheel_advance(&w, w.now_ms + SLOTS + 7), 1);
    assert_int_equal(hp_timer_wheel_advance(&w, w.now_ms + 9 * SLOTS), 1);
    assert_int_equal(z.fired, 8);
    hp_timer_cancel(&w, &z.t);

    /* period 3 over a 30 ms step fired at 1 ms steps: every 3 ms */
    rearm_t p = {.w = &w, .period = 3};
    hp_timer_init(&p.t, rearm_cb);
    hp_timer_arm(&w, &p.t, 3);
    uint64_t t0 = w.now_ms;
    for (uint64_t i = 1; i <= 30; i++)
        hp_timer_wheel_advance(&w, t0 + i);
    assert_int_equal(p.fired, 10);
    /* a period-1 timer over one big step fires only once: it is re-armed
     * relative to the new now */
    p.period = 1;
    hp_timer_arm(&w, &p.t, 1);
    p.fired = 0;
    assert_int_equal(hp_timer_wheel_advance(&w, w.now_ms + 50), 1);
    assert_int_equal(p.fired, 1);
    hp_timer_cancel(&w, &p.t);
    check(&w);
}

/* ---- callbacks that cancel others in the same slot ------------------- */

typedef struct killer {
    hp_timer_t t;
    hp_timer_wheel_t *w;
    struct killer *victim;
    int fired;
    int order; /* killer_seq when it fired */
} killer_t;

static int killer_seq;

static void killer_cb(hp_timer_t *t)
{
    killer_t *k = HP_CONTAINER_OF(t, killer_t, t);
    k->fired++;
    k->order = killer_seq++;
    if (k->victim) {
        hp_timer_cancel(k->w, &k->victim->t);
        assert_int_equal(hp_timer_wheel_validate(k->w), 0);
    }
}

static void test_cancel_from_callback(void **state)
{
    (void)state;
    static hp_timer_wheel_t w;
    hp_timer_wheel_init(&w, 0);
    /* a ring of 8 timers all due at 5 ms, each cancelling the next. The
     * firing order is unspecified, but a cancelled timer must never fire
     * after its killer, so at least one of them stays silent. */
    enum { N = 8 };
    killer_t k[N];
    for (int i = 0; i < N; i++) {
        k[i] = (killer_t){.w = &w, .victim = &k[(i + 1) % N]};
        hp_timer_init(&k[i].t, killer_cb);
        hp_timer_arm(&w, &k[i].t, 5);
    }
    killer_seq = 0;
    size_t n = hp_timer_wheel_advance(&w, 5);
    assert_true(n >= 1 && n <= N - 1);
    int total = 0;
    for (int i = 0; i < N; i++) {
        total += k[i].fired;
        killer_t *v = k[i].victim;
        if (k[i].fired && v->fired)
            assert_true(v->order < k[i].order);
        assert_false(hp_timer_armed(&k[i].t));
    }
    assert_int_equal(total, (int)n);
    assert_int_equal(hp_timer_wheel_count(&w), 0);
    check(&w);

    /* cancel a timer of the same slot that is a rotation later, and one in
     * another slot, and cancel-then-rearm a timer in the walked slot */
    killer_t a = {.w = &w}, b = {.w = &w}, c = {.w = &w};
    hp_timer_init(&a.t, killer_cb);
    hp_timer_init(&b.t, killer_cb);
    hp_timer_init(&c.t, killer_cb);
    a.victim = &b;
    hp_timer_arm(&w, &a.t, 10);
    hp_timer_arm(&w, &b.t, 10 + SLOTS);
    hp_timer_arm(&w, &c.t, 11);
    assert_int_equal(hp_timer_wheel_advance(&w, w.now_ms + 11), 2);
    assert_int_equal(a.fired, 1);
    assert_int_equal(b.fired, 0);
    assert_int_equal(c.fired, 1);
    assert_int_equal(hp_timer_wheel_count(&w), 0);
    check(&w);
}

/* ---- randomised comparison with a reference model -------------------- */

enum { NT = 96 };

typedef struct model {
    hp_timer_wheel_t w;
    struct mt {
        hp_timer_t t;
        int idx;
        int behaviour; /* 0 plain, 1 re-arm self, 2 cancel other, 3 arm
                          other */
    } t[NT];
    bool armed[NT];
    uint64_t expire[NT];
    bool armed_in_cb[NT]; /* armed by a callback during this advance */
    uint64_t rng;
    size_t fired;
    bool in_advance;
} model_t;

static model_t *g_model; /* test-only: callbacks find the model here */

static uint64_t rnd(model_t *m)
{
    /* xorshift64* */
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return m->rng * 2685821657736338717ULL;
}

static uint64_t rnd_timeout(model_t *m)
{
    switch (rnd(m) % 8) {
    case 0:
        return 0;
    case 1:
    case 2:
        return rnd(m) % 8;
    case 3:
    case 4:
        return rnd(m) % 300;
    case 5:
        return rnd(m) % SLOTS;
    case 6:
        return SLOTS - 2 + rnd(m) % 5; /* around one rotation */
    default:
        return rnd(m) % (4 * SLOTS);
    }
}

static void model_arm(model_t *m, int i, uint64_t to)
{
    hp_timer_arm(&m->w, &m->t[i].t, to);
    m->armed[i] = true;
    m->expire[i] = m->w.now_ms + to;
    m->armed_in_cb[i] = m->in_advance;
    assert_int_equal(m->t[i].t.expire_ms, m->expire[i]);
}

static void model_cancel(model_t *m, int i)
{
    hp_timer_cancel(&m->w, &m->t[i].t);
    m->armed[i] = false;
}

static void model_cb(hp_timer_t *t)
{
    model_t *m = g_model;
    struct mt *mt = HP_CONTAINER_OF(t, struct mt, t);
    int i = mt->idx;
    /* fires exactly when the model says, not early, not twice */
    assert_true(m->armed[i]);
    assert_false(hp_timer_armed(t));
    assert_true(m->expire[i] <= m->w.now_ms);
    /* only timers due when advance was called fire in it */
    assert_false(m->armed_in_cb[i]);
    m->armed[i] = false;
    m->fired++;
    int other = (int)(rnd(m) % NT);
    switch (mt->behaviour) {
    case 1:
        model_arm(m, i, rnd_timeout(m));
        break;
    case 2:
        model_cancel(m, other);
        break;
    case 3:
        model_arm(m, other, rnd_timeout(m));
        break;
    default:
        break;
    }
    assert_int_equal(hp_timer_wheel_validate(&m->w), 0);
}

/* next_ms as the model predicts it: 0 when something is due, else the
 * distance to the nearest slot holding a timer. */
static int64_t model_next(const model_t *m)
{
    int64_t best = -1;
    uint64_t now = m->w.now_ms;
    for (int i = 0; i < NT; i++) {
        if (!m->armed[i])
            continue;
        if (m->expire[i] <= now)
            return 0;
        int64_t d = (int64_t)((m->expire[i] - now) % SLOTS);
        if (d == 0)
            d = SLOTS;
        if (best < 0 || d < best)
            best = d;
    }
    return best;
}

static void model_check(model_t *m)
{
    assert_int_equal(hp_timer_wheel_validate(&m->w), 0);
    size_t n = 0;
    uint64_t min_exp = UINT64_MAX;
    for (int i = 0; i < NT; i++) {
        assert_int_equal(hp_timer_armed(&m->t[i].t), m->armed[i]);
        if (m->armed[i]) {
            n++;
            if (m->expire[i] < min_exp)
                min_exp = m->expire[i];
        }
    }
    assert_int_equal(hp_timer_wheel_count(&m->w), n);
    int64_t next = hp_timer_wheel_next_ms(&m->w);
    assert_int_equal(next, model_next(m));
    /* never late: the loop may sleep next ms without missing a deadline */
    if (n)
        assert_true(m->w.now_ms + (uint64_t)next <= min_exp);
}

static void run_model(uint64_t seed, int steps)
{
    model_t *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    g_model = m;
    m->rng = seed;
    hp_timer_wheel_init(&m->w, rnd(m) % 1000000);
    for (int i = 0; i < NT; i++) {
        m->t[i].idx = i;
        m->t[i].behaviour = i % 4 == 0 ? (int)(rnd(m) % 4) : 0;
        hp_timer_init(&m->t[i].t, model_cb);
    }
    for (int step = 0; step < steps; step++) {
        int i = (int)(rnd(m) % NT);
        switch (rnd(m) % 10) {
        case 0:
        case 1:
        case 2:
        case 3:
            model_arm(m, i, rnd_timeout(m)); /* arms or moves */
            break;
        case 4:
        case 5:
            model_cancel(m, i);
            break;
        default: {
            uint64_t r = rnd(m) % 100, d;
            if (r < 40)
                d = rnd(m) % 4;
            else if (r < 80)
                d = rnd(m) % 200;
            else if (r < 97)
                d = rnd(m) % (2 * SLOTS);
            else
                d = rnd(m) % (50 * SLOTS); /* a long gap */
            uint64_t now = m->w.now_ms + d;
            for (int k = 0; k < NT; k++)
                m->armed_in_cb[k] = false;
            size_t before = m->fired;
            m->in_advance = true;
            size_t n = hp_timer_wheel_advance(&m->w, now);
            m->in_advance = false;
            assert_int_equal(n, m->fired - before);
            /* everything due has fired; a timer a callback armed during
             * this advance with timeout 0 waits for the next one */
            for (int k = 0; k < NT; k++) {
                if (!m->armed[k])
                    continue;
                if (m->armed_in_cb[k])
                    assert_true(m->expire[k] >= now);
                else
                    assert_true(m->expire[k] > now);
            }
        }
        }
        model_check(m);
    }
    for (int i = 0; i < NT; i++)
        model_cancel(m, i);
    model_check(m);
    assert_int_equal(hp_timer_wheel_next_ms(&m->w), -1);
    free(m);
    g_model = NULL;
}

static void test_random_model(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 40; seed++)
        run_model(seed * 0x9E3779B97F4A7C15ULL, 3000);
}

/* ---- validate catches corruption ------------------------------------- */

static void test_validate_detects(void **state)
{
    (void)state;
    static hp_timer_wheel_t w;
    hp_timer_wheel_init(&w, 0);
    simple_t a = {.w = &w}, b = {.w = &w};
    hp_timer_init(&a.t, simple_cb);
    hp_timer_init(&b.t, simple_cb);
    hp_timer_arm(&w, &a.t, 10);
    hp_timer_arm(&w, &b.t, 10);
    check(&w);
    a.t.expire_ms++; /* now in the wrong slot */
    assert_int_equal(hp_timer_wheel_validate(&w), -EINVAL);
    a.t.expire_ms--;
    w.count++;
    assert_int_equal(hp_timer_wheel_validate(&w), -EINVAL);
    w.count--;
    w.bits[3] |= 1;
    assert_int_equal(hp_timer_wheel_validate(&w), -EINVAL);
    w.bits[3] &= ~1ULL;
    hp_timer_t *saved = b.t.prev;
    b.t.prev = &b.t;
    assert_int_equal(hp_timer_wheel_validate(&w), -EINVAL);
    b.t.prev = saved;
    check(&w);
    hp_timer_cancel(&w, &a.t);
    hp_timer_cancel(&w, &b.t);
    check(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_beyond_rotation),
        cmocka_unit_test(test_self_rearm),
        cmocka_unit_test(test_cancel_from_callback),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_validate_detects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
