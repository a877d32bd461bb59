"""The C callbacks the pool hands to libknit: readiness of asyncio calls' tickets, readers of
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
from ._lib import BORROW_FN, FILL_FN, READY_FN

keys = itertools.count(1)
"""The source of every key of the tables below."""

# --- asyncio calls on tickets: "the ticket is ready" wakes the awaiting task ----------------

ready: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _ready(user_data: int | None) -> None:
    # Runs on libknit's ticket thread: hand the event to the loop and return at once.
    try:
        entry = ready.pop(user_data or 0, None)
        if entry is not None:
            loop, fut = entry
            loop.call_soon_threadsafe(_wake, fut)
    except BaseException:
        pass  # a closed loop; nothing may propagate into C


READY = READY_FN(_ready)


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
