/*
 * mpsc.c - bounded lock-free MPSC ring (Vyukov-style sequence numbers).
 *
 * Data structure: `capacity` slots, each a message plus an atomic sequence
 * number, and two unbounded 64-bit positions, tail (claimed by producers
 * with CAS) and head (advanced by the one consumer). Position p uses slot
 * p & mask.
 *
 * Invariant, for slot i and the position p in [head, head + capacity) that
 * maps to it: seq == p when the slot is free for the producer of p, seq ==
 * p + 1 once that producer has published its message, and the consumer
 * sets seq = p + capacity when it has copied the message out, which is the
 * "free" value for the next lap. A producer at position p therefore
 * succeeds iff seq == p; seq < p means the slot still holds the message of
 * the previous lap, i.e. the ring is full. The release store of seq after
 * the message copy, paired with the acquire load on the other side, is
 * what makes the plain message copy race-free. 64-bit positions cannot
 * wrap in practice (centuries at a billion messages a second).
 */
#include "mpsc_int.h"

#include <errno.h>
#include <string.h>

#include "hotpath/alloc.h"

_Static_assert(sizeof(hp_mpsc_slot_t) == HP_CACHELINE, "one slot per cache line");

int hp_mpsc_init(hp_mpsc_t *q, uint32_t capacity)
{
    memset(q, 0, sizeof(*q));
    /* Capacity 1 cannot work: the "free" value of the next lap, p + 1,
     * would equal the "published" value of this one. */
    if (capacity < 2 || (capacity & (capacity - 1)) != 0)
        return -EINVAL;
    /* Slots are 32 bytes; aligning the array to a cache line keeps each
     * slot's sequence number and message in one line. */
    void *raw = hp_malloc((size_t)capacity * sizeof(hp_mpsc_slot_t) +
                          HP_CACHELINE - 1);
    if (!raw)
        return -ENOMEM;
    hp_mpsc_slot_t *slots =
        (hp_mpsc_slot_t *)(((uintptr_t)raw + HP_CACHELINE - 1) &
                           ~(uintptr_t)(HP_CACHELINE - 1));
    for (uint32_t i = 0; i < capacity; i++) {
        atomic_init(&slots[i].seq, i);
        memset(&slots[i].msg, 0, sizeof(slots[i].msg));
    }
    q->slots = slots;
    q->raw = raw;
    q->mask = capacity - 1;
    atomic_init(&q->tail, 0);
    q->head = 0;
    return 0;
}

bool hp_mpsc_push(hp_mpsc_t *q, const hp_msg_t *m)
{
    uint64_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    hp_mpsc_slot_t *slot;
    for (;;) {
        slot = &q->slots[pos & q->mask];
        uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
        int64_t diff = (int64_t)(seq - pos);
        if (diff == 0) {
            /* Our turn if no other producer claims pos first; on failure
             * the CAS reloads pos and we look again. */
            if (atomic_compare_exchange_weak_explicit(
                    &q->tail, &pos, pos + 1, memory_order_relaxed,
                    memory_order_relaxed))
                break;
        } else if (diff < 0) {
            /* The slot still holds the message from one lap ago. */
            return false;
        } else {
            /* Another producer took pos already; catch up. */
            pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
        }
    }
    slot->msg = *m;
    atomic_store_explicit(&slot->seq, pos + 1, memory_order_release);
    return true;
}

bool hp_mpsc_pop(hp_mpsc_t *q, hp_msg_t *out)
{
    uint64_t pos = q->head;
    hp_mpsc_slot_t *slot = &q->slots[pos & q->mask];
    uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
    if (seq != pos + 1)
        return false; /* empty, or its producer is still copying */
    *out = slot->msg;
    /* Hand the slot to the producer of the next lap. */
    atomic_store_explicit(&slot->seq, pos + q->mask + 1,
                          memory_order_release);
    q->head = pos + 1;
    return true;
}

void hp_mpsc_destroy(hp_mpsc_t *q)
{
    hp_free(q->raw);
    memset(q, 0, sizeof(*q));
}

int hp_mpsc_validate(const hp_mpsc_t *q)
{
    uint64_t cap = q->mask + 1;
    if (!q->slots || !q->raw || cap < 2 || (cap & q->mask) != 0 ||
        ((uintptr_t)q->slots & (HP_CACHELINE - 1)) != 0)
        return -EINVAL;
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (tail - q->head > cap || tail < q->head)
        return -EINVAL;
    for (uint64_t p = q->head; p < q->head + cap; p++) {
        uint64_t seq = atomic_load_explicit(&q->slots[p & q->mask].seq,
                                            memory_order_relaxed);
        if (seq != (p < tail ? p + 1 : p))
            return -EINVAL;
    }
    return 0;
}
