// knit.hpp: a header-only C++17 wrapper of the Knit C interface (knit.h).
//
// Handles are move-only RAII classes; failures throw knit::Error (with the status code and the
// library's message), or, through the try_* functions, come back as knit::Result<T> values.
// Buffers are passed as knit::Span (std::span is C++20). Handlers and callbacks are any
// callables; an exception thrown by one is caught at the C boundary and sent to the caller as
// a failure (knit::Error keeps its code, any other exception is KNIT_HANDLER_FAILED).
//
//   knit::Handlers handlers;
//   handlers.add("hello", [](const knit::Request& req) { return "Hello, " + std::string(req.text()); });
//   knit::Pool pool(knit::Config().workers(2).threads(handlers));
//   knit::Response r = pool.call("hello", knit::as_bytes("World"));
//   std::cout << r.text() << "\n";
//
// Thread safety is the C library's: every object may be used from several threads except
// while it is being moved or destroyed.
#ifndef KNIT_HPP
#define KNIT_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "knit.h"

namespace knit {

// ------------------------------------------------------------------------------------ errors

// A failed Knit operation: the status code (a KNIT_* registry code or an application code) and
// the library's message.
class Error : public std::runtime_error {
  public:
    Error(knit_status code, const std::string& message) : std::runtime_error(message), code_(code) {}

    knit_status code() const noexcept { return code_; }
    // The registry name of the code ("PEER_DIED", "APPLICATION", ...).
    const char* name() const noexcept { return knit_status_name(code_); }

  private:
    knit_status code_;
};

namespace detail {
inline Error last_error(knit_status code) { return Error(code, knit_last_error_message()); }

inline void check(knit_status code) {
    if (code != KNIT_OK) throw last_error(code);
}
}  // namespace detail

// An expected-style result: a value or an Error, never both.
template <class T>
class Result {
  public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    // The value; throws the error when there is none.
    T& value() & {
        if (!ok()) throw std::get<1>(v_);
        return std::get<0>(v_);
    }
    T&& value() && {
        if (!ok()) throw std::get<1>(v_);
        return std::get<0>(std::move(v_));
    }
    // The error; precondition: !ok().
    const Error& error() const { return std::get<1>(v_); }
    // KNIT_OK, or the error's code.
    knit_status code() const noexcept { return ok() ? KNIT_OK : std::get<1>(v_).code(); }

  private:
    std::variant<T, Error> v_;
};

// ------------------------------------------------------------------------------------- spans

// A view of contiguous elements (std::span is C++20).
template <class T>
class Span {
  public:
    constexpr Span() noexcept = default;
    constexpr Span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <std::size_t N>
    constexpr Span(T (&array)[N]) noexcept : data_(array), size_(N) {}
    template <class C, class = decltype(std::declval<C&>().data()),
              class = std::enable_if_t<std::is_convertible_v<decltype(std::declval<C&>().data()), T*>>>
    constexpr Span(C& container) noexcept : data_(container.data()), size_(container.size()) {}
    template <class U, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
    constexpr Span(Span<U> other) noexcept : data_(other.data()), size_(other.size()) {}

    constexpr T* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T* begin() const noexcept { return data_; }
    constexpr T* end() const noexcept { return data_ + size_; }
    constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }

  private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

using Bytes = Span<const std::uint8_t>;
using MutableBytes = Span<std::uint8_t>;

// The bytes of a string (without a terminating NUL).
inline Bytes as_bytes(std::string_view s) noexcept {
    return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

// The bytes of any contiguous container or array of trivially copyable elements.
template <class C, class = decltype(std::declval<const C&>().data())>
Bytes as_bytes(const C& c) noexcept {
    return Bytes(reinterpret_cast<const std::uint8_t*>(c.data()), c.size() * sizeof(*c.data()));
}

inline std::string_view as_text(Bytes b) noexcept {
    return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}

// ----------------------------------------------------------------------------------- handles

namespace detail {
// A move-only owner of a C handle, freed by `Free`.
template <class H, knit_status (*Free)(H*)>
class Handle {
  public:
    Handle() noexcept = default;
    explicit Handle(H* h) noexcept : h_(h) {}
    Handle(Handle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }

    H* get() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    void reset() noexcept {
        if (h_) Free(h_);
        h_ = nullptr;
    }

  private:
    H* h_ = nullptr;
};

inline std::uint64_t nanos(std::chrono::nanoseconds d) noexcept {
    return d.count() <= 0 ? 0 : static_cast<std::uint64_t>(d.count());
}
}  // namespace detail

// No deadline / no timeout.
inline constexpr std::chrono::nanoseconds forever = std::chrono::nanoseconds::max();

inline std::uint64_t timeout_ns(std::chrono::nanoseconds d) noexcept {
    return d == forever ? KNIT_FOREVER : detail::nanos(d);
}

// -------------------------------------------------------------------------------- responses

// The result of a successful call; owns its bytes.
class Response {
  public:
    explicit Response(knit_response* r) : h_(r) {
        detail::check(knit_response_get(h_.get(), &data_, &len_, &content_type_));
    }

    Bytes bytes() const noexcept { return Bytes(data_, len_); }
    std::string_view text() const noexcept { return as_text(bytes()); }
    std::uint32_t content_type() const noexcept { return content_type_; }
    std::vector<std::uint8_t> to_vector() const { return std::vector<std::uint8_t>(data_, data_ + len_); }

  private:
    detail::Handle<knit_response, knit_response_free> h_;
    const std::uint8_t* data_ = nullptr;
    std::size_t len_ = 0;
    std::uint32_t content_type_ = 0;
};

// ---------------------------------------------------------------------------------- channels

// The writing end of a channel (either direction). Move-only; destroying it without close()
// aborts the channel with KNIT_CANCELLED, so the reader never takes a cut stream for a whole
// one. A worker's sender is valid only during its handler call.
class Sender {
  public:
    explicit Sender(knit_sender* s) noexcept : s_(s) {}
    Sender(Sender&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    Sender& operator=(Sender&& o) noexcept {
        if (this != &o) {
            reset();
            s_ = std::exchange(o.s_, nullptr);
        }
        return *this;
    }
    Sender(const Sender&) = delete;
    Sender& operator=(const Sender&) = delete;
    ~Sender() { reset(); }

    // Sends a message, waiting while the channel is full.
    void send(Bytes bytes, std::uint32_t content_type = KNIT_CONTENT_BYTES) {
        detail::check(knit_sender_send(s_, bytes.data(), bytes.size(), content_type));
    }
    // Sends a message if it fits now; false (nothing sent) when the channel is full.
    bool try_send(Bytes bytes) {
        knit_status st = knit_sender_try_send(s_, bytes.data(), bytes.size());
        if (st == KNIT_WOULD_BLOCK) return false;
        detail::check(st);
        return true;
    }
    // Ends the stream: the reader gets every message, then the end.
    void close() { detail::check(knit_sender_close(std::exchange(s_, nullptr))); }
    // Aborts the channel with `code`; the reader's receives fail with KNIT_CHANNEL_ABORTED.
    void abort(knit_status code) { detail::check(knit_sender_abort(std::exchange(s_, nullptr), code)); }

  private:
    void reset() noexcept {
        if (s_) knit_sender_free(std::exchange(s_, nullptr));
    }
    knit_sender* s_ = nullptr;
};

// The reading end of a channel (either direction). Move-only; destroying it before the end of
// the stream aborts the channel with KNIT_CANCELLED. A worker's receiver is valid only during
// its handler call.
class Receiver {
  public:
    explicit Receiver(knit_receiver* r) noexcept : h_(r) {}

    // The next message; std::nullopt at the end of the stream. Throws knit::Error
    // (KNIT_CHANNEL_ABORTED, KNIT_PEER_DIED, ...) otherwise.
    std::optional<Response> recv() {
        knit_response* m = nullptr;
        knit_status st = knit_receiver_recv(h_.get(), &m);
        if (st == KNIT_CHANNEL_CLOSED) return std::nullopt;
        detail::check(st);
        return Response(m);
    }
    // Aborts the channel with `code`; the writer's sends fail with KNIT_CHANNEL_ABORTED.
    void abort(knit_status code) { detail::check(knit_receiver_abort(h_.get(), code)); }

  private:
    detail::Handle<knit_receiver, knit_receiver_free> h_;
};

// ------------------------------------------------------------------------------- handlers

// A request as a handler sees it; valid only during the handler call. The payload may be the
// shared ring itself: treat it as untrusted input and do not keep it.
class Request {
  public:
    explicit Request(const knit_request* r) noexcept : r_(r) {}

    Bytes payload() const noexcept { return Bytes(r_->payload, r_->payload_len); }
    std::string_view text() const noexcept { return as_text(payload()); }
    std::uint32_t content_type() const noexcept { return r_->content_type; }
    std::uint64_t request_id() const noexcept { return r_->request_id; }
    std::uint32_t worker_slot() const noexcept { return r_->worker_slot; }
    // The deadline as CLOCK_MONOTONIC nanoseconds (knit_monotonic_ns), if the call has one.
    std::optional<std::uint64_t> deadline_ns() const noexcept {
        return r_->deadline_ns ? std::optional<std::uint64_t>(r_->deadline_ns) : std::nullopt;
    }
    // Whether the caller cancelled the call; a long handler polls it.
    bool cancelled() const {
        bool c = false;
        detail::check(knit_request_is_cancelled(r_, &c));
        return c;
    }
    // Opens a channel to the caller (only in a handler added with add_streaming).
    Sender open_channel() const {
        knit_sender* tx = nullptr;
        detail::check(knit_request_open_channel(r_, &tx));
        return Sender(tx);
    }
    // Takes the channel the caller opened for this call (Pool::call_with_channel).
    Receiver take_channel() const {
        knit_receiver* rx = nullptr;
        detail::check(knit_request_take_channel(r_, &rx));
        return Receiver(rx);
    }
    const knit_request* c_request() const noexcept { return r_; }

  private:
    const knit_request* r_;
};

// The reply a handler builds (for handlers taking `(const Request&, Reply&)`).
class Reply {
  public:
    explicit Reply(knit_reply* r) noexcept : r_(r) {}

    // The result: a copy of `bytes`.
    void set(Bytes bytes, std::uint32_t content_type = KNIT_CONTENT_BYTES) {
        detail::check(knit_reply_set(r_, bytes.data(), bytes.size(), content_type));
    }
    // A result buffer of `len` bytes to write into (one copy less than set()).
    MutableBytes alloc(std::size_t len, std::uint32_t content_type = KNIT_CONTENT_BYTES) {
        std::uint8_t* buf = nullptr;
        detail::check(knit_reply_alloc(r_, len, content_type, &buf));
        return MutableBytes(buf, len);
    }

    // Answers with at most `capacity` bytes that `fill(MutableBytes)` writes and whose count
    // it returns: straight into the response ring when they fit one record (only in a handler
    // added with add_in_place). The call is answered when this returns.
    template <class F>
    void write_in_place(std::size_t capacity, std::uint32_t content_type, F fill) {
        struct Box {
            F* f;
            std::exception_ptr error;
        } box{&fill, nullptr};
        auto trampoline = [](void* ud, std::uint8_t* buf, std::size_t cap) -> std::size_t {
            Box* b = static_cast<Box*>(ud);
            try {
                return (*b->f)(MutableBytes(buf, cap));
            } catch (...) {
                b->error = std::current_exception();
                return cap + 1;  // refused: nothing is sent
            }
        };
        knit_status st = knit_reply_write_in_place(r_, capacity, content_type, trampoline, &box);
        if (box.error) std::rethrow_exception(box.error);
        detail::check(st);
    }

  private:
    knit_reply* r_;
};

namespace detail {
using HandlerFn = std::function<void(const Request&, Reply&)>;

// The C handler of every C++ handler: no exception crosses into C.
extern "C" inline knit_status knit_hpp_handler_trampoline(void* ud, const knit_request* req, knit_reply* reply) {
    try {
        Request request(req);
        Reply out(reply);
        (*static_cast<HandlerFn*>(ud))(request, out);
        return KNIT_OK;
    } catch (const Error& e) {
        knit_status code = e.code() == KNIT_OK ? KNIT_HANDLER_FAILED : e.code();
        knit_reply_error(reply, code, e.what());
        return code;
    } catch (const std::exception& e) {
        knit_reply_error(reply, KNIT_HANDLER_FAILED, e.what());
        return KNIT_HANDLER_FAILED;
    } catch (...) {
        knit_reply_error(reply, KNIT_HANDLER_FAILED, "a C++ handler threw a non-standard exception");
        return KNIT_HANDLER_FAILED;
    }
}

extern "C" inline void knit_hpp_delete_handler(void* ud) { delete static_cast<HandlerFn*>(ud); }

// Wraps any handler shape into (const Request&, Reply&): a callable taking (const Request&)
// may return a std::string, a std::vector<uint8_t> or nothing.
template <class F>
HandlerFn make_handler(F f) {
    if constexpr (std::is_invocable_v<F&, const Request&, Reply&>) {
        return HandlerFn(std::move(f));
    } else {
        static_assert(std::is_invocable_v<F&, const Request&>,
                      "a handler takes (const knit::Request&) or (const knit::Request&, knit::Reply&)");
        return [f = std::move(f)](const Request& req, Reply& reply) mutable {
            using R = std::invoke_result_t<F&, const Request&>;
            if constexpr (std::is_void_v<R>) {
                f(req);
            } else if constexpr (std::is_convertible_v<R, std::string_view>) {
                R out = f(req);
                reply.set(as_bytes(std::string_view(out)), KNIT_CONTENT_UTF8);
            } else {
                R out = f(req);
                reply.set(as_bytes(out), req.content_type());
            }
        };
    }
}

// Registers `f` through a C registration function taking (name, fn, user_data, free).
template <class Register, class F>
void register_handler(Register reg, const std::string& name, F f) {
    auto boxed = std::make_unique<HandlerFn>(make_handler(std::move(f)));
    check(reg(name.c_str(), knit_hpp_handler_trampoline, boxed.get(), knit_hpp_delete_handler));
    boxed.release();  // owned by the library now; freed through knit_hpp_delete_handler
}
}  // namespace detail

// A set of named handlers for thread workers or a worker process.
class Handlers {
  public:
    Handlers() {
        knit_handlers* h = nullptr;
        detail::check(knit_handlers_new(&h));
        h_ = decltype(h_)(h);
    }

    // Adds (or replaces) the handler of `name`. See detail::make_handler for the shapes.
    template <class F>
    Handlers& add(const std::string& name, F f) {
        return add_with(knit_handlers_add, name, std::move(f));
    }
    // A handler that may open channels to the caller (Request::open_channel).
    template <class F>
    Handlers& add_streaming(const std::string& name, F f) {
        return add_with(knit_handlers_add_streaming, name, std::move(f));
    }
    // A handler that may write its result in place (Reply::write_in_place).
    template <class F>
    Handlers& add_in_place(const std::string& name, F f) {
        return add_with(knit_handlers_add_in_place, name, std::move(f));
    }

    knit_handlers* get() const noexcept { return h_.get(); }

  private:
    template <class F>
    Handlers& add_with(knit_status (*c_add)(knit_handlers*, const char*, knit_handler_fn, void*, knit_free_fn),
                       const std::string& name, F f) {
        knit_handlers* h = h_.get();
        detail::register_handler(
            [h, c_add](const char* n, knit_handler_fn fn, void* ud, knit_free_fn fr) { return c_add(h, n, fn, ud, fr); },
            name, std::move(f));
        return *this;
    }
    detail::Handle<knit_handlers, knit_handlers_free> h_;
};

// ------------------------------------------------------------------------------------ config

enum class Spin : std::uint32_t {
    balanced = KNIT_SPIN_BALANCED,
    lowest_latency = KNIT_SPIN_LOWEST_LATENCY,
    none = KNIT_SPIN_NONE,
};

// What a pool is built from; setters chain and throw on a refused value.
class Config {
  public:
    Config() {
        knit_config* c = nullptr;
        detail::check(knit_config_new(&c));
        h_ = decltype(h_)(c);
    }

    Config& workers(std::uint32_t n) { return set(knit_config_set_workers(get(), n)); }
    Config& threads(const Handlers& h) { return set(knit_config_set_threads(get(), h.get())); }
    // Worker processes started from `argv` (argv[0] the program), with extra `env` entries
    // ("NAME=VALUE").
    Config& process(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
        std::vector<const char*> a, e;
        for (const auto& s : argv) a.push_back(s.c_str());
        a.push_back(nullptr);
        for (const auto& s : env) e.push_back(s.c_str());
        e.push_back(nullptr);
        return set(knit_config_set_process(get(), a.data(), e.data()));
    }
    Config& spin(Spin s) { return set(knit_config_set_spin(get(), static_cast<std::uint32_t>(s), 0)); }
    Config& spin_iterations(std::uint32_t n) { return set(knit_config_set_spin(get(), KNIT_SPIN_ITERATIONS, n)); }
    Config& ring_sizes(std::uint32_t request, std::uint32_t response) {
        return set(knit_config_set_ring_sizes(get(), request, response));
    }
    Config& channels(std::uint32_t slots, std::uint32_t ring_size) {
        return set(knit_config_set_channels(get(), slots, ring_size));
    }
    Config& inflight(std::uint32_t calls) { return set(knit_config_set_inflight(get(), calls)); }
    Config& max_message_len(std::uint64_t bytes) { return set(knit_config_set_max_message_len(get(), bytes)); }
    Config& default_deadline(std::chrono::nanoseconds d) {
        return set(knit_config_set_default_deadline(get(), timeout_ns(d)));
    }
    Config& restart(bool on) { return set(knit_config_set_restart(get(), on)); }
    Config& fail_when_full(bool on) {
        return set(knit_config_set_backpressure(get(), on ? KNIT_BACKPRESSURE_ERROR : KNIT_BACKPRESSURE_WAIT));
    }
    Config& start_timeout(std::chrono::nanoseconds d) { return set(knit_config_set_start_timeout(get(), detail::nanos(d))); }
    Config& shutdown_timeout(std::chrono::nanoseconds d) {
        return set(knit_config_set_shutdown_timeout(get(), detail::nanos(d)));
    }

    knit_config* get() const noexcept { return h_.get(); }

  private:
    Config& set(knit_status st) {
        detail::check(st);
        return *this;
    }
    detail::Handle<knit_config, knit_config_free> h_;
};

// --------------------------------------------------------------------------------- outcomes

// The outcome given to a completion callback; valid only during the callback.
struct Outcome {
    knit_status status;
    std::uint32_t content_type;
    Bytes bytes;                // the result (empty on failure)
    std::string_view message;   // the failure's message (empty on success)
    bool ok() const noexcept { return status == KNIT_OK; }
};

// An async call. Move-only; destroying it cancels the call if it is still running.
class Ticket {
  public:
    explicit Ticket(knit_ticket* t) noexcept : h_(t) {}

    // Whether the outcome is ready (wait() then returns at once).
    bool ready() const {
        bool done = false;
        detail::check(knit_ticket_poll(h_.get(), &done));
        return done;
    }
    // Waits for the outcome; throws the call's Error on failure. The outcome is given once.
    Response wait() { return try_wait(forever).value().value(); }
    // Waits at most `timeout`; std::nullopt when the call has not finished by then.
    std::optional<Result<Response>> try_wait(std::chrono::nanoseconds timeout) {
        knit_response* r = nullptr;
        knit_status st = knit_ticket_wait(h_.get(), timeout_ns(timeout), &r);
        if (st == KNIT_TIMED_OUT) return std::nullopt;
        if (st != KNIT_OK) return Result<Response>(detail::last_error(st));
        return Result<Response>(Response(r));
    }
    void cancel() { detail::check(knit_ticket_cancel(h_.get())); }
    // The channel the worker opens for this call (Request::open_channel); waits for it.
    Receiver channel() const {
        knit_receiver* rx = nullptr;
        detail::check(knit_ticket_channel(h_.get(), &rx));
        return Receiver(rx);
    }

    knit_ticket* get() const noexcept { return h_.get(); }

  private:
    detail::Handle<knit_ticket, knit_ticket_free> h_;
};

// Waits at most `timeout` until one of `tickets` is ready; its position, or std::nullopt.
inline std::optional<std::size_t> wait_any(const std::vector<Ticket*>& tickets, std::chrono::nanoseconds timeout = forever) {
    std::vector<const knit_ticket*> raw;
    for (const Ticket* t : tickets) raw.push_back(t->get());
    std::size_t index = 0;
    knit_status st = knit_wait_any(raw.data(), raw.size(), timeout_ns(timeout), &index);
    if (st == KNIT_TIMED_OUT) return std::nullopt;
    detail::check(st);
    return index;
}

namespace detail {
using CompletionFn = std::function<void(const Outcome&)>;

extern "C" inline void knit_hpp_completion_trampoline(void* ud, const knit_outcome* o) {
    std::unique_ptr<CompletionFn> f(static_cast<CompletionFn*>(ud));  // called exactly once
    try {
        (*f)(Outcome{o->status, o->content_type, Bytes(o->data, o->len), std::string_view(o->message)});
    } catch (...) {
        // Nowhere to report it: a callback's exception must not cross into C.
    }
}

extern "C" inline void knit_hpp_fill_trampoline(void* ud, std::uint8_t* buf, std::size_t len) {
    try {
        (*static_cast<std::function<void(MutableBytes)>*>(ud))(MutableBytes(buf, len));
    } catch (...) {
        // The request goes out with what was written; a fill function should not throw.
    }
}
}  // namespace detail

// ------------------------------------------------------------------------------------- pools

// Per-call options.
struct CallOptions {
    std::uint32_t content_type = KNIT_CONTENT_BYTES;
    // The call's deadline from now; zero uses the pool's default.
    std::chrono::nanoseconds deadline{0};
};

// A host with its workers. Move-only; destroying it shuts it down.
class Pool {
  public:
    explicit Pool(const Config& config) {
        knit_pool* p = nullptr;
        detail::check(knit_pool_start(config.get(), &p));
        h_ = decltype(h_)(p);
    }

    Response call(const std::string& function, Bytes payload, CallOptions o = {}) const {
        return try_call(function, payload, o).value();
    }
    Result<Response> try_call(const std::string& function, Bytes payload, CallOptions o = {}) const {
        knit_response* r = nullptr;
        knit_status st = knit_call(get(), function.c_str(), payload.data(), payload.size(), o.content_type,
                                   detail::nanos(o.deadline), &r);
        if (st != KNIT_OK) return detail::last_error(st);
        return Response(r);
    }
    // A request of `len` bytes written in place by `fill(MutableBytes)` (no copy).
    Response call_loan(const std::string& function, std::size_t len, std::uint32_t content_type,
                       std::function<void(MutableBytes)> fill) const {
        knit_response* r = nullptr;
        detail::check(knit_call_loan(get(), function.c_str(), len, content_type, detail::knit_hpp_fill_trampoline, &fill, &r));
        return Response(r);
    }
    Ticket call_async(const std::string& function, Bytes payload, CallOptions o = {}) const {
        knit_ticket* t = nullptr;
        detail::check(knit_call_async(get(), function.c_str(), payload.data(), payload.size(), o.content_type,
                                      detail::nanos(o.deadline), &t));
        return Ticket(t);
    }
    // Starts a call with a channel to the worker that runs it (Request::take_channel).
    std::pair<Ticket, Sender> call_with_channel(const std::string& function, Bytes payload, CallOptions o = {}) const {
        knit_ticket* t = nullptr;
        knit_sender* tx = nullptr;
        detail::check(knit_call_with_channel(get(), function.c_str(), payload.data(), payload.size(), o.content_type,
                                             detail::nanos(o.deadline), &t, &tx));
        return {Ticket(t), Sender(tx)};
    }
    // Calls `done(const Outcome&)` once with the outcome, on the pool's callback thread.
    template <class F>
    void call_then(const std::string& function, Bytes payload, F done, CallOptions o = {}) const {
        auto boxed = std::make_unique<detail::CompletionFn>(std::move(done));
        detail::check(knit_call_callback(get(), function.c_str(), payload.data(), payload.size(), o.content_type,
                                         detail::nanos(o.deadline), detail::knit_hpp_completion_trampoline, boxed.get()));
        boxed.release();  // the trampoline deletes it after the one call
    }

    void shutdown() const { detail::check(knit_pool_shutdown(get())); }

    knit_region_info info() const {
        knit_region_info i{};
        i.struct_size = sizeof i;
        detail::check(knit_pool_get_info(get(), &i));
        return i;
    }
    knit_worker_info worker(std::uint32_t index) const {
        knit_worker_info w{};
        w.struct_size = sizeof w;
        detail::check(knit_pool_get_worker(get(), index, &w));
        return w;
    }

    knit_pool* get() const noexcept { return h_.get(); }

  private:
    detail::Handle<knit_pool, knit_pool_free> h_;
};

// ----------------------------------------------------------------------------------- workers

// A worker process: attach to the region the host started it for and serve.
class Worker {
  public:
    // The worker a host started this process to be (KNIT_REGION / KNIT_SLOT or arguments).
    static Worker from_env() {
        knit_worker* w = nullptr;
        detail::check(knit_worker_from_env(&w));
        return Worker(w);
    }
    Worker(const std::string& region, std::uint32_t slot) {
        knit_worker* w = nullptr;
        detail::check(knit_worker_new(region.c_str(), slot, &w));
        h_ = decltype(h_)(w);
    }

    template <class F>
    Worker& handle(const std::string& name, F f) {
        return handle_with(knit_worker_handle, name, std::move(f));
    }
    template <class F>
    Worker& handle_streaming(const std::string& name, F f) {
        return handle_with(knit_worker_handle_streaming, name, std::move(f));
    }
    template <class F>
    Worker& handle_in_place(const std::string& name, F f) {
        return handle_with(knit_worker_handle_in_place, name, std::move(f));
    }
    Worker& handlers(const Handlers& h) {
        detail::check(knit_worker_add_handlers(h_.get(), h.get()));
        return *this;
    }
    // Serves until the host shuts the pool down; throws on any other end (PEER_DIED, ...).
    void run() { detail::check(knit_worker_run(h_.get())); }

  private:
    explicit Worker(knit_worker* w) noexcept : h_(w) {}
    template <class F>
    Worker& handle_with(knit_status (*c_add)(knit_worker*, const char*, knit_handler_fn, void*, knit_free_fn),
                        const std::string& name, F f) {
        knit_worker* w = h_.get();
        detail::register_handler(
            [w, c_add](const char* n, knit_handler_fn fn, void* ud, knit_free_fn fr) { return c_add(w, n, fn, ud, fr); },
            name, std::move(f));
        return *this;
    }
    detail::Handle<knit_worker, knit_worker_free> h_;
};

// ----------------------------------------------------------------------------------- regions

// A mapped region, for inspection.
class Region {
  public:
    static Region attach(const std::string& name, std::chrono::nanoseconds timeout = forever) {
        knit_region* r = nullptr;
        detail::check(knit_region_attach(name.c_str(), timeout_ns(timeout), &r));
        return Region(r);
    }
    knit_region_info info() const {
        knit_region_info i{};
        i.struct_size = sizeof i;
        detail::check(knit_region_get_info(h_.get(), &i));
        return i;
    }
    knit_participant_info participant(std::uint32_t index) const {
        knit_participant_info p{};
        p.struct_size = sizeof p;
        detail::check(knit_region_get_participant(h_.get(), index, &p));
        return p;
    }

  private:
    explicit Region(knit_region* r) noexcept : h_(r) {}
    detail::Handle<knit_region, knit_region_free> h_;
};

inline std::string version() { return knit_version_string(); }
inline std::size_t live_handles() noexcept { return knit_handle_count(); }

}  // namespace knit

#endif  // KNIT_HPP
