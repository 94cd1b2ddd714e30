/*
 * accesslog.h - the access log: combined-format lines, buffered per worker,
 * written in batches to one shared file.
 *
 * Two objects:
 *   - hp_accesslog_file_t: the open log file, shared by all workers. Opened with
 *     O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, mode 0644. Its descriptor number
 *     never changes for the object's lifetime: reopening (log rotation) puts
 *     the new file under the same number with dup3(2), which the kernel does
 *     atomically, so writers never load a stale or reused descriptor.
 *   - hp_accesslog_t: one per worker, a fixed buffer of whole lines. Appending a
 *     line takes no lock, makes no syscall and allocates nothing; a flush is
 *     one write(2) (through hp_sys_writev, so tests can inject faults).
 *
 * Lines from different workers never interleave mid-line: the file is in
 * O_APPEND mode and every flush hands the kernel whole lines in one call,
 * which a local filesystem appends atomically. (The one exception is a short
 * write, e.g. a full disk: the remainder starts mid-line and is written by
 * the next flush.)
 *
 * The line format is nginx's "combined":
 *   127.0.0.1 - - [26/Nov/2026:00:41:16 +0000] "GET /x HTTP/1.1" 200 13 "ref" "agent"
 * The request line, referer and user agent are escaped like nginx does:
 * '"', '\\' and bytes < 0x20 or >= 0x7f become \xHH (upper-case hex), so a
 * client cannot forge a line or a field.
 */
#ifndef HOTPATH_ACCESSLOG_H
#define HOTPATH_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

/* Length of the time field produced by hp_accesslog_time, without the NUL:
 * "26/Nov/2026:00:41:16 +0000". */
#define HP_ACCESSLOG_TIME_LEN 26

/* The default per-worker buffer size, and the smallest accepted one. */
#define HP_ACCESSLOG_BUFSIZE (64 * 1024)
#define HP_ACCESSLOG_MIN_BUFSIZE 256

typedef struct hp_accesslog_file hp_accesslog_file_t;

/* Opens (creating if needed) the log file at `path` (borrowed; copied).
 * Returns 0 and sets *out (owned by the caller, released with
 * hp_accesslog_file_close), or -errno (-ENOMEM, or the open(2) error); *out is
 * untouched on failure. */
HP_EXPORT int hp_accesslog_file_open(hp_accesslog_file_t **out, const char *path);

/* Log rotation (SIGUSR1, run from one thread; other threads may be
 * flushing): opens the path again and makes the shared descriptor refer to
 * the new file in one atomic dup3(2). A write racing with it lands wholly in
 * either the old or the new file. Returns 0, or -errno and keeps the old
 * file open and in use. Not to be called concurrently with itself or
 * hp_accesslog_file_close. */
HP_EXPORT int hp_accesslog_file_reopen(hp_accesslog_file_t *f);

/* The descriptor writers use (stable across reopen). For diagnostics. */
HP_EXPORT int hp_accesslog_file_fd(const hp_accesslog_file_t *f);

/* Closes the file and frees `f`. Every hp_accesslog_t using it must have been
 * destroyed first. NULL does nothing. */
HP_EXPORT void hp_accesslog_file_close(hp_accesslog_file_t *f);

/* One worker's log buffer. Embed it in the worker; fields are private. */
typedef struct hp_accesslog {
    char *buf;            /* owned: `cap` bytes from hp_malloc */
    size_t len;           /* bytes buffered; buf[0..len) ends with '\n' unless
                           * a short write left a partial line at the front */
    size_t cap;
    hp_accesslog_file_t *file; /* borrowed: outlives this buffer */
    uint64_t dropped;     /* lines lost to write errors or that cannot fit */
} hp_accesslog_t;

/* Prepares `l` to buffer lines for `f` (borrowed; must outlive `l`) in a
 * buffer of `bufsize` bytes (0 means HP_ACCESSLOG_BUFSIZE). Returns 0, -EINVAL
 * (NULL argument, or bufsize below HP_ACCESSLOG_MIN_BUFSIZE) or -ENOMEM; on
 * failure `l` holds nothing and needs no destroy. */
HP_EXPORT int hp_accesslog_init(hp_accesslog_t *l, hp_accesslog_file_t *f, size_t bufsize);

/* Flushes what is buffered (errors are counted, not reported) and frees the
 * buffer. `l` may be initialised again afterwards. */
HP_EXPORT void hp_accesslog_destroy(hp_accesslog_t *l);

/* Formats `sec` (Unix seconds, UTC) as "26/Nov/2026:00:41:16 +0000" into
 * `out` with a NUL, and returns HP_ACCESSLOG_TIME_LEN. Years outside 0..9999 are
 * clamped. Reads no clock and takes no lock (unlike gmtime_r, which takes
 * glibc's timezone lock), so a worker calls it once per second on its cached
 * clock and passes the string to every hp_accesslog_line of that second: that is
 * the cheaper API, since formatting a date costs more than the whole rest of
 * a typical line. */
HP_EXPORT size_t hp_accesslog_time(char out[32], int64_t sec);

/* Appends one combined-format line. All pointers are borrowed and need no
 * NUL except `addr` and `time_str`:
 *   addr       the client address as text ("127.0.0.1", "::1"); NULL -> "-"
 *   time_str   a string from hp_accesslog_time (NUL-terminated); NULL -> "-"
 *   method/mlen, target/tlen  the request line's parts; both empty/NULL
 *              (a request that never got a request line) logs "-"
 *   minor      1 -> "HTTP/1.1", 0 -> "HTTP/1.0"; negative omits the version
 *   status, bytes  the response status and the body bytes sent
 *   referer/rlen, agent/alen  header values; NULL or empty -> "-"
 * Never allocates and makes no syscall unless the line does not fit in
 * what is left of the buffer: then the buffer is flushed first. A line that
 * still does not fit (longer than the whole buffer, or the flush could not
 * make room) is dropped and counted in hp_accesslog_dropped. */
HP_EXPORT void hp_accesslog_line(hp_accesslog_t *l, const char *addr, const char *time_str,
                                 const char *method, size_t mlen, const char *target, size_t tlen,
                                 int minor, int status, uint64_t bytes, const char *referer,
                                 size_t rlen, const char *agent, size_t alen);

/* Writes what is buffered with one write(2) (EINTR retried). Call it at
 * least once per second (the loop's tick) so lines reach the file promptly.
 * Returns 0 when the buffer is empty afterwards or was already; after a
 * short write the rest stays buffered and 0 is returned. -EAGAIN keeps the
 * data; any other error (-ENOSPC, -EIO, -EBADF ...) drops the buffered lines,
 * counts them in hp_accesslog_dropped and is returned. */
HP_EXPORT int hp_accesslog_flush(hp_accesslog_t *l);

/* Lines lost so far (write errors, lines too long for the buffer). */
HP_EXPORT uint64_t hp_accesslog_dropped(const hp_accesslog_t *l);

/* Checks the buffer's invariants (len <= cap, a buffer allocated). Returns
 * 0 or -EINVAL. For tests. */
HP_EXPORT int hp_accesslog_validate(const hp_accesslog_t *l);

#endif
