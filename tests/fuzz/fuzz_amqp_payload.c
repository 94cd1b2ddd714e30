/*
 * fuzz_amqp_payload.c - libFuzzer target for decoding AMQP message
 * bodies (src/amqp/payload.c): content_encoding (inflated through the
 * codec, bounded), then content_type (cJSON, msgpack-c, or bytes).
 *
 * Input: byte 0 picks the content_type (bits 0-2), the content_encoding
 * (bits 3-5) and max_body (bits 6-7: the default 128 MiB, 64, 4096,
 * 1 MiB); byte 1 the options of the re-encoding (bits 0-1: compress_min
 * 1, 100, the default, never; bits 2-7: min_saving_pct); the rest is the
 * body, copied to a heap block of exactly its length so ASan catches any
 * read past it (nothing relies on a NUL).
 * Checks:
 *   - the result is one the header documents (never -ENOMEM here, which
 *     would mean msgpack-c was allowed to allocate for counts the body
 *     cannot hold); on failure the payload is empty;
 *   - an inflated body is at most max_body bytes;
 *   - the type follows the content_type, with a document exactly when
 *     JSON or MessagePack;
 *   - for a plain body, publishing validation agrees with decoding:
 *     hp_amqp_payload_json_text (msgpack) accepts exactly the bodies the
 *     JSON (MessagePack) decoder accepts;
 *   - a decoded JSON document, published with hp_amqp_payload_json
 *     (compressed or not by the options) and decoded again, prints to the
 *     same text; a MessagePack object, packed again with msgpack-c,
 *     published and decoded again, packs to the same bytes.
 */
#include "hotpath/amqp_payload.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ctypes[8] = {
    NULL, "application/json", "application/msgpack", "text/plain",
    "application/vnd.x+json; charset=utf-8", "application/x-msgpack", "", "APPLICATION/JSON",
};
static const int ctype_kind[8] = {
    HP_AMQP_PAYLOAD_BYTES, HP_AMQP_PAYLOAD_JSON,    HP_AMQP_PAYLOAD_MSGPACK,
    HP_AMQP_PAYLOAD_BYTES, HP_AMQP_PAYLOAD_JSON,    HP_AMQP_PAYLOAD_MSGPACK,
    HP_AMQP_PAYLOAD_BYTES, HP_AMQP_PAYLOAD_JSON,
};
static const char *const encodings[8] = {
    NULL, "gzip", "deflate", "br", "identity", "utf-8", "zstd", "x-gzip",
};
static const uint64_t max_bodies[4] = {0, 64, 4096, 1u << 20};
static const size_t compress_mins[4] = {1, 100, 0, HP_AMQP_PAYLOAD_NO_COMPRESS};

static hp_amqp_props_t props_of(const char *ctype, const char *cenc)
{
    hp_amqp_props_t p = {0};
    if (ctype) {
        p.flags |= HP_AMQP_PROP_CONTENT_TYPE;
        p.content_type = hp_amqp_str(ctype);
    }
    if (cenc) {
        p.flags |= HP_AMQP_PROP_CONTENT_ENCODING;
        p.content_encoding = hp_amqp_str(cenc);
    }
    return p;
}

static bool empty(const hp_amqp_payload_t *p)
{
    return p->type == 0 && !p->ptr && p->len == 0 && !p->json && !p->msgpack && !p->buf &&
           !p->unpacked && !p->inflated;
}

/* Decodes what hp_amqp_payload_* made, which must succeed. */
static void decode_own(const hp_amqp_props_t *props, const hp_amqp_body_t *b,
                       hp_amqp_payload_t *p)
{
    if (hp_amqp_payload_decode(props, b->ptr, b->len, NULL, p) != 0)
        abort();
}

static void json_again(const hp_amqp_payload_t *p, const hp_amqp_payload_opts_t *o)
{
    char *text = cJSON_PrintUnformatted(p->json);
    if (!text)
        abort();
    hp_amqp_props_t props = {0};
    hp_amqp_body_t b;
    if (hp_amqp_payload_json(p->json, o, &props, &b) != 0)
        abort();
    hp_amqp_payload_t again;
    decode_own(&props, &b, &again);
    if (again.type != HP_AMQP_PAYLOAD_JSON || again.len != strlen(text) ||
        memcmp(again.ptr, text, again.len) != 0)
        abort();
    /* Printing what was parsed from a print gives the same text. */
    char *text2 = cJSON_PrintUnformatted(again.json);
    if (!text2 || strcmp(text, text2) != 0)
        abort();
    cJSON_free(text2);
    hp_amqp_payload_free(&again);
    hp_amqp_body_free(&b);
    cJSON_free(text);
}

/* msgpack-c's packing of an object (deterministic: the shortest forms). */
static void pack(const msgpack_object *o, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *o) != 0)
        abort();
}

static void msgpack_again(const hp_amqp_payload_t *p, const hp_amqp_payload_opts_t *o)
{
    msgpack_sbuffer sb, sb2;
    pack(p->msgpack, &sb);
    hp_amqp_props_t props = {0};
    hp_amqp_body_t b;
    if (hp_amqp_payload_msgpack(sb.data, sb.size, o, &props, &b) != 0)
        abort();
    hp_amqp_payload_t again;
    decode_own(&props, &b, &again);
    if (again.type != HP_AMQP_PAYLOAD_MSGPACK)
        abort();
    pack(again.msgpack, &sb2);
    if (sb.size != sb2.size || memcmp(sb.data, sb2.data, sb.size) != 0)
        abort();
    msgpack_sbuffer_destroy(&sb2);
    hp_amqp_payload_free(&again);
    hp_amqp_body_free(&b);
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned ct = data[0] & 7, ce = (data[0] >> 3) & 7;
    hp_amqp_payload_opts_t dec = {.max_body = max_bodies[data[0] >> 6]};
    hp_amqp_payload_opts_t enc = {.compress_min = compress_mins[data[1] & 3],
                                  .min_saving_pct = (unsigned)(data[1] >> 2) % 99 + 1};
    size_t n = size - 2;
    uint8_t *body = malloc(n ? n : 1);
    if (!body)
        return 0;
    memcpy(body, data + 2, n);
    uint64_t max = dec.max_body ? dec.max_body : 128u << 20;

    hp_amqp_props_t props = props_of(ctypes[ct], encodings[ce]);
    hp_amqp_payload_t p;
    int rc = hp_amqp_payload_decode(&props, body, n, &dec, &p);
    if (rc != 0) {
        if (rc != -EBADMSG && rc != -EMSGSIZE && rc != -ENOTSUP)
            abort();
        if (rc == -ENOTSUP && ce != 6)
            abort(); /* only "zstd" is unknown */
        if (!empty(&p))
            abort();
    } else {
        if (p.len > max || p.type != ctype_kind[ct])
            abort();
        if ((p.json != NULL) != (p.type == HP_AMQP_PAYLOAD_JSON) ||
            (p.msgpack != NULL) != (p.type == HP_AMQP_PAYLOAD_MSGPACK))
            abort();
        bool inflating = ce == 1 || ce == 2 || ce == 3 || ce == 7;
        if (p.inflated != inflating || (!inflating && (p.ptr != (n ? body : p.ptr) || p.len != n)))
            abort();
        if (p.json)
            json_again(&p, &enc);
        if (p.msgpack)
            msgpack_again(&p, &enc);
    }
    hp_amqp_payload_free(&p);
    if (!empty(&p))
        abort();

    /* Publishing's checks agree with decoding's on the same bytes. */
    if (n <= max) {
        hp_amqp_props_t pj = props_of("application/json", NULL);
        hp_amqp_props_t pm = props_of("application/msgpack", NULL);
        hp_amqp_props_t out = {0};
        hp_amqp_body_t b;
        int dj = hp_amqp_payload_decode(&pj, body, n, &dec, &p);
        hp_amqp_payload_free(&p);
        int ej = hp_amqp_payload_json_text(body, n, &enc, &out, &b);
        hp_amqp_body_free(&b);
        if ((dj == 0) != (ej == 0) || (ej != 0 && ej != -EINVAL))
            abort();
        int dm = hp_amqp_payload_decode(&pm, body, n, &dec, &p);
        hp_amqp_payload_free(&p);
        int em = hp_amqp_payload_msgpack(body, n, &enc, &out, &b);
        hp_amqp_body_free(&b);
        if ((dm == 0) != (em == 0) || (em != 0 && em != -EINVAL))
            abort();
    }
    free(body);
    return 0;
}
