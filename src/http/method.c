/*
 * method.c - the table of request methods (http_method.h).
 *
 * Central data structure: hp_method_table, indexed by id. Invariant: each
 * entry's len is the length of its name, and each HP_ROUTER_* bit belongs
 * to exactly one entry; tests/unit/http/test_method.c checks both, and that
 * the request parser's own recogniser agrees with the table.
 */
#include "hotpath/http_method.h"

#include <string.h>

#include "hotpath/router.h"

const hp_method_info_t hp_method_table[HP_METHOD_COUNT] = {
    [HP_METHOD_UNKNOWN] = {NULL, 0, 0},
    [HP_METHOD_GET] = {"GET", 3, HP_ROUTER_GET},
    [HP_METHOD_HEAD] = {"HEAD", 4, HP_ROUTER_HEAD},
    [HP_METHOD_POST] = {"POST", 4, HP_ROUTER_POST},
    [HP_METHOD_PUT] = {"PUT", 3, HP_ROUTER_PUT},
    [HP_METHOD_DELETE] = {"DELETE", 6, HP_ROUTER_DELETE},
    [HP_METHOD_OPTIONS] = {"OPTIONS", 7, HP_ROUTER_OPTIONS},
    [HP_METHOD_PATCH] = {"PATCH", 5, HP_ROUTER_PATCH},
    [HP_METHOD_TRACE] = {"TRACE", 5, 0},
    [HP_METHOD_CONNECT] = {"CONNECT", 7, 0},
};

int hp_method_lookup(const char *name, size_t len)
{
    for (int id = 1; id < HP_METHOD_COUNT; id++)
        if (hp_method_table[id].len == len && !memcmp(hp_method_table[id].name, name, len))
            return id;
    return HP_METHOD_UNKNOWN;
}

int hp_method_of_router_bit(uint32_t bit)
{
    for (int id = 1; id < HP_METHOD_COUNT; id++)
        if (bit && hp_method_table[id].router_bit == bit)
            return id;
    return HP_METHOD_UNKNOWN;
}
