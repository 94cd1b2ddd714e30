/*
 * config_int.h - private to src/config: the schema that config_schema.c
 * defines and config.c walks.
 *
 * A schema is a table of hp_config_field_t ending with a zeroed entry; a
 * field says where its value is stored (offset and width in hp_config_t,
 * or in hp_config_location_t for the location table), what kind of value
 * it takes and its range.
 */
#ifndef HOTPATH_CONFIG_INT_H
#define HOTPATH_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/config.h"

enum kind {
    K_BOOL,      /* true/false (yes/no, on/off) */
    K_COUNT,     /* plain whole number */
    K_SIZE,      /* bytes with an optional k/m/g suffix */
    K_DURATION,  /* number with ms/s/m/h (plain: seconds), stored as ms */
    K_WORKERS,   /* "auto" (stored as 0) or a count */
    K_STRING,    /* file path: min..max bytes, no control characters */
    K_URLPATH,   /* URL path: '/' then printable ASCII without space, '?', '#' */
    K_HEADER,    /* header value: printable ASCII and tab */
    K_URL,       /* URL: printable ASCII without spaces (its syntax is its owner's) */
    K_LISTEN,    /* one address or a list of them */
    K_MAP,       /* nested keys, described by `sub` */
    K_LOCATIONS, /* list of maps, described by location_fields */
};

#define F_NULLABLE 1u /* null (~, null, empty) stores NULL */
#define F_MUL64 2u    /* a size that must be a multiple of 64 (pool chunks) */
#define F_REQUIRED 4u /* a list item's map must set it */
#define F_SECONDS 8u  /* a duration in whole seconds (a protocol counts in them) */

typedef struct hp_config_field {
    const char *name;
    uint8_t kind;
    uint8_t flags;
    uint8_t width;   /* bytes of the stored number: 1 (bool), 4 or 8 */
    uint32_t off;    /* in hp_config_t, or hp_config_location_t for locations */
    uint64_t min, max; /* value range; for strings, length range */
    const struct hp_config_field *sub;
} hp_config_field_t;

/* Units for ranges and defaults. */
#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define SEC 1000ull
#define HOUR (3600ull * SEC)

/* The top-level keys. */
extern const hp_config_field_t hp_config_top_fields[];

/* Converts the scalar s[0..len) for a number or bool field (K_BOOL,
 * K_COUNT, K_WORKERS, K_SIZE, K_DURATION) and checks its range. Returns
 * false when it is not valid for the field. */
bool hp_config_number(const hp_config_field_t *f, const char *s, size_t len, uint64_t *v);

/* True when s[0..len) is valid for a string field (length and bytes). */
bool hp_config_string_ok(const hp_config_field_t *f, const char *s, size_t len);

/* Bytes of one `listen` address. Its syntax is the listener's
 * (hp_listener_addr_parse), checked by hp_app_config_check: config only
 * takes printable text without spaces, long enough for any IPv6 form. */
#define HP_CONFIG_ADDR_MAX 128

/* Writes what a field expects ("a whole number from 1 to 1000") into out. */
void hp_config_what(const hp_config_field_t *f, char *out, size_t len);

/* Damerau-Levenshtein distance (optimal string alignment); strings longer
 * than HP_CONFIG_SUGGEST_MAX count as far from everything. */
#define HP_CONFIG_SUGGEST_MAX 64
int hp_config_edit_distance(const char *a, size_t la, const char *b, size_t lb);

#endif
