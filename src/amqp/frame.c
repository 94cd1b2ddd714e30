/*
 * frame.c - AMQP 0-9-1 framing (spec §2.3.5, §4.2.3): finds whole frames
 * in received bytes and writes frames into a writer.
 *
 * Central structure: none kept between calls. hp_amqp_frame_parse looks at
 * the 7-byte header and the end octet only, so a call costs the same
 * whatever the payload size and the caller may simply call it again, from
 * the same frame boundary, when more bytes have arrived.
 *
 * Invariants: the outcome depends only on the bytes, never on how many of
 * them have arrived: every check is made as soon as the bytes it needs are
 * there, in the same order each time, so a prefix of a frame gives either
 * 0 (need more) or the very answer the whole frame gives. In particular a
 * frame too large for frame_max is refused from its header alone, before a
 * byte of its payload is buffered. Nothing is read at or past p + len.
 */
#include "frame_int.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

/* Type, channel and payload size. */
#define HEAD_LEN 7

/* A frame boundary that starts with "AMQP": the peer answered our
 * protocol header with its own, i.e. it does not speak 0-9-1. Returns
 * -EPROTONOSUPPORT once the 8 bytes of that header are there, 0 while
 * what has arrived could still be it, -EPROTO (an unknown frame type, as
 * 'A' is) as soon as it cannot. */
static HP_COLD long protocol_header(const uint8_t *p, size_t len)
{
    size_t n = len < 4 ? len : 4;
    if (memcmp(p, HP_AMQP_PROTOCOL_HEADER, n) != 0)
        return -EPROTO;
    return len < HP_AMQP_PROTOCOL_HEADER_LEN ? 0 : -EPROTONOSUPPORT;
}

long hp_amqp_frame_parse(const uint8_t *p, size_t len, uint32_t frame_max, hp_amqp_frame_t *out)
{
    if (len == 0)
        return 0;
    uint8_t type = p[0];
    switch (type) {
    case HP_AMQP_FRAME_METHOD:
    case HP_AMQP_FRAME_HEADER:
    case HP_AMQP_FRAME_BODY:
    case HP_AMQP_FRAME_HEARTBEAT:
        break;
    case 'A':
        return protocol_header(p, len);
    default:
        return -EPROTO;
    }
    if (len < 3)
        return 0;
    uint16_t channel = (uint16_t)(p[1] << 8 | p[2]);
    if (type == HP_AMQP_FRAME_HEARTBEAT && channel != 0)
        return -EPROTO;
    if (len < HEAD_LEN)
        return 0;
    hp_amqp_rd_t r = hp_amqp_rd(p + 3, 4);
    uint32_t size = hp_amqp_rd_u32(&r);
    if (type == HP_AMQP_FRAME_HEARTBEAT && size != 0)
        return -EPROTO;
    /* In 64 bits: a size near 4 GiB plus the overhead must not wrap. The
     * second test only matters where long is 32 bits. */
    uint64_t total = (uint64_t)size + HP_AMQP_FRAME_OVERHEAD;
    if ((frame_max && total > frame_max) || total > LONG_MAX)
        return -EMSGSIZE;
    if (len < total)
        return 0;
    if (p[total - 1] != HP_AMQP_FRAME_END)
        return -EPROTO;
    *out = (hp_amqp_frame_t){
        .type = type,
        .channel = channel,
        .payload = {p + HEAD_LEN, size},
    };
    return (long)total;
}

size_t hp_amqp_frame_begin(hp_amqp_wr_t *w, uint8_t type, uint16_t channel)
{
    size_t start = w->len;
    hp_amqp_wr_u8(w, type);
    hp_amqp_wr_u16(w, channel);
    hp_amqp_wr_u32(w, 0); /* patched by hp_amqp_frame_end */
    return start;
}

void hp_amqp_frame_end(hp_amqp_wr_t *w, size_t start)
{
    if (w->overflow)
        return;
    assert(start + HEAD_LEN <= w->len);
    size_t size = w->len - start - HEAD_LEN;
    /* The size field is a long: a payload past 4 GiB cannot be framed, and
     * counts as not fitting. */
    if (size > UINT32_MAX) {
        w->overflow = true;
        return;
    }
    /* The end octet first: when it does not fit, the size is left as it
     * was and the writer says overflow, so no frame looks complete. */
    uint8_t *end = hp_amqp_wr_take(w, 1);
    if (!end)
        return;
    *end = HP_AMQP_FRAME_END;
    hp_amqp_wr_t patch = hp_amqp_wr(w->buf + start + 3, 4);
    hp_amqp_wr_u32(&patch, (uint32_t)size);
}

void hp_amqp_frame_heartbeat(hp_amqp_wr_t *w)
{
    /* Taken whole: a heartbeat is either all there or not at all. */
    uint8_t *b = hp_amqp_wr_take(w, HP_AMQP_FRAME_OVERHEAD);
    if (!b)
        return;
    static const uint8_t hb[HP_AMQP_FRAME_OVERHEAD] = {
        HP_AMQP_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, HP_AMQP_FRAME_END,
    };
    memcpy(b, hb, sizeof(hb));
}

void hp_amqp_frame_content_header(hp_amqp_wr_t *w, uint16_t class_id, uint64_t body_size)
{
    hp_amqp_wr_u16(w, class_id);
    hp_amqp_wr_u16(w, 0); /* weight: unused, must be zero */
    hp_amqp_wr_u64(w, body_size);
}

int hp_amqp_frame_read_content_header(hp_amqp_rd_t *r, uint16_t *class_id, uint64_t *body_size)
{
    uint16_t cls = hp_amqp_rd_u16(r);
    uint16_t weight = hp_amqp_rd_u16(r);
    uint64_t size = hp_amqp_rd_u64(r);
    /* The spec says the weight field is unused and must be zero: a peer
     * that sends anything else is not framing content as we understand
     * it. */
    if (r->bad || weight != 0) {
        r->bad = true;
        return -EPROTO;
    }
    *class_id = cls;
    *body_size = size;
    return 0;
}
