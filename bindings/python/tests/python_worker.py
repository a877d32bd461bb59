"""A Knit worker process in Python for the tests: the functions every Knit test worker serves
(hello, echo, checksum, panic, exit, sleep_ms, sleep_until_cancelled, pid, progress), so the
Rust host example (knit-ffi/examples/rust_host.rs) can drive it, plus Python-specific ones."""

from __future__ import annotations

import os
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import word_checksum

import knit


def millis(data: bytes | None) -> int:
    if data is None or len(data) != 8:
        raise ValueError("want 8 bytes (u64 milliseconds)")
    return int(struct.unpack("<Q", data)[0])


@knit.function
def hello(name: str) -> str:
    return f"Hello, {name}"


@knit.function(raw=True)
def echo(req: knit.Request) -> knit.Payload:
    # The request's own bytes and content type, whatever they are.
    return knit.Payload(bytes(req.payload), req.content_type)


@knit.function(raw=True)
def checksum(req: knit.Request) -> bytes:
    return struct.pack("<Q", word_checksum(req.payload))


@knit.function
def pid() -> bytes:
    return struct.pack("<I", os.getpid())


@knit.function
def panic() -> None:
    raise RuntimeError("worker process panicked on purpose")


@knit.function(name="exit")
def exit_() -> None:
    os._exit(7)


@knit.function
def sleep_ms(data: bytes) -> None:
    time.sleep(millis(data) / 1000)


@knit.function
def sleep_until_cancelled(data: bytes) -> bytes:
    for _ in range(millis(data)):
        if knit.cancelled():
            raise knit.Cancelled("saw the cancel entry")
        time.sleep(0.001)
    return b"not cancelled"


@knit.function
def progress(data: bytes):  # type: ignore[no-untyped-def]
    n = struct.unpack("<I", data)[0]
    for i in range(n):
        yield f"step {i} of {n}".encode()
    return b""


# --- Python-specific ---------------------------------------------------------------------


@knit.function
def describe(value: object) -> dict[str, object]:
    """What the handler received: its Python type, and for arrays dtype and shape."""
    out: dict[str, object] = {"type": type(value).__name__}
    if hasattr(value, "dtype"):
        out["dtype"] = str(value.dtype)
        out["shape"] = list(value.shape)
    return out


@knit.function
def roundtrip(value: object) -> object:
    """Returns the decoded value, re-encoded by the worker."""
    return value


@knit.function
def double(array):  # type: ignore[no-untyped-def]
    return array * 2


@knit.function
def fail_with(code: int) -> None:
    if code >= 1000:
        raise knit.ApplicationError(f"application failure {code}", code)
    raise knit.errors.error_for(code, f"failure {code}")


@knit.function
def wait_deadline() -> float | None:
    """Seconds left until the call's deadline, as the handler sees it."""
    return knit.current().time_left()


@knit.function
def count_to(n: int):  # type: ignore[no-untyped-def]
    """Streams n JSON numbers, then returns their sum."""
    total = 0
    for i in range(n):
        total += i
        yield i
    return total


@knit.function(raw=True, streaming=True)
def sends_until_refused(req: knit.Request) -> str:
    ch = req.open_channel()
    for i in range(1_000_000):
        try:
            ch.send(i.to_bytes(8, "little"))
        except knit.ChannelAborted as e:
            return f"aborted after {i}: {e.name}"
    return "never aborted"


@knit.function
def started_then_sleep(ms: int):  # type: ignore[no-untyped-def]
    """Tells the caller it runs (a message on its channel), then sleeps: a call that is
    certainly inside its handler."""
    yield "started"
    time.sleep(ms / 1000)
    return "slept"


@knit.function
def fail_midstream(n: int):  # type: ignore[no-untyped-def]
    yield from range(n)
    raise ValueError("stream broke")


@knit.function(raw=True, streaming=True)
def try_send_until_full(req: knit.Request) -> int:
    """try_send 4 KiB messages until the channel is full; returns how many went out."""
    ch = req.open_channel()
    sent = 0
    while True:
        try:
            ch.try_send(bytes(4096))
        except knit.WouldBlock:
            break
        sent += 1
    ch.close()
    return sent


@knit.function
def total(_: object = None) -> object:
    """Sums the JSON numbers the host streams on its channel."""
    return sum(knit.current().take_channel())


@knit.function
def first_two(_: object = None) -> list[int]:
    """Reads two messages of the host's channel and returns their sizes (the rest of the
    stream is aborted when the handler returns)."""
    rx = knit.current().take_channel()
    return [len(rx.recv()), len(rx.recv())]


@knit.function
def read_until_aborted(_: object = None) -> str:
    count = 0
    try:
        for _message in knit.current().take_channel():
            count += 1
    except knit.ChannelAborted as e:
        return f"aborted after {count}: {e.message}"
    return f"closed after {count}"


@knit.function
def take_missing_channel(_: object = None) -> str:
    try:
        knit.current().take_channel()
    except knit.ChannelClosed:
        return "no channel"
    return "a channel"


@knit.function
def array_shapes(_: object = None) -> list[list[int]]:
    """The shapes of the typed arrays the host streams."""
    return [list(a.shape) for a in knit.current().take_channel()]


_kept: list[object] = []


@knit.function(raw=True)
def keep_a_slice(req: knit.Request) -> str:
    """Breaks the lifetime rule of Request.payload: keeps a slice of it."""
    _kept.append(req.payload[:4])
    return "kept"


@knit.function(raw=True)
def keep_the_view(req: knit.Request) -> str:
    """Keeps the payload view itself: it is released when the handler returns."""
    _kept.append(req.payload)
    return "kept"


@knit.function
def kept_view_is_released() -> str:
    try:
        bytes(_kept[-1])  # type: ignore[call-overload]
    except ValueError as e:
        return f"released: {e}"
    return "still readable"


if __name__ == "__main__":
    knit.serve()
