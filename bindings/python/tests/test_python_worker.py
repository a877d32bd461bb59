"""A Python host calling a Python worker process (tests/python_worker.py): payload kinds,
errors crossing, deadlines and cancellation seen by handlers, kill -9 mid-call."""

from __future__ import annotations

import array
import os
import signal
import struct

import pytest
from checks import pattern
from conftest import PYTHON_WORKER

import knit


@pytest.mark.parametrize(
    "value",
    ["text é", b"\x00bytes\xff", {"k": [1, 2.5, None, True]}, [1, "two"], 42, 2.5, None],
)
def test_values_round_trip(py_pool: knit.Pool, value: object) -> None:
    assert py_pool.call.roundtrip(value) == value


def test_the_handler_sees_python_types(py_pool: knit.Pool) -> None:
    assert py_pool.call.describe("s") == {"type": "str"}
    assert py_pool.call.describe(b"b") == {"type": "bytes"}
    assert py_pool.call.describe({"a": 1}) == {"type": "dict"}


def test_application_content_types_pass_untouched(py_pool: knit.Pool) -> None:
    sent = knit.Payload(b"\xa1\x61\x61\x01", knit.CBOR)
    assert py_pool.call.echo(sent) == sent
    app = knit.Payload(b"opaque", 0x8000_0042)
    assert py_pool.call.echo(app) == app


def test_array_array_is_a_typed_array(py_pool: knit.Pool) -> None:
    result = py_pool.call.roundtrip(array.array("h", [1, -2, 3]))
    np = knit.payload.numpy()
    if np is None:
        assert isinstance(result, knit.TypedArray)
        assert (result.dtype, result.shape, result.tolist()) == ("int16", (3,), [1, -2, 3])
    else:
        assert result.dtype == np.int16 and result.tolist() == [1, -2, 3]


@pytest.mark.parametrize("dtype", ["u1", "i2", "u4", "i8", "f2", "f4", "f8", "?"])
def test_numpy_typed_arrays_keep_dtype_and_shape(py_pool: knit.Pool, dtype: str) -> None:
    np = pytest.importorskip("numpy")
    a = (np.arange(24) % 3 == 0) if dtype == "?" else np.arange(24, dtype=dtype)
    a = a.reshape(2, 3, 4)
    assert py_pool.call.describe(a) == {
        "type": "ndarray",
        "dtype": str(a.dtype),
        "shape": [2, 3, 4],
    }
    back = py_pool.call.roundtrip(a)
    assert back.dtype == a.dtype and back.shape == a.shape and (back == a).all()


def test_large_numpy_arrays_in_fragments(py_pool: knit.Pool) -> None:
    np = pytest.importorskip("numpy")
    a = np.arange(1 << 19, dtype=np.float64).reshape(512, 1024)  # 4 MiB: many fragments
    doubled = py_pool.call.double(a)
    assert doubled.shape == a.shape and (doubled == a * 2).all()
    mid = np.arange(4096, dtype=np.int32)  # 16 KiB: written in place (loan)
    assert (py_pool.call.double(mid) == mid * 2).all()


@pytest.mark.parametrize("size", [16_383, 16_384, 100_000, 200_000, 3 << 20])
def test_large_results_written_in_place(py_pool: knit.Pool, size: int) -> None:
    # From 16 KiB results go straight into the response ring (one record up to half of it,
    # else a private buffer sent in fragments).
    data = pattern(size, size)
    assert py_pool.call.roundtrip(data) == data


def test_an_exception_crosses_and_the_worker_keeps_serving(py_pool: knit.Pool) -> None:
    with pytest.raises(knit.HandlerFailed) as e:
        py_pool.call.panic()
    assert e.value.message == "RuntimeError: worker process panicked on purpose"
    assert py_pool.call.hello("still here") == "Hello, still here"


def test_knit_errors_raised_by_handlers_keep_their_code(py_pool: knit.Pool) -> None:
    with pytest.raises(knit.ApplicationError) as app:
        py_pool.call.fail_with(4242)
    assert app.value.code == 4242 and app.value.message == "application failure 4242"
    with pytest.raises(knit.PayloadTooLarge):
        py_pool.call.fail_with(3)


def test_a_handler_taking_no_argument_refuses_one(py_pool: knit.Pool) -> None:
    with pytest.raises(knit.HandlerFailed) as e:
        py_pool.call.pid(b"unexpected")
    assert "takes no argument" in e.value.message


def test_the_handler_sees_the_deadline(py_pool: knit.Pool) -> None:
    left = py_pool.call.wait_deadline(deadline=30)
    assert 0 < left <= 30
    assert py_pool.call.wait_deadline() is None


def test_cancellation_is_visible_to_the_handler(py_pool: knit.Pool) -> None:
    with py_pool.submit("sleep_until_cancelled", struct.pack("<Q", 20_000)) as call:
        call.cancel()
        with pytest.raises(knit.Cancelled):
            call.result()
    # The handler saw the cancel entry and returned; both workers answer again.
    for _ in range(4):
        assert py_pool.call.hello("x", deadline=10) == "Hello, x"


def test_generator_handlers_stream(py_pool: knit.Pool) -> None:
    with py_pool.stream("count_to", 5) as s:
        assert list(s) == [0, 1, 2, 3, 4]
        assert s.result() == 10


def test_a_stream_that_breaks_aborts_its_channel(py_pool: knit.Pool) -> None:
    with py_pool.stream("fail_midstream", 3) as s:
        got = []
        with pytest.raises(knit.ChannelAborted):
            for item in s:
                got.append(item)
        assert got == [0, 1, 2][: len(got)]  # in order; undelivered ones may be discarded
        with pytest.raises(knit.HandlerFailed) as e:
            s.result()
        assert "stream broke" in e.value.message


def test_host_abort_stops_the_sender(py_pool: knit.Pool) -> None:
    with py_pool.submit("sends_until_refused", None) as call:
        rx = call.channel()
        assert rx.recv() == (0).to_bytes(8, "little")
        rx.abort(4)
        assert call.result(timeout=30).startswith("aborted after")
        rx.close()


def test_try_send_reports_a_full_channel(py_pool: knit.Pool) -> None:
    with py_pool.submit("try_send_until_full", None) as call:
        # The host reads nothing until the call is over: the handler's try_send fills the
        # 64 KiB channel, meets WouldBlock, and closes (END still fits), so the call ends.
        sent = call.result(timeout=30)
        assert 0 < sent < 64 * 1024 // 4096
        with call.channel() as rx:
            messages = list(rx)
        assert len(messages) == sent and all(m == bytes(4096) for m in messages)


def test_a_payload_view_escaping_the_handler_fails_the_call(py_pool: knit.Pool) -> None:
    with pytest.raises(knit.HandlerFailed) as e:
        py_pool.call.keep_a_slice(b"0123456789")
    assert "outlived the handler" in e.value.message


def test_a_kept_payload_view_is_released() -> None:
    with knit.Pool(PYTHON_WORKER) as pool:  # one worker: both calls reach the same process
        assert pool.call.keep_the_view(b"abc") == "kept"
        assert pool.call.kept_view_is_released().startswith("released")


def test_kill_9_of_a_python_worker_mid_call() -> None:
    with knit.Pool(PYTHON_WORKER) as pool:
        pid = pool.worker(1).pid
        assert pool.call.pid() == struct.pack("<I", pid)
        call = pool.submit("started_then_sleep", 60_000)
        rx = call.channel()
        assert rx.recv() == "started"  # the handler is running
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(knit.PeerDied):
            rx.recv()
        rx.close()
        with pytest.raises(knit.PeerDied):
            call.result()
        call.close()
        with pytest.raises(knit.PeerDied):
            pool.call.hello("nobody")


def test_a_worker_killed_mid_call_is_restarted() -> None:
    with knit.Pool(PYTHON_WORKER, restart=True) as pool:
        pid = pool.worker(1).pid
        call = pool.submit("sleep_ms", struct.pack("<Q", 60_000))
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(knit.PeerDied):
            call.result()
        call.close()
        assert pool.call.hello("back") == "Hello, back"
        assert pool.worker(1).pid != pid
