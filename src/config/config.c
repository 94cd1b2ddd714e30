/*
 * config.c - loads hotpath's YAML configuration with libyaml and checks
 * every value against a schema.
 *
 * libyaml composes the whole file into a document (a node graph that keeps
 * each node's line and column); the loader then walks it guided by static
 * schema tables of config_schema.c (name, kind, offset, range, sub-table), so one
 * generic routine handles every nested map and adding a key is one table
 * line. Values are written into a temporary hp_config_t that started from
 * the defaults; only when the whole file is valid is it swapped into the
 * caller's struct, so a bad reload leaves the running configuration alone.
 *
 * Memory: every string and array a load creates is one hp_malloc block
 * linked into a list (the configuration's `mem`), freed in one walk by
 * hp_config_free. Invariant: a field either points at a read-only default
 * or into blocks on its own configuration's list, never into the document
 * or the input, which are gone once the load returns. The marks (where
 * each key's value was written, or which flag replaced it) are blocks on
 * the same list, so the owners' checks after the load can report a
 * failure at its line (hp_config_fail).
 *
 * Defaults: none live here. config knows each key's type and range, not
 * which protocol reads it, so it includes nothing above core: the values a
 * load starts from are an hp_config_t that the owners of the settings
 * fill (hp_app_config_defaults, from the HTTP and worker defaults) and
 * hand to hp_config_init. The struct itself is protocol-neutral: numbers,
 * flags and strings named after the file's keys.
 *
 * Errors: the first one found wins and ends the walk. Its message is one
 * line: every byte from the input is escaped and every control byte that
 * could still reach the message (from the file name) is replaced, so log
 * lines and terminals stay intact.
 */
#include "hotpath/config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "hotpath/alloc.h"
#include "hotpath/common.h"

#include "config_int.h"

typedef hp_config_field_t field_t;

/* ---- owned memory ---------------------------------------------------------- */

/* Header of one block; the union keeps the payload aligned for anything. */
typedef union blk {
    union blk *next;
    max_align_t align;
} blk_t;

/* Where one key's value came from: a place in the file, or a flag that
 * replaced it (hp_config_override). Kept for the owners' checks after the
 * load, so that what they find is reported where the user wrote it. */
struct hp_config_mark {
    struct hp_config_mark *next;
    const char *origin;      /* borrowed: e.g. "--root"; NULL: the file at line:col */
    size_t line, col;        /* from 1 */
    char key[];              /* "locations[0].root" */
};
typedef struct hp_config_mark hp_config_mark_t;

/* ---- load context and messages ------------------------------------------- */

typedef struct ctx {
    const char *name;        /* borrowed: file name for messages */
    const char *text;        /* borrowed: the input, for reader error offsets */
    size_t len;
    yaml_document_t *doc;    /* borrowed: the document being walked */
    blk_t *mem;              /* owned until handed to the configuration */
    hp_config_mark_t *marks; /* in mem: where each key was set, newest first */
    char *err;               /* OUT, errlen bytes */
    size_t errlen;
    int rc;                  /* 0, or the first failure */
} ctx_t;

/* Key paths are short ("locations[255].cache_control"); unknown keys from
 * the file are cut to fit. */
#define KEYPATH_MAX 256
/* Bytes of a value quoted in a message. */
#define QUOTE_MAX 48

/* Replaces control bytes with '?' so the message is one printable line. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

/* Writes "FILE:LINE:COL: " (or "FILE: " without a mark) and the message. */
static HP_COLD void vset_err(ctx_t *x, const yaml_mark_t *m, const char *fmt, va_list ap)
{
    if (!x->errlen)
        return;
    int n = m ? snprintf(x->err, x->errlen, "%s:%zu:%zu: ", x->name, m->line + 1, m->column + 1)
              : snprintf(x->err, x->errlen, "%s: ", x->name);
    if (n >= 0 && (size_t)n < x->errlen)
        vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
    one_line(x->err);
}

/* Records a validation failure at `m`; returns -EINVAL for `return fail(...)`. */
static HP_COLD __attribute__((format(printf, 3, 4))) int fail(ctx_t *x, const yaml_mark_t *m,
                                                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_err(x, m, fmt, ap);
    va_end(ap);
    return x->rc = -EINVAL;
}

/* Records a failure that has no position ("FILE: what"). */
static HP_COLD __attribute__((format(printf, 3, 4))) int fail_file(ctx_t *x, int rc,
                                                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_err(x, NULL, fmt, ap);
    va_end(ap);
    return x->rc = rc;
}

static HP_COLD int oom(ctx_t *x)
{
    return fail_file(x, -ENOMEM, "out of memory");
}

/* Writes s[0..n) into out (size QUOTE_MAX * 4 + 8) with control bytes
 * escaped, cut after QUOTE_MAX bytes (at a UTF-8 boundary) with "...". */
static void escape(char *out, const char *s, size_t n)
{
    size_t cut = n;
    if (cut > QUOTE_MAX) {
        cut = QUOTE_MAX;
        while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
            cut--;
    }
    char *o = out;
    for (size_t i = 0; i < cut; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n') {
            *o++ = '\\', *o++ = 'n';
        } else if (ch == '\t') {
            *o++ = '\\', *o++ = 't';
        } else if (ch < 0x20 || ch == 0x7f) {
            o += sprintf(o, "\\x%02x", ch);
        } else {
            *o++ = (char)ch;
        }
    }
    if (cut < n)
        memcpy(o, "...", 3), o += 3;
    *o = '\0';
}

#define ESCAPED_MAX (QUOTE_MAX * 4 + 8)

/* What a node is, for "got ...": the quoted scalar or its shape. */
static void describe(const yaml_node_t *n, char *out)
{
    if (n->type == YAML_MAPPING_NODE) {
        strcpy(out, "a mapping");
    } else if (n->type == YAML_SEQUENCE_NODE) {
        strcpy(out, "a list");
    } else {
        out[0] = '\'';
        escape(out + 1, (const char *)n->data.scalar.value, n->data.scalar.length);
        strcat(out, "'");
    }
}

static int expected(ctx_t *x, const yaml_node_t *n, const char *key, const char *what)
{
    char got[ESCAPED_MAX + 4];
    describe(n, got);
    return fail(x, &n->start_mark, "%s: expected %s, got %s", key, what, got);
}

/* ---- value parsers ----------------------------------------------------------- */

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    size_t len = n->data.scalar.length;
    const char *s = sval(n);
    return len == 0 || (len == 1 && s[0] == '~') ||
           (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

/* ---- memory ---------------------------------------------------------------- */

static void *ctx_alloc(ctx_t *x, size_t n)
{
    blk_t *b = hp_malloc(sizeof(blk_t) + n);
    if (!b) {
        oom(x);
        return NULL;
    }
    b->next = x->mem;
    x->mem = b;
    return b + 1;
}

static char *ctx_strdup(ctx_t *x, const char *s, size_t len)
{
    char *p = ctx_alloc(x, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* One block holding a mark for `key`, linked into *mem (NULL: no memory). */
static hp_config_mark_t *mark_new(blk_t **mem, const char *key)
{
    size_t n = strlen(key) + 1;
    blk_t *b = hp_malloc(sizeof(blk_t) + sizeof(hp_config_mark_t) + n);
    if (!b)
        return NULL;
    b->next = *mem;
    *mem = b;
    hp_config_mark_t *m = (hp_config_mark_t *)(b + 1);
    *m = (hp_config_mark_t){.next = NULL, .origin = NULL, .line = 0, .col = 0};
    memcpy(m->key, key, n);
    return m;
}

/* Remembers that `key`'s value starts at `at`. */
static int mark(ctx_t *x, const char *key, const yaml_mark_t *at)
{
    hp_config_mark_t *m = mark_new(&x->mem, key);
    if (!m)
        return oom(x);
    m->line = at->line + 1;
    m->col = at->column + 1;
    m->next = x->marks;
    x->marks = m;
    return 0;
}

static void free_blocks(blk_t *b)
{
    while (b) {
        blk_t *next = b->next;
        hp_free(b);
        b = next;
    }
}

/* ---- did you mean ---------------------------------------------------------- */

static int unknown_key(ctx_t *x, const yaml_node_t *key, const char *keypath,
                       const field_t *fields)
{
    const char *s = sval(key);
    size_t len = key->data.scalar.length;
    const char *best = NULL;
    int best_d = 3; /* suggest only within distance 2 */
    for (const field_t *f = fields; f->name; f++) {
        int dist = hp_config_edit_distance(s, len, f->name, strlen(f->name));
        if (dist < best_d) {
            best_d = dist;
            best = f->name;
        }
    }
    if (best)
        return fail(x, &key->start_mark, "%s: unknown key, did you mean '%s'?", keypath, best);
    char known[256];
    size_t k = 0;
    known[0] = '\0';
    for (const field_t *f = fields; f->name; f++) {
        int n = snprintf(known + k, sizeof known - k, "%s%s", k ? ", " : "", f->name);
        if (n < 0 || (size_t)n >= sizeof known - k)
            break;
        k += (size_t)n;
    }
    return fail(x, &key->start_mark, "%s: unknown key (known keys here: %s)", keypath, known);
}

/* ---- the walk ---------------------------------------------------------------- */

static int load_map(ctx_t *x, const yaml_node_t *node, const field_t *fields, void *base,
                    const char *path);

static void store(void *base, const field_t *f, uint64_t v)
{
    char *p = (char *)base + f->off;
    if (f->width == sizeof(uint64_t))
        memcpy(p, &v, sizeof v);
    else if (f->width == sizeof(uint32_t))
        memcpy(p, &(uint32_t){(uint32_t)v}, sizeof(uint32_t));
    else
        *(bool *)p = v != 0;
}

/* An address's text: what the listener parses is for it to say. */
static bool addr_text_ok(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0 ||
        n->data.scalar.length > HP_CONFIG_ADDR_MAX)
        return false;
    for (size_t i = 0; i < n->data.scalar.length; i++)
        if (n->data.scalar.value[i] <= 0x20 || n->data.scalar.value[i] >= 0x7f)
            return false;
    return true;
}

static int load_listen(ctx_t *x, const yaml_node_t *n, const char *key, hp_config_t *c)
{
    static const char what[] = "an address such as 127.0.0.1:8080, [::1]:8080 or :8080";
    const yaml_node_item_t *items = NULL;
    size_t count = 1;
    if (n->type == YAML_SEQUENCE_NODE) {
        items = n->data.sequence.items.start;
        count = (size_t)(n->data.sequence.items.top - items);
        if (count == 0)
            return fail(x, &n->start_mark, "%s: expected at least one address, got an empty list",
                        key);
        if (count > HP_CONFIG_MAX_LISTEN)
            return fail(x, &n->start_mark, "%s: expected at most %d addresses, got %zu", key,
                        HP_CONFIG_MAX_LISTEN, count);
    } else if (n->type != YAML_SCALAR_NODE) {
        return expected(x, n, key, "an address or a list of addresses");
    }
    const char **list = ctx_alloc(x, count * sizeof *list);
    if (!list)
        return x->rc;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *it = items ? yaml_document_get_node(x->doc, items[i]) : n;
        char kp[KEYPATH_MAX];
        if (items)
            snprintf(kp, sizeof kp, "%.200s[%zu]", key, i);
        else
            snprintf(kp, sizeof kp, "%.200s", key);
        if (!addr_text_ok(it))
            return expected(x, it, kp, what);
        if (items && mark(x, kp, &it->start_mark) < 0)
            return x->rc;
        size_t len = it->data.scalar.length;
        for (size_t j = 0; j < i; j++)
            if (strlen(list[j]) == len && !memcmp(list[j], sval(it), len))
                return fail(x, &it->start_mark, "%s: duplicate address '%s', already %s[%zu]", kp,
                            list[j], key, j);
        if (!(list[i] = ctx_strdup(x, sval(it), len)))
            return x->rc;
    }
    c->listen = list;
    c->nlisten = count;
    return 0;
}

static int load_locations(ctx_t *x, const yaml_node_t *n, const char *key, hp_config_t *c,
                          const field_t *fields)
{
    if (is_null(n)) {
        c->locations = NULL;
        c->nlocations = 0;
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return expected(x, n, key, "a list of locations (mappings with path, root, ...)");
    const yaml_node_item_t *items = n->data.sequence.items.start;
    size_t count = (size_t)(n->data.sequence.items.top - items);
    if (count > HP_CONFIG_MAX_LOCATIONS)
        return fail(x, &n->start_mark, "%s: expected at most %d locations, got %zu", key,
                    HP_CONFIG_MAX_LOCATIONS, count);
    hp_config_location_t *locs = count ? ctx_alloc(x, count * sizeof *locs) : NULL;
    if (count && !locs)
        return x->rc;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *it = yaml_document_get_node(x->doc, items[i]);
        char kp[KEYPATH_MAX];
        snprintf(kp, sizeof kp, "%.200s[%zu]", key, i);
        if (it->type != YAML_MAPPING_NODE)
            return expected(x, it, kp, "a mapping with path, root, cache_control, compression");
        if (mark(x, kp, &it->start_mark) < 0)
            return x->rc;
        locs[i] = (hp_config_location_t){.path = NULL, .root = NULL, .cache_control = NULL,
                                         .compression = false};
        if (load_map(x, it, fields, &locs[i], kp) < 0)
            return x->rc;
        for (const field_t *f = fields; f->name; f++) {
            const char *v;
            memcpy(&v, (char *)&locs[i] + f->off, sizeof v);
            if ((f->flags & F_REQUIRED) && !v)
                return fail(x, &it->start_mark, "%s: missing required key '%s'", kp, f->name);
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(locs[j].path, locs[i].path))
                return fail(x, &it->start_mark, "%s.path: duplicate location '%s', already %s[%zu]",
                            kp, locs[i].path, key, j);
    }
    c->locations = locs;
    c->nlocations = count;
    return 0;
}

static int load_value(ctx_t *x, const field_t *f, const yaml_node_t *n, void *base,
                      const char *key)
{
    if (f->kind == K_MAP)
        return is_null(n) ? 0 : load_map(x, n, f->sub, base, key);
    if (f->kind == K_LISTEN)
        return load_listen(x, n, key, base);
    if (f->kind == K_LOCATIONS)
        return load_locations(x, n, key, base, f->sub);
    char what[200];
    hp_config_what(f, what, sizeof what);
    if (n->type != YAML_SCALAR_NODE)
        return expected(x, n, key, what);
    const char *s = sval(n);
    size_t len = n->data.scalar.length;
    if (f->kind == K_STRING || f->kind == K_URLPATH || f->kind == K_HEADER ||
        f->kind == K_URL) {
        const char *copy = NULL;
        if (!((f->flags & F_NULLABLE) && is_null(n))) {
            if (!hp_config_string_ok(f, s, len))
                return expected(x, n, key, what);
            if (!(copy = ctx_strdup(x, s, len)))
                return x->rc;
        }
        memcpy((char *)base + f->off, &copy, sizeof copy);
        return 0;
    }
    uint64_t v;
    if (!hp_config_number(f, s, len, &v))
        return expected(x, n, key, what);
    store(base, f, v);
    return 0;
}

/* Walks one mapping: every key must be known and appear once. */
static int load_map(ctx_t *x, const yaml_node_t *node, const field_t *fields, void *base,
                    const char *path)
{
    if (node->type != YAML_MAPPING_NODE)
        return expected(x, node, path, "a mapping of keys (indented KEY: VALUE lines)");
    const yaml_node_t *seen[16] = {0}; /* the key node of each field set so far */
    for (const yaml_node_pair_t *p = node->data.mapping.pairs.start;
         p < node->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return expected(x, k, *path ? path : "(top level)", "a key name");
        char name[ESCAPED_MAX], kp[KEYPATH_MAX];
        escape(name, sval(k), k->data.scalar.length);
        snprintf(kp, sizeof kp, "%.120s%s%.120s", path, *path ? "." : "", name);
        size_t i = 0;
        for (; fields[i].name; i++)
            if (strlen(fields[i].name) == k->data.scalar.length &&
                !memcmp(fields[i].name, sval(k), k->data.scalar.length))
                break;
        if (!fields[i].name)
            return unknown_key(x, k, kp, fields);
        assert(i < HP_ARRAY_LEN(seen));
        if (seen[i])
            return fail(x, &k->start_mark, "%s: duplicate key (first at line %zu, column %zu)", kp,
                        seen[i]->start_mark.line + 1, seen[i]->start_mark.column + 1);
        seen[i] = k;
        if (mark(x, kp, &v->start_mark) < 0)
            return x->rc;
        if (load_value(x, &fields[i], v, base, kp) < 0)
            return x->rc;
    }
    return 0;
}

/* ---- YAML errors --------------------------------------------------------- */

static HP_COLD int yaml_failed(ctx_t *x, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return oom(x);
    const char *problem = p->problem ? p->problem : "malformed YAML";
    yaml_mark_t m = p->problem_mark;
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark: count lines up to it. */
        m = (yaml_mark_t){0, 0, 0};
        for (size_t i = 0; i < p->problem_offset && i < x->len; i++) {
            if (x->text[i] == '\n')
                m.line++, m.column = 0;
            else
                m.column++;
        }
        if (p->problem_value != -1)
            return fail(x, &m, "YAML syntax error: %s (byte 0x%x)", problem,
                        (unsigned)p->problem_value);
        return fail(x, &m, "YAML syntax error: %s", problem);
    }
    if (p->context)
        return fail(x, &m, "YAML syntax error: %s (%s at line %zu, column %zu)", problem,
                    p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    return fail(x, &m, "YAML syntax error: %s", problem);
}

/* ---- API --------------------------------------------------------------------- */

void hp_config_init(hp_config_t *c, const hp_config_t *defaults)
{
    assert(defaults);
    *c = *defaults;
    c->source = NULL;
    c->defaults = defaults;
    c->marks = NULL;
    c->mem = NULL;
}

void hp_config_free(hp_config_t *c)
{
    free_blocks(c->mem);
    hp_config_init(c, c->defaults);
}

int hp_config_load_string(hp_config_t *c, const char *yaml, size_t len, const char *name,
                          char *err, size_t errlen)
{
    if (!name)
        name = "(string)";
    if (!yaml) { /* libyaml asserts on a NULL input */
        yaml = "";
        len = 0;
    }
    ctx_t x = {.name = name, .text = yaml, .len = len, .err = err, .errlen = errlen};
    if (errlen)
        err[0] = '\0';
    hp_config_t tmp;
    hp_config_init(&tmp, c->defaults);
    if (!(tmp.source = ctx_strdup(&x, name, strlen(name))))
        return x.rc;

    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        free_blocks(x.mem);
        return oom(&x);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_failed(&x, &parser);
    } else {
        x.doc = &doc;
        const yaml_node_t *root = yaml_document_get_root_node(&doc);
        bool more = root != NULL;
        if (root && !is_null(root)) {
            if (root->type != YAML_MAPPING_NODE)
                expected(&x, root, "(top level)", "a mapping of keys (KEY: VALUE)");
            else
                load_map(&x, root, hp_config_top_fields, &tmp, "");
        }
        yaml_document_delete(&doc);
        /* One document per file: a second one is most likely a stray
         * "---" that would otherwise hide half the settings. */
        if (x.rc == 0 && more) {
            if (!yaml_parser_load(&parser, &doc)) {
                yaml_failed(&x, &parser);
            } else {
                root = yaml_document_get_root_node(&doc);
                if (root)
                    fail(&x, &doc.start_mark, "(top level): expected one YAML document, got a "
                         "second one");
                yaml_document_delete(&doc);
            }
        }
    }
    yaml_parser_delete(&parser);
    if (x.rc < 0) {
        free_blocks(x.mem);
        return x.rc;
    }
    free_blocks(c->mem);
    tmp.marks = x.marks;
    tmp.mem = x.mem;
    *c = tmp;
    return 0;
}

int hp_config_load(hp_config_t *c, const char *path, char *err, size_t errlen)
{
    ctx_t x = {.name = path, .err = err, .errlen = errlen};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return fail_file(&x, -e, "%s", strerror(e));
    }
    struct stat st;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
    } else if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
    } else {
        /* st_size is a hint only (pipes and /proc say 0): read to EOF,
         * growing up to one byte past the cap to see whether it is passed. */
        cap = st.st_size > 0 && (uint64_t)st.st_size < HP_CONFIG_MAX_FILE ? (size_t)st.st_size + 1
                                                                           : 4096;
        while (rc == 0) {
            if (!buf || len == cap) {
                if (len > HP_CONFIG_MAX_FILE) {
                    rc = -EFBIG;
                    break;
                }
                size_t ncap = !buf ? cap : cap * 2 > HP_CONFIG_MAX_FILE + 1 ? HP_CONFIG_MAX_FILE + 1
                                                                           : cap * 2;
                char *nb = hp_realloc(buf, ncap);
                if (!nb) {
                    rc = -ENOMEM;
                    break;
                }
                buf = nb;
                cap = ncap;
            }
            ssize_t n = read(fd, buf + len, cap - len);
            if (n < 0 && errno != EINTR)
                rc = -errno;
            else if (n == 0)
                break;
            else if (n > 0)
                len += (size_t)n;
        }
    }
    close(fd);
    if (rc == 0)
        rc = hp_config_load_string(c, buf, len, path, err, errlen);
    else if (rc == -ENOMEM)
        oom(&x);
    else if (rc == -EFBIG)
        fail_file(&x, rc, "larger than %u MiB", HP_CONFIG_MAX_FILE >> 20);
    else
        fail_file(&x, rc, "%s", strerror(-rc));
    hp_free(buf);
    return rc;
}

/* The mark of `key`, or of the nearest key above it that has one
 * ("locations[0].root", then "locations[0]", then "locations"): a value
 * the file did not set is reported where its enclosing key was. */
static const hp_config_mark_t *find_mark(const hp_config_t *c, const char *key)
{
    for (size_t len = strlen(key); len > 0;) {
        for (const hp_config_mark_t *m = c->marks; m; m = m->next)
            if (strlen(m->key) == len && !memcmp(m->key, key, len))
                return m;
        while (len > 0 && key[len - 1] != '.' && key[len - 1] != '[')
            len--;
        if (len > 0)
            len--; /* the separator */
    }
    return NULL;
}

int hp_config_fail(const hp_config_t *c, const char *key, char *err, size_t errlen,
                   const char *fmt, ...)
{
    if (!errlen)
        return -EINVAL;
    const hp_config_mark_t *m = find_mark(c, key);
    int n;
    if (m && m->origin)
        n = snprintf(err, errlen, "%s: ", m->origin);
    else if (m)
        n = snprintf(err, errlen, "%s:%zu:%zu: %s: ", c->source, m->line, m->col, m->key);
    else if (c->source)
        n = snprintf(err, errlen, "%s: %s: ", c->source, key);
    else
        n = snprintf(err, errlen, "%s: ", key);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    one_line(err);
    return -EINVAL;
}

int hp_config_override(hp_config_t *c, const char *key, const char *origin)
{
    size_t len = strlen(key);
    bool exact = false;
    /* The key and everything beneath it ("listen" and "listen[0]"). */
    for (hp_config_mark_t *m = c->marks; m; m = m->next) {
        if (strncmp(m->key, key, len) != 0 ||
            (m->key[len] != '\0' && m->key[len] != '.' && m->key[len] != '['))
            continue;
        m->origin = origin;
        exact = exact || m->key[len] == '\0';
    }
    if (exact)
        return 0;
    blk_t *mem = c->mem;
    hp_config_mark_t *m = mark_new(&mem, key);
    if (!m)
        return -ENOMEM;
    m->origin = origin;
    m->next = c->marks;
    c->marks = m;
    c->mem = mem;
    return 0;
}
