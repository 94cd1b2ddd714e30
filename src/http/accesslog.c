/*
 * accesslog.c - combined-format access log lines, buffered per worker and
 * written to one shared O_APPEND file in batches.
 *
 * Central data structure: hp_accesslog_t, a fixed byte buffer per worker holding
 * whole formatted lines; hp_accesslog_file_t, the shared descriptor and path.
 * Invariant: the buffer only ever grows by complete lines (a line is
 * formatted in the free tail and committed only when all of it fitted), so
 * each flush hands write(2) whole lines and O_APPEND keeps workers' lines
 * apart. The shared descriptor number never changes: rotation swaps the
 * file behind it with dup3(2), so there is nothing for writers to lock.
 */
#include "hotpath/accesslog.h"

#include "hotpath/alloc.h"
#include "hotpath/common.h"
#include "core/sys_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

struct hp_accesslog_file {
    int fd;     /* fixed for the object's lifetime; reopen dup3()s onto it */
    char *path; /* owned copy, opened again on rotation */
};

#define ALOG_OPEN_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC)
#define ALOG_OPEN_MODE 0644

static int open_path(const char *path)
{
    for (;;) {
        int fd = open(path, ALOG_OPEN_FLAGS, ALOG_OPEN_MODE);
        if (fd >= 0)
            return fd;
        if (errno != EINTR)
            return -errno;
    }
}

int hp_accesslog_file_open(hp_accesslog_file_t **out, const char *path)
{
    if (!out || !path || !*path)
        return -EINVAL;
    size_t n = strlen(path);
    hp_accesslog_file_t *f = hp_malloc(sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->path = hp_malloc(n + 1);
    if (!f->path) {
        hp_free(f);
        return -ENOMEM;
    }
    memcpy(f->path, path, n + 1);
    f->fd = open_path(path);
    if (f->fd < 0) {
        int rc = f->fd;
        hp_free(f->path);
        hp_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int hp_accesslog_file_reopen(hp_accesslog_file_t *f)
{
    if (!f)
        return -EINVAL;
    int nfd = open_path(f->path);
    if (nfd < 0)
        return nfd;
    /* dup3 closes the old file and installs the new one under f->fd in one
     * step of the fd table: a writer that loaded f->fd either gets the old
     * file (the kernel holds a reference for the duration of its write) or
     * the new one, never a closed or reused descriptor. Closing the old fd
     * ourselves after swapping a pointer would leave a window where its
     * number is reused by an accept() and log lines go to a client. */
    int rc;
    for (;;) {
        rc = dup3(nfd, f->fd, O_CLOEXEC);
        if (rc >= 0)
            break;
        /* EBUSY: Linux's race with a concurrent open() on the target slot. */
        if (errno != EINTR && errno != EBUSY) {
            rc = -errno;
            break;
        }
    }
    close(nfd);
    return rc < 0 ? rc : 0;
}

int hp_accesslog_file_fd(const hp_accesslog_file_t *f)
{
    return f ? f->fd : -EINVAL;
}

void hp_accesslog_file_close(hp_accesslog_file_t *f)
{
    if (!f)
        return;
    close(f->fd);
    hp_free(f->path);
    hp_free(f);
}

/* ---- the per-worker buffer ---------------------------------------------- */

int hp_accesslog_init(hp_accesslog_t *l, hp_accesslog_file_t *f, size_t bufsize)
{
    if (!l || !f)
        return -EINVAL;
    if (bufsize == 0)
        bufsize = HP_ACCESSLOG_BUFSIZE;
    if (bufsize < HP_ACCESSLOG_MIN_BUFSIZE)
        return -EINVAL;
    char *buf = hp_malloc(bufsize);
    if (!buf)
        return -ENOMEM;
    *l = (hp_accesslog_t){.buf = buf, .cap = bufsize, .file = f};
    return 0;
}

void hp_accesslog_destroy(hp_accesslog_t *l)
{
    if (!l || !l->buf)
        return;
    /* A short write keeps the rest, so retry while the kernel makes
     * progress; errors are counted by the flush and there is no one left
     * to report them to. */
    while (l->len > 0) {
        size_t before = l->len;
        if (hp_accesslog_flush(l) < 0 || l->len >= before)
            break;
    }
    hp_free(l->buf);
    l->buf = NULL;
    l->len = l->cap = 0;
}

uint64_t hp_accesslog_dropped(const hp_accesslog_t *l)
{
    return l->dropped;
}

int hp_accesslog_validate(const hp_accesslog_t *l)
{
    if (!l || !l->buf || !l->file || l->len > l->cap || l->cap < HP_ACCESSLOG_MIN_BUFSIZE)
        return -EINVAL;
    if (l->len > 0 && l->buf[l->len - 1] != '\n')
        return -EINVAL;
    return 0;
}

HP_COLD static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t c = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
        c++;
    return c;
}

int hp_accesslog_flush(hp_accesslog_t *l)
{
    if (l->len == 0)
        return 0;
    /* writev with one iovec is write(2); going through hp_sys lets tests
     * make it short, EAGAIN or failing. */
    struct iovec iov = {.iov_base = l->buf, .iov_len = l->len};
    ssize_t n = hp_sys_writev(l->file->fd, &iov, 1);
    if (HP_LIKELY(n >= 0)) {
        size_t w = (size_t)n;
        if (HP_UNLIKELY(w < l->len))
            memmove(l->buf, l->buf + w, l->len - w);
        l->len -= w;
        return 0;
    }
    if (n == -EAGAIN)
        return -EAGAIN;
    /* Keeping lines after a hard error would only fill the buffer and stall
     * every later line; drop them and let the counter tell the operator. */
    l->dropped += count_lines(l->buf, l->len);
    l->len = 0;
    return (int)n;
}

/* ---- formatting ---------------------------------------------------------- */

/* Bytes nginx escapes in logged header values: '"' and '\\' so fields stay
 * delimited, controls so a client cannot start a new line, and bytes >= 0x7f
 * so the log stays ASCII. */
static const uint8_t needs_esc[256] = {
    [0x00 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x7f ... 0xff] = 1,
};

/* A cursor into the free tail of the buffer. Every append checks room; on
 * overflow it stops writing and `p` is set to NULL, which later appends
 * test once. Checks are per run of bytes, not per byte. */
struct out {
    char *p;
    char *end;
};

static inline void put(struct out *o, const char *s, size_t n)
{
    if (HP_UNLIKELY(!o->p || (size_t)(o->end - o->p) < n)) {
        o->p = NULL;
        return;
    }
    memcpy(o->p, s, n);
    o->p += n;
}

static inline void put_c(struct out *o, char c)
{
    if (HP_UNLIKELY(!o->p || o->p == o->end)) {
        o->p = NULL;
        return;
    }
    *o->p++ = c;
}

static void put_u64(struct out *o, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, tmp + i, sizeof(tmp) - i);
}

static void put_int(struct out *o, int v)
{
    if (v < 0) {
        put_c(o, '-');
        put_u64(o, (uint64_t)0 - (uint64_t)(int64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

/* Copies s[0..n) with nginx's escaping: runs of plain bytes go in one
 * memcpy, each special byte becomes \xHH. */
static void put_esc(struct out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const uint8_t *b = (const uint8_t *)s, *e = b + n;
    while (b < e) {
        const uint8_t *run = b;
        while (b < e && !needs_esc[*b])
            b++;
        put(o, (const char *)run, (size_t)(b - run));
        if (b == e)
            break;
        char x[4] = {'\\', 'x', hex[*b >> 4], hex[*b & 15]};
        put(o, x, 4);
        b++;
    }
}

/* A quoted header value: "-" when absent, nginx-style. */
static void put_quoted(struct out *o, const char *s, size_t n)
{
    put_c(o, '"');
    if (s && n)
        put_esc(o, s, n);
    else
        put_c(o, '-');
    put_c(o, '"');
}

/* Formats the whole line into the buffer's free tail. Returns its length,
 * or 0 when it does not fit (nothing is committed either way). */
static size_t format_line(hp_accesslog_t *l, const char *addr, const char *time_str,
                          const char *method, size_t mlen, const char *target, size_t tlen,
                          int minor, int status, uint64_t bytes, const char *referer, size_t rlen,
                          const char *agent, size_t alen)
{
    struct out o = {.p = l->buf + l->len, .end = l->buf + l->cap};
    char *start = o.p;
    if (addr && *addr)
        put(&o, addr, strlen(addr));
    else
        put_c(&o, '-');
    put(&o, " - - [", 6);
    if (time_str)
        put(&o, time_str, strlen(time_str));
    else
        put_c(&o, '-');
    put(&o, "] \"", 3);
    if ((method && mlen) || (target && tlen)) {
        if (method)
            put_esc(&o, method, mlen);
        put_c(&o, ' ');
        if (target)
            put_esc(&o, target, tlen);
        if (minor >= 0) {
            put(&o, " HTTP/1.", 8);
            put_int(&o, minor);
        }
    } else {
        put_c(&o, '-');
    }
    put(&o, "\" ", 2);
    put_int(&o, status);
    put_c(&o, ' ');
    put_u64(&o, bytes);
    put_c(&o, ' ');
    put_quoted(&o, referer, rlen);
    put_c(&o, ' ');
    put_quoted(&o, agent, alen);
    put_c(&o, '\n');
    return o.p ? (size_t)(o.p - start) : 0;
}

void hp_accesslog_line(hp_accesslog_t *l, const char *addr, const char *time_str, const char *method,
                  size_t mlen, const char *target, size_t tlen, int minor, int status,
                  uint64_t bytes, const char *referer, size_t rlen, const char *agent,
                  size_t alen)
{
    size_t n = format_line(l, addr, time_str, method, mlen, target, tlen, minor, status, bytes,
                           referer, rlen, agent, alen);
    if (HP_LIKELY(n)) {
        l->len += n;
        return;
    }
    /* The buffer is nearly full: write it out and try once more in the
     * emptied buffer. A short write keeps a tail, so flush while the kernel
     * makes progress. If the line still does not fit (longer than the whole
     * buffer, or the file refuses data), drop it: blocking the worker on
     * the log is worse than losing a line, and the counter says so. */
    while (l->len > 0) {
        size_t before = l->len;
        if (hp_accesslog_flush(l) < 0 || l->len >= before)
            break;
    }
    n = format_line(l, addr, time_str, method, mlen, target, tlen, minor, status, bytes, referer,
                    rlen, agent, alen);
    if (n)
        l->len += n;
    else
        l->dropped++;
}

/* ---- time ---------------------------------------------------------------- */

size_t hp_accesslog_time(char out[32], int64_t sec)
{
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    /* 0000-01-01T00:00:00 and 9999-12-31T23:59:59: the field is fixed-width. */
    const int64_t lo = -62167219200LL, hi = 253402300799LL;
    if (sec < lo)
        sec = lo;
    if (sec > hi)
        sec = hi;
    int64_t days = sec / 86400, sod = sec % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    /* Days since 1970-01-01 to a civil date, counting in 400-year eras that
     * start on 0000-03-01 so the leap day falls at the end of each year. */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int y = (int)(yoe + era * 400 + (m <= 2));
    int hh = (int)(sod / 3600), mm = (int)(sod / 60 % 60), ss = (int)(sod % 60);

    char *p = out;
    *p++ = (char)('0' + d / 10);
    *p++ = (char)('0' + d % 10);
    *p++ = '/';
    memcpy(p, mon[m - 1], 3);
    p += 3;
    *p++ = '/';
    *p++ = (char)('0' + y / 1000);
    *p++ = (char)('0' + y / 100 % 10);
    *p++ = (char)('0' + y / 10 % 10);
    *p++ = (char)('0' + y % 10);
    *p++ = ':';
    *p++ = (char)('0' + hh / 10);
    *p++ = (char)('0' + hh % 10);
    *p++ = ':';
    *p++ = (char)('0' + mm / 10);
    *p++ = (char)('0' + mm % 10);
    *p++ = ':';
    *p++ = (char)('0' + ss / 10);
    *p++ = (char)('0' + ss % 10);
    memcpy(p, " +0000", 7);
    return HP_ACCESSLOG_TIME_LEN;
}
