// Tests of the C++ wrapper knit.hpp: RAII and moves, exceptions and Result values, handlers of
// every shape, tickets, callbacks, loans, a C++ worker process, and a handle leak check.
//
// Usage: test_knit CPP_WORKER
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "knit.hpp"

using namespace std::chrono_literals;

static int failures;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

// Runs `f`, expecting a knit::Error with `code`; returns its message.
template <class F>
static std::string expect_error(knit_status code, F f) {
    try {
        f();
    } catch (const knit::Error& e) {
        if (e.code() != code) {
            std::fprintf(stderr, "expected %s, got %s: %s\n", knit_status_name(code), e.name(), e.what());
            failures++;
        }
        return e.what();
    }
    std::fprintf(stderr, "expected %s, got no error\n", knit_status_name(code));
    failures++;
    return {};
}

static knit::Handlers handlers() {
    knit::Handlers h;
    h.add("hello", [](const knit::Request& req) { return "Hello, " + std::string(req.text()); })
        .add("bytes", [](const knit::Request& req) {
            std::vector<std::uint8_t> out(req.payload().begin(), req.payload().end());
            for (auto& b : out) b = static_cast<std::uint8_t>(b + 1);
            return out;
        })
        .add("nothing", [](const knit::Request&) {})
        .add("alloc",
             [](const knit::Request&, knit::Reply& reply) {
                 auto buf = reply.alloc(3, KNIT_CONTENT_APPLICATION);
                 buf[0] = 1;
                 buf[1] = 2;
                 buf[2] = 3;
             })
        .add("throw", [](const knit::Request&) -> std::string { throw knit::Error(4321, "thrown in C++"); })
        .add("throw_std", [](const knit::Request&) -> std::string { throw std::runtime_error("std error"); })
        .add("throw_int", [](const knit::Request&) -> std::string { throw 42; })
        .add_streaming("progress",
                       [](const knit::Request& req) {
                           knit::Sender tx = req.open_channel();
                           for (int i = 0; i < 3; i++) tx.send(knit::as_bytes("step " + std::to_string(i)));
                           tx.close();
                           return std::string("done");
                       })
        .add("count_input",
             [](const knit::Request& req) {
                 knit::Receiver rx = req.take_channel();
                 std::size_t n = 0, bytes = 0;
                 while (auto m = rx.recv()) {
                     n++;
                     bytes += m->bytes().size();
                 }
                 return std::to_string(n) + " " + std::to_string(bytes);
             })
        .add_in_place("pattern",
                      [](const knit::Request& req, knit::Reply& reply) {
                          std::size_t n = std::stoul(std::string(req.text()));
                          reply.write_in_place(n, KNIT_CONTENT_BYTES, [](knit::MutableBytes buf) {
                              for (std::size_t i = 0; i < buf.size(); i++) buf[i] = static_cast<std::uint8_t>(i % 251);
                              return buf.size();
                          });
                      })
        .add_in_place("pattern_throws",
                      [](const knit::Request&, knit::Reply& reply) {
                          reply.write_in_place(8, KNIT_CONTENT_BYTES, [](knit::MutableBytes) -> std::size_t {
                              throw knit::Error(4242, "fill failed");
                          });
                      })
        .add("wait_cancel", [](const knit::Request& req) -> std::string {
            for (int i = 0; i < 10000; i++) {
                if (req.cancelled()) throw knit::Error(KNIT_CANCELLED, "saw it");
                std::this_thread::sleep_for(1ms);
            }
            return "not cancelled";
        });
    return h;
}

static void test_thread_pool() {
    knit::Pool pool(knit::Config().workers(2).threads(handlers()).spin(knit::Spin::balanced).channels(4, 4096));
    CHECK(pool.call("hello", knit::as_bytes("C++")).text() == "Hello, C++");
    std::vector<std::uint8_t> in{1, 2, 3};
    knit::Response r = pool.call("bytes", in);
    CHECK(r.to_vector() == (std::vector<std::uint8_t>{2, 3, 4}));
    CHECK(pool.call("nothing", {}).bytes().empty());
    knit::Response a = pool.call("alloc", {});
    CHECK(a.content_type() == KNIT_CONTENT_APPLICATION && a.to_vector() == (std::vector<std::uint8_t>{1, 2, 3}));

    // Exceptions cross as failures with their code and text.
    std::string m = expect_error(4321, [&] { pool.call("throw", {}); });
    CHECK(m.find("thrown in C++") != std::string::npos);
    m = expect_error(KNIT_HANDLER_FAILED, [&] { pool.call("throw_std", {}); });
    CHECK(m.find("std error") != std::string::npos);
    expect_error(KNIT_HANDLER_FAILED, [&] { pool.call("throw_int", {}); });
    expect_error(KNIT_UNKNOWN_FUNCTION, [&] { pool.call("nope", {}); });

    // Result values instead of exceptions.
    knit::Result<knit::Response> ok = pool.try_call("hello", knit::as_bytes("x"));
    CHECK(ok.ok() && ok.code() == KNIT_OK && ok.value().text() == "Hello, x");
    knit::Result<knit::Response> bad = pool.try_call("nope", {});
    CHECK(!bad && bad.code() == KNIT_UNKNOWN_FUNCTION);

    // Moves keep one owner.
    knit::Response moved = std::move(r);
    CHECK(moved.to_vector().size() == 3);

    // Tickets: wait_any, try_wait with a timeout, cancel.
    knit::Ticket t1 = pool.call_async("hello", knit::as_bytes("one"));
    knit::Ticket t2 = pool.call_async("hello", knit::as_bytes("two"));
    std::vector<knit::Ticket*> both{&t1, &t2};
    auto first = knit::wait_any(both, 10s);
    CHECK(first.has_value());
    CHECK(t1.wait().text() == "Hello, one");
    CHECK(t2.wait().text() == "Hello, two");
    knit::Ticket slow = pool.call_async("wait_cancel", {});
    CHECK(!slow.try_wait(1ms).has_value());
    slow.cancel();
    auto cancelled = slow.try_wait(knit::forever);
    CHECK(cancelled.has_value() && cancelled->code() == KNIT_CANCELLED);

    // Callbacks: called once each, on the callback thread.
    std::mutex mu;
    std::condition_variable cv;
    int done = 0;
    std::vector<std::string> texts;
    for (int i = 0; i < 5; i++) {
        pool.call_then("hello", knit::as_bytes(std::to_string(i)), [&](const knit::Outcome& o) {
            std::lock_guard<std::mutex> lock(mu);
            texts.emplace_back(o.ok() ? std::string(knit::as_text(o.bytes)) : std::string(o.message));
            done++;
            cv.notify_all();
        });
    }
    {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, 10s, [&] { return done == 5; });
    }
    CHECK(done == 5);
    for (const auto& t : texts) CHECK(t.rfind("Hello, ", 0) == 0);

    // Loan: the request is written in place.
    knit::Response loaned = pool.call_loan("bytes", 4, KNIT_CONTENT_BYTES, [](knit::MutableBytes buf) {
        for (std::size_t i = 0; i < buf.size(); i++) buf[i] = static_cast<std::uint8_t>(10 * i);
    });
    CHECK(loaned.to_vector() == (std::vector<std::uint8_t>{1, 11, 21, 31}));

    // Channels: worker to host, then host to worker.
    knit::Ticket streaming = pool.call_async("progress", {});
    knit::Receiver rx = streaming.channel();
    int steps = 0;
    while (auto m = rx.recv()) {
        CHECK(m->text() == "step " + std::to_string(steps));
        steps++;
    }
    CHECK(steps == 3);
    CHECK(streaming.wait().text() == "done");
    auto [counting, tx] = pool.call_with_channel("count_input", {});
    for (int i = 0; i < 10; i++) tx.send(knit::as_bytes(std::string(static_cast<std::size_t>(i) * 100, 'x')));
    tx.close();
    CHECK(counting.wait().text() == "10 4500");
    auto [aborted, tx2] = pool.call_with_channel("count_input", {});
    tx2.abort(7777);
    expect_error(KNIT_CHANNEL_ABORTED, [&] { aborted.wait(); });

    // Results written in place, and a fill function that throws.
    for (std::size_t n : {std::size_t{0}, std::size_t{100}, std::size_t{200000}}) {
        knit::Response p = pool.call("pattern", knit::as_bytes(std::to_string(n)));
        bool same = p.bytes().size() == n;
        for (std::size_t i = 0; same && i < n; i++) same = p.bytes()[i] == static_cast<std::uint8_t>(i % 251);
        CHECK(same);
    }
    m = expect_error(4242, [&] { pool.call("pattern_throws", {}); });
    CHECK(m.find("fill failed") != std::string::npos);

    knit_region_info info = pool.info();
    CHECK(info.worker_slots == 2 && info.major == KNIT_PROTOCOL_MAJOR);
    CHECK(pool.worker(1).ready);
    knit::Region region = knit::Region::attach(info.name);
    CHECK(region.participant(0).role == 1);
    pool.shutdown();
    expect_error(KNIT_SHUTDOWN, [&] { pool.call("hello", {}); });
}

static void test_config_errors() {
    expect_error(KNIT_INVALID_ARGUMENT, [] { knit::Config().workers(0); });
    expect_error(KNIT_INVALID_ARGUMENT, [] { knit::Pool pool{knit::Config()}; });
    expect_error(KNIT_INVALID_ARGUMENT, [] { knit::Handlers().add("", [](const knit::Request&) {}); });
    expect_error(KNIT_OS_ERROR, [] { knit::Region::attach("knit-00000000000000000000000000000000", 0ns); });
}

static void test_cpp_worker(const char* worker) {
    knit::Pool pool(knit::Config().process({worker}));
    CHECK(pool.call("hello", knit::as_bytes("process")).text() == "Hello, process");
    std::string big(100000, 'z');
    knit::Response echo = pool.call("echo", knit::as_bytes(big), {KNIT_CONTENT_UTF8, 0ns});
    CHECK(echo.text() == big && echo.content_type() == KNIT_CONTENT_UTF8);
    std::string m = expect_error(4321, [&] { pool.call("throw", {}); });
    CHECK(m.find("thrown in C++") != std::string::npos);
    m = expect_error(KNIT_HANDLER_FAILED, [&] { pool.call("throw_std", {}); });
    CHECK(m.find("std error") != std::string::npos);
    CHECK(pool.worker(1).pid != 0);
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CPP_WORKER\n", argv[0]);
        return 2;
    }
    std::fprintf(stderr, "test_knit: libknit %s\n", knit::version().c_str());
    try {
        test_config_errors();
        test_thread_pool();
        test_cpp_worker(argv[1]);
    } catch (const knit::Error& e) {
        std::fprintf(stderr, "unexpected knit::Error %s: %s\n", e.name(), e.what());
        failures++;
    }
    if (knit::live_handles() != 0) {
        std::fprintf(stderr, "leak: %zu handles still live\n", knit::live_handles());
        failures++;
    }
    if (failures) {
        std::fprintf(stderr, "test_knit: %d check(s) FAILED\n", failures);
        return 1;
    }
    std::fprintf(stderr, "test_knit: all checks passed\n");
    return 0;
}
