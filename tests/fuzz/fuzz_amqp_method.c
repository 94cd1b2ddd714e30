/*
 * fuzz_amqp_method.c - libFuzzer target for the generated AMQP 0-9-1
 * codec (amqp_spec.c): method frame payloads and content properties.
 *
 * The input, copied to a heap block of exactly its length so ASan catches
 * any read past the end, is decoded as a method frame's payload. Checks:
 * the result is 0, -EPROTO or -ENOTSUP, and -ENOTSUP only for an id no
 * method has. A decoded method re-encodes to exactly as many bytes (only
 * unused bits of a bit octet may differ), into a writer of that size but
 * not one byte less; the re-encoding decodes to the same arguments and
 * encodes to itself. The same bytes are then read as a content header's
 * property list: when that decodes, the flags and properties re-encode to
 * exactly the bytes read, and decode again to the same properties.
 */
#include "amqp_spec.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_bytes(hp_amqp_bytes_t a, hp_amqp_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Compares every argument of two decoded methods, through the field
 * descriptors (not memcmp: padding and pointers differ). */
static bool same_method(const hp_amqp_method_t *a, const hp_amqp_method_t *b)
{
    if (a->id != b->id)
        return false;
    const hp_amqp_field_desc_t *fd;
    int n = hp_amqp_method_fields(a->id, &fd);
    if (n < 0)
        return false;
    for (int i = 0; i < n; i++) {
        const char *x = (const char *)a + fd[i].offset, *y = (const char *)b + fd[i].offset;
        switch (fd[i].type) {
        case HP_AMQP_FIELD_BIT:
            if (*(const bool *)x != *(const bool *)y)
                return false;
            break;
        case HP_AMQP_FIELD_OCTET:
            if (*(const uint8_t *)x != *(const uint8_t *)y)
                return false;
            break;
        case HP_AMQP_FIELD_SHORT:
            if (*(const uint16_t *)x != *(const uint16_t *)y)
                return false;
            break;
        case HP_AMQP_FIELD_LONG:
            if (*(const uint32_t *)x != *(const uint32_t *)y)
                return false;
            break;
        case HP_AMQP_FIELD_LONGLONG:
        case HP_AMQP_FIELD_TIMESTAMP:
            if (*(const uint64_t *)x != *(const uint64_t *)y)
                return false;
            break;
        default:
            if (!same_bytes(*(const hp_amqp_bytes_t *)x, *(const hp_amqp_bytes_t *)y))
                return false;
        }
    }
    return true;
}

static bool same_props(const hp_amqp_props_t *a, const hp_amqp_props_t *b)
{
    return a->flags == b->flags && same_bytes(a->content_type, b->content_type) &&
           same_bytes(a->content_encoding, b->content_encoding) &&
           same_bytes(a->headers, b->headers) && a->delivery_mode == b->delivery_mode &&
           a->priority == b->priority && same_bytes(a->correlation_id, b->correlation_id) &&
           same_bytes(a->reply_to, b->reply_to) && same_bytes(a->expiration, b->expiration) &&
           same_bytes(a->message_id, b->message_id) && a->timestamp == b->timestamp &&
           same_bytes(a->type, b->type) && same_bytes(a->user_id, b->user_id) &&
           same_bytes(a->app_id, b->app_id) && same_bytes(a->reserved, b->reserved);
}

static void method(const uint8_t *in, size_t size)
{
    hp_amqp_method_t a, b;
    int rc = hp_amqp_method_decode(in, size, &a);
    if (rc != 0 && rc != -EPROTO && rc != -ENOTSUP)
        abort();
    if (rc == -ENOTSUP && (size < 4 || hp_amqp_method_name(a.id)))
        abort();
    if (rc != 0)
        return;
    if (!hp_amqp_method_name(a.id))
        abort();

    uint8_t *out = malloc(size);
    if (!out)
        abort();
    hp_amqp_wr_t w = hp_amqp_wr(out, size - 1);
    if (hp_amqp_method_encode(&w, &a) != -ENOBUFS)
        abort();
    w = hp_amqp_wr(out, size);
    if (hp_amqp_method_encode(&w, &a) != 0 || w.len != size)
        abort();
    if (hp_amqp_method_decode(out, size, &b) != 0 || !same_method(&a, &b))
        abort();
    uint8_t *again = malloc(size);
    if (!again)
        abort();
    w = hp_amqp_wr(again, size);
    if (hp_amqp_method_encode(&w, &b) != 0 || w.len != size || memcmp(out, again, size))
        abort();
    free(again);
    free(out);
}

static void props(const uint8_t *in, size_t size)
{
    hp_amqp_rd_t r = hp_amqp_rd(in, size);
    hp_amqp_props_t a, b;
    int rc = hp_amqp_props_decode(&r, &a);
    if (rc != 0 && rc != -EPROTO)
        abort();
    if (rc != 0)
        return;
    if (r.pos < 2 || r.pos > size || (a.flags & ~HP_AMQP_PROPS_ALL))
        abort();
    /* Flags and property list have no slack: the same bytes exactly. */
    uint8_t *out = malloc(r.pos);
    if (!out)
        abort();
    hp_amqp_wr_t w = hp_amqp_wr(out, r.pos);
    if (hp_amqp_props_encode(&w, &a) != 0 || w.len != r.pos || memcmp(out, in, r.pos))
        abort();
    hp_amqp_rd_t r2 = hp_amqp_rd(out, w.len);
    if (hp_amqp_props_decode(&r2, &b) != 0 || r2.pos != w.len || !same_props(&a, &b))
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *in = malloc(size ? size : 1);
    if (!in)
        abort();
    if (size)
        memcpy(in, data, size);
    method(in, size);
    props(in, size);
    free(in);
    return 0;
}
