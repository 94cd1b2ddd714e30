/*
 * clock.h - clock reads and the cached HTTP Date header.
 *
 * The loop reads the clock once per iteration and hands the value around;
 * these are the reads. The Date header is formatted at most once per second
 * per worker: hp_clock_date_update() compares seconds and only then formats, with
 * plain integer arithmetic (no gmtime, strftime, locale or time zone files,
 * so nothing on the request path can take a lock or touch the disk).
 */
#ifndef HOTPATH_CLOCK_H
#define HOTPATH_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "hotpath/common.h"

/* CLOCK_MONOTONIC in milliseconds / nanoseconds (vDSO, no syscall). */
HP_EXPORT uint64_t hp_clock_mono_ms(void);
HP_EXPORT uint64_t hp_clock_mono_ns(void);

/* A source of monotonic time for an event loop (hp_loop_set_clock): a
 * function and the argument it is called with. The zero value,
 * HP_CLOCK_MONO, means CLOCK_MONOTONIC read directly; production never
 * sets anything else. Tests install a manual clock, one they advance
 * themselves, so that timers and deadlines fire when the test says and
 * not when the machine gets round to it.
 *
 * Why a function pointer and not a compile-time switch or a "now"
 * argument everywhere: the loop is the one place that reads the clock
 * (once per iteration), and everything below it - the timer wheel, the
 * caches, the connection timeouts - already takes the loop's cached time
 * as an argument. So one test seam at the loop covers them all, and the
 * production path pays a load and a predictable branch per iteration,
 * not an indirect call. */
typedef struct hp_clock_src {
    uint64_t (*now_ns)(void *arg); /* NULL: CLOCK_MONOTONIC; never decreasing */
    void *arg;                     /* borrowed; passed to now_ns */
} hp_clock_src_t;

#define HP_CLOCK_MONO ((hp_clock_src_t){.now_ns = NULL, .arg = NULL})

/* CLOCK_REALTIME in whole seconds since the Unix epoch. */
HP_EXPORT int64_t hp_clock_real_sec(void);

/* Length of an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), without NUL. */
#define HP_CLOCK_DATE_LEN 29

/* A cached formatted date: text is valid for second `sec`. */
typedef struct hp_clock_date {
    int64_t sec;
    char text[HP_CLOCK_DATE_LEN + 1]; /* NUL-terminated */
} hp_clock_date_t;

/* An hp_clock_date_t that formats on its first update. */
#define HP_CLOCK_DATE_INIT {.sec = -1, .text = {0}}

/* Writes the IMF-fixdate (RFC 9110 5.6.7) for unix_sec into out (OUT, 29
 * characters and a NUL). Valid for 1970-01-01 .. 9999-12-31; times outside
 * are clamped to that range. */
HP_EXPORT void hp_clock_date_format(int64_t unix_sec, char out[HP_CLOCK_DATE_LEN + 1]);

/* Makes d->text describe unix_sec, formatting only when the second differs
 * from d->sec. Returns true when it reformatted. */
HP_EXPORT bool hp_clock_date_update(hp_clock_date_t *d, int64_t unix_sec);

#endif
