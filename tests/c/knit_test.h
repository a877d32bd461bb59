/* Small helpers shared by the C tests and test workers: checks that count failures, the
 * checksum the Rust test worker computes, deterministic random bytes. */
#ifndef KNIT_TEST_H
#define KNIT_TEST_H

#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "knit.h"

/* Each test program defines `static int test_failures;` before including this header's checks. */

/* A check that records a failure and goes on. */
#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
            test_failures++;                                                                 \
        }                                                                                    \
    } while (0)

/* A status check that prints both names and the library's message on failure. */
#define CHECK_STATUS(expr, want)                                                             \
    do {                                                                                     \
        knit_status got_ = (expr);                                                           \
        knit_status want_ = (want);                                                          \
        if (got_ != want_) {                                                                 \
            fprintf(stderr, "%s:%d: %s returned %u %s, want %u %s: %s\n", __FILE__, __LINE__, \
                    #expr, got_, knit_status_name(got_), want_, knit_status_name(want_),     \
                    knit_last_error_message());                                              \
            test_failures++;                                                                 \
        }                                                                                    \
    } while (0)

/* Like CHECK_STATUS(expr, KNIT_OK), but leaves the calling test function on failure. */
#define REQUIRE_OK(expr)                                                                     \
    do {                                                                                     \
        knit_status got_ = (expr);                                                           \
        if (got_ != KNIT_OK) {                                                               \
            fprintf(stderr, "%s:%d: %s returned %u %s: %s\n", __FILE__, __LINE__, #expr,    \
                    got_, knit_status_name(got_), knit_last_error_message());                \
            test_failures++;                                                                 \
            return;                                                                          \
        }                                                                                    \
    } while (0)

/* FNV-1a over little-endian 8-byte words, then the tail bytes, xor the length: the
 * "checksum" function of every Knit test worker (knit/src/bin/knit-test-worker.rs). */
static inline uint64_t knit_test_checksum(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (int b = 7; b >= 0; b--) w = (w << 8) | p[i + (size_t)b];
        h = (h ^ w) * 0x100000001b3ULL;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h ^ (uint64_t)n;
}

static inline void knit_test_put_u64(uint8_t out[8], uint64_t v) {
    for (int b = 0; b < 8; b++) out[b] = (uint8_t)(v >> (8 * b));
}

static inline uint64_t knit_test_get_u64(const uint8_t in[8]) {
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--) v = (v << 8) | in[b];
    return v;
}

/* Deterministic bytes (xorshift64*), so failures reproduce. */
static inline void knit_test_fill(uint8_t *p, size_t n, uint64_t seed) {
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        p[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> 56);
    }
}

static inline void knit_test_sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

#endif
