/* A Knit worker written in C. A host (in any language) starts it as a process worker; it
 * serves two functions until the host shuts the pool down:
 *
 *   hello     "World" -> "Hello, World"                           (UTF-8 text)
 *   checksum  any bytes -> FNV-1a-64 over little-endian 8-byte words, then the tail bytes,
 *             xor the length, as 8 little-endian bytes (the same as Knit's Rust test worker)
 *
 * Build: make (see README.md). Started by ./host, or by a Rust host:
 *   Pool::builder().process(Command::new("examples/c/build/worker")).build()
 */
#include <stdint.h>
#include <stdio.h>

#include "knit.h"

static knit_status hello(void *user_data, const knit_request *req, knit_reply *reply) {
    (void)user_data;
    char text[512];
    /* The payload may be the shared ring itself: read it, never keep a pointer to it. */
    int n = snprintf(text, sizeof text, "Hello, %.*s", (int)req->payload_len, (const char *)req->payload);
    if (n < 0 || (size_t)n >= sizeof text) {
        knit_reply_error(reply, KNIT_PAYLOAD_TOO_LARGE, "the name is longer than 500 bytes");
        return KNIT_PAYLOAD_TOO_LARGE;
    }
    return knit_reply_set(reply, (const uint8_t *)text, (size_t)n, KNIT_CONTENT_UTF8);
}

static knit_status checksum(void *user_data, const knit_request *req, knit_reply *reply) {
    (void)user_data;
    const uint8_t *p = req->payload;
    size_t n = req->payload_len, i = 0;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; i + 8 <= n; i += 8) {
        uint64_t word = 0;
        for (int b = 7; b >= 0; b--) word = (word << 8) | p[i + (size_t)b];
        h = (h ^ word) * 0x100000001b3ULL;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    h ^= (uint64_t)n;
    /* Write the result straight into the reply's buffer. */
    uint8_t *out = NULL;
    knit_status st = knit_reply_alloc(reply, 8, KNIT_CONTENT_BYTES, &out);
    if (st != KNIT_OK) return st;
    for (int b = 0; b < 8; b++) out[b] = (uint8_t)(h >> (8 * b));
    return KNIT_OK;
}

int main(void) {
    knit_worker *worker = NULL;
    /* The host passes the region and slot in KNIT_REGION / KNIT_SLOT. */
    if (knit_worker_from_env(&worker) != KNIT_OK) {
        fprintf(stderr, "worker: %s\n", knit_last_error_message());
        return 2;
    }
    if (knit_worker_handle(worker, "hello", hello, NULL, NULL) != KNIT_OK ||
        knit_worker_handle(worker, "checksum", checksum, NULL, NULL) != KNIT_OK) {
        fprintf(stderr, "worker: %s\n", knit_last_error_message());
        knit_worker_free(worker);
        return 2;
    }
    knit_status status = knit_worker_run(worker); /* returns when the host shuts down */
    if (status != KNIT_OK) fprintf(stderr, "worker: %s\n", knit_last_error_message());
    knit_worker_free(worker);
    return status == KNIT_OK ? 0 : 1;
}
