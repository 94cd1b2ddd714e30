/*
 * mime.c - Content-Type by extension: the built-in web types, merged with
 * an optional mime.types file read once at start-up.
 *
 * Central data structure: one hp_malloc block holding the header, an
 * open-addressing hash table of 16-byte slots (linear probing, at most half
 * full) and an arena of strings. A slot names a lower-cased extension and a
 * NUL-terminated type, both by offset into the arena.
 *
 * Invariants: the table is never written after hp_mime_parse returns, so
 * workers share it without locks; at least one slot is empty, so every
 * probe ends; an extension appears in at most one slot (a later line
 * overwrites the earlier slot's type rather than adding a second slot).
 */
#include "mime_int.h"

#include "hotpath/alloc.h"
#include "hotpath/common.h"
#include "tchar_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct slot {
    uint32_t hash;     /* FNV-1a of the lower-cased extension */
    uint32_t ext_len;  /* 0: empty slot */
    uint32_t ext_off;  /* arena offset of the extension (not NUL-terminated) */
    uint32_t type_off; /* arena offset of the NUL-terminated type */
} slot_t;

struct hp_mime {
    uint32_t mask;      /* slot count - 1; the count is a power of two */
    uint32_t count;     /* occupied slots */
    uint32_t ext_max;   /* longest stored extension: bounds the lookup scan */
    uint32_t arena_len; /* bytes used in the arena */
    slot_t *slots;      /* inside this block, after the header */
    char *arena;        /* inside this block, after the slots */
};

static const char mime_octet[] = "application/octet-stream";
static const char charset_utf8[] = "; charset=utf-8";

/* ---- byte classes --------------------------------------------------------- */

/* Type halves and extensions must be tokens (tchar_tbl): bytes outside it
 * (CR, LF, quotes, controls, non-ASCII) would at best never match and at
 * worst end up inside a response header, so their line is refused. */

/* ASCII lower-casing without a branch or the locale. */
static inline uint8_t lower(uint8_t c)
{
    return (uint8_t)(c | (((unsigned)(c - 'A') < 26u) << 5));
}

/* Lower-cases ext[0..n) into low and returns its FNV-1a hash. */
static inline uint32_t hash_lower(const char *ext, size_t n, char *low)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = lower((uint8_t)ext[i]);
        low[i] = (char)c;
        h = (h ^ c) * 16777619u;
    }
    return h;
}

/* ---- built-in types ------------------------------------------------------- */

/* The longest built-in extension ("woff2"). */
#define BUILTIN_EXT_MAX 5

/* An extension is packed into one integer: its length in the top byte, then
 * its lower-cased bytes. The lookup is then one switch on a 64-bit key,
 * which the compiler turns into a short binary search, instead of a string
 * comparison per entry. The length byte keeps keys unique even for bytes
 * that fold to the same value. */
#define K2(a, b) ((2ull << 40) | ((uint64_t)(a) << 8) | (uint64_t)(b))
#define K3(a, b, c) ((3ull << 40) | ((uint64_t)(a) << 16) | ((uint64_t)(b) << 8) | (uint64_t)(c))
#define K4(a, b, c, d)                                                                             \
    ((4ull << 40) | ((uint64_t)(a) << 24) | ((uint64_t)(b) << 16) | ((uint64_t)(c) << 8) |         \
     (uint64_t)(d))
#define K5(a, b, c, d, e)                                                                          \
    ((5ull << 40) | ((uint64_t)(a) << 32) | ((uint64_t)(b) << 24) | ((uint64_t)(c) << 16) |        \
     ((uint64_t)(d) << 8) | (uint64_t)(e))

static const char *builtin(const char *ext, size_t n)
{
    if (n > BUILTIN_EXT_MAX)
        return mime_octet;
    uint64_t key = 0;
    for (size_t k = 0; k < n; k++)
        key = key << 8 | lower((uint8_t)ext[k]);
    key |= (uint64_t)n << 40;

    switch (key) {
    case K4('h', 't', 'm', 'l'):
    case K3('h', 't', 'm'):
        return "text/html; charset=utf-8";
    case K3('c', 's', 's'):
        return "text/css; charset=utf-8";
    case K2('j', 's'):
    case K3('m', 'j', 's'):
        return "text/javascript; charset=utf-8";
    case K4('j', 's', 'o', 'n'):
    case K3('m', 'a', 'p'):
        return "application/json";
    case K3('t', 'x', 't'):
        return "text/plain; charset=utf-8";
    case K2('m', 'd'):
        return "text/markdown; charset=utf-8";
    case K3('x', 'm', 'l'):
        return "application/xml";
    case K3('s', 'v', 'g'):
        return "image/svg+xml";
    case K3('p', 'n', 'g'):
        return "image/png";
    case K3('j', 'p', 'g'):
    case K4('j', 'p', 'e', 'g'):
        return "image/jpeg";
    case K3('g', 'i', 'f'):
        return "image/gif";
    case K4('w', 'e', 'b', 'p'):
        return "image/webp";
    case K4('a', 'v', 'i', 'f'):
        return "image/avif";
    case K3('i', 'c', 'o'):
        return "image/x-icon";
    case K4('w', 'a', 's', 'm'):
        return "application/wasm";
    case K3('p', 'd', 'f'):
        return "application/pdf";
    case K4('w', 'o', 'f', 'f'):
        return "font/woff";
    case K5('w', 'o', 'f', 'f', '2'):
        return "font/woff2";
    case K3('t', 't', 'f'):
        return "font/ttf";
    case K3('o', 't', 'f'):
        return "font/otf";
    case K3('m', 'p', '4'):
        return "video/mp4";
    case K4('w', 'e', 'b', 'm'):
        return "video/webm";
    case K3('m', 'p', '3'):
        return "audio/mpeg";
    case K3('o', 'g', 'g'):
        return "audio/ogg";
    case K2('g', 'z'):
        return "application/gzip";
    case K3('z', 'i', 'p'):
        return "application/zip";
    default:
        return mime_octet;
    }
}

/* ---- lookup --------------------------------------------------------------- */

static const char *table_find(const hp_mime_t *t, const char *ext, size_t n)
{
    char low[HP_MIME_EXT_MAX];
    uint32_t h = hash_lower(ext, n, low);
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const slot_t *s = &t->slots[i];
        if (s->ext_len == 0)
            return NULL;
        if (s->hash == h && s->ext_len == n && memcmp(t->arena + s->ext_off, low, n) == 0)
            return t->arena + s->type_off;
    }
}

const char *hp_mime_lookup(const hp_mime_t *t, const char *path, size_t len)
{
    /* Find the last '.' of the last segment, looking back no further than
     * the longest extension either table knows: a request path can be long,
     * and a 4 KiB name without a dot must not cost a 4 KiB scan. */
    size_t lim = BUILTIN_EXT_MAX;
    if (t && t->ext_max > lim)
        lim = t->ext_max;
    size_t i = len, n = 0;
    for (;;) {
        if (i == 0 || n > lim)
            return mime_octet;
        char c = path[--i];
        if (c == '.')
            break;
        if (c == '/')
            return mime_octet;
        n++;
    }
    if (n == 0)
        return mime_octet;
    const char *ext = path + i + 1;
    if (t && n <= t->ext_max) {
        const char *m = table_find(t, ext, n);
        if (m)
            return m;
    }
    return builtin(ext, n);
}

size_t hp_mime_count(const hp_mime_t *t)
{
    return t ? t->count : 0;
}

/* ---- parsing -------------------------------------------------------------- */

/* The parser runs twice over the text: once to size the block (t == NULL),
 * once to fill it. Both passes take the same decisions from the same bytes,
 * so the second can never need more than the first counted. */
typedef struct build {
    hp_mime_t *t; /* NULL while counting */
    size_t exts;  /* extensions to store (duplicates included) */
    size_t bytes; /* arena bytes needed (counting) or used (filling) */
} build_t;

static inline bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Finds the next token of line s[0..n) at or after *pos. Returns its length
 * (start in *tok), or 0 at the end of the line or at a '#' that starts a
 * token, which comments out the rest of the line. */
static size_t next_token(const char *s, size_t n, size_t *pos, const char **tok)
{
    size_t i = *pos;
    while (i < n && is_ws(s[i]))
        i++;
    if (i == n || s[i] == '#') {
        *pos = n;
        return 0;
    }
    size_t b = i;
    while (i < n && !is_ws(s[i]))
        i++;
    *tok = s + b;
    *pos = i;
    return i - b;
}

/* "token/token" within HP_MIME_TYPE_MAX. */
static bool valid_type(const char *s, size_t n)
{
    if (n < 3 || n > HP_MIME_TYPE_MAX)
        return false;
    size_t slash = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '/') {
            if (slash)
                return false;
            slash = i;
        } else if (!tchar_tbl[c]) {
            return false;
        }
    }
    return slash > 0 && slash < n - 1;
}

/* Classifies an extension token: -1 malformed (the line is dropped), 0
 * well-formed but unusable (has a '.', or too long: skipped alone), 1 kept. */
static int ext_kind(const char *s, size_t n)
{
    int kind = n <= HP_MIME_EXT_MAX;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (!tchar_tbl[c])
            return -1;
        if (c == '.')
            kind = 0;
    }
    return kind;
}

static void insert(build_t *b, const char *ext, size_t n, uint32_t type_off)
{
    hp_mime_t *t = b->t;
    char low[HP_MIME_EXT_MAX];
    uint32_t h = hash_lower(ext, n, low);
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        slot_t *s = &t->slots[i];
        if (s->ext_len == 0) {
            memcpy(t->arena + b->bytes, low, n);
            *s = (slot_t){.hash = h,
                          .ext_len = (uint32_t)n,
                          .ext_off = (uint32_t)b->bytes,
                          .type_off = type_off};
            b->bytes += n;
            t->count++;
            if (n > t->ext_max)
                t->ext_max = (uint32_t)n;
            return;
        }
        if (s->hash == h && s->ext_len == n && memcmp(t->arena + s->ext_off, low, n) == 0) {
            /* A later line wins: re-point the slot, keep one entry. */
            s->type_off = type_off;
            return;
        }
    }
}

static void parse_line(build_t *b, const char *s, size_t n)
{
    size_t pos = 0;
    const char *type = NULL;
    size_t tlen = next_token(s, n, &pos, &type);
    if (tlen == 0 || !valid_type(type, tlen))
        return;

    /* First pass over the extensions: the line is all or nothing, so look
     * at every one before storing any. */
    size_t after_type = pos, keep = 0, ext_bytes = 0;
    const char *e = NULL;
    size_t elen;
    while ((elen = next_token(s, n, &pos, &e)) != 0) {
        int k = ext_kind(e, elen);
        if (k < 0)
            return;
        keep += (size_t)k;
        ext_bytes += (size_t)k * elen;
    }
    if (keep == 0)
        return; /* a type without extensions maps nothing */

    bool text = tlen > 5 && strncasecmp(type, "text/", 5) == 0;
    size_t tbytes = tlen + (text ? sizeof charset_utf8 - 1 : 0) + 1;
    if (!b->t) {
        b->exts += keep;
        b->bytes += tbytes + ext_bytes;
        return;
    }

    char *a = b->t->arena;
    uint32_t type_off = (uint32_t)b->bytes;
    memcpy(a + b->bytes, type, tlen);
    if (text)
        memcpy(a + b->bytes + tlen, charset_utf8, sizeof charset_utf8 - 1);
    a[b->bytes + tbytes - 1] = '\0';
    b->bytes += tbytes;

    pos = after_type;
    while ((elen = next_token(s, n, &pos, &e)) != 0)
        if (ext_kind(e, elen) > 0)
            insert(b, e, elen, type_off);
}

static void parse_text(build_t *b, const char *text, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
        parse_line(b, text + i, n);
        i += n + 1;
    }
}

int hp_mime_parse(hp_mime_t **out, const char *text, size_t len)
{
    build_t b = {0};
    parse_text(&b, text, len);

    /* At most half full, so probes stay short and one slot is always empty;
     * at least 2 slots so even an empty table has one. */
    size_t slots = 2;
    while (slots < 2 * b.exts)
        slots <<= 1;
    size_t size = sizeof(hp_mime_t) + slots * sizeof(slot_t) + b.bytes;
    hp_mime_t *t = hp_malloc(size);
    if (!t)
        return -ENOMEM;
    memset(t, 0, sizeof *t + slots * sizeof(slot_t));
    t->mask = (uint32_t)(slots - 1);
    t->slots = (slot_t *)(t + 1);
    t->arena = (char *)(t->slots + slots);

    build_t fill = {.t = t};
    parse_text(&fill, text, len);
    assert(fill.bytes <= b.bytes);
    t->arena_len = (uint32_t)fill.bytes;
    *out = t;
    return 0;
}

int hp_mime_load(hp_mime_t **out, const char *path)
{
    int fd;
    do {
        /* O_NONBLOCK: a FIFO in the configured place must not hang start-up;
         * it is refused below as not a regular file. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            *out = NULL;
            return 0;
        }
        return -errno;
    }

    int rc;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        goto done;
    }
    if ((uint64_t)st.st_size > HP_MIME_FILE_MAX) {
        rc = -EFBIG;
        goto done;
    }
    size_t cap = (size_t)st.st_size;
    buf = hp_malloc(cap ? cap : 1);
    if (!buf) {
        rc = -ENOMEM;
        goto done;
    }
    /* Read what fstat promised; a file that shrinks meanwhile just ends
     * early, one that grows is cut at the size we sized the buffer for. */
    size_t len = 0;
    while (len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto done;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    rc = hp_mime_parse(out, buf, len);
done:
    hp_free(buf);
    close(fd);
    return rc;
}

void hp_mime_free(hp_mime_t *t)
{
    hp_free(t);
}

/* ---- validation ----------------------------------------------------------- */

int hp_mime_validate(const hp_mime_t *t)
{
    if (!t)
        return 0;
    size_t slots = (size_t)t->mask + 1;
    if ((slots & t->mask) != 0 || t->slots != (const slot_t *)(t + 1) ||
        t->arena != (const char *)(t->slots + slots))
        return -EINVAL;
    uint32_t used = 0, longest = 0;
    for (size_t i = 0; i < slots; i++) {
        const slot_t *s = &t->slots[i];
        if (s->ext_len == 0)
            continue;
        used++;
        if (s->ext_len > HP_MIME_EXT_MAX || s->ext_off + (uint64_t)s->ext_len > t->arena_len ||
            s->type_off >= t->arena_len ||
            !memchr(t->arena + s->type_off, '\0', t->arena_len - s->type_off))
            return -EINVAL;
        if (s->ext_len > longest)
            longest = s->ext_len;
        const char *ext = t->arena + s->ext_off;
        char low[HP_MIME_EXT_MAX];
        if (hash_lower(ext, s->ext_len, low) != s->hash || memcmp(low, ext, s->ext_len) != 0 ||
            memchr(ext, '.', s->ext_len))
            return -EINVAL;
        /* Reachable: no empty slot between its home and where it sits. */
        for (uint32_t j = s->hash & t->mask; j != i; j = (j + 1) & t->mask)
            if (t->slots[j].ext_len == 0)
                return -EINVAL;
        if (table_find(t, ext, s->ext_len) != t->arena + s->type_off)
            return -EINVAL;
    }
    if (used != t->count || used >= slots || longest != t->ext_max)
        return -EINVAL;
    return 0;
}
