/*
 * fuzz_accept.c - libFuzzer target for Accept-Encoding negotiation
 * (src/http/accept.c).
 *
 * The first input byte is the `available` mask (all 8 bits, so unknown
 * bits are exercised), the rest is the header value, copied to a heap block
 * of exactly its length so ASan catches any read past the end. Checks: the
 * answer is 0 or a single bit of available | identity; 0 only when
 * identity itself is refused; the winner still wins when the other
 * candidates are taken away; and an absent header always gives identity.
 */
#include "http/accept_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned avail = data[0];
    size_t len = size - 1;
    char *v = malloc(len ? len : 1);
    if (!v)
        abort();
    memcpy(v, data + 1, len);

    unsigned allowed = (avail & (HP_ENC_GZIP | HP_ENC_BR)) | HP_ENC_IDENTITY;
    unsigned r = hp_accept_encoding(v, len, avail);
    if (r != 0 && r != HP_ENC_IDENTITY && r != HP_ENC_GZIP && r != HP_ENC_BR)
        abort();
    if (r & ~allowed)
        abort();
    unsigned id = hp_accept_encoding(v, len, HP_ENC_IDENTITY);
    if (r == 0 && id != 0)
        abort(); /* nothing acceptable although identity is */
    if (id == 0 && hp_accept_encoding(v, len, 0) != 0)
        abort();
    if (r != 0 && hp_accept_encoding(v, len, r) != r)
        abort(); /* a subset containing the winner keeps it */
    unsigned all = hp_accept_encoding(v, len, HP_ENC_IDENTITY | HP_ENC_GZIP | HP_ENC_BR);
    if (all != 0 && (all & allowed) && r != all)
        abort(); /* the best overall is best in every subset holding it */
    if (hp_accept_encoding(NULL, len, avail) != HP_ENC_IDENTITY)
        abort();
    free(v);
    return 0;
}
