"""Channels from the host to the worker of a call (Pool.submit_with_channel,
Pool.call_with_stream; Request.take_channel in the handler), with Rust and Python workers."""

from __future__ import annotations

import struct

import pytest
from checks import fnv1a, pattern

import knit


def test_a_rust_handler_digests_the_host_s_stream(rust_pool: knit.Pool) -> None:
    messages = [pattern(n, n) for n in (0, 1, 100, 5000, 70_000, 300)]
    result = rust_pool.call_with_stream("digest", messages)
    count, size, digest = struct.unpack("<3Q", result)
    assert (count, size) == (len(messages), sum(map(len, messages)))
    assert digest == fnv1a(b"".join(messages))


def test_sender_by_hand(rust_pool: knit.Pool) -> None:
    call, tx = rust_pool.submit_with_channel("digest")
    with call:
        for i in range(50):
            tx.send(i.to_bytes(4, "little"))
        tx.close()
        count, size, _ = struct.unpack("<3Q", call.result(timeout=30))
    assert (count, size) == (50, 200)


def test_a_worker_dying_mid_stream_is_peer_death(rust_worker: str) -> None:
    with knit.Pool([rust_worker]) as pool, pytest.raises(knit.PeerDied):
        # The handler reads 3 messages and exits; 1 MiB cannot fit the 64 KiB channel.
        pool.call_with_stream("digest_then_exit", [bytes(4096)] * 256, struct.pack("<I", 3))


def test_python_handler_reads_json_messages(py_pool: knit.Pool) -> None:
    assert py_pool.call_with_stream("total", range(1000)) == sum(range(1000))


def test_typed_arrays_on_a_channel(py_pool: knit.Pool) -> None:
    np = pytest.importorskip("numpy")
    arrays = [np.zeros((2, 3)), np.arange(10, dtype=np.int16), np.ones((4, 4, 4), dtype="f4")]
    assert py_pool.call_with_stream("array_shapes", arrays) == [[2, 3], [10], [4, 4, 4]]


def test_a_handler_that_stops_reading_aborts_the_stream(py_pool: knit.Pool) -> None:
    # 256 KiB cannot all fit the 64 KiB channel: the host is still sending when the handler
    # returns after two messages, and its next send fails.
    with pytest.raises(knit.ChannelAborted):
        py_pool.call_with_stream("first_two", [bytes(4096)] * 64)


def test_the_host_aborts_its_stream(py_pool: knit.Pool) -> None:
    call, tx = py_pool.submit_with_channel("read_until_aborted")
    with call:
        tx.send(b"one")
        tx.send(b"two")
        tx.abort(4242)
        assert call.result(timeout=30).startswith("aborted after")


def test_an_iterable_that_raises_aborts_the_stream(py_pool: knit.Pool) -> None:
    def broken():  # type: ignore[no-untyped-def]
        yield b"fine"
        raise RuntimeError("producer broke")

    with pytest.raises(RuntimeError, match="producer broke"):
        py_pool.call_with_stream("read_until_aborted", broken())
    assert py_pool.call.hello("still") == "Hello, still"


def test_take_channel_without_one(py_pool: knit.Pool) -> None:
    assert py_pool.call.take_missing_channel() == "no channel"


def test_a_dropped_sender_aborts_rather_than_ends_the_stream(py_pool: knit.Pool) -> None:
    call, tx = py_pool.submit_with_channel("read_until_aborted")
    with call:
        tx.send(b"partial")
        del tx  # never closed: the handler must not take a cut stream for a whole one
        assert call.result(timeout=30).startswith("aborted after")
