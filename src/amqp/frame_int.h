/*
 * frame_int.h - AMQP 0-9-1 frames (spec §4.2.3): find whole frames in
 * received bytes, and write them.
 *
 * A frame is a type octet, a channel (short), a payload size (long), the
 * payload and the frame-end octet 0xCE. Method frames carry a class id, a
 * method id and the arguments (the generated codec, amqp_spec.h); content
 * header frames a class id, a weight (0), the body size (longlong) and the
 * properties; body frames raw bytes; heartbeat frames nothing, on channel
 * 0. Parsing copies nothing: the payload points into the received bytes.
 */
#ifndef HOTPATH_AMQP_FRAME_INT_H
#define HOTPATH_AMQP_FRAME_INT_H

#include <stddef.h>
#include <stdint.h>

#include "hotpath/amqp_table.h"
#include "wire_int.h"

enum {
    HP_AMQP_FRAME_METHOD = 1,
    HP_AMQP_FRAME_HEADER = 2,
    HP_AMQP_FRAME_BODY = 3,
    HP_AMQP_FRAME_HEARTBEAT = 8,
};

#define HP_AMQP_FRAME_END 0xCE
/* Bytes a frame adds around its payload: 7 before, 1 after. */
#define HP_AMQP_FRAME_OVERHEAD 8
/* The smallest frame_max a peer may ask for (spec: frame-min-size). */
#define HP_AMQP_FRAME_MIN_SIZE 4096
/* What a client sends first: "AMQP", 0, 0, 9, 1. */
#define HP_AMQP_PROTOCOL_HEADER "AMQP\x00\x00\x09\x01"
#define HP_AMQP_PROTOCOL_HEADER_LEN 8

typedef struct hp_amqp_frame {
    uint8_t type;             /* HP_AMQP_FRAME_* */
    uint16_t channel;
    hp_amqp_bytes_t payload;  /* borrowed: inside the parsed bytes */
} hp_amqp_frame_t;

/* Looks for one whole frame at p[0, len). Returns its size on the wire
 * (payload + HP_AMQP_FRAME_OVERHEAD) with *out set (*out is untouched
 * otherwise); 0 when more bytes are needed; -EMSGSIZE when its size exceeds frame_max (the whole frame,
 * overhead included, as negotiated; 0: no limit); -EPROTO when the
 * frame-end octet is wrong or the type is not one of the four (the peer
 * is then answered with 501 frame-error, or 505 unexpected-frame for a
 * heartbeat off channel 0 — the caller's choice; this only reports).
 * Also -EPROTO for a heartbeat with a payload or on a channel other than
 * 0. A peer that sends "AMQP" at a frame boundary is rejecting our
 * protocol version: -EPROTONOSUPPORT (once 8 bytes are there).
 * Each answer is given as soon as the bytes that decide it are there
 * (the type from 1 byte, a heartbeat's channel from 3, the size from the
 * 7-byte header, before any payload), and a prefix of the input never
 * gives an answer other than 0 or the whole input's. */
long hp_amqp_frame_parse(const uint8_t *p, size_t len, uint32_t frame_max, hp_amqp_frame_t *out);

/* Writes a frame header for a payload still to come and returns where
 * the frame starts in w (for hp_amqp_frame_end). */
size_t hp_amqp_frame_begin(hp_amqp_wr_t *w, uint8_t type, uint16_t channel);

/* Patches the payload size of the frame begun at `start` and writes the
 * frame-end octet. Nothing on an overflowed writer; when the end octet
 * does not fit the writer overflows and the size is not patched. */
void hp_amqp_frame_end(hp_amqp_wr_t *w, size_t start);

/* A whole heartbeat frame (8 bytes). */
void hp_amqp_frame_heartbeat(hp_amqp_wr_t *w);

/* The payload of a content header frame up to the properties: class id,
 * weight 0, body size. The properties follow (hp_amqp_props_encode). */
void hp_amqp_frame_content_header(hp_amqp_wr_t *w, uint16_t class_id, uint64_t body_size);

/* Reads the same back from a header frame's payload: class id and body
 * size; the reader is left at the property flags. Returns 0, or -EPROTO
 * (and the reader bad, the outputs untouched) when the payload is too
 * short or the weight is not 0. */
int hp_amqp_frame_read_content_header(hp_amqp_rd_t *r, uint16_t *class_id, uint64_t *body_size);

#endif
