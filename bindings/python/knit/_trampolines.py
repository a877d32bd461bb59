"""The C callbacks the pool hands to libknit: completions of asyncio calls, readers of
borrowed results, and fill functions of loans. Each is one ctypes trampoline for every call,
reaching the call's state through an integer key (the callback's ``user_data``); nothing may
propagate from them into C.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import sys
from typing import Any

from . import payload
from ._buffer import Exported
from ._lib import BORROW_FN, COMPLETION_FN, FILL_FN
from ._status import OK, error

keys = itertools.count(1)
"""The source of every key of the tables below."""

# --- asyncio completions: one trampoline for every pool, keyed by an integer user_data ------

pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}


def _settle(
    fut: asyncio.Future[Any], status: int, content_type: int, data: bytes, message: str
) -> None:
    if fut.done():
        return  # cancelled by the awaiting task meanwhile
    if status != OK:
        fut.set_exception(error(status, message))
        return
    try:
        value = payload.decode(data, content_type)
    except Exception as e:  # a result its content type does not describe, nesting too deep, ...
        fut.set_exception(e)
        return
    fut.set_result(value)


def _complete(user_data: int | None, outcome: Any) -> None:
    # Runs on the pool's callback thread: copy the outcome, hand it to the loop, return.
    try:
        entry = pending.pop(user_data or 0, None)
        if entry is None:
            return
        loop, fut = entry
        o = outcome.contents
        data = ctypes.string_at(o.data, o.len) if o.status == OK and o.len else b""
        message = o.message.decode("utf-8", "replace") if o.message else ""
        loop.call_soon_threadsafe(_settle, fut, o.status, o.content_type, data, message)
    except BaseException:
        pass  # a closed loop; nothing may propagate into C


COMPLETE = COMPLETION_FN(_complete)


# --- borrowed results: the reader sees the response ring in place --------------------------

readers: dict[int, list[Any]] = {}


def _borrow(user_data: int | None, data: int | None, length: int) -> None:
    slot = readers.get(user_data or 0)
    if slot is None:
        return
    reader = slot[0]
    memory = (ctypes.c_ubyte * length).from_address(data or 0) if length and data else None
    view = memoryview(memory).cast("B").toreadonly() if memory is not None else memoryview(b"")
    try:
        slot[1] = reader(view)
    except BaseException as e:  # re-raised by call_borrowed, on the caller's side
        slot[2] = e
    finally:
        try:
            view.release()
        except BufferError:
            slot[3] = True  # an export of the view itself is still held
        del view
        # Any view left of the ring memory (a slice, a numpy array made from it) still holds
        # the ctypes array that describes it: 2 references are this frame's and the call's.
        if memory is not None and sys.getrefcount(memory) > 2:
            slot[3] = True


BORROW = BORROW_FN(_borrow)


# --- loans: a typed array written straight into the request ring ----------------------------

fills: dict[int, payload.Outgoing] = {}


def _fill(user_data: int | None, buffer: int | None, length: int) -> None:
    out = fills.get(user_data or 0)
    if out is None or not buffer:
        return
    try:
        ctypes.memmove(buffer, out.head, len(out.head))
        if out.nbytes:
            with Exported(out.data) as e:
                ctypes.memmove(
                    buffer + len(out.head), e.address, min(out.nbytes, length - len(out.head))
                )
    except BaseException:  # nothing may propagate into C: send zeros rather than stale bytes
        ctypes.memset(buffer, 0, length)


FILL = FILL_FN(_fill)
