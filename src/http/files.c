/*
 * files.c - static files: the request target to a file beneath the root
 * of its location, through the worker's open-file cache, with validators,
 * preconditions, ranges, precompressed siblings and on-the-fly
 * compression.
 *
 * Central structure: file_src_t, the one coding of a cached file a
 * response sends, as a descriptor (sendfile) or as memory (a small file,
 * or a body compressed on the fly).
 *
 * Invariant: every path out of http_serve_file releases the request's
 * reference to the cache entry; each queued part holds one more, released
 * once sent or dropped, so an entry evicted meanwhile stays valid.
 */
#include <stdio.h>
#include <string.h>

#include "accept_int.h"
#include "hotpath/http_cond.h"
#include "fcache_int.h"
#include "range_int.h"
#include "resp_writer_int.h"
#include "static_int.h"
#include "server_int.h"

/* A request header's value by (lower-case) name, or NULL. */
static const char *req_header(hp_conn_t *c, http_state_t *st, const char *name, size_t nlen,
                              size_t *len)
{
    const char *base = hp_conn_data(c);
    int i = hp_http_find_field(&st->req, st->fields, base, name, nlen);
    if (i < 0)
        return NULL;
    *len = st->fields[i].value.len;
    return base + st->fields[i].value.off;
}

#define REQ_HEADER(c, st, lit, lenp) req_header(c, st, lit, sizeof(lit) - 1, lenp)

/* multipart/byteranges boundary: fixed, long and unlikely in any file
 * (RFC 9110 §14.6 lets the server choose it). */
#define BYTERANGES_BOUNDARY "hotpath-byteranges-7f3c9a51e2d84b06"

/* What a static response sends: one coding of a cached file, as a
 * descriptor (the file or a precompressed sibling) or as memory (compressed
 * on the fly). The request holds one reference to the entry; every queued
 * part takes one more, given back once sent. */
typedef struct file_src {
    hp_fcache_entry_t *e;
    int fd;                   /* -1: `mem` */
    const char *mem;
    uint64_t size;
    int64_t mtime_sec;
    const char *etag;
    unsigned enc;             /* HP_ENC_* sent */
    bool ranges;              /* a file's bytes (not compressed on the fly): Range applies */
} file_src_t;

static int src_send(hp_conn_t *c, const file_src_t *f, uint64_t off, uint64_t len)
{
    hp_fcache_ref(f->e);
    if (f->fd >= 0)
        return hp_conn_write_file_cb(c, f->fd, off, len, hp_fcache_release_cb, f->e);
    return hp_conn_write_ref_cb(c, f->mem + off, len, hp_fcache_release_cb, f->e);
}

/* Several ranges as multipart/byteranges: each part's head is copied into
 * the queue, each part's bytes go out from the shared entry. */
static void serve_ranges(hp_conn_t *c, http_state_t *st, const file_src_t *f, const char *mime,
                         const hp_range_t *r, int n, const char *validators)
{
    char part[HP_RANGE_MAX][192];
    size_t plen[HP_RANGE_MAX];
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        plen[i] = (size_t)snprintf(part[i], sizeof part[i],
                                   "\r\n--" BYTERANGES_BOUNDARY "\r\nContent-Type: %s\r\n"
                                   "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
                                   mime, (unsigned long long)r[i].first,
                                   (unsigned long long)r[i].last, (unsigned long long)f->size);
        total += plen[i] + (r[i].last - r[i].first + 1);
    }
    static const char tail[] = "\r\n--" BYTERANGES_BOUNDARY "--\r\n";
    total += sizeof tail - 1;
    http_count_response(c, 206, st->head_only ? 0 : total);
    if (hp_resp_writer_head(c, http_date(c), 206,
                           "multipart/byteranges; boundary=" BYTERANGES_BOUNDARY, total,
                           validators, st->resp_flags) < 0) {
        hp_conn_close(c);
        return;
    }
    if (st->head_only)
        return;
    for (int i = 0; i < n; i++)
        if (hp_conn_write(c, part[i], (uint32_t)plen[i]) < 0 ||
            src_send(c, f, r[i].first, r[i].last - r[i].first + 1) < 0) {
            hp_conn_close(c);
            return;
        }
    if (hp_conn_write(c, tail, sizeof tail - 1) < 0)
        hp_conn_close(c);
}

/* The location with the longest prefix of the decoded path, or NULL for
 * the top-level root. Matching the decoded path means an encoded
 * character cannot steer a request past its location. */
static const hp_http_location_t *find_location(const hp_http_config_t *cfg, char *scratch,
                                               size_t cap, const char *target, uint32_t len)
{
    if (cfg->nlocations == 0)
        return NULL;
    int n = hp_static_decode_path(target, len, scratch, cap);
    if (n < 0)
        return NULL; /* the resolve answers 400/414 */
    const hp_http_location_t *best = NULL;
    for (uint32_t i = 0; i < cfg->nlocations; i++) {
        const hp_http_location_t *l = &cfg->locations[i];
        if (l->prefix_len <= (uint32_t)n && (!best || l->prefix_len > best->prefix_len) &&
            memcmp(scratch, l->prefix, l->prefix_len) == 0)
            best = l;
    }
    return best;
}

/* Bytes a path segment of a Location may hold as they are (RFC 3986
 * pchar without '%'); any other byte of a decoded segment is encoded. */
static const uint8_t loc_plain[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
    ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1,
    ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1, [':'] = 1, ['@'] = 1,
};

/* The header line "Location: ...\r\n" of the redirect from a directory
 * named without its trailing '/' (target[0..len), checked origin-form
 * path and query) into out[0..cap), with scratch[0..scap) as work space.
 * Returns its length, or -400/-414.
 *
 * The path is the one the file was found by: decoded, without dot or
 * empty segments, encoded again, with the '/' added; the query follows as
 * received. Echoing the target instead would send "//assets" on to
 * "//assets/", which a browser reads as the host "assets"; a canonical
 * path starts with exactly one '/' and so always stays on this server,
 * whatever leading slashes, dot segments or absolute-form the request
 * used. */
static int dir_location(char *out, size_t cap, char *scratch, size_t scap, const char *target,
                        uint32_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *q = memchr(target, '?', len);
    uint32_t plen = q ? (uint32_t)(q - target) : len;
    int n = hp_static_decode_path(target, plen, scratch, scap);
    if (n < 0)
        return n;
    bool dir;
    n = hp_static_normalize(scratch, (size_t)n, &dir);
    if (n < 0)
        return -400; /* not reached: the file was found by this path */
    size_t o = (size_t)snprintf(out, cap, "Location: /");
    for (int i = 0; i < n; i++) {
        uint8_t b = (uint8_t)scratch[i];
        if (cap - o < 4)
            return -414;
        if (loc_plain[b] || b == '/') {
            out[o++] = (char)b;
        } else {
            out[o++] = '%';
            out[o++] = hex[b >> 4];
            out[o++] = hex[b & 15];
        }
    }
    int w = snprintf(out + o, cap - o, "%s%.*s\r\n", n ? "/" : "", (int)(len - plen), target + plen);
    if (w < 0 || (size_t)w >= cap - o)
        return -414;
    return (int)(o + (size_t)w);
}

/* Picks what to send of entry e: a precompressed sibling the client
 * accepts, else, under a location that compresses, the file compressed on
 * the fly, else the file. */
static void pick_source(hp_http_worker_t *hw, const hp_http_location_t *loc,
                        hp_fcache_entry_t *e, unsigned accept, file_src_t *f)
{
    unsigned enc;
    int v = hp_fcache_select(e, accept, &enc);
    *f = (file_src_t){.e = e, .fd = e->v[v].fd, .mem = NULL, .size = e->v[v].size,
                      .mtime_sec = e->v[v].mtime_sec, .etag = e->v[v].etag, .enc = enc,
                      .ranges = true};
    const hp_http_config_t *cfg = hw->cfg;
    if (enc != HP_ENC_IDENTITY || !loc || !loc->compress || !cfg->compress_level)
        goto plain;
    static const unsigned order[2][2] = {{HP_ENC_BR, HP_ENC_GZIP}, {HP_ENC_GZIP, HP_ENC_BR}};
    const unsigned *try = order[(accept & HP_STATIC_GZIP_FIRST) ? 1 : 0];
    for (int i = 0; i < 2; i++) {
        if (!(accept & try[i]))
            continue;
        const void *buf;
        uint64_t len;
        if (hp_fcache_compressed(hw->fcache, e, try[i], cfg->compress_level, cfg->compress_min,
                                 &buf, &len, hw->etag) == 0) {
            f->fd = -1;
            f->mem = buf;
            f->size = len;
            f->etag = hw->etag;
            f->enc = try[i];
            f->ranges = false;
            return;
        }
    }
plain:
    /* A small file goes from memory, in the same writev as its head. */
    if (v == HP_FCACHE_V_IDENTITY && f->size <= HP_FCACHE_MEM_MAX) {
        const void *mem;
        if (hp_fcache_body(hw->fcache, e, &mem) == 0) {
            f->fd = -1;
            f->mem = mem;
        }
    }
}

/* Validators: each coding has its own strong ETag; Last-Modified is the
 * mtime of what is sent (the original for on-the-fly bodies). Written
 * into out[len] as header lines, with Vary and the location's
 * Cache-Control. */
static void write_validators(char *out, size_t len, const file_src_t *f,
                             const hp_http_location_t *loc)
{
    char lastmod[HP_CLOCK_DATE_LEN + 1];
    hp_clock_date_format(f->mtime_sec, lastmod);
    const char *cc = loc ? loc->cache_control : NULL;
    snprintf(out, len, "ETag: %s\r\nLast-Modified: %s\r\n%sVary: Accept-Encoding\r\n%s%s%s",
             f->etag, lastmod,
             f->enc == HP_ENC_BR     ? "Content-Encoding: br\r\n"
             : f->enc == HP_ENC_GZIP ? "Content-Encoding: gzip\r\n"
                                     : "",
             cc ? "Cache-Control: " : "", cc ? cc : "", cc ? "\r\n" : "");
}

/* Preconditions (RFC 9110 §13): answers 304 (with the validators, no body)
 * or 412 and returns true, or returns false when the request goes on. */
static bool answer_conditional(hp_conn_t *c, http_state_t *st, const file_src_t *f,
                               const char *validators)
{
    size_t im = 0, inm = 0, ims = 0, ius = 0;
    const char *if_match = REQ_HEADER(c, st, "if-match", &im);
    const char *if_none = REQ_HEADER(c, st, "if-none-match", &inm);
    const char *if_mod = REQ_HEADER(c, st, "if-modified-since", &ims);
    const char *if_unmod = REQ_HEADER(c, st, "if-unmodified-since", &ius);
    if (!if_match && !if_none && !if_mod && !if_unmod)
        return false;
    int cond = hp_cond_evaluate(if_match, im, if_none, inm, if_mod, ims, if_unmod, ius, f->etag,
                                strlen(f->etag), f->mtime_sec);
    if (cond == 200)
        return false;
    if (cond == 304) {
        http_count_response(c, 304, 0);
        hp_resp_writer_head(c, http_date(c), 304, NULL, 0, validators, st->resp_flags);
    } else {
        http_respond_status(c, st, cond, NULL);
    }
    return true;
}

/* Ranges (GET only, while If-Range still holds, and on a file or a
 * precompressed sibling: a body compressed on the fly goes whole):
 * answers 206 (one range, or multipart) or 416 and returns true, or
 * returns false for the whole file. */
static bool answer_range(hp_conn_t *c, http_state_t *st, const file_src_t *f,
                         const hp_fcache_entry_t *e, const char *validators)
{
    size_t rlen = 0, irl = 0;
    const char *range = st->req.method_id == HP_METHOD_GET && f->ranges
                            ? REQ_HEADER(c, st, "range", &rlen)
                            : NULL;
    if (!range)
        return false;
    const char *if_range = REQ_HEADER(c, st, "if-range", &irl);
    if (!hp_cond_if_range(if_range, irl, f->etag, strlen(f->etag), f->mtime_sec,
                          hp_clock_real_sec()))
        return false;
    hp_range_t ranges[HP_RANGE_MAX];
    int n = hp_range_parse(range, rlen, f->size, ranges, HP_RANGE_MAX);
    if (n == -416) {
        char extra[64];
        snprintf(extra, sizeof extra, "Content-Range: bytes */%llu\r\n",
                 (unsigned long long)f->size);
        http_respond_status(c, st, 416, extra);
        return true;
    }
    if (n > 1) {
        serve_ranges(c, st, f, e->mime, ranges, n, validators);
        return true;
    }
    if (n != 1)
        return false;
    char extra[1400];
    snprintf(extra, sizeof extra, "%sContent-Range: bytes %llu-%llu/%llu\r\n", validators,
             (unsigned long long)ranges[0].first, (unsigned long long)ranges[0].last,
             (unsigned long long)f->size);
    uint64_t part = ranges[0].last - ranges[0].first + 1;
    http_count_response(c, 206, st->head_only ? 0 : part);
    if (hp_resp_writer_head(c, http_date(c), 206, e->mime, part, extra, st->resp_flags) < 0 ||
        (!st->head_only && src_send(c, f, ranges[0].first, part) < 0))
        hp_conn_close(c);
    return true;
}

void http_serve_file(hp_conn_t *c, http_state_t *st, const char *target, uint32_t len)
{
    hp_http_worker_t *hw = http_worker(c);
    const hp_http_location_t *loc = find_location(hw->cfg, hw->path, sizeof hw->path, target, len);
    int root_fd = loc ? loc->root_fd : hw->cfg->root_fd;
    if (root_fd < 0) {
        http_respond_status(c, st, 404, NULL);
        return;
    }
    size_t aelen = 0;
    const char *ae = REQ_HEADER(c, st, "accept-encoding", &aelen);
    unsigned accept = hp_static_accept(ae, aelen);
    if (accept == 0) {
        http_respond_status(c, st, 406, NULL); /* even identity;q=0 */
        return;
    }
    hp_fcache_entry_t *e;
    int r = hp_fcache_get(hw->fcache, root_fd, hw->cfg->mime, target, len, hp_conn_now(c),
                          hw->path, sizeof hw->path, &e);
    if (r == -301) {
        char extra[HP_RESP_WRITER_INLINE_BODY];
        int n = dir_location(extra, sizeof extra, hw->path, sizeof hw->path, target, len);
        http_respond_status(c, st, n < 0 ? -n : 301, n < 0 ? NULL : extra);
        return;
    }
    if (r < 0) {
        http_respond_status(c, st, -r, NULL);
        return;
    }
    file_src_t f;
    pick_source(hw, loc, e, accept, &f);

    char validators[1280];
    write_validators(validators, sizeof validators, &f, loc);
    if (!answer_conditional(c, st, &f, validators) && !answer_range(c, st, &f, e, validators)) {
        char extra[1320];
        snprintf(extra, sizeof extra, "%s%s", validators,
                 f.ranges ? "Accept-Ranges: bytes\r\n" : "");
        http_count_response(c, 200, st->head_only ? 0 : f.size);
        if (hp_resp_writer_head(c, http_date(c), 200, e->mime, f.size, extra, st->resp_flags) < 0 ||
            (!st->head_only && f.size && src_send(c, &f, 0, f.size) < 0))
            hp_conn_close(c);
    }
    hp_fcache_release(e);
    http_cache_publish(hw);
}
