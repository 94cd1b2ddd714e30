/*
 * log.h - one variadic log macro, to stderr, one line per call.
 *
 * Lines look like `hotpath[w1] warn: message`. Logging is for start-up,
 * shutdown and rare events; the request path never logs (rate-limited
 * warnings such as "out of file descriptors" use hp_log_ratelimit).
 */
#ifndef HOTPATH_LOG_H
#define HOTPATH_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "hotpath/common.h"

enum { HP_LOG_ERROR = 0, HP_LOG_WARN, HP_LOG_INFO, HP_LOG_DEBUG };

/* Messages above this level are dropped. Set once at start-up. */
HP_EXPORT void hp_log_set_level(int level);

/* Writes one line (the format needs no trailing newline) with one write(2),
 * so lines from different threads never interleave. */
HP_EXPORT void hp_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hp_log(level, ...) hp_log_write(HP_LOG_##level, __VA_ARGS__)

/* Names this thread in log lines ("main", "w0", ...); `name` is copied. */
HP_EXPORT void hp_log_set_thread(const char *name);

/* True at most once per `interval_ms` for a given *last stamp: callers keep
 * the stamp next to the condition they report. */
HP_EXPORT bool hp_log_ratelimit(uint64_t *last_ms, uint64_t now_ms, uint64_t interval_ms);

#endif
