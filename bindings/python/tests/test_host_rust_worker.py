"""A Python host calling the Rust test worker (knit/src/bin/knit-test-worker.rs)."""

from __future__ import annotations

import struct

import pytest
from checks import pattern, word_checksum

import knit


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def test_hello_both_call_forms(rust_pool: knit.Pool) -> None:
    assert rust_pool.call("hello", "World!") == "Hello, World!"
    assert rust_pool.call.hello("World!") == "Hello, World!"


@pytest.mark.parametrize("length", [0, 1, 4095, 4096, 131_073, 1 << 20])
def test_echo_and_checksum_of_every_size(rust_pool: knit.Pool, length: int) -> None:
    data = pattern(length, length + 1)
    echoed = rust_pool.call.echo(data)
    assert (echoed or b"") == data
    assert rust_pool.call.checksum(data) == u64(word_checksum(data))


def test_buffer_objects_are_sent_as_bytes(rust_pool: knit.Pool) -> None:
    data = bytearray(pattern(10_000, 3))
    assert rust_pool.call.checksum(memoryview(data)) == u64(word_checksum(data))
    assert rust_pool.call.checksum(data) == u64(word_checksum(data))


def test_unknown_function(rust_pool: knit.Pool) -> None:
    with pytest.raises(knit.UnknownFunction) as e:
        rust_pool.call("no_such_function", b"")
    assert "no_such_function" in e.value.message


def test_a_panic_crosses_with_its_message(rust_pool: knit.Pool) -> None:
    with pytest.raises(knit.HandlerFailed) as e:
        rust_pool.call.panic()
    assert "on purpose" in e.value.message
    assert rust_pool.call.hello("again") == "Hello, again"  # the worker keeps serving


def test_deadline(rust_pool: knit.Pool) -> None:
    with pytest.raises(knit.DeadlineExceeded):
        rust_pool.call.sleep_ms(u64(2000), deadline=0.02)


def test_cancellation_reaches_the_worker(rust_pool: knit.Pool) -> None:
    with rust_pool.submit("sleep_until_cancelled", u64(20_000)) as call:
        assert not call.done()
        call.cancel()
        with pytest.raises(knit.Cancelled):
            call.result()
        with pytest.raises(knit.Cancelled):
            call.result()  # the outcome is kept
    assert rust_pool.call("echo", b"x", deadline=5) == b"x"


def test_result_with_a_timeout_leaves_the_call_running(rust_pool: knit.Pool) -> None:
    with rust_pool.submit("sleep_ms", u64(200)) as call:
        with pytest.raises(knit.TimedOut):
            call.result(timeout=0)
        assert call.result(timeout=10) is None


def test_wait_any_names_the_finished_call(rust_pool: knit.Pool) -> None:
    slow = rust_pool.submit("sleep_until_cancelled", u64(20_000))
    fast = rust_pool.submit("hello", "fast")
    try:
        assert knit.wait_any([slow, fast], timeout=10) == 1
        assert fast.result() == "Hello, fast"
    finally:
        slow.close()
        fast.close()


def test_a_stream_from_a_rust_handler(rust_pool: knit.Pool) -> None:
    with rust_pool.stream("progress", struct.pack("<I", 5)) as s:
        assert list(s) == [f"step {i} of 5".encode() for i in range(5)]
        assert s.result() is None


def test_response_memory_outlives_the_response_object(rust_pool: knit.Pool) -> None:
    data = pattern(300_000, 9)
    before = knit.handle_count()
    r = rust_pool.call_response("echo", data)
    view = r.data[100:200]
    r.close()
    del r
    assert bytes(view) == data[100:200]  # the view keeps the bytes alive
    assert knit.handle_count() == before + 1
    del view
    assert knit.handle_count() == before  # the last view freed the response


def test_borrowed_result_is_read_in_place(rust_pool: knit.Pool) -> None:
    got = rust_pool.call_borrowed("pattern_in_place", struct.pack("<I", 1000), bytes)
    assert got == bytes(i % 251 for i in range(1000))


def test_a_borrowed_view_cannot_escape_its_reader(rust_pool: knit.Pool) -> None:
    kept: list[memoryview] = []

    def keep(view: memoryview) -> None:
        kept.append(view)

    rust_pool.call_borrowed("pattern_in_place", struct.pack("<I", 64), keep)
    with pytest.raises(ValueError):
        bytes(kept[0])  # released when the reader returned


def test_a_slice_escaping_the_reader_is_reported(rust_pool: knit.Pool) -> None:
    kept: list[memoryview] = []
    with pytest.raises(BufferError):
        rust_pool.call_borrowed(
            "pattern_in_place", struct.pack("<I", 64), lambda v: kept.append(v[8:16])
        )


def test_numpy_array_view_escaping_the_reader_is_reported(rust_pool: knit.Pool) -> None:
    np = pytest.importorskip("numpy")
    kept = []
    with pytest.raises(BufferError):
        rust_pool.call_borrowed(
            "pattern_in_place", struct.pack("<I", 64), lambda v: kept.append(np.frombuffer(v, "u1"))
        )


def test_peer_death_and_restart(rust_worker: str) -> None:
    with knit.Pool([rust_worker], restart=True) as pool:
        first = pool.worker(1).pid
        with pytest.raises(knit.PeerDied):
            pool.call.exit()
        assert pool.call.hello("again") == "Hello, again"
        state = pool.worker(1)
        assert state.starts == 2 and state.pid != first


def test_a_pool_that_cannot_start_says_why() -> None:
    with pytest.raises(knit.KnitError) as e:
        knit.Pool(["/nonexistent/knit-worker"], start_timeout=2)
    assert "/nonexistent/knit-worker" in e.value.message


def test_closed_pools_refuse_calls(rust_worker: str) -> None:
    pool = knit.Pool([rust_worker])
    pool.close()
    with pytest.raises(knit.Shutdown):
        pool.call.hello("x")
    pool.close()  # idempotent


def test_inspection(rust_pool: knit.Pool) -> None:
    info = rust_pool.info()
    assert info.name.startswith("knit-") and len(info.name) == 37
    assert (info.major, info.worker_slots, info.poison_code) == (1, 2, 0)
    host = rust_pool.participant(0)
    assert (host.index, host.role, host.state) == (0, 1, 3)
    worker = rust_pool.participant(1)
    assert worker.role == 2 and worker.pid == rust_pool.worker(1).pid


def test_no_handle_leaks(rust_worker: str) -> None:
    before = knit.handle_count()
    with knit.Pool([rust_worker]) as pool:
        pool.call.hello("x")
        with pool.submit("hello", "y") as c:
            c.result()
        with pool.stream("progress", struct.pack("<I", 2)) as s:
            list(s)
        pool.call_response("echo", b"abc").close()
    assert knit.handle_count() == before
