/*
 * mpsc_int.h - bounded multi-producer, single-consumer ring of small messages.
 *
 * Workers talk to each other only through these: each worker owns one ring
 * (it is the single consumer) and any thread may push into it. Pushing is
 * lock-free: a producer claims a position with one compare-and-swap and
 * publishes the message through that slot's sequence number (the bounded
 * queue design of Dmitry Vyukov). Popping takes no atomic read-modify-write
 * at all. Waking the consumer (an eventfd) is the caller's business: push,
 * then write the eventfd if the ring was idle.
 */
#ifndef HOTPATH_MPSC_INT_H
#define HOTPATH_MPSC_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hotpath/common.h"

/* One message: a type tag, the sender's worker id, two payload words and
 * a function for the consumer to call (cast back to its real type, which
 * the type tag says). Ownership of whatever `ptr` points to passes to the
 * consumer with the message; the ring only copies the 32 bytes. */
typedef struct hp_msg {
    uint32_t type;
    uint32_t from;
    uint64_t arg;
    void *ptr;
    void (*fn)(void);
} hp_msg_t;

/* A slot: the message and the sequence number that says whose turn it is,
 * one per cache line, so producers of neighbouring slots never share one. */
typedef struct hp_mpsc_slot {
    _Atomic uint64_t seq;
    hp_msg_t msg;
    char pad[HP_CACHELINE - sizeof(uint64_t) - sizeof(hp_msg_t)];
} hp_mpsc_slot_t;

/* The producers' position and the consumer's position are written on
 * every operation by different threads, so they sit on separate cache
 * lines, apart from the read-only fields too. The padding keeps them apart
 * wherever the struct is placed: it does not rely on 64-byte alignment
 * (which heap-allocated owners would not provide). */
typedef struct hp_mpsc {
    /* read-only after init, read by everyone */
    hp_mpsc_slot_t *slots; /* capacity entries, 64-byte aligned */
    void *raw;             /* owned: the allocation holding slots */
    uint64_t mask;         /* capacity - 1 */
    char pad0[HP_CACHELINE];
    _Atomic uint64_t tail; /* producers: next position to claim */
    char pad1[HP_CACHELINE];
    uint64_t head;         /* consumer only: next position to read */
    char pad2[HP_CACHELINE];
} hp_mpsc_t;

/* Prepares an empty ring of `capacity` slots (a power of two >= 2).
 * Returns 0, -EINVAL for a bad capacity, -ENOMEM (q is then left
 * zeroed). The ring owns its slot array until hp_mpsc_destroy(). */
int hp_mpsc_init(hp_mpsc_t *q, uint32_t capacity);

/* Copies *m into the ring. Any thread; lock-free. Returns false when the
 * ring is full (the consumer is capacity messages behind): the caller
 * decides whether to retry, drop or fall back. The message is visible to
 * the consumer once push has returned. */
bool hp_mpsc_push(hp_mpsc_t *q, const hp_msg_t *m);

/* Copies the oldest message into *out (OUT) and removes it. Owning thread
 * only. Returns false when the ring is empty, which includes the moment
 * between a producer claiming a slot and finishing its copy: that message
 * is popped by a later call, and the producer's wake-up follows it.
 * Messages from one producer come out in the order it pushed them. */
bool hp_mpsc_pop(hp_mpsc_t *q, hp_msg_t *out);

/* Frees the slot array; messages still inside are dropped (the caller
 * drains first if their ptr needs freeing). No thread may use q after. */
void hp_mpsc_destroy(hp_mpsc_t *q);

/* Checks the ring while no other thread touches it: head <= tail <= head
 * + capacity, full slots carry seq == position + 1 and free ones seq ==
 * the position they will take. Returns 0 or -EINVAL. Tests only. */
int hp_mpsc_validate(const hp_mpsc_t *q);

#endif
