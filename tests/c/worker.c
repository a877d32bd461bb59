/* The C test worker: a worker process started by a pool (KNIT_REGION / KNIT_SLOT), serving the
 * same functions as the Rust test worker (knit/src/bin/knit-test-worker.rs) so that one test
 * battery runs against both, plus two that only C needs (fail_code, alloc). */
#include "knit_test.h" /* first: it sets the POSIX feature level */

#include <stdlib.h>
#include <unistd.h>

static knit_status hello(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    char out[512];
    int n = snprintf(out, sizeof out, "Hello, %.*s", (int)req->payload_len, (const char *)req->payload);
    if (n < 0 || (size_t)n >= sizeof out) {
        knit_reply_error(reply, KNIT_PAYLOAD_TOO_LARGE, "name too long");
        return KNIT_PAYLOAD_TOO_LARGE;
    }
    return knit_reply_set(reply, (const uint8_t *)out, (size_t)n, KNIT_CONTENT_UTF8);
}

static knit_status echo(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    return knit_reply_set(reply, req->payload, req->payload_len, req->content_type);
}

static knit_status checksum(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    uint8_t out[8];
    knit_test_put_u64(out, knit_test_checksum(req->payload, req->payload_len));
    return knit_reply_set(reply, out, sizeof out, KNIT_CONTENT_BYTES);
}

static knit_status pid(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)req;
    uint32_t p = (uint32_t)getpid();
    uint8_t out[4] = {(uint8_t)p, (uint8_t)(p >> 8), (uint8_t)(p >> 16), (uint8_t)(p >> 24)};
    return knit_reply_set(reply, out, sizeof out, KNIT_CONTENT_BYTES);
}

/* C cannot panic: the nearest thing is a handler failure with a message. */
static knit_status panic_(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)req;
    knit_reply_error(reply, KNIT_HANDLER_FAILED, "worker process panicked on purpose");
    return KNIT_HANDLER_FAILED;
}

static knit_status exit_(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)req;
    (void)reply;
    _exit(7);
}

static int millis(const knit_request *req, uint64_t *ms) {
    if (req->payload_len != 8) return 0;
    *ms = knit_test_get_u64(req->payload);
    return 1;
}

static knit_status sleep_ms(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    uint64_t ms;
    if (!millis(req, &ms)) {
        knit_reply_error(reply, KNIT_HANDLER_FAILED, "want 8 bytes (u64 milliseconds)");
        return KNIT_HANDLER_FAILED;
    }
    knit_test_sleep_ms((unsigned)ms);
    return KNIT_OK;
}

static knit_status sleep_until_cancelled(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    uint64_t ms;
    if (!millis(req, &ms)) {
        knit_reply_error(reply, KNIT_HANDLER_FAILED, "want 8 bytes (u64 milliseconds)");
        return KNIT_HANDLER_FAILED;
    }
    for (uint64_t i = 0; i < ms; i++) {
        bool cancelled = false;
        if (knit_request_is_cancelled(req, &cancelled) != KNIT_OK) return KNIT_HANDLER_FAILED;
        if (cancelled) {
            knit_reply_error(reply, KNIT_CANCELLED, "saw the cancel entry");
            return KNIT_CANCELLED;
        }
        knit_test_sleep_ms(1);
    }
    static const char text[] = "not cancelled";
    return knit_reply_set(reply, (const uint8_t *)text, sizeof text - 1, KNIT_CONTENT_UTF8);
}

/* Fails with the application code given as 8 bytes, and a message naming it. */
static knit_status fail_code(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    uint64_t code;
    if (!millis(req, &code)) return KNIT_HANDLER_FAILED;
    char text[64];
    snprintf(text, sizeof text, "application failure %llu", (unsigned long long)code);
    knit_reply_error(reply, (knit_status)code, text);
    return (knit_status)code;
}

/* Answers N bytes (N given as 8 bytes) of the pattern i & 0xff, written in place. */
static knit_status alloc(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    uint64_t n;
    if (!millis(req, &n)) return KNIT_HANDLER_FAILED;
    uint8_t *buf = NULL;
    knit_status st = knit_reply_alloc(reply, (size_t)n, KNIT_CONTENT_BYTES, &buf);
    if (st != KNIT_OK) return st;
    for (uint64_t i = 0; i < n; i++) buf[i] = (uint8_t)i;
    return KNIT_OK;
}

static int count(const knit_request *req, uint32_t *n) {
    if (req->payload_len != 4) return 0;
    const uint8_t *p = req->payload;
    *n = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return 1;
}

/* Streams "step I of N" on a channel to the caller, closes it, returns nothing. */
static knit_status progress(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    uint32_t n;
    if (!count(req, &n)) {
        knit_reply_error(reply, KNIT_HANDLER_FAILED, "want 4 bytes (u32 count)");
        return KNIT_HANDLER_FAILED;
    }
    knit_sender *tx = NULL;
    knit_status st = knit_request_open_channel(req, &tx);
    if (st != KNIT_OK) return st;
    for (uint32_t i = 0; i < n; i++) {
        char text[64];
        int len = snprintf(text, sizeof text, "step %u of %u", i, n);
        st = knit_sender_send(tx, (const uint8_t *)text, (size_t)len, KNIT_CONTENT_BYTES);
        if (st != KNIT_OK) return st; /* the sender is aborted when the handler returns */
    }
    return knit_sender_close(tx);
}

/* Streams "step I", then dies with the channel open. */
static knit_status progress_then_exit(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)reply;
    uint32_t n;
    if (!count(req, &n)) return KNIT_HANDLER_FAILED;
    knit_sender *tx = NULL;
    if (knit_request_open_channel(req, &tx) != KNIT_OK) return KNIT_HANDLER_FAILED;
    for (uint32_t i = 0; i < n; i++) {
        char text[32];
        int len = snprintf(text, sizeof text, "step %u", i);
        knit_sender_send(tx, (const uint8_t *)text, (size_t)len, KNIT_CONTENT_BYTES);
    }
    _exit(9);
}

/* The digest of the host's channel: message count, total bytes, FNV-1a over every byte in
 * order, as three little-endian u64 (the Rust test worker's "digest"). */
static knit_status digest(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    knit_receiver *rx = NULL;
    knit_status st = knit_request_take_channel(req, &rx);
    if (st != KNIT_OK) return st;
    uint64_t messages = 0, bytes = 0, hash = 0xcbf29ce484222325ULL;
    for (;;) {
        knit_response *msg = NULL;
        st = knit_receiver_recv(rx, &msg);
        if (st == KNIT_CHANNEL_CLOSED) break;
        if (st != KNIT_OK) return st;
        const uint8_t *data = NULL;
        size_t len = 0;
        knit_response_get(msg, &data, &len, NULL);
        messages++;
        bytes += len;
        for (size_t i = 0; i < len; i++) hash = (hash ^ data[i]) * 0x100000001b3ULL;
        knit_response_free(msg);
    }
    knit_receiver_free(rx);
    uint8_t out[24];
    knit_test_put_u64(out, messages);
    knit_test_put_u64(out + 8, bytes);
    knit_test_put_u64(out + 16, hash);
    return knit_reply_set(reply, out, sizeof out, KNIT_CONTENT_BYTES);
}

static size_t write_pattern(void *ud, uint8_t *buf, size_t capacity) {
    (void)ud;
    for (size_t i = 0; i < capacity; i++) buf[i] = (uint8_t)(i % 251);
    return capacity;
}

/* `len` (u32) bytes of i % 251, written straight into the response ring when they fit. */
static knit_status pattern_in_place(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    uint32_t len;
    if (!count(req, &len)) return KNIT_INVALID_ARGUMENT;
    return knit_reply_write_in_place(reply, len, KNIT_CONTENT_BYTES, write_pattern, NULL);
}

int main(void) {
    knit_worker *w = NULL;
    if (knit_worker_from_env(&w) != KNIT_OK) {
        fprintf(stderr, "c-test-worker: %s\n", knit_last_error_message());
        return 2;
    }
    struct {
        const char *name;
        knit_handler_fn fn;
    } table[] = {
        {"hello", hello},         {"echo", echo},         {"checksum", checksum},
        {"pid", pid},             {"panic", panic_},      {"exit", exit_},
        {"sleep_ms", sleep_ms},   {"fail_code", fail_code}, {"alloc", alloc},
        {"sleep_until_cancelled", sleep_until_cancelled}, {"digest", digest},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (knit_worker_handle(w, table[i].name, table[i].fn, NULL, NULL) != KNIT_OK) {
            fprintf(stderr, "c-test-worker: %s\n", knit_last_error_message());
            return 2;
        }
    }
    if (knit_worker_handle_in_place(w, "pattern_in_place", pattern_in_place, NULL, NULL) != KNIT_OK ||
        knit_worker_handle_streaming(w, "progress", progress, NULL, NULL) != KNIT_OK ||
        knit_worker_handle_streaming(w, "progress_then_exit", progress_then_exit, NULL, NULL) != KNIT_OK) {
        fprintf(stderr, "c-test-worker: %s\n", knit_last_error_message());
        return 2;
    }
    knit_status st = knit_worker_run(w);
    if (st != KNIT_OK) fprintf(stderr, "c-test-worker: %s\n", knit_last_error_message());
    knit_worker_free(w);
    return st == KNIT_OK ? 0 : 3;
}
