/* A Knit host written in C: starts two worker processes (./worker, or the command given as
 * arguments), calls "hello" and "checksum" on them, and prints what came back.
 *
 *   ./host                     # uses ./worker next to it
 *   ./host path/to/any-worker  # a worker in any language serving hello and checksum
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "knit.h"

static int fail(const char *what, knit_status status) {
    fprintf(stderr, "host: %s: %s (%s)\n", what, knit_last_error_message(), knit_status_name(status));
    return 1;
}

int main(int argc, char **argv) {
    const char *default_argv[] = {"./worker", NULL};
    const char *const *worker_argv = argc > 1 ? (const char *const *)(argv + 1) : default_argv;

    knit_config *config = NULL;
    knit_status st = knit_config_new(&config);
    if (st == KNIT_OK) st = knit_config_set_workers(config, 2);
    if (st == KNIT_OK) st = knit_config_set_process(config, worker_argv, NULL);
    if (st != KNIT_OK) return fail("config", st);

    knit_pool *pool = NULL;
    st = knit_pool_start(config, &pool); /* waits until both workers are ready */
    knit_config_free(config);
    if (st != KNIT_OK) return fail("starting the workers", st);

    /* A blocking call: the result is ours until knit_response_free. */
    knit_response *response = NULL;
    st = knit_call(pool, "hello", (const uint8_t *)"World", 5, KNIT_CONTENT_UTF8, 0, &response);
    if (st != KNIT_OK) return fail("hello", st);
    const uint8_t *data = NULL;
    size_t len = 0;
    knit_response_get(response, &data, &len, NULL);
    printf("hello    -> %.*s\n", (int)len, (const char *)data);
    knit_response_free(response);

    /* One megabyte each way through shared memory, with a 2 s deadline. */
    static uint8_t block[1 << 20];
    for (size_t i = 0; i < sizeof block; i++) block[i] = (uint8_t)(i * 31);
    st = knit_call(pool, "checksum", block, sizeof block, KNIT_CONTENT_BYTES, 2000000000ULL, &response);
    if (st != KNIT_OK) return fail("checksum", st);
    knit_response_get(response, &data, &len, NULL);
    uint64_t sum = 0;
    for (size_t b = 0; b < len && b < 8; b++) sum |= (uint64_t)data[b] << (8 * b);
    printf("checksum -> %016llx (%zu bytes in)\n", (unsigned long long)sum, sizeof block);
    knit_response_free(response);

    /* Errors come back as status codes with a message. */
    st = knit_call(pool, "no-such-function", NULL, 0, KNIT_CONTENT_BYTES, 0, NULL);
    printf("unknown  -> status %u, %s\n", st, knit_last_error_message());

    knit_pool_free(pool); /* shuts the workers down and removes the region */
    return knit_handle_count() == 0 ? 0 : 1;
}
