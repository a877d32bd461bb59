/* The C host tests of libknit: a C host calling C handlers on thread workers, a C worker
 * process and a Rust worker process, the same workers started outside the pool (external);
 * async calls (tickets, wait-any, callbacks), loans,
 * inspection, every error path, and a leak check of handles at the end.
 *
 * Usage: test_host C_WORKER RUST_WORKER    (paths of tests/c/worker.c built, and of
 *                                          knit/src/bin/knit-test-worker.rs built) */
#include "knit_test.h" /* first: it sets the POSIX feature level */

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int test_failures;

/* ---------------------------------------------------------------- helpers */

static knit_pool *start_pool(knit_config *cfg) {
    knit_pool *pool = NULL;
    knit_status st = knit_pool_start(cfg, &pool);
    if (st != KNIT_OK) {
        fprintf(stderr, "knit_pool_start: %s: %s\n", knit_status_name(st), knit_last_error_message());
        test_failures++;
        return NULL;
    }
    return pool;
}

/* Calls `fn` with `len` bytes and returns the status; on success copies at most `cap` result
 * bytes into `out` and their count into `*out_len`. */
static knit_status call_bytes(knit_pool *pool, const char *fn, const void *payload, size_t len, uint64_t deadline_ns,
                              uint8_t *out, size_t cap, size_t *out_len) {
    knit_response *res = NULL;
    knit_status st = knit_call(pool, fn, payload, len, KNIT_CONTENT_BYTES, deadline_ns, &res);
    if (st != KNIT_OK) {
        CHECK(res == NULL);
        return st;
    }
    const uint8_t *data = NULL;
    size_t n = 0;
    CHECK_STATUS(knit_response_get(res, &data, &n, NULL), KNIT_OK);
    if (out_len) *out_len = n;
    if (out && n <= cap && n > 0) memcpy(out, data, n);
    CHECK_STATUS(knit_response_free(res), KNIT_OK);
    return KNIT_OK;
}

static knit_status call_u64(knit_pool *pool, const char *fn, uint64_t value, uint64_t deadline_ns) {
    uint8_t arg[8];
    knit_test_put_u64(arg, value);
    return call_bytes(pool, fn, arg, sizeof arg, deadline_ns, NULL, 0, NULL);
}

/* Echo of `len` deterministic bytes through `fn` ("echo"): the result equals the input. */
static void check_echo(knit_pool *pool, size_t len, uint64_t seed) {
    uint8_t *in = malloc(len ? len : 1);
    uint8_t *back = malloc(len ? len : 1);
    knit_test_fill(in, len, seed);
    size_t n = (size_t)-1;
    CHECK_STATUS(call_bytes(pool, "echo", in, len, 0, back, len, &n), KNIT_OK);
    CHECK(n == len);
    CHECK(len == 0 || memcmp(in, back, len) == 0);
    free(in);
    free(back);
}

static void check_checksum(knit_pool *pool, size_t len, uint64_t seed) {
    uint8_t *in = malloc(len ? len : 1);
    knit_test_fill(in, len, seed);
    uint8_t out[8] = {0};
    size_t n = 0;
    CHECK_STATUS(call_bytes(pool, "checksum", in, len, 0, out, sizeof out, &n), KNIT_OK);
    CHECK(n == 8);
    CHECK(knit_test_get_u64(out) == knit_test_checksum(in, len));
    free(in);
}

static void check_hello(knit_pool *pool) {
    knit_response *res = NULL;
    CHECK_STATUS(knit_call(pool, "hello", (const uint8_t *)"World", 5, KNIT_CONTENT_UTF8, 0, &res), KNIT_OK);
    const uint8_t *data = NULL;
    size_t len = 0;
    uint32_t ct = 99;
    CHECK_STATUS(knit_response_get(res, &data, &len, &ct), KNIT_OK);
    CHECK(len == 12 && data && memcmp(data, "Hello, World", 12) == 0);
    CHECK(ct == KNIT_CONTENT_UTF8);
    CHECK_STATUS(knit_response_free(res), KNIT_OK);
}

static int message_contains(const char *needle) {
    return strstr(knit_last_error_message(), needle) != NULL;
}

/* ---------------------------------------------------------------- versions and errors */

static void test_versions(void) {
    CHECK(knit_version() == KNIT_VERSION);
    CHECK((knit_version() >> 16) == KNIT_VERSION_MAJOR);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", KNIT_VERSION_MAJOR, KNIT_VERSION_MINOR, KNIT_VERSION_PATCH);
    CHECK(strcmp(knit_version_string(), want) == 0);
    uint16_t major = 0, minor = 99;
    CHECK_STATUS(knit_protocol_version(&major, &minor), KNIT_OK);
    CHECK(major == KNIT_PROTOCOL_MAJOR && minor == KNIT_PROTOCOL_MINOR);
    CHECK(strcmp(knit_status_name(KNIT_PEER_DIED), "PEER_DIED") == 0);
    CHECK(strcmp(knit_status_name(4242), "APPLICATION") == 0);
    CHECK(strcmp(knit_status_name(99), "UNKNOWN") == 0);
}

/* Every handle type refuses NULL, a forged pointer, a freed handle and a handle of another
 * type with KNIT_INVALID_ARGUMENT, and says why. */
static void test_bad_handles(void) {
    knit_pool *forged = (knit_pool *)(uintptr_t)0x1234;
    knit_response *res = (knit_response *)(uintptr_t)0xdead;
    CHECK_STATUS(knit_call(NULL, "hello", NULL, 0, 0, 0, &res), KNIT_INVALID_ARGUMENT);
    CHECK(res == NULL); /* a failed call leaves NULL in the output */
    CHECK(message_contains("NULL"));
    CHECK_STATUS(knit_call(forged, "hello", NULL, 0, 0, 0, NULL), KNIT_INVALID_ARGUMENT);
    CHECK(message_contains("not a live knit_pool"));
    CHECK_STATUS(knit_pool_free(NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_pool_shutdown(forged), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_response_free(NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_response_get(NULL, NULL, NULL, NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_ticket_free(NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_ticket_cancel(NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_worker_run(NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_worker_free(NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_handlers_free(NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_region_free(NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_config_free(NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_config_set_workers(NULL, 1), KNIT_INVALID_ARGUMENT);

    /* Output pointers must not be NULL. */
    CHECK_STATUS(knit_config_new(NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_handlers_new(NULL), KNIT_INVALID_ARGUMENT);

    /* A freed handle, and a double free. */
    knit_config *cfg = NULL;
    REQUIRE_OK(knit_config_new(&cfg));
    CHECK(cfg != NULL);
    CHECK_STATUS(knit_config_free(cfg), KNIT_OK);
    CHECK_STATUS(knit_config_set_workers(cfg, 2), KNIT_INVALID_ARGUMENT);
    CHECK(message_contains("already freed"));
    CHECK_STATUS(knit_config_free(cfg), KNIT_INVALID_ARGUMENT);

    /* A handle of another type is refused, and stays alive. */
    knit_handlers *hs = NULL;
    REQUIRE_OK(knit_handlers_new(&hs));
    CHECK_STATUS(knit_config_free((knit_config *)(void *)hs), KNIT_INVALID_ARGUMENT);
    CHECK(message_contains("is a knit_handlers handle, not a knit_config"));
    CHECK_STATUS(knit_pool_free((knit_pool *)(void *)hs), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_handlers_free(hs), KNIT_OK);

    /* A successful call clears the message. */
    CHECK_STATUS(knit_protocol_version(NULL, NULL), KNIT_OK);
    CHECK(strcmp(knit_last_error_message(), "") == 0);
    CHECK(knit_last_error_code() == KNIT_OK);
}

static knit_status noop_handler(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)req;
    (void)reply;
    return KNIT_OK;
}

static void test_argument_errors(void) {
    knit_config *cfg = NULL;
    REQUIRE_OK(knit_config_new(&cfg));
    CHECK_STATUS(knit_config_set_spin(cfg, 77, 0), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_config_set_backpressure(cfg, 9), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_config_set_workers(cfg, 0), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_config_set_process(cfg, NULL, NULL), KNIT_INVALID_ARGUMENT);
    const char *empty_argv[] = {NULL};
    CHECK_STATUS(knit_config_set_process(cfg, empty_argv, NULL), KNIT_INVALID_ARGUMENT);
    const char *argv[] = {"/bin/true", NULL};
    const char *bad_env[] = {"NOEQUALS", NULL};
    CHECK_STATUS(knit_config_set_process(cfg, argv, bad_env), KNIT_INVALID_ARGUMENT);

    /* No worker kind yet: refused before anything is created. */
    knit_pool *pool = NULL;
    CHECK_STATUS(knit_pool_start(cfg, &pool), KNIT_INVALID_ARGUMENT);
    CHECK(pool == NULL);

    /* A ring size that is not a power of two is refused when the pool is built. */
    knit_handlers *hs = NULL;
    REQUIRE_OK(knit_handlers_new(&hs));
    CHECK_STATUS(knit_handlers_add(hs, "", noop_handler, NULL, NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_handlers_add(hs, "x", NULL, NULL, NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_handlers_add(hs, NULL, noop_handler, NULL, NULL), KNIT_INVALID_ARGUMENT);
    char long_name[300];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    CHECK_STATUS(knit_handlers_add(hs, long_name, noop_handler, NULL, NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_handlers_add(hs, "\xff\xfe", noop_handler, NULL, NULL), KNIT_INVALID_ARGUMENT);
    CHECK(message_contains("UTF-8"));
    REQUIRE_OK(knit_handlers_add(hs, "noop", noop_handler, NULL, NULL));
    REQUIRE_OK(knit_config_set_threads(cfg, hs));
    REQUIRE_OK(knit_config_set_ring_sizes(cfg, 5000, 4096));
    CHECK_STATUS(knit_pool_start(cfg, &pool), KNIT_INVALID_ARGUMENT);
    CHECK(pool == NULL);

    /* A worker process that does not exist fails the start, naming it. */
    REQUIRE_OK(knit_config_set_ring_sizes(cfg, 4096, 4096));
    const char *missing[] = {"/nonexistent/knit-worker", NULL};
    REQUIRE_OK(knit_config_set_process(cfg, missing, NULL));
    knit_status st = knit_pool_start(cfg, &pool);
    CHECK(st != KNIT_OK);
    CHECK(pool == NULL);

    /* The reply and request functions work only inside a handler. */
    CHECK_STATUS(knit_reply_set((knit_reply *)(void *)cfg, NULL, 0, 0), KNIT_INVALID_ARGUMENT);
    bool cancelled = false;
    knit_request fake = {0};
    CHECK_STATUS(knit_request_is_cancelled(&fake, &cancelled), KNIT_INVALID_ARGUMENT);

    /* Attaching: a name of the wrong form is refused before any system call; a missing
     * region is an OS error. */
    knit_region *region = NULL;
    CHECK_STATUS(knit_region_attach("../etc/passwd", 0, &region), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_region_attach("knit-00000000000000000000000000000000", 0, &region), KNIT_OS_ERROR);
    CHECK(region == NULL);

    CHECK_STATUS(knit_handlers_free(hs), KNIT_OK);
    CHECK_STATUS(knit_config_free(cfg), KNIT_OK);
}

/* ---------------------------------------------------------------- thread workers */

struct shared_state {
    atomic_int saw_cancel;
    atomic_int handler_calls;
    atomic_int freed;
};

static struct shared_state state;

static knit_status h_hello(void *ud, const knit_request *req, knit_reply *reply) {
    atomic_fetch_add(&((struct shared_state *)ud)->handler_calls, 1);
    char out[256];
    int n = snprintf(out, sizeof out, "Hello, %.*s", (int)req->payload_len, (const char *)req->payload);
    return knit_reply_set(reply, (const uint8_t *)out, (size_t)n, KNIT_CONTENT_UTF8);
}

static knit_status h_echo(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    return knit_reply_set(reply, req->payload, req->payload_len, req->content_type);
}

static knit_status h_checksum(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    uint8_t out[8];
    knit_test_put_u64(out, knit_test_checksum(req->payload, req->payload_len));
    return knit_reply_set(reply, out, sizeof out, KNIT_CONTENT_BYTES);
}

static knit_status h_fail(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)req;
    knit_reply_error(reply, 4242, "custom failure from C");
    return 4242;
}

static knit_status h_status_only(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)req;
    (void)reply;
    return 1234;
}

static knit_status h_error_but_ok(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)req;
    knit_reply_error(reply, KNIT_CANCELLED, "gave up");
    return KNIT_OK;
}

/* The request's content type and deadline, reported back; the result has an application
 * content type. */
static knit_status h_describe(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    uint8_t out[17];
    knit_test_put_u64(out, req->content_type);
    knit_test_put_u64(out + 8, req->deadline_ns);
    out[16] = req->worker_slot >= 1;
    return knit_reply_set(reply, out, sizeof out, KNIT_CONTENT_APPLICATION + 1);
}

/* Tries the reply and request functions with pointers that are not this call's. */
static knit_status h_misuse(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    uint8_t ok = 1;
    knit_request copy = *req;
    bool c = false;
    if (knit_reply_set((knit_reply *)(void *)&copy, NULL, 0, 0) != KNIT_INVALID_ARGUMENT) ok = 0;
    if (knit_request_is_cancelled(&copy, &c) != KNIT_INVALID_ARGUMENT) ok = 0;
    if (knit_request_is_cancelled(req, NULL) != KNIT_INVALID_ARGUMENT) ok = 0;
    if (knit_request_is_cancelled(req, &c) != KNIT_OK || c) ok = 0;
    uint8_t *buf = NULL;
    if (knit_reply_alloc(reply, 1, KNIT_CONTENT_BYTES, NULL) != KNIT_INVALID_ARGUMENT) ok = 0;
    if (knit_reply_alloc(reply, 1, KNIT_CONTENT_BYTES, &buf) != KNIT_OK || buf == NULL) ok = 0;
    if (buf) buf[0] = ok;
    return KNIT_OK;
}

static knit_status h_sleep_until_cancelled(void *ud, const knit_request *req, knit_reply *reply) {
    struct shared_state *s = ud;
    uint64_t ms = req->payload_len == 8 ? knit_test_get_u64(req->payload) : 0;
    for (uint64_t i = 0; i < ms; i++) {
        bool cancelled = false;
        knit_request_is_cancelled(req, &cancelled);
        if (cancelled) {
            atomic_store(&s->saw_cancel, 1);
            knit_reply_error(reply, KNIT_CANCELLED, "saw the cancel entry");
            return KNIT_CANCELLED;
        }
        knit_test_sleep_ms(1);
    }
    return KNIT_OK;
}

static knit_status h_sleep_ms(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)reply;
    knit_test_sleep_ms(req->payload_len == 8 ? (unsigned)knit_test_get_u64(req->payload) : 0);
    return KNIT_OK;
}

/* Streams N ("step I of N") messages, closes, answers "done". */
static knit_status h_progress(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    uint32_t n = req->payload_len == 8 ? (uint32_t)knit_test_get_u64(req->payload) : 0;
    knit_sender *tx = NULL;
    knit_status st = knit_request_open_channel(req, &tx);
    if (st != KNIT_OK) return st;
    /* Only the handler's own sender is accepted. */
    knit_sender *forged = (knit_sender *)(void *)reply;
    if (knit_sender_send(forged, NULL, 0, 0) != KNIT_INVALID_ARGUMENT) return KNIT_HANDLER_FAILED;
    for (uint32_t i = 0; i < n; i++) {
        char text[64];
        int len = snprintf(text, sizeof text, "step %u of %u", i, n);
        st = knit_sender_send(tx, (const uint8_t *)text, (size_t)len, KNIT_CONTENT_UTF8);
        if (st != KNIT_OK) return st;
    }
    st = knit_sender_close(tx);
    if (st != KNIT_OK) return st;
    /* Closed: the sender is gone. */
    if (knit_sender_send(tx, NULL, 0, 0) != KNIT_INVALID_ARGUMENT) return KNIT_HANDLER_FAILED;
    return knit_reply_set(reply, (const uint8_t *)"done", 4, KNIT_CONTENT_UTF8);
}

/* Sends one message, then aborts with code 4444. */
static knit_status h_progress_abort(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)reply;
    knit_sender *tx = NULL;
    knit_status st = knit_request_open_channel(req, &tx);
    if (st != KNIT_OK) return st;
    knit_sender_send(tx, (const uint8_t *)"one", 3, KNIT_CONTENT_UTF8);
    knit_sender_abort(tx, 4444);
    return KNIT_OK;
}

/* Sends one message and returns with the channel still open: it is aborted for it. */
static knit_status h_progress_left_open(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)reply;
    knit_sender *tx = NULL;
    knit_status st = knit_request_open_channel(req, &tx);
    if (st != KNIT_OK) return st;
    return knit_sender_send(tx, (const uint8_t *)"one", 3, KNIT_CONTENT_UTF8);
}

/* The digest of the host's channel, like the Rust test worker's "digest": message count,
 * total bytes, FNV-1a over every byte in order, as three little-endian u64. A second take
 * is refused. A failed receive ends the call with its status. */
static knit_status h_digest(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    knit_receiver *rx = NULL;
    knit_status st = knit_request_take_channel(req, &rx);
    if (st != KNIT_OK) return st;
    knit_receiver *again = NULL;
    if (knit_request_take_channel(req, &again) != KNIT_CHANNEL_CLOSED) return KNIT_HANDLER_FAILED;
    uint64_t messages = 0, bytes = 0, hash = 0xcbf29ce484222325ULL;
    for (;;) {
        knit_response *msg = NULL;
        st = knit_receiver_recv(rx, &msg);
        if (st == KNIT_CHANNEL_CLOSED) break;
        if (st != KNIT_OK) {
            knit_reply_error(reply, st, knit_last_error_message());
            return st; /* the receiver is freed when the handler returns */
        }
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

/* Takes the host's channel, reads one message, aborts it with 6666. */
static knit_status h_take_and_abort(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)reply;
    knit_receiver *rx = NULL;
    knit_status st = knit_request_take_channel(req, &rx);
    if (st != KNIT_OK) return st;
    knit_response *msg = NULL;
    if (knit_receiver_recv(rx, &msg) == KNIT_OK) knit_response_free(msg);
    st = knit_receiver_abort(rx, 6666);
    if (st != KNIT_OK) return st;
    /* Aborted: later receives say so. */
    if (knit_receiver_recv(rx, &msg) != KNIT_CHANNEL_ABORTED) return KNIT_HANDLER_FAILED;
    return knit_receiver_free(rx);
}

/* Not streaming: opening a channel is refused; answers the status it got. */
static knit_status h_open_refused(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    knit_sender *tx = NULL;
    uint8_t out[8];
    knit_test_put_u64(out, knit_request_open_channel(req, &tx));
    return knit_reply_set(reply, out, sizeof out, KNIT_CONTENT_BYTES);
}

static size_t write_pattern(void *ud, uint8_t *buf, size_t capacity) {
    (void)ud;
    for (size_t i = 0; i < capacity; i++) buf[i] = (uint8_t)(i % 251);
    return capacity;
}

static size_t write_too_much(void *ud, uint8_t *buf, size_t capacity) {
    (void)ud;
    (void)buf;
    return capacity + 1;
}

/* In place: `len` (u32) bytes of the pattern i % 251, written where the result goes. A second
 * write, and reply functions from inside the write function, are refused. */
static knit_status h_pattern_in_place(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    if (req->payload_len != 4) return KNIT_INVALID_ARGUMENT;
    const uint8_t *p = req->payload;
    size_t len = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
    knit_status st = knit_reply_write_in_place(reply, len, KNIT_CONTENT_BYTES, write_pattern, NULL);
    if (st != KNIT_OK) return st;
    if (knit_reply_write_in_place(reply, 1, 0, write_pattern, NULL) != KNIT_INVALID_ARGUMENT) return KNIT_HANDLER_FAILED;
    return KNIT_OK;
}

struct reentry {
    knit_reply *reply;
    const knit_request *request;
    knit_status reply_status, request_status;
};

/* A write function that tries to use the reply and the request: both refused. */
static size_t write_reentering(void *ud, uint8_t *buf, size_t capacity) {
    struct reentry *r = ud;
    bool c = false;
    r->reply_status = knit_reply_set(r->reply, NULL, 0, 0);
    r->request_status = knit_request_is_cancelled(r->request, &c);
    memset(buf, 7, capacity);
    return capacity;
}

/* In place, with a write function that re-enters: answers the two statuses it got after the
 * in-place result would have gone out; here, as the handler's status. */
static knit_status h_in_place_reentry(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    struct reentry r = {reply, req, KNIT_OK, KNIT_OK};
    knit_status st = knit_reply_write_in_place(reply, 4, 0, write_reentering, &r);
    if (st != KNIT_OK) return st;
    /* Answered already: report the refusals through the channel of statuses we have left,
     * a failed status is ignored now, so check them here and fail loudly otherwise. */
    if (r.reply_status != KNIT_INVALID_ARGUMENT || r.request_status != KNIT_INVALID_ARGUMENT) abort();
    return KNIT_OK;
}

/* In place, but answering through knit_reply_set: the copying path still works. */
static knit_status h_in_place_set(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    return knit_reply_set(reply, req->payload, req->payload_len, KNIT_CONTENT_UTF8);
}

/* In place, with a write function that claims more than it was given. */
static knit_status h_in_place_overflow(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)req;
    return knit_reply_write_in_place(reply, 16, 0, write_too_much, NULL);
}

/* Not in place: there is no result writer. */
static knit_status h_not_in_place(void *ud, const knit_request *req, knit_reply *reply) {
    (void)ud;
    (void)req;
    return knit_reply_write_in_place(reply, 16, 0, write_pattern, NULL);
}

static void free_counter(void *ud) {
    atomic_fetch_add(&((struct shared_state *)ud)->freed, 1);
}

static knit_handlers *thread_handlers(void) {
    knit_handlers *hs = NULL;
    if (knit_handlers_new(&hs) != KNIT_OK) return NULL;
    knit_handlers_add(hs, "hello", h_hello, &state, free_counter);
    knit_handlers_add(hs, "echo", h_echo, NULL, NULL);
    knit_handlers_add(hs, "checksum", h_checksum, NULL, NULL);
    knit_handlers_add(hs, "fail", h_fail, NULL, NULL);
    knit_handlers_add(hs, "status_only", h_status_only, NULL, NULL);
    knit_handlers_add(hs, "error_but_ok", h_error_but_ok, NULL, NULL);
    knit_handlers_add(hs, "describe", h_describe, NULL, NULL);
    knit_handlers_add(hs, "misuse", h_misuse, NULL, NULL);
    knit_handlers_add(hs, "sleep_until_cancelled", h_sleep_until_cancelled, &state, NULL);
    knit_handlers_add(hs, "sleep_ms", h_sleep_ms, NULL, NULL);
    knit_handlers_add_streaming(hs, "progress", h_progress, NULL, NULL);
    knit_handlers_add_streaming(hs, "progress_abort", h_progress_abort, NULL, NULL);
    knit_handlers_add_streaming(hs, "progress_left_open", h_progress_left_open, NULL, NULL);
    knit_handlers_add(hs, "open_refused", h_open_refused, NULL, NULL);
    knit_handlers_add(hs, "digest", h_digest, NULL, NULL);
    knit_handlers_add_in_place(hs, "pattern_in_place", h_pattern_in_place, NULL, NULL);
    knit_handlers_add_in_place(hs, "in_place_set", h_in_place_set, NULL, NULL);
    knit_handlers_add_in_place(hs, "in_place_reentry", h_in_place_reentry, NULL, NULL);
    knit_handlers_add_in_place(hs, "in_place_overflow", h_in_place_overflow, NULL, NULL);
    knit_handlers_add(hs, "not_in_place", h_not_in_place, NULL, NULL);
    knit_handlers_add(hs, "take_and_abort", h_take_and_abort, NULL, NULL);
    return hs;
}

static void fill_pattern(void *ud, uint8_t *buf, size_t len) {
    atomic_fetch_add((atomic_int *)ud, 1);
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(i * 7);
}

static void test_thread_calls(knit_pool *pool) {
    check_hello(pool);
    /* Rings of 16 KiB: anything above 8 KiB travels in fragments. */
    size_t sizes[] = {0, 1, 7, 8, 100, 4096, 8200, 40000, 65536};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        check_echo(pool, sizes[i], 100 + i);
        check_checksum(pool, sizes[i], 200 + i);
    }

    CHECK_STATUS(call_bytes(pool, "nope", NULL, 0, 0, NULL, 0, NULL), KNIT_UNKNOWN_FUNCTION);
    CHECK(message_contains("nope"));
    CHECK_STATUS(call_bytes(pool, "fail", NULL, 0, 0, NULL, 0, NULL), 4242);
    CHECK(message_contains("custom failure from C"));
    CHECK_STATUS(call_bytes(pool, "status_only", NULL, 0, 0, NULL, 0, NULL), 1234);
    CHECK(message_contains("status_only"));
    CHECK_STATUS(call_bytes(pool, "error_but_ok", NULL, 0, 0, NULL, 0, NULL), KNIT_CANCELLED);
    CHECK(message_contains("gave up"));

    /* Content types and deadlines reach the handler; the result's content type comes back. */
    knit_response *res = NULL;
    CHECK_STATUS(knit_call(pool, "describe", (const uint8_t *)"{}", 2, KNIT_CONTENT_JSON, 5000000000ULL, &res),
                 KNIT_OK);
    const uint8_t *data = NULL;
    size_t len = 0;
    uint32_t ct = 0;
    CHECK_STATUS(knit_response_get(res, &data, &len, &ct), KNIT_OK);
    CHECK(len == 17);
    if (len == 17) {
        CHECK(knit_test_get_u64(data) == KNIT_CONTENT_JSON);
        uint64_t deadline = knit_test_get_u64(data + 8);
        uint64_t now = knit_monotonic_ns();
        CHECK(deadline > now && deadline <= now + 5000000000ULL);
        CHECK(data[16] == 1);
    }
    CHECK(ct == KNIT_CONTENT_APPLICATION + 1);
    knit_response_free(res);

    uint8_t misuse_ok = 0;
    CHECK_STATUS(call_bytes(pool, "misuse", NULL, 0, 0, &misuse_ok, 1, NULL), KNIT_OK);
    CHECK(misuse_ok == 1);

    /* Deadline: the call fails with DEADLINE_EXCEEDED while the handler still runs. */
    /* The handler runs until its cancel entry is set, which the host does only when it acts on
     * the deadline: no response can win the race, however late this thread runs (CALL-8). */
    CHECK_STATUS(call_u64(pool, "sleep_until_cancelled", 10000, 20000000ULL), KNIT_DEADLINE_EXCEEDED);

    /* Loan: the request is written in place by the fill function. */
    atomic_int fills = 0;
    res = NULL;
    CHECK_STATUS(knit_call_loan(pool, "echo", 1000, KNIT_CONTENT_BYTES, fill_pattern, &fills, &res), KNIT_OK);
    CHECK(atomic_load(&fills) == 1);
    CHECK_STATUS(knit_response_get(res, &data, &len, NULL), KNIT_OK);
    CHECK(len == 1000);
    int same = len == 1000;
    for (size_t i = 0; same && i < len; i++) same = data[i] == (uint8_t)(i * 7);
    CHECK(same);
    knit_response_free(res);
    /* A loan larger than one record is refused and fill is never called. */
    CHECK_STATUS(knit_call_loan(pool, "echo", 1 << 20, KNIT_CONTENT_BYTES, fill_pattern, &fills, &res),
                 KNIT_INVALID_ARGUMENT);
    CHECK(atomic_load(&fills) == 1);
    CHECK_STATUS(knit_call_loan(pool, "echo", 10, KNIT_CONTENT_BYTES, NULL, NULL, &res), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_call_loan(pool, "nope", 10, KNIT_CONTENT_BYTES, fill_pattern, &fills, &res),
                 KNIT_UNKNOWN_FUNCTION);

    /* Payload too large for the pool's max_message_len (65536): refused, nothing sent. */
    uint8_t *big = calloc(1, 65537);
    CHECK_STATUS(call_bytes(pool, "echo", big, 65537, 0, NULL, 0, NULL), KNIT_PAYLOAD_TOO_LARGE);
    CHECK_STATUS(call_bytes(pool, "echo", big, 65536, 0, NULL, 0, NULL), KNIT_OK);
    free(big);

    /* A NULL payload with a length is an argument error; with length 0 it is fine. */
    CHECK_STATUS(knit_call(pool, "echo", NULL, 5, 0, 0, NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_call(pool, "echo", NULL, 0, 0, 0, NULL), KNIT_OK);
    CHECK_STATUS(knit_call(pool, NULL, NULL, 0, 0, 0, NULL), KNIT_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------- async */

struct completion {
    atomic_int calls;
    knit_status status;
    uint64_t sum;
    size_t len;
    char message[128];
};

static void on_done(void *ud, const knit_outcome *o) {
    struct completion *c = ud;
    c->status = o->status;
    c->len = o->len;
    c->sum = knit_test_checksum(o->data, o->len);
    snprintf(c->message, sizeof c->message, "%s", o->message);
    atomic_fetch_add(&c->calls, 1);
}

static int wait_until(atomic_int *counter, int want, unsigned limit_ms) {
    for (unsigned i = 0; i < limit_ms && atomic_load(counter) < want; i++) knit_test_sleep_ms(1);
    return atomic_load(counter) >= want;
}

static void test_tickets(knit_pool *pool) {
    enum { N = 8 };
    knit_ticket *tickets[N];
    uint8_t inputs[N][5000];
    for (int i = 0; i < N; i++) {
        knit_test_fill(inputs[i], sizeof inputs[i], 300 + (uint64_t)i);
        REQUIRE_OK(knit_call_async(pool, "echo", inputs[i], sizeof inputs[i], KNIT_CONTENT_BYTES, 0, &tickets[i]));
    }
    int seen[N] = {0};
    for (int round = 0; round < N; round++) {
        size_t idx = N;
        REQUIRE_OK(knit_wait_any((const knit_ticket *const *)tickets, N, 10000000000ULL, &idx));
        CHECK(idx < N && !seen[idx]);
        if (idx >= N) return;
        seen[idx] = 1;
        bool done = false;
        CHECK_STATUS(knit_ticket_poll(tickets[idx], &done), KNIT_OK);
        CHECK(done);
        knit_response *res = NULL;
        CHECK_STATUS(knit_ticket_wait(tickets[idx], 0, &res), KNIT_OK);
        const uint8_t *data = NULL;
        size_t len = 0;
        knit_response_get(res, &data, &len, NULL);
        CHECK(len == sizeof inputs[idx] && memcmp(data, inputs[idx], len) == 0);
        knit_response_free(res);
        /* The outcome is given once. */
        CHECK_STATUS(knit_ticket_wait(tickets[idx], 0, &res), KNIT_INVALID_ARGUMENT);
    }
    /* Every outcome taken: waiting for any of them is an argument error. */
    size_t idx = 0;
    CHECK_STATUS(knit_wait_any((const knit_ticket *const *)tickets, N, 0, &idx), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_wait_any(NULL, 1, 0, &idx), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_wait_any((const knit_ticket *const *)tickets, 0, 0, &idx), KNIT_INVALID_ARGUMENT);
    for (int i = 0; i < N; i++) CHECK_STATUS(knit_ticket_free(tickets[i]), KNIT_OK);

    /* Timeout, then cancellation: the handler sees it, the caller gets CANCELLED. */
    atomic_store(&state.saw_cancel, 0);
    knit_ticket *slow = NULL;
    uint8_t ms[8];
    knit_test_put_u64(ms, 10000);
    REQUIRE_OK(knit_call_async(pool, "sleep_until_cancelled", ms, 8, KNIT_CONTENT_BYTES, 0, &slow));
    knit_response *res = (knit_response *)(uintptr_t)1;
    CHECK_STATUS(knit_ticket_wait(slow, 0, &res), KNIT_TIMED_OUT);
    CHECK(res == NULL);
    CHECK_STATUS(knit_ticket_wait(slow, 5000000ULL, NULL), KNIT_TIMED_OUT);
    CHECK_STATUS(knit_ticket_cancel(slow), KNIT_OK);
    CHECK_STATUS(knit_ticket_wait(slow, KNIT_FOREVER, &res), KNIT_CANCELLED);
    CHECK(wait_until(&state.saw_cancel, 1, 5000));
    CHECK_STATUS(knit_ticket_free(slow), KNIT_OK);

    /* A failure before sending still gives a ticket whose outcome is the failure. */
    knit_ticket *unknown = NULL;
    REQUIRE_OK(knit_call_async(pool, "nope", NULL, 0, 0, 0, &unknown));
    CHECK_STATUS(knit_ticket_wait(unknown, KNIT_FOREVER, NULL), KNIT_UNKNOWN_FUNCTION);
    CHECK_STATUS(knit_ticket_free(unknown), KNIT_OK);

    /* Freeing a running ticket cancels its call. */
    atomic_store(&state.saw_cancel, 0);
    REQUIRE_OK(knit_call_async(pool, "sleep_until_cancelled", ms, 8, KNIT_CONTENT_BYTES, 0, &slow));
    knit_test_sleep_ms(20);
    CHECK_STATUS(knit_ticket_free(slow), KNIT_OK);
    CHECK(wait_until(&state.saw_cancel, 1, 5000));
}

static void test_callbacks(knit_pool *pool) {
    enum { N = 16 };
    static struct completion done[N];
    static uint8_t inputs[N][3000];
    for (int i = 0; i < N; i++) {
        atomic_store(&done[i].calls, 0);
        knit_test_fill(inputs[i], sizeof inputs[i], 500 + (uint64_t)i);
        REQUIRE_OK(knit_call_callback(pool, "echo", inputs[i], sizeof inputs[i], KNIT_CONTENT_BYTES, 0, on_done,
                                      &done[i]));
    }
    for (int i = 0; i < N; i++) {
        CHECK(wait_until(&done[i].calls, 1, 10000));
        CHECK(atomic_load(&done[i].calls) == 1);
        CHECK(done[i].status == KNIT_OK);
        CHECK(done[i].len == sizeof inputs[i]);
        CHECK(done[i].sum == knit_test_checksum(inputs[i], sizeof inputs[i]));
    }
    /* A call that fails before being sent still calls back, once, with its status. */
    struct completion *failed = &done[0];
    atomic_store(&failed->calls, 0);
    REQUIRE_OK(knit_call_callback(pool, "nope", NULL, 0, 0, 0, on_done, failed));
    CHECK(wait_until(&failed->calls, 1, 10000));
    CHECK(failed->status == KNIT_UNKNOWN_FUNCTION);
    CHECK(strstr(failed->message, "nope") != NULL);
    /* An argument error: no callback. */
    CHECK_STATUS(knit_call_callback(pool, "echo", NULL, 0, 0, 0, NULL, NULL), KNIT_INVALID_ARGUMENT);
}

/* knit_ticket_on_complete: the ready callback of a watched ticket. */
struct ready_mark {
    atomic_int calls;
    atomic_int thread_is_caller;
};

static pthread_t test_thread;

static void on_ready(void *ud) {
    struct ready_mark *m = ud;
    if (pthread_equal(pthread_self(), test_thread)) atomic_store(&m->thread_is_caller, 1);
    atomic_fetch_add(&m->calls, 1);
}

static void test_ticket_callbacks(knit_pool *pool) {
    test_thread = pthread_self();
    enum { N = 16 };
    static struct ready_mark marks[N];
    knit_ticket *tickets[N];
    static uint8_t inputs[N][2000];
    for (int i = 0; i < N; i++) {
        atomic_store(&marks[i].calls, 0);
        atomic_store(&marks[i].thread_is_caller, 0);
        knit_test_fill(inputs[i], sizeof inputs[i], 700 + (uint64_t)i);
        REQUIRE_OK(knit_call_async(pool, "echo", inputs[i], sizeof inputs[i], KNIT_CONTENT_BYTES, 0, &tickets[i]));
        REQUIRE_OK(knit_ticket_on_complete(tickets[i], on_ready, &marks[i]));
    }
    for (int i = 0; i < N; i++) {
        CHECK(wait_until(&marks[i].calls, 1, 10000));
        /* Ready means the outcome is there: waiting without a timeout gives it. */
        knit_response *res = NULL;
        CHECK_STATUS(knit_ticket_wait(tickets[i], 0, &res), KNIT_OK);
        const uint8_t *data = NULL;
        size_t len = 0;
        knit_response_get(res, &data, &len, NULL);
        CHECK(len == sizeof inputs[i] && memcmp(data, inputs[i], len) == 0);
        knit_response_free(res);
        CHECK(atomic_load(&marks[i].thread_is_caller) == 0);
        /* One callback per ticket. */
        CHECK_STATUS(knit_ticket_on_complete(tickets[i], on_ready, &marks[i]), KNIT_INVALID_ARGUMENT);
        CHECK_STATUS(knit_ticket_free(tickets[i]), KNIT_OK);
    }
    for (int i = 0; i < N; i++) CHECK(atomic_load(&marks[i].calls) == 1);

    /* Registered after the call finished (and after its outcome was taken): called at once,
     * on the Knit thread. */
    struct ready_mark *late = &marks[0];
    atomic_store(&late->calls, 0);
    knit_ticket *t = NULL;
    REQUIRE_OK(knit_call_async(pool, "echo", (const uint8_t *)"x", 1, KNIT_CONTENT_BYTES, 0, &t));
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_OK);
    REQUIRE_OK(knit_ticket_on_complete(t, on_ready, late));
    CHECK(wait_until(&late->calls, 1, 10000));
    CHECK(atomic_load(&late->thread_is_caller) == 0);
    CHECK_STATUS(knit_ticket_free(t), KNIT_OK);

    /* Cancelled: ready once, the outcome is CANCELLED, the handler saw the cancel entry. */
    atomic_store(&state.saw_cancel, 0);
    struct ready_mark *cancelled = &marks[1];
    atomic_store(&cancelled->calls, 0);
    uint8_t ms[8];
    knit_test_put_u64(ms, 10000);
    REQUIRE_OK(knit_call_async(pool, "sleep_until_cancelled", ms, 8, KNIT_CONTENT_BYTES, 0, &t));
    REQUIRE_OK(knit_ticket_on_complete(t, on_ready, cancelled));
    knit_test_sleep_ms(10);
    CHECK(atomic_load(&cancelled->calls) == 0);
    CHECK_STATUS(knit_ticket_cancel(t), KNIT_OK);
    CHECK(wait_until(&cancelled->calls, 1, 10000));
    CHECK_STATUS(knit_ticket_wait(t, 0, NULL), KNIT_CANCELLED);
    CHECK(wait_until(&state.saw_cancel, 1, 5000));
    CHECK_STATUS(knit_ticket_free(t), KNIT_OK);

    /* Freed while running: the call is cancelled (the handler would sleep a minute; whether
     * it started or not, ready comes long before) and ready still runs, once. */
    struct ready_mark *freed = &marks[2];
    atomic_store(&freed->calls, 0);
    knit_test_put_u64(ms, 60000);
    REQUIRE_OK(knit_call_async(pool, "sleep_until_cancelled", ms, 8, KNIT_CONTENT_BYTES, 0, &t));
    REQUIRE_OK(knit_ticket_on_complete(t, on_ready, freed));
    CHECK_STATUS(knit_ticket_free(t), KNIT_OK);
    CHECK(wait_until(&freed->calls, 1, 10000));
    knit_test_sleep_ms(5);
    CHECK(atomic_load(&freed->calls) == 1);

    /* Argument errors. */
    REQUIRE_OK(knit_call_async(pool, "echo", NULL, 0, 0, 0, &t));
    CHECK_STATUS(knit_ticket_on_complete(t, NULL, NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_ticket_on_complete(NULL, on_ready, freed), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_ticket_free(t), KNIT_OK);
}

/* knit_call_async_loan: the request written in place, the outcome through a ticket. */
static void test_async_loan(knit_pool *pool) {
    atomic_int fills = 0;
    knit_ticket *t = NULL;
    REQUIRE_OK(knit_call_async_loan(pool, "echo", 4000, KNIT_CONTENT_BYTES, 0, fill_pattern, &fills, &t));
    CHECK(atomic_load(&fills) == 1);
    knit_response *res = NULL;
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, &res), KNIT_OK);
    const uint8_t *data = NULL;
    size_t len = 0;
    knit_response_get(res, &data, &len, NULL);
    int same = len == 4000;
    for (size_t i = 0; same && i < len; i++) same = data[i] == (uint8_t)(i * 7);
    CHECK(same);
    knit_response_free(res);
    CHECK_STATUS(knit_ticket_free(t), KNIT_OK);
    /* Too large for one record, or an unknown function: a ticket whose outcome is the
     * failure, and fill never runs. */
    REQUIRE_OK(knit_call_async_loan(pool, "echo", 1 << 20, KNIT_CONTENT_BYTES, 0, fill_pattern, &fills, &t));
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_ticket_free(t), KNIT_OK);
    REQUIRE_OK(knit_call_async_loan(pool, "nope", 10, KNIT_CONTENT_BYTES, 0, fill_pattern, &fills, &t));
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_UNKNOWN_FUNCTION);
    CHECK_STATUS(knit_ticket_free(t), KNIT_OK);
    CHECK(atomic_load(&fills) == 1);
    CHECK_STATUS(knit_call_async_loan(pool, "echo", 10, 0, 0, NULL, NULL, &t), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_call_async_loan(pool, "echo", 10, 0, 0, fill_pattern, &fills, NULL), KNIT_INVALID_ARGUMENT);
}

/* A callback still pending when its pool is freed runs exactly once before the free returns. */
static void test_callback_at_free(knit_handlers *hs) {
    knit_config *cfg = NULL;
    REQUIRE_OK(knit_config_new(&cfg));
    REQUIRE_OK(knit_config_set_threads(cfg, hs));
    knit_pool *pool = start_pool(cfg);
    knit_config_free(cfg);
    if (!pool) return;
    static struct completion c;
    atomic_store(&c.calls, 0);
    uint8_t ms[8];
    knit_test_put_u64(ms, 100);
    REQUIRE_OK(knit_call_callback(pool, "sleep_ms", ms, 8, KNIT_CONTENT_BYTES, 0, on_done, &c));
    CHECK_STATUS(knit_pool_free(pool), KNIT_OK);
    CHECK(atomic_load(&c.calls) == 1);
    CHECK(c.status == KNIT_OK || c.status == KNIT_SHUTDOWN);
    /* After shutdown, calls fail with SHUTDOWN: here the handle is gone, so it is refused. */
    CHECK_STATUS(knit_call(pool, "echo", NULL, 0, 0, 0, NULL), KNIT_INVALID_ARGUMENT);
}

/* The message of the status that ended the last drain_channel. */
static char end_message[512];

/* Receives every message of the channel of `t`, checking message I against the format `fmt`
 * (given I); returns how many. The status that ended it goes to *end, its message to
 * end_message. */
static int drain_channel(knit_ticket *t, const char *fmt, knit_status *end) {
    knit_receiver *rx = NULL;
    knit_status st = knit_ticket_channel(t, &rx);
    if (st != KNIT_OK) {
        snprintf(end_message, sizeof end_message, "%s", knit_last_error_message());
        *end = st;
        return 0;
    }
    int n = 0;
    for (;;) {
        knit_response *msg = NULL;
        st = knit_receiver_recv(rx, &msg);
        if (st != KNIT_OK) {
            snprintf(end_message, sizeof end_message, "%s", knit_last_error_message());
            CHECK(msg == NULL);
            break;
        }
        const uint8_t *data = NULL;
        size_t len = 0;
        knit_response_get(msg, &data, &len, NULL);
        char want[64];
        int wn = snprintf(want, sizeof want, fmt, n);
        CHECK(wn > 0 && len == (size_t)wn && memcmp(data, want, len) == 0);
        knit_response_free(msg);
        n++;
    }
    *end = st;
    CHECK_STATUS(knit_receiver_free(rx), KNIT_OK);
    return n;
}

static void test_channels(knit_pool *pool) {
    uint8_t arg[8];
    knit_test_put_u64(arg, 50);
    knit_ticket *t = NULL;
    REQUIRE_OK(knit_call_async(pool, "progress", arg, 8, KNIT_CONTENT_BYTES, 0, &t));
    knit_status end = KNIT_OK;
    CHECK(drain_channel(t, "step %d of 50", &end) == 50);
    CHECK_STATUS(end, KNIT_CHANNEL_CLOSED);
    knit_response *res = NULL;
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, &res), KNIT_OK);
    const uint8_t *data = NULL;
    size_t len = 0;
    knit_response_get(res, &data, &len, NULL);
    CHECK(len == 4 && memcmp(data, "done", 4) == 0);
    knit_response_free(res);
    knit_ticket_free(t);

    REQUIRE_OK(knit_call_async(pool, "progress_abort", NULL, 0, KNIT_CONTENT_BYTES, 0, &t));
    /* The message sent before the abort may be discarded with it. */
    CHECK(drain_channel(t, "one", &end) <= 1);
    CHECK_STATUS(end, KNIT_CHANNEL_ABORTED);
    CHECK(strstr(end_message, "0x115c") != NULL); /* the abort code, 4444 */
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_OK);
    knit_ticket_free(t);

    REQUIRE_OK(knit_call_async(pool, "progress_left_open", NULL, 0, KNIT_CONTENT_BYTES, 0, &t));
    CHECK(drain_channel(t, "one", &end) <= 1);
    CHECK_STATUS(end, KNIT_CHANNEL_ABORTED);
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_OK);
    knit_ticket_free(t);

    /* A call that opens no channel: CHANNEL_CLOSED once it ends. */
    REQUIRE_OK(knit_call_async(pool, "echo", NULL, 0, KNIT_CONTENT_BYTES, 0, &t));
    knit_receiver *rx = NULL;
    CHECK_STATUS(knit_ticket_channel(t, &rx), KNIT_CHANNEL_CLOSED);
    CHECK(rx == NULL);
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_OK);
    knit_ticket_free(t);

    uint8_t got[8] = {0};
    CHECK_STATUS(call_bytes(pool, "open_refused", NULL, 0, 0, got, sizeof got, NULL), KNIT_OK);
    CHECK(knit_test_get_u64(got) == KNIT_INVALID_ARGUMENT);

    /* Outside any handler, a sender is refused. */
    CHECK_STATUS(knit_sender_close((knit_sender *)(void *)pool), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_receiver_recv(NULL, &res), KNIT_INVALID_ARGUMENT);
}

/* Sends `n` messages of growing sizes on `tx` and folds them into the digest h_digest
 * computes; returns the status of the first failed send. */
static knit_status send_digest_input(knit_sender *tx, int n, uint64_t want[3]) {
    uint64_t messages = 0, bytes = 0, hash = 0xcbf29ce484222325ULL;
    static uint8_t buf[20000];
    for (int i = 0; i < n; i++) {
        size_t len = (size_t)(i * 397) % sizeof buf; /* some above 2 KiB: fragments */
        knit_test_fill(buf, len, 900 + (uint64_t)i);
        knit_status st = knit_sender_send(tx, buf, len, KNIT_CONTENT_BYTES);
        if (st != KNIT_OK) return st;
        messages++;
        bytes += len;
        for (size_t k = 0; k < len; k++) hash = (hash ^ buf[k]) * 0x100000001b3ULL;
    }
    want[0] = messages;
    want[1] = bytes;
    want[2] = hash;
    return KNIT_OK;
}

/* Host to worker: the handler reads every message in order, then the end of the stream. */
static void check_digest_channel(knit_pool *pool, int n) {
    knit_ticket *t = NULL;
    knit_sender *tx = NULL;
    REQUIRE_OK(knit_call_with_channel(pool, "digest", NULL, 0, KNIT_CONTENT_BYTES, 0, &t, &tx));
    uint64_t want[3] = {0, 0, 0};
    CHECK_STATUS(send_digest_input(tx, n, want), KNIT_OK);
    CHECK_STATUS(knit_sender_close(tx), KNIT_OK);
    CHECK_STATUS(knit_sender_close(tx), KNIT_INVALID_ARGUMENT); /* closed: the handle is gone */
    knit_response *res = NULL;
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, &res), KNIT_OK);
    const uint8_t *data = NULL;
    size_t len = 0;
    knit_response_get(res, &data, &len, NULL);
    CHECK(len == 24);
    if (len == 24) {
        CHECK(knit_test_get_u64(data) == want[0]);
        CHECK(knit_test_get_u64(data + 8) == want[1]);
        CHECK(knit_test_get_u64(data + 16) == want[2]);
    }
    knit_response_free(res);
    knit_ticket_free(t);
}

static void test_input_channels(knit_pool *pool) {
    check_digest_channel(pool, 60);

    /* The host aborts: the handler's receive fails with CHANNEL_ABORTED, which it answers. */
    knit_ticket *t = NULL;
    knit_sender *tx = NULL;
    REQUIRE_OK(knit_call_with_channel(pool, "digest", NULL, 0, KNIT_CONTENT_BYTES, 0, &t, &tx));
    CHECK_STATUS(knit_sender_send(tx, (const uint8_t *)"x", 1, KNIT_CONTENT_BYTES), KNIT_OK);
    CHECK_STATUS(knit_sender_abort(tx, 5555), KNIT_OK);
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_CHANNEL_ABORTED);
    knit_ticket_free(t);

    /* A sender freed without closing aborts (CANCELLED): never a cut stream taken as whole. */
    REQUIRE_OK(knit_call_with_channel(pool, "digest", NULL, 0, KNIT_CONTENT_BYTES, 0, &t, &tx));
    CHECK_STATUS(knit_sender_free(tx), KNIT_OK);
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_CHANNEL_ABORTED);
    knit_ticket_free(t);

    /* The handler aborts: the host's sends fail with CHANNEL_ABORTED. */
    REQUIRE_OK(knit_call_with_channel(pool, "take_and_abort", NULL, 0, KNIT_CONTENT_BYTES, 0, &t, &tx));
    CHECK_STATUS(knit_sender_send(tx, (const uint8_t *)"one", 3, KNIT_CONTENT_BYTES), KNIT_OK);
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_OK);
    knit_status st = KNIT_OK;
    /* Sends go on until the writer sees the abort: at the latest when the ring fills up. */
    for (int i = 0; i < 100000 && st == KNIT_OK; i++) st = knit_sender_send(tx, (const uint8_t *)"more", 4, 0);
    CHECK_STATUS(st, KNIT_CHANNEL_ABORTED);
    CHECK(message_contains("0x1a0a")); /* 6666 */
    CHECK_STATUS(knit_sender_free(tx), KNIT_OK);
    knit_ticket_free(t);

    /* A handler that does not take the channel: it is aborted when the handler returns. */
    REQUIRE_OK(knit_call_with_channel(pool, "echo", (const uint8_t *)"e", 1, KNIT_CONTENT_BYTES, 0, &t, &tx));
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_OK);
    st = KNIT_OK;
    /* Sends go on until the writer sees the abort: at the latest when the ring fills up. */
    for (int i = 0; i < 100000 && st == KNIT_OK; i++) st = knit_sender_send(tx, (const uint8_t *)"more", 4, 0);
    CHECK_STATUS(st, KNIT_CHANNEL_ABORTED);
    CHECK_STATUS(knit_sender_free(tx), KNIT_OK);
    knit_ticket_free(t);

    /* No channel for this call: the handler's take says CHANNEL_CLOSED. */
    CHECK_STATUS(call_bytes(pool, "digest", NULL, 0, 0, NULL, 0, NULL), KNIT_CHANNEL_CLOSED);
    CHECK_STATUS(knit_call_with_channel(pool, "nope", NULL, 0, 0, 0, &t, &tx), KNIT_UNKNOWN_FUNCTION);
    CHECK_STATUS(knit_call_with_channel(pool, "digest", NULL, 0, 0, 0, NULL, &tx), KNIT_INVALID_ARGUMENT);
}

/* `fn`("pattern_in_place") answers `len` bytes of i % 251. */
static void check_pattern(knit_pool *pool, size_t len) {
    uint8_t arg[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    knit_response *res = NULL;
    CHECK_STATUS(knit_call(pool, "pattern_in_place", arg, 4, KNIT_CONTENT_BYTES, 0, &res), KNIT_OK);
    const uint8_t *data = NULL;
    size_t got = 0;
    knit_response_get(res, &data, &got, NULL);
    int same = got == len;
    for (size_t i = 0; same && i < len; i++) same = data[i] == (uint8_t)(i % 251);
    CHECK(same);
    knit_response_free(res);
}

static void test_in_place(knit_pool *pool) {
    check_pattern(pool, 0);
    check_pattern(pool, 1000);  /* one record: written in the ring */
    check_pattern(pool, 30000); /* larger than a record of a 16 KiB ring: copied */
    uint8_t out[8] = {0};
    size_t n = 0;
    CHECK_STATUS(call_bytes(pool, "in_place_set", "abc", 3, 0, out, sizeof out, &n), KNIT_OK);
    CHECK(n == 3 && memcmp(out, "abc", 3) == 0);
    CHECK_STATUS(call_bytes(pool, "in_place_overflow", NULL, 0, 0, NULL, 0, NULL), KNIT_INVALID_ARGUMENT);
    /* Re-entering the reply from the write function is refused (the handler aborts if not). */
    CHECK_STATUS(call_bytes(pool, "in_place_reentry", NULL, 0, 0, out, sizeof out, &n), KNIT_OK);
    CHECK(n == 4 && out[0] == 7);
    CHECK_STATUS(call_bytes(pool, "not_in_place", NULL, 0, 0, NULL, 0, NULL), KNIT_INVALID_ARGUMENT);
    CHECK(message_contains("not added in place"));
}

struct borrowed {
    int calls;
    size_t len;
    uint64_t sum;
};

static void read_in_place(void *ud, const uint8_t *data, size_t len) {
    struct borrowed *b = ud;
    b->calls++;
    b->len = len;
    b->sum = knit_test_checksum(data, len);
}

static void test_borrow(knit_pool *pool) {
    uint8_t in[3000];
    knit_test_fill(in, sizeof in, 42);
    struct borrowed b = {0, 0, 0};
    CHECK_STATUS(knit_call_borrow(pool, "echo", in, sizeof in, KNIT_CONTENT_BYTES, read_in_place, &b), KNIT_OK);
    CHECK(b.calls == 1 && b.len == sizeof in && b.sum == knit_test_checksum(in, sizeof in));
    CHECK_STATUS(knit_call_borrow(pool, "nope", in, 1, KNIT_CONTENT_BYTES, read_in_place, &b), KNIT_UNKNOWN_FUNCTION);
    CHECK(b.calls == 1);
    CHECK_STATUS(knit_call_borrow(pool, "echo", in, 1, KNIT_CONTENT_BYTES, NULL, NULL), KNIT_INVALID_ARGUMENT);
}

static void test_inspect(knit_pool *pool, uint32_t workers) {
    knit_region_info info;
    memset(&info, 0xff, sizeof info);
    info.struct_size = sizeof info;
    REQUIRE_OK(knit_pool_get_info(pool, &info));
    CHECK(info.struct_size == sizeof info);
    CHECK(info.major == KNIT_PROTOCOL_MAJOR);
    CHECK(info.worker_slots == workers);
    CHECK(info.poison_code == 0);
    CHECK(info.max_message_len == 65536);
    CHECK(strncmp(info.name, "knit-", 5) == 0 && strlen(info.name) == 37);

    /* An older caller with a shorter struct gets only what fits. */
    struct {
        uint32_t struct_size;
        uint16_t major;
        uint16_t minor;
        uint32_t sentinel;
    } small = {8, 0, 0, 0xabcdef01};
    REQUIRE_OK(knit_pool_get_info(pool, (knit_region_info *)(void *)&small));
    CHECK(small.struct_size == 8 && small.major == KNIT_PROTOCOL_MAJOR && small.sentinel == 0xabcdef01);
    knit_region_info zero = {0};
    CHECK_STATUS(knit_pool_get_info(pool, &zero), KNIT_INVALID_ARGUMENT);

    for (uint32_t i = 1; i <= workers; i++) {
        knit_worker_info w = {.struct_size = sizeof w};
        REQUIRE_OK(knit_pool_get_worker(pool, i, &w));
        CHECK(w.index == i && w.ready && !w.dead && w.starts >= 1);
        knit_participant_info p = {.struct_size = sizeof p};
        REQUIRE_OK(knit_pool_get_participant(pool, i, &p));
        CHECK(p.index == i && p.state == 3 && p.role == 2 && p.pid != 0);
        CHECK(strncmp(p.impl_name, "knit-rs", 7) == 0);
    }
    knit_worker_info w = {.struct_size = sizeof w};
    CHECK_STATUS(knit_pool_get_worker(pool, 0, &w), KNIT_INVALID_ARGUMENT);
    CHECK_STATUS(knit_pool_get_worker(pool, workers + 1, &w), KNIT_INVALID_ARGUMENT);
    knit_participant_info host = {.struct_size = sizeof host};
    REQUIRE_OK(knit_pool_get_participant(pool, 0, &host));
    CHECK(host.state == 3 && host.role == 1);
    CHECK_STATUS(knit_pool_get_participant(pool, 9999, &host), KNIT_INVALID_ARGUMENT);

    /* Attach to the pool's region by name and read the same header. */
    knit_region *r = NULL;
    REQUIRE_OK(knit_region_attach(info.name, KNIT_FOREVER, &r));
    knit_region_info again = {.struct_size = sizeof again};
    REQUIRE_OK(knit_region_get_info(r, &again));
    CHECK(again.region_len == info.region_len && strcmp(again.name, info.name) == 0);
    CHECK_STATUS(knit_region_free(r), KNIT_OK);
}

static void test_concurrency(knit_handlers *hs);

static void test_thread_pool(void) {
    knit_handlers *hs = thread_handlers();
    CHECK(hs != NULL);
    if (!hs) return;
    atomic_store(&state.freed, 0);
    knit_config *cfg = NULL;
    REQUIRE_OK(knit_config_new(&cfg));
    REQUIRE_OK(knit_config_set_threads(cfg, hs));
    REQUIRE_OK(knit_config_set_workers(cfg, 2));
    REQUIRE_OK(knit_config_set_max_message_len(cfg, 65536));
    REQUIRE_OK(knit_config_set_ring_sizes(cfg, 16384, 16384));
    REQUIRE_OK(knit_config_set_channels(cfg, 4, 4096));
    REQUIRE_OK(knit_config_set_spin(cfg, KNIT_SPIN_ITERATIONS, 100));
    knit_pool *pool = start_pool(cfg);
    CHECK_STATUS(knit_config_free(cfg), KNIT_OK);
    if (pool) {
        test_thread_calls(pool);
        test_tickets(pool);
        test_callbacks(pool);
        test_ticket_callbacks(pool);
        test_async_loan(pool);
        test_channels(pool);
        test_input_channels(pool);
        test_in_place(pool);
        test_borrow(pool);
        test_inspect(pool, 2);
        CHECK_STATUS(knit_pool_shutdown(pool), KNIT_OK);
        CHECK_STATUS(call_bytes(pool, "echo", NULL, 0, 0, NULL, 0, NULL), KNIT_SHUTDOWN);
        CHECK_STATUS(knit_pool_free(pool), KNIT_OK);
        CHECK(atomic_load(&state.handler_calls) >= 1);
    }
    test_callback_at_free(hs);
    test_concurrency(hs);
    /* The handler's user data is freed once, when the set and every pool using it are gone. */
    CHECK(atomic_load(&state.freed) == 0);
    CHECK_STATUS(knit_handlers_free(hs), KNIT_OK);
    CHECK(atomic_load(&state.freed) == 1);
}

/* ---------------------------------------------------------------- threads */

struct caller {
    knit_pool *pool;
    int id;
    int ok;
    knit_status last;
};

static void *echo_many(void *arg) {
    struct caller *c = arg;
    for (int i = 0; i < 100; i++) {
        uint8_t in[256], out[256];
        size_t n = 0;
        knit_test_fill(in, sizeof in, (uint64_t)(c->id * 1000 + i));
        knit_status st = call_bytes(c->pool, "echo", in, sizeof in, 0, out, sizeof out, &n);
        if (st == KNIT_OK && n == sizeof in && memcmp(in, out, n) == 0) c->ok++;
    }
    return NULL;
}

static void *sleep_call(void *arg) {
    struct caller *c = arg;
    c->last = call_u64(c->pool, "sleep_ms", 300, 0);
    return NULL;
}

/* Many threads call one pool at once; a pool freed while a thread is inside a call ends that
 * call (SHUTDOWN, or its result) instead of crashing, and the handle is dead afterwards. */
static void test_concurrency(knit_handlers *hs) {
    knit_config *cfg = NULL;
    REQUIRE_OK(knit_config_new(&cfg));
    REQUIRE_OK(knit_config_set_threads(cfg, hs));
    REQUIRE_OK(knit_config_set_workers(cfg, 2));
    knit_pool *pool = start_pool(cfg);
    knit_config_free(cfg);
    if (!pool) return;
    enum { T = 4 };
    pthread_t threads[T];
    struct caller callers[T];
    for (int i = 0; i < T; i++) {
        callers[i] = (struct caller){pool, i, 0, KNIT_OK};
        CHECK(pthread_create(&threads[i], NULL, echo_many, &callers[i]) == 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(threads[i], NULL);
        CHECK(callers[i].ok == 100);
    }

    struct caller sleeper = {pool, 99, 0, 12345};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, sleep_call, &sleeper) == 0);
    knit_test_sleep_ms(50);
    CHECK_STATUS(knit_pool_free(pool), KNIT_OK);
    pthread_join(t, NULL);
    CHECK(sleeper.last == KNIT_SHUTDOWN || sleeper.last == KNIT_OK);
    CHECK_STATUS(knit_call(pool, "echo", NULL, 0, 0, 0, NULL), KNIT_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------- process workers */

static knit_pool *process_pool(const char *worker, int restart) {
    knit_config *cfg = NULL;
    if (knit_config_new(&cfg) != KNIT_OK) return NULL;
    const char *argv[] = {worker, NULL};
    const char *envp[] = {"KNIT_TEST_MARK=1", NULL};
    knit_pool *pool = NULL;
    if (knit_config_set_process(cfg, argv, envp) == KNIT_OK && knit_config_set_workers(cfg, 1) == KNIT_OK &&
        knit_config_set_restart(cfg, restart) == KNIT_OK && knit_config_set_max_message_len(cfg, 4 << 20) == KNIT_OK &&
        knit_config_set_channels(cfg, 2, 4096) == KNIT_OK) {
        pool = start_pool(cfg);
    }
    knit_config_free(cfg);
    return pool;
}

/* The battery every worker implementation passes, whatever its language. */
static void test_process_worker(const char *worker, const char *label) {
    fprintf(stderr, "  process worker (%s): %s\n", label, worker);
    knit_pool *pool = process_pool(worker, 0);
    if (!pool) return;
    check_hello(pool);
    size_t sizes[] = {0, 1, 4095, 4096, 70000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        check_echo(pool, sizes[i], 700 + i);
        check_checksum(pool, sizes[i], 800 + i);
    }
    CHECK_STATUS(call_bytes(pool, "nope", NULL, 0, 0, NULL, 0, NULL), KNIT_UNKNOWN_FUNCTION);
    CHECK_STATUS(call_bytes(pool, "panic", NULL, 0, 0, NULL, 0, NULL), KNIT_HANDLER_FAILED);
    CHECK(message_contains("on purpose"));
    /* A payload over the pool's limit is refused without being sent. */
    uint8_t *big = calloc(1, (4 << 20) + 1);
    CHECK_STATUS(call_bytes(pool, "echo", big, (4 << 20) + 1, 0, NULL, 0, NULL), KNIT_PAYLOAD_TOO_LARGE);
    free(big);
    /* The handler runs until its cancel entry is set, which the host does only when it acts on
     * the deadline: no response can win the race, however late this thread runs (CALL-8). */
    CHECK_STATUS(call_u64(pool, "sleep_until_cancelled", 10000, 20000000ULL), KNIT_DEADLINE_EXCEEDED);

    /* Cancellation reaches the process: its handler returns early (the next call is not held
     * up behind a 10 s sleep). */
    uint8_t ms[8];
    knit_test_put_u64(ms, 10000);
    knit_ticket *t = NULL;
    REQUIRE_OK(knit_call_async(pool, "sleep_until_cancelled", ms, 8, KNIT_CONTENT_BYTES, 0, &t));
    knit_test_sleep_ms(20);
    CHECK_STATUS(knit_ticket_cancel(t), KNIT_OK);
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_CANCELLED);
    knit_ticket_free(t);
    CHECK_STATUS(call_bytes(pool, "echo", "x", 1, 3000000000ULL, NULL, 0, NULL), KNIT_OK);

    /* The worker's pid is the one the pool reports. */
    uint8_t pid[4] = {0};
    size_t n = 0;
    CHECK_STATUS(call_bytes(pool, "pid", NULL, 0, 0, pid, sizeof pid, &n), KNIT_OK);
    knit_worker_info w = {.struct_size = sizeof w};
    CHECK_STATUS(knit_pool_get_worker(pool, 1, &w), KNIT_OK);
    uint32_t got = (uint32_t)pid[0] | (uint32_t)pid[1] << 8 | (uint32_t)pid[2] << 16 | (uint32_t)pid[3] << 24;
    CHECK(n == 4 && w.pid != 0 && got == w.pid);

    /* A channel across processes: every message in order, then the end, then the result. */
    uint8_t four[4] = {20, 0, 0, 0};
    REQUIRE_OK(knit_call_async(pool, "progress", four, 4, KNIT_CONTENT_BYTES, 0, &t));
    knit_status end = KNIT_OK;
    CHECK(drain_channel(t, "step %d of 20", &end) == 20);
    CHECK_STATUS(end, KNIT_CHANNEL_CLOSED);
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_OK);
    knit_ticket_free(t);

    /* A channel from the host to the worker process. */
    check_digest_channel(pool, 40);

    /* A result written in place in the response ring, and one too large for it. */
    check_pattern(pool, 1000);
    check_pattern(pool, 300000);

    /* The worker dies mid-call: PEER_DIED; without restart, later calls fail too. */
    CHECK_STATUS(call_bytes(pool, "exit", NULL, 0, 0, NULL, 0, NULL), KNIT_PEER_DIED);
    CHECK_STATUS(call_bytes(pool, "echo", NULL, 0, 0, NULL, 0, NULL), KNIT_PEER_DIED);
    CHECK_STATUS(knit_pool_free(pool), KNIT_OK);

    /* The worker dies with a channel open: the receiver reports PEER_DIED after the messages
     * already sent. */
    pool = process_pool(worker, 0);
    if (!pool) return;
    REQUIRE_OK(knit_call_async(pool, "progress_then_exit", four, 4, KNIT_CONTENT_BYTES, 0, &t));
    int got_steps = drain_channel(t, "step %d", &end);
    CHECK(got_steps <= 20);
    CHECK(end == KNIT_PEER_DIED || end == KNIT_CHANNEL_ABORTED);
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_PEER_DIED);
    knit_ticket_free(t);
    CHECK_STATUS(knit_pool_free(pool), KNIT_OK);

    /* With restart on, the pool recovers. */
    pool = process_pool(worker, 1);
    if (!pool) return;
    uint8_t first_pid[4] = {0}, second_pid[4] = {0};
    CHECK_STATUS(call_bytes(pool, "pid", NULL, 0, 0, first_pid, sizeof first_pid, NULL), KNIT_OK);
    CHECK_STATUS(call_bytes(pool, "exit", NULL, 0, 0, NULL, 0, NULL), KNIT_PEER_DIED);
    check_hello(pool);
    /* Another process answers now. */
    CHECK_STATUS(call_bytes(pool, "pid", NULL, 0, 0, second_pid, sizeof second_pid, NULL), KNIT_OK);
    CHECK(memcmp(first_pid, second_pid, sizeof first_pid) != 0);
    CHECK_STATUS(knit_pool_free(pool), KNIT_OK);
}

/* Only the C worker has these. */
static void test_c_worker_extras(const char *worker) {
    knit_pool *pool = process_pool(worker, 0);
    if (!pool) return;
    CHECK_STATUS(call_u64(pool, "fail_code", 5000, 0), 5000);
    CHECK(message_contains("application failure 5000"));
    uint8_t arg[8];
    knit_test_put_u64(arg, 100000);
    knit_response *res = NULL;
    CHECK_STATUS(knit_call(pool, "alloc", arg, 8, KNIT_CONTENT_BYTES, 0, &res), KNIT_OK);
    const uint8_t *data = NULL;
    size_t len = 0;
    knit_response_get(res, &data, &len, NULL);
    int same = len == 100000;
    for (size_t i = 0; same && i < len; i++) same = data[i] == (uint8_t)i;
    CHECK(same);
    knit_response_free(res);
    CHECK_STATUS(knit_pool_free(pool), KNIT_OK);
}

/* ---------------------------------------------------------------- regions */

static void test_region(void) {
    knit_config *cfg = NULL;
    REQUIRE_OK(knit_config_new(&cfg));
    REQUIRE_OK(knit_config_set_workers(cfg, 3));
    knit_region *r = NULL;
    REQUIRE_OK(knit_region_create(cfg, &r));
    knit_config_free(cfg);
    knit_region_info info = {.struct_size = sizeof info};
    REQUIRE_OK(knit_region_get_info(r, &info));
    CHECK(info.worker_slots == 3 && info.major == 1 && info.poison_code == 0);
    knit_participant_info host = {.struct_size = sizeof host};
    REQUIRE_OK(knit_region_get_participant(r, 0, &host));
    CHECK(host.state == 3 && host.role == 1 && host.pid != 0);
    knit_participant_info slot = {.struct_size = sizeof slot};
    REQUIRE_OK(knit_region_get_participant(r, 1, &slot));
    CHECK(slot.state == 0 && slot.pid == 0);
    CHECK_STATUS(knit_region_get_participant(r, 4, &slot), KNIT_INVALID_ARGUMENT);

    knit_region *seen = NULL;
    REQUIRE_OK(knit_region_attach(info.name, KNIT_FOREVER, &seen));
    CHECK_STATUS(knit_region_free(seen), KNIT_OK);

    /* A worker for a slot the host never reserved is refused. */
    knit_worker *w = NULL;
    REQUIRE_OK(knit_worker_new(info.name, 1, &w));
    CHECK_STATUS(knit_worker_run(w), KNIT_SLOT_TAKEN);
    CHECK_STATUS(knit_worker_free(w), KNIT_OK);
    CHECK_STATUS(knit_worker_new(info.name, 0, &w), KNIT_INVALID_ARGUMENT);

    /* Freeing the creator's handle removes the name. */
    char name[KNIT_REGION_NAME_CAPACITY];
    memcpy(name, info.name, sizeof name);
    CHECK_STATUS(knit_region_free(r), KNIT_OK);
    CHECK_STATUS(knit_region_attach(name, 0, &seen), KNIT_OS_ERROR);
}

/* ---------------------------------------------------------------- external workers */

/* Starts `program` as a worker of region `name`, entry `slot`, the way a supervisor would
 * (MAP-5: KNIT_REGION and KNIT_SLOT); the pool did not start it and is not told its pid. */
static pid_t start_external(const char *program, const char *name, unsigned slot) {
    pid_t pid = fork();
    if (pid == 0) {
        char slot_text[16];
        snprintf(slot_text, sizeof slot_text, "%u", slot);
        setenv("KNIT_REGION", name, 1);
        setenv("KNIT_SLOT", slot_text, 1);
        execl(program, program, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int exit_code(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void check_echo_on(knit_pool *pool, uint32_t worker, const char *text) {
    knit_response *r = NULL;
    CHECK_STATUS(knit_call_on(pool, worker, "echo", (const uint8_t *)text, strlen(text), KNIT_CONTENT_UTF8, 0, &r),
                 KNIT_OK);
    const uint8_t *data = NULL;
    size_t len = 0;
    if (r && knit_response_get(r, &data, &len, NULL) == KNIT_OK) {
        CHECK(len == strlen(text) && memcmp(data, text, len) == 0);
    }
    knit_response_free(r);
}

/* A pool that starts no workers adopts a C worker and a Rust worker started here; pinned
 * calls, release (the worker exits cleanly), a new epoch, and a kill -9 found through the
 * participant entry (the worker is not the pool's child). */
static void test_external(const char *c_worker, const char *rust_worker) {
    fprintf(stderr, "  external workers: %s, %s\n", c_worker, rust_worker);
    knit_config *cfg = NULL;
    REQUIRE_OK(knit_config_new(&cfg));
    REQUIRE_OK(knit_config_set_workers(cfg, 2));
    REQUIRE_OK(knit_config_set_external(cfg, true));
    knit_pool *pool = start_pool(cfg);
    /* false undoes true: the config names no workers again. */
    CHECK_STATUS(knit_config_set_external(cfg, false), KNIT_OK);
    knit_pool *none = NULL;
    CHECK_STATUS(knit_pool_start(cfg, &none), KNIT_INVALID_ARGUMENT);
    knit_config_free(cfg);
    if (!pool) return;
    knit_region_info info = {.struct_size = sizeof info};
    REQUIRE_OK(knit_pool_get_info(pool, &info));
    knit_participant_info p = {.struct_size = sizeof p};
    REQUIRE_OK(knit_pool_get_participant(pool, 1, &p));
    CHECK(p.state == 1 && p.epoch == 1); /* RESERVED before anyone knows the name */
    CHECK_STATUS(knit_pool_wait_worker(pool, 1, 0), KNIT_TIMED_OUT);
    CHECK_STATUS(knit_pool_wait_worker(pool, 3, 0), KNIT_INVALID_ARGUMENT);

    pid_t c_pid = start_external(c_worker, info.name, 1);
    pid_t rust_pid = start_external(rust_worker, info.name, 2);
    CHECK_STATUS(knit_pool_wait_worker(pool, 1, 20000000000ULL), KNIT_OK);
    CHECK_STATUS(knit_pool_wait_worker(pool, 2, 20000000000ULL), KNIT_OK);
    size_t length = 0;
    CHECK_STATUS(knit_pool_worker_functions(pool, 2, NULL, 0, &length), KNIT_OK);
    char *names = calloc(1, length + 1);
    CHECK_STATUS(knit_pool_worker_functions(pool, 2, names, length, &length), KNIT_OK);
    int has_echo = 0;
    for (size_t at = 0; names && at < length; at += strlen(names + at) + 1) {
        has_echo |= strcmp(names + at, "echo") == 0;
    }
    CHECK(has_echo);
    free(names);
    knit_worker_info wi = {.struct_size = sizeof wi};
    REQUIRE_OK(knit_pool_get_worker(pool, 2, &wi));
    CHECK(wi.ready && (pid_t)wi.pid == rust_pid);

    check_echo_on(pool, 1, "to the C worker");
    check_echo_on(pool, 2, "to the Rust worker");
    knit_ticket *t = NULL;
    REQUIRE_OK(knit_call_async_on(pool, 1, "nope", NULL, 0, 0, 0, &t));
    CHECK_STATUS(knit_ticket_wait(t, KNIT_FOREVER, NULL), KNIT_UNKNOWN_FUNCTION);
    knit_ticket_free(t);

    /* Release: SHUTDOWN, the worker detaches and exits 0; its entry can be reserved again. */
    uint32_t epoch = 0;
    CHECK_STATUS(knit_pool_reserve_worker(pool, 1, &epoch), KNIT_SLOT_TAKEN);
    CHECK_STATUS(knit_pool_release_worker(pool, 1, 20000000000ULL), KNIT_OK);
    CHECK(exit_code(c_pid) == 0);
    REQUIRE_OK(knit_pool_get_participant(pool, 1, &p));
    CHECK(p.state == 4); /* DETACHED */
    CHECK_STATUS(knit_call_on(pool, 1, "echo", NULL, 0, 0, 0, NULL), KNIT_PEER_DIED);
    CHECK_STATUS(knit_pool_reserve_worker(pool, 1, &epoch), KNIT_OK);
    CHECK(epoch == 2);
    c_pid = start_external(c_worker, info.name, 1);
    CHECK_STATUS(knit_pool_wait_worker(pool, 1, 20000000000ULL), KNIT_OK);
    check_echo_on(pool, 1, "to the C worker, epoch 2");

    /* kill -9 mid-call: the pool is not its parent, the entry's identity tells (LIVE-2). */
    uint8_t ms[8];
    knit_test_put_u64(ms, 60000);
    REQUIRE_OK(knit_call_async_on(pool, 2, "sleep_until_cancelled", ms, 8, KNIT_CONTENT_BYTES, 0, &t));
    knit_test_sleep_ms(20);
    kill(rust_pid, SIGKILL);
    CHECK(exit_code(rust_pid) == 128 + SIGKILL);
    CHECK_STATUS(knit_ticket_wait(t, 20000000000ULL, NULL), KNIT_PEER_DIED);
    knit_ticket_free(t);
    REQUIRE_OK(knit_pool_get_worker(pool, 2, &wi));
    CHECK(wi.dead && !wi.ready);

    CHECK_STATUS(knit_pool_free(pool), KNIT_OK);
    CHECK(exit_code(c_pid) == 0); /* the pool's shutdown let the adopted worker go */
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s C_WORKER RUST_WORKER\n", argv[0]);
        return 2;
    }
    fprintf(stderr, "test_host: libknit %s\n", knit_version_string());
    test_versions();
    test_bad_handles();
    test_argument_errors();
    test_thread_pool();
    test_process_worker(argv[1], "C");
    test_c_worker_extras(argv[1]);
    test_process_worker(argv[2], "Rust");
    test_external(argv[1], argv[2]);
    test_region();

    /* Leak check: every handle created above was freed. */
    size_t live = knit_handle_count();
    if (live != 0) {
        fprintf(stderr, "leak: %zu handles still live\n", live);
        test_failures++;
    }
    if (test_failures) {
        fprintf(stderr, "test_host: %d check(s) FAILED\n", test_failures);
        return 1;
    }
    fprintf(stderr, "test_host: all checks passed\n");
    return 0;
}
