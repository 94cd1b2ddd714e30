/*
 * log.c - line-atomic logging to stderr.
 *
 * The level is set once before threads start; the thread name is
 * thread-local, so there is no shared mutable state on the logging path.
 */
#include "hotpath/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int log_level = HP_LOG_INFO;
static _Thread_local char thread_name[16] = "main";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void hp_log_set_level(int level)
{
    log_level = level;
}

void hp_log_set_thread(const char *name)
{
    snprintf(thread_name, sizeof thread_name, "%s", name);
}

void hp_log_write(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[1024];
    int n = snprintf(line, sizeof line, "hotpath[%s] %s: ", thread_name,
                     level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    /* stderr is unbuffered; one write keeps the line whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

bool hp_log_ratelimit(uint64_t *last_ms, uint64_t now_ms, uint64_t interval_ms)
{
    /* Not `now_ms - *last_ms < interval_ms`: a stamp ahead of now (two
     * reports at time 0, a stamp shared between clocks) would wrap it. */
    if (*last_ms != 0 && now_ms < *last_ms + interval_ms)
        return false;
    *last_ms = now_ms ? now_ms : 1;
    return true;
}
