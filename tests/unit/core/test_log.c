/*
 * test_log.c - unit tests for src/core/log.c: level filtering, the line
 * format with the thread's name, out-of-range levels, the truncation of a
 * message too long for one line, one write per line when threads log at
 * once, and hp_log_ratelimit.
 *
 * Lines can only go to stderr, so each test points descriptor 2 at a pipe
 * around the calls it checks (capture_begin/capture_end) and restores it
 * before asserting anything: cmocka reports failures on stderr too. The
 * level is process-wide; the teardown puts back the default (info).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/log.h"

/* The line buffer in log.c: a line is at most this minus one byte. */
#define LOG_LINE 1024

static struct {
    int saved_fd;  /* the real stderr while captured */
    int rfd, wfd;  /* the pipe */
    char *out;     /* what was captured, NUL-terminated */
    size_t len, cap;
} C = {.saved_fd = -1, .rfd = -1, .wfd = -1};

static void drain_pipe(void)
{
    for (;;) {
        if (C.cap - C.len < 4096) {
            C.cap = C.cap * 2 + 8192;
            C.out = realloc(C.out, C.cap + 1);
            assert_non_null(C.out);
        }
        ssize_t n = read(C.rfd, C.out + C.len, C.cap - C.len);
        if (n <= 0)
            break;
        C.len += (size_t)n;
    }
    C.out[C.len] = '\0';
}

static void capture_begin(void)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    C.rfd = p[0];
    C.wfd = p[1];
    C.len = 0;
    fflush(stderr);
    C.saved_fd = dup(STDERR_FILENO);
    assert_true(C.saved_fd >= 0);
    assert_int_equal(dup2(C.wfd, STDERR_FILENO), STDERR_FILENO);
}

/* Puts stderr back and reads everything written meanwhile into C.out
 * (the pipe's write ends are all closed, so the read ends at EOF). */
static void capture_end(void)
{
    assert_int_equal(dup2(C.saved_fd, STDERR_FILENO), STDERR_FILENO);
    close(C.saved_fd);
    close(C.wfd);
    C.saved_fd = C.wfd = -1;
    drain_pipe();
    close(C.rfd);
    C.rfd = -1;
}

static int teardown(void **state)
{
    (void)state;
    if (C.saved_fd >= 0) { /* a test failed while capturing */
        dup2(C.saved_fd, STDERR_FILENO);
        close(C.saved_fd);
        close(C.wfd);
        close(C.rfd);
        C.saved_fd = C.wfd = C.rfd = -1;
    }
    free(C.out);
    C.out = NULL;
    C.len = C.cap = 0;
    hp_log_set_level(HP_LOG_INFO);
    hp_log_set_thread("main");
    return 0;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- levels ---- */

static void test_default_level_is_info(void **state)
{
    (void)state;
    capture_begin();
    hp_log(ERROR, "e %d", 1);
    hp_log(WARN, "w %s", "two");
    hp_log(INFO, "i");
    hp_log(DEBUG, "d"); /* dropped */
    capture_end();
    assert_string_equal(C.out, "hotpath[main] error: e 1\n"
                               "hotpath[main] warn: w two\n"
                               "hotpath[main] info: i\n");
}

static void test_level_filters(void **state)
{
    (void)state;
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int level = HP_LOG_ERROR; level <= HP_LOG_DEBUG; level++) {
        hp_log_set_level(level);
        capture_begin();
        for (int l = HP_LOG_ERROR; l <= HP_LOG_DEBUG; l++)
            hp_log_write(l, "at %d", l);
        capture_end();
        /* Exactly the levels up to the set one, in order. */
        assert_int_equal(count_lines(C.out), level + 1);
        char want[256] = "";
        for (int l = 0; l <= level; l++) {
            char line[64];
            snprintf(line, sizeof line, "hotpath[main] %s: at %d\n", names[l], l);
            strcat(want, line);
        }
        assert_string_equal(C.out, want);
    }
}

/* A level below error always passes and reads as "error"; one above
 * debug passes only when the threshold allows it and reads as "debug". */
static void test_out_of_range_levels(void **state)
{
    (void)state;
    hp_log_set_level(HP_LOG_ERROR);
    capture_begin();
    hp_log_write(-3, "below");
    hp_log_write(7, "above");
    capture_end();
    assert_string_equal(C.out, "hotpath[main] error: below\n");

    hp_log_set_level(9);
    capture_begin();
    hp_log_write(7, "above");
    capture_end();
    assert_string_equal(C.out, "hotpath[main] debug: above\n");
}

/* ---- the thread's name ---- */

static void *named_thread(void *arg)
{
    (void)arg;
    hp_log(WARN, "before naming"); /* a new thread starts as "main" */
    hp_log_set_thread("w7");
    hp_log(WARN, "from w7");
    return NULL;
}

static void test_thread_name(void **state)
{
    (void)state;
    capture_begin();
    hp_log_set_thread("w0");
    hp_log(INFO, "a");
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, named_thread, NULL), 0);
    pthread_join(th, NULL);
    hp_log(INFO, "b"); /* the other thread's name is its own */
    /* Names are copied, and cut to 15 characters. */
    char name[32] = "a-very-long-thread-name";
    hp_log_set_thread(name);
    memset(name, 'x', sizeof name - 1);
    hp_log(INFO, "c");
    hp_log_set_thread("");
    hp_log(INFO, "d");
    capture_end();
    assert_string_equal(C.out, "hotpath[w0] info: a\n"
                               "hotpath[main] warn: before naming\n"
                               "hotpath[w7] warn: from w7\n"
                               "hotpath[w0] info: b\n"
                               "hotpath[a-very-long-thr] info: c\n"
                               "hotpath[] info: d\n");
}

/* ---- long messages ---- */

static void test_long_message_truncated(void **state)
{
    (void)state;
    static const char prefix[] = "hotpath[main] warn: ";
    size_t room = LOG_LINE - 2 - (sizeof prefix - 1); /* message bytes that fit */
    char *msg = malloc(3 * LOG_LINE);
    assert_non_null(msg);
    for (size_t i = 0; i < 3 * LOG_LINE - 1; i++)
        msg[i] = (char)('a' + i % 26);
    msg[3 * LOG_LINE - 1] = '\0';

    /* Exactly fits, one byte more, and far too long: always one whole
     * line ending in a newline, never more than the buffer. */
    size_t lens[] = {room, room + 1, 3 * LOG_LINE - 1};
    for (size_t k = 0; k < 3; k++) {
        char save = msg[lens[k]];
        msg[lens[k]] = '\0';
        capture_begin();
        hp_log(WARN, "%s", msg);
        capture_end();
        msg[lens[k]] = save;
        size_t shown = lens[k] < room ? lens[k] : room;
        assert_int_equal(C.len, sizeof prefix - 1 + shown + 1);
        assert_int_equal(count_lines(C.out), 1);
        assert_memory_equal(C.out, prefix, sizeof prefix - 1);
        assert_memory_equal(C.out + sizeof prefix - 1, msg, shown);
        assert_int_equal(C.out[C.len - 1], '\n');
    }
    free(msg);

    /* An empty message still makes a line. */
    capture_begin();
    hp_log(ERROR, "%s", "");
    capture_end();
    assert_string_equal(C.out, "hotpath[main] error: \n");
}

/* ---- one write per line ---- */

enum { WRITERS = 4, LINES_EACH = 300, BODY = 600 };

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char name[8], body[BODY + 1];
    snprintf(name, sizeof name, "t%d", id);
    hp_log_set_thread(name);
    memset(body, 'a' + id, BODY);
    body[BODY] = '\0';
    for (int i = 0; i < LINES_EACH; i++)
        hp_log(INFO, "%04d %s", i, body);
    return NULL;
}

/* Reads the pipe while the writers run (it holds only 64 KiB). */
static void *reader(void *arg)
{
    (void)arg;
    drain_pipe();
    return NULL;
}

static void test_threads_never_interleave(void **state)
{
    (void)state;
    capture_begin();
    pthread_t rd, th[WRITERS];
    assert_int_equal(pthread_create(&rd, NULL, reader, NULL), 0);
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    /* The writers are done: put stderr back and close the last write end,
     * so the reader sees EOF. */
    assert_int_equal(dup2(C.saved_fd, STDERR_FILENO), STDERR_FILENO);
    close(C.saved_fd);
    close(C.wfd);
    C.saved_fd = C.wfd = -1;
    pthread_join(rd, NULL);
    close(C.rfd);
    C.rfd = -1;

    /* Every line is whole and is one of the writers' own; each writer's
     * lines arrive in its order. */
    int next[WRITERS] = {0};
    char *p = C.out;
    int lines = 0;
    while (*p) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        int id, seq;
        assert_int_equal(sscanf(p, "hotpath[t%d] info: %d ", &id, &seq), 2);
        assert_true(id >= 0 && id < WRITERS);
        assert_int_equal(seq, next[id]++);
        char want[64];
        int hl = snprintf(want, sizeof want, "hotpath[t%d] info: %04d ", id, seq);
        assert_int_equal(nl - p, hl + BODY);
        for (int i = 0; i < BODY; i++)
            assert_int_equal(p[hl + i], 'a' + id);
        p = nl + 1;
        lines++;
    }
    assert_int_equal(lines, WRITERS * LINES_EACH);
}

/* ---- hp_log_ratelimit ---- */

static void test_ratelimit(void **state)
{
    (void)state;
    uint64_t last = 0;
    assert_true(hp_log_ratelimit(&last, 5000, 1000)); /* the first report passes */
    assert_int_equal(last, 5000);
    assert_false(hp_log_ratelimit(&last, 5000, 1000));
    assert_false(hp_log_ratelimit(&last, 5999, 1000));
    assert_int_equal(last, 5000); /* a refused report does not move the stamp */
    assert_true(hp_log_ratelimit(&last, 6000, 1000)); /* exactly one interval later */
    assert_int_equal(last, 6000);
    assert_false(hp_log_ratelimit(&last, 6500, 1000));
    assert_true(hp_log_ratelimit(&last, 60000, 1000)); /* long quiet */

    /* Stamps are per condition: another stamp is not limited by this one. */
    uint64_t other = 0;
    assert_true(hp_log_ratelimit(&other, 60001, 1000));
    assert_false(hp_log_ratelimit(&last, 60001, 1000));

    /* A zero interval never limits. */
    uint64_t z = 0;
    assert_true(hp_log_ratelimit(&z, 100, 0));
    assert_true(hp_log_ratelimit(&z, 100, 0));

    /* Time 0 is stored as 1, since 0 means "never reported". */
    uint64_t t0 = 0;
    assert_true(hp_log_ratelimit(&t0, 0, 1000));
    assert_int_equal(t0, 1);
    assert_false(hp_log_ratelimit(&t0, 1, 1000));
    assert_false(hp_log_ratelimit(&t0, 1000, 1000));
    assert_true(hp_log_ratelimit(&t0, 1001, 1000));
}

/* A stamp later than `now` must not let every report through (it did,
 * when now_ms - *last_ms wrapped around). The simplest case is two reports
 * at time 0 (the first stores 1); a clock read on another source or a
 * stamp shared between callers would do the same. */
static void test_ratelimit_stamp_ahead_of_now(void **state)
{
    (void)state;
    uint64_t last = 0;
    assert_true(hp_log_ratelimit(&last, 0, 1000));
    assert_false(hp_log_ratelimit(&last, 0, 1000));
    last = 5000;
    assert_false(hp_log_ratelimit(&last, 4999, 1000));
}

int main(void)
{
#define T_(f) cmocka_unit_test_teardown(f, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_default_level_is_info),
        T_(test_level_filters),
        T_(test_out_of_range_levels),
        T_(test_thread_name),
        T_(test_long_message_truncated),
        T_(test_threads_never_interleave),
        T_(test_ratelimit),
        T_(test_ratelimit_stamp_ahead_of_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
