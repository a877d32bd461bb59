"""Workers: Python functions served to a Knit host.

``knit.serve({"hello": fn})`` (or functions registered with ``@knit.function``) makes this
process the worker a host started (MAP-5: ``KNIT_REGION`` / ``KNIT_SLOT`` or
``--knit-region`` / ``--knit-slot``) and serves until the host shuts the pool down.

A handler gets the request payload decoded by its content type (:mod:`knit.payload`) and
returns the result, encoded the same way. An exception in a handler goes back to the caller
as an error with its message, and the worker keeps serving (CALL-6): a :class:`knit.KnitError`
keeps its code (an :class:`knit.ApplicationError` its application code), anything else is
``HANDLER_FAILED`` with ``"<ExceptionType>: <message>"``. A generator handler streams: each
value it yields is a message on a channel to the caller (waiting while the channel is full),
and its ``return`` value is the call's result.
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import itertools
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from . import payload
from ._buffer import Exported
from ._lib import (
    FREE_FN,
    HANDLER_FN,
    SPIN_BALANCED,
    SPIN_ITERATIONS,
    SPIN_LOWEST_LATENCY,
    SPIN_NONE,
    WRITE_FN,
    lib,
    monotonic_ns,
)
from ._status import HANDLER_FAILED, OK, check
from .channel import Receiver, Sender
from .errors import InvalidArgument, KnitError

F = TypeVar("F", bound=Callable[..., Any])

SPIN_POLICIES = {
    "balanced": SPIN_BALANCED,
    "lowest-latency": SPIN_LOWEST_LATENCY,
    "none": SPIN_NONE,
}


def spin_policy(spin: str | int | None) -> tuple[int, int]:
    """A spin setting as (policy, iterations): a name of :data:`SPIN_POLICIES`, or a number
    of re-checks before parking."""
    if spin is None:
        return SPIN_BALANCED, 0
    if isinstance(spin, int):
        if not 0 <= spin <= 0xFFFF_FFFF:
            raise ValueError(f"spin iterations are a u32, not {spin}")
        return SPIN_ITERATIONS, spin
    try:
        return SPIN_POLICIES[spin], 0
    except KeyError:
        raise ValueError(
            f"spin is one of {sorted(SPIN_POLICIES)} or a number, not {spin!r}"
        ) from None


class Request:
    """The call a handler is running (``knit.current()``, or the argument of a ``raw``
    handler). Valid only until the handler returns.

    ``payload`` is a read-only memoryview of the request bytes, which may be the shared ring
    itself (zero copy): treat them as untrusted input and copy what you keep; the view is
    released when the handler returns.
    """

    __slots__ = (
        "_c",
        "_memory",
        "_receivers",
        "_senders",
        "_streaming",
        "content_type",
        "deadline_ns",
        "payload",
        "request_id",
        "worker_slot",
    )

    def __init__(self, c_request: Any, streaming: bool) -> None:
        r = c_request.contents
        self._c = c_request
        self.content_type: int = r.content_type
        self.request_id: int = r.request_id
        self.worker_slot: int = r.worker_slot
        self.deadline_ns: int = r.deadline_ns
        self._memory = (
            (ctypes.c_ubyte * r.payload_len).from_address(r.payload)
            if r.payload_len and r.payload
            else None
        )
        self.payload: memoryview = (
            memoryview(self._memory).cast("B").toreadonly()
            if self._memory is not None
            else memoryview(b"")
        )
        self._senders: list[Sender] = []
        self._receivers: list[Receiver] = []
        self._streaming = streaming

    def value(self) -> Any:
        """The payload decoded by its content type, in private memory."""
        return payload.decode(bytes(self.payload), self.content_type)

    def cancelled(self) -> bool:
        """Whether the host cancelled this call (CANCEL-2); a long handler polls it and gives
        up by raising :class:`knit.Cancelled`."""
        flag = ctypes.c_bool(False)
        check(lib.knit_request_is_cancelled(self._c, ctypes.byref(flag)))
        return bool(flag.value)

    def time_left(self) -> float | None:
        """Seconds until the call's deadline (negative once passed), None without one."""
        if not self.deadline_ns:
            return None
        return (self.deadline_ns - monotonic_ns()) / 1e9

    def open_channel(self) -> Sender:
        """Opens a channel to the caller (only in a handler registered as streaming)."""
        if not self._streaming:
            raise InvalidArgument("open_channel needs a handler registered with streaming=True")
        sender = ctypes.c_void_p()
        check(lib.knit_request_open_channel(self._c, ctypes.byref(sender)))
        s = Sender(sender.value or 0)
        self._senders.append(s)
        return s

    def take_channel(self) -> Receiver:
        """The reading end of the channel the host opened for this call
        (``Pool.submit_with_channel``); raises :class:`knit.ChannelClosed` when it opened
        none (or it was taken already)."""
        receiver = ctypes.c_void_p()
        check(lib.knit_request_take_channel(self._c, ctypes.byref(receiver)))
        r = Receiver(receiver.value or 0)
        self._receivers.append(r)
        return r

    def _end(self) -> bool:
        """Ends the request's life; False when a view of its payload outlived the handler
        (a slice, a numpy array made from it): that memory may be the ring, reused at once."""
        for s in self._senders:
            s._forget()
        for r in self._receivers:
            r.close()  # still inside the handler: a channel not read to its end is aborted
        escaped = False
        try:
            self.payload.release()
        except BufferError:
            escaped = True
        self.payload = memoryview(b"")
        # Every view of the payload holds the ctypes array describing it: only this object's
        # reference and getrefcount's own may remain.
        if self._memory is not None and sys.getrefcount(self._memory) > 2:
            escaped = True
        self._memory = None
        return not escaped


_local = threading.local()


def current() -> Request:
    """The request of the handler running on this thread."""
    r = getattr(_local, "request", None)
    if not isinstance(r, Request):
        raise InvalidArgument("no Knit handler is running on this thread")
    return r


def cancelled() -> bool:
    """Whether the call of the handler running on this thread was cancelled."""
    return current().cancelled()


class _Handler:
    """One registered function and how to call it."""

    __slots__ = ("fn", "generator", "name", "raw", "streaming", "takes_arg")

    def __init__(
        self, name: str, fn: Callable[..., Any], raw: bool, streaming: bool | None
    ) -> None:
        self.name = name
        self.fn = fn
        self.raw = raw
        self.generator = inspect.isgeneratorfunction(fn)
        self.streaming = self.generator if streaming is None else streaming
        if self.generator and not self.streaming:
            raise ValueError(f"{name}: a generator handler streams; it cannot be streaming=False")
        self.takes_arg = _takes_argument(fn)

    def run(self, c_request: Any, reply: int) -> int:
        request = Request(c_request, self.streaming)
        previous = getattr(_local, "request", None)
        _local.request = request
        try:
            if self.raw:
                result = self.fn(request)
            else:
                if self.takes_arg:
                    result = self.fn(_decoded(request))
                elif len(request.payload) == 0:
                    result = self.fn()  # an empty payload, of any content type, is no argument
                else:
                    raise TypeError(f"{self.name}() takes no argument but the call sent one")
            if self.generator or inspect.isgenerator(result):
                result = _stream(request, result)
            status = _reply(reply, result, not self.streaming)
        finally:
            _local.request = previous
            intact = request._end()
        if not intact:
            raise BufferError(
                "a view of the request payload outlived the handler: copy what you keep"
            )
        return status


def _decoded(request: Request) -> Any:
    """The request's value; a typed array is copied out of the ring first (RING-15)."""
    if request.content_type == payload.TYPED_ARRAY:
        return payload.decode(bytes(request.payload), request.content_type)
    return payload.decode(request.payload, request.content_type)


def _takes_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params
    )


def _stream(request: Request, gen: Any) -> Any:
    """Sends every value ``gen`` yields on a new channel to the caller; gives its return."""
    sender = request.open_channel()
    try:
        while True:
            try:
                item = next(gen)
            except StopIteration as stop:
                sender.close()
                return stop.value
            sender.send(item)
    except BaseException as e:
        if not sender.closed:
            sender.abort(e.code if isinstance(e, KnitError) and e.code else HANDLER_FAILED)
        raise


# Results at least this large are written straight into the response ring (a loan when they
# fit one record), saving the copy into the reply's buffer; below it that copy costs less
# than the write callback.
IN_PLACE_THRESHOLD = 16 * 1024

# What each in-place write copies: the header, and the address and length of the exported
# elements (exported before the write starts, so that the write itself cannot fail).
_writes: dict[int, tuple[bytes, int, int]] = {}


def _write(user_data: int | None, buffer: int | None, capacity: int) -> int:
    """Writes the result registered under ``user_data`` into ``buffer``."""
    head, address, length = _writes.get(user_data or 0, (b"", 0, 0))
    total = len(head) + length
    if not buffer or capacity < total:
        return 0  # cannot happen: the capacity asked for is the total
    ctypes.memmove(buffer, head, len(head))
    if length:
        ctypes.memmove(buffer + len(head), address, length)
    return total


_WRITE = WRITE_FN(_write)


def _reply(reply: int, result: Any, in_place: bool) -> int:
    """Puts ``result`` in the reply: into the response ring itself when the handler was
    registered in place and the result is large, else through the reply's buffer."""
    out = payload.encode(result)
    if in_place and out.total >= IN_PLACE_THRESHOLD:
        key = next(_keys)
        with Exported(out.data) as e:
            _writes[key] = (out.head, e.address, e.nbytes)
            try:
                status = lib.knit_reply_write_in_place(
                    reply, out.total, out.content_type, _WRITE, key
                )
            finally:
                del _writes[key]
        check(status)
        return OK
    if out.head:
        buf = ctypes.c_void_p()
        check(lib.knit_reply_alloc(reply, out.total, out.content_type, ctypes.byref(buf)))
        address = buf.value or 0
        ctypes.memmove(address, out.head, len(out.head))
        if out.nbytes:
            with Exported(out.data) as e:
                ctypes.memmove(address + len(out.head), e.address, out.nbytes)
        return OK
    if isinstance(out.data, bytes):
        return int(lib.knit_reply_set(reply, out.data, out.nbytes, out.content_type))
    with Exported(out.data) as e:
        return int(lib.knit_reply_set(reply, e.address, e.nbytes, out.content_type))


def _fail(reply: int, exc: BaseException) -> int:
    """Answers the call with ``exc`` (CALL-6): its own code for a KnitError, else
    HANDLER_FAILED, with its message."""
    if isinstance(exc, KnitError) and exc.code:
        code, message = exc.code, exc.message or exc.name
    else:
        code, message = HANDLER_FAILED, f"{type(exc).__name__}: {exc}"
    lib.knit_reply_error(reply, code, message.replace("\0", "\ufffd").encode("utf-8", "replace"))
    return code


# Handlers are reached from C through one trampoline, by an integer key into this table (the
# `user_data`); the library calls the free function once no worker can call a handler any
# more, which drops its entry.
_HANDLERS: dict[int, _Handler] = {}
_keys = itertools.count(1)


def _run(user_data: int | None, c_request: Any, reply: int | None) -> int:
    try:
        handler = _HANDLERS.get(user_data or 0)
        if handler is None or not reply:
            raise RuntimeError("the handler is no longer registered")
        return handler.run(c_request, reply)
    except SystemExit as e:
        # The handler asked for the process to end: end it now, as a crash would (the host
        # sees PEER_DIED); returning into the worker loop cannot stop it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(e.code if isinstance(e.code, int) else 1)
    except BaseException as e:  # nothing may propagate into C: answer with the error
        return _fail(reply or 0, e) if reply else HANDLER_FAILED


def _free(user_data: int | None) -> None:
    # Called by the library from any thread, possibly late in interpreter shutdown.
    with contextlib.suppress(BaseException):
        _HANDLERS.pop(user_data or 0, None)


_RUN = HANDLER_FN(_run)
_FREE = FREE_FN(_free)


def _register(add: Callable[..., int], target: int, handler: _Handler) -> None:
    key = next(_keys)
    _HANDLERS[key] = handler
    status = add(target, handler.name.encode("utf-8"), _RUN, key, _FREE)
    if status != OK:
        _HANDLERS.pop(key, None)  # on failure nothing was taken
        check(status)


Functions = Mapping[str, Callable[..., Any]]


class HandlerSet:
    """A ``knit_handlers`` set built from Python functions (for thread workers)."""

    def __init__(self, functions: Functions) -> None:
        h = ctypes.c_void_p()
        check(lib.knit_handlers_new(ctypes.byref(h)))
        self.handle: int | None = h.value
        try:
            for name, fn in functions.items():
                handler = _as_handler(name, fn)
                add = (
                    lib.knit_handlers_add_streaming
                    if handler.streaming
                    else lib.knit_handlers_add_in_place
                )
                _register(add, self.handle or 0, handler)
        except BaseException:
            self.free()
            raise

    def free(self) -> None:
        """Frees the set (pools built from it keep their copy)."""
        h, self.handle = self.handle, None
        if h:
            lib.knit_handlers_free(h)


def _as_handler(name: str, fn: Any) -> _Handler:
    if isinstance(fn, _Registered):
        return _Handler(name, fn.fn, fn.raw, fn.streaming)
    if not callable(fn):
        raise TypeError(f"the handler of {name!r} is not callable")
    return _Handler(name, fn, False, None)


class _Registered:
    """A function with its registration options (``raw``, ``streaming``)."""

    __slots__ = ("fn", "raw", "streaming")

    def __init__(self, fn: Callable[..., Any], raw: bool, streaming: bool | None) -> None:
        self.fn, self.raw, self.streaming = fn, raw, streaming


def handler(fn: Callable[..., Any], *, raw: bool = False, streaming: bool | None = None) -> Any:
    """Wraps ``fn`` with registration options, for the mappings given to :func:`serve` or
    ``Pool(handlers=...)``: ``raw`` passes the :class:`Request` instead of the decoded value;
    ``streaming`` lets it open channels (implied for generator functions)."""
    return _Registered(fn, raw, streaming)


class Worker:
    """A worker process's functions and its serve loop.

    Without ``region``/``slot`` the worker is the one its host started (MAP-5: arguments
    ``--knit-region``/``--knit-slot``, else ``KNIT_REGION``/``KNIT_SLOT``).
    """

    def __init__(
        self,
        functions: Functions | None = None,
        *,
        region: str | None = None,
        slot: int | None = None,
        spin: str | int | None = None,
    ) -> None:
        self._functions: dict[str, _Handler] = {}
        self._region = region
        self._slot = slot
        self._spin = spin_policy(spin)
        for name, fn in (functions or {}).items():
            self._functions[name] = _as_handler(name, fn)

    def function(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        raw: bool = False,
        streaming: bool | None = None,
    ) -> Any:
        """Decorator registering ``fn`` under ``name`` (default: its ``__name__``)."""

        def register(f: F) -> F:
            key = name or f.__name__
            self._functions[key] = _Handler(key, f, raw, streaming)
            return f

        return register(fn) if fn is not None else register

    @property
    def names(self) -> list[str]:
        """The registered function names, in registration order (their HELLO ids)."""
        return list(self._functions)

    def run(self) -> None:
        """Attaches, says HELLO and serves on this thread until the host sends SHUTDOWN.
        Raises :class:`knit.PeerDied` when the host died, :class:`knit.Poisoned` when the
        region was poisoned, the attach errors when it could not start."""
        w = ctypes.c_void_p()
        if self._region is None and self._slot is None:
            check(lib.knit_worker_from_env(ctypes.byref(w)))
        else:
            if self._region is None or self._slot is None:
                raise ValueError("give both region and slot, or neither")
            check(lib.knit_worker_new(self._region.encode(), self._slot, ctypes.byref(w)))
        handle = w.value or 0
        try:
            for h in self._functions.values():
                add = (
                    lib.knit_worker_handle_streaming
                    if h.streaming
                    else lib.knit_worker_handle_in_place
                )
                _register(add, handle, h)
            check(lib.knit_worker_set_spin(handle, *self._spin))
            check(lib.knit_worker_run(handle))
        finally:
            lib.knit_worker_free(handle)


_default = Worker()


def function(
    fn: F | None = None,
    *,
    name: str | None = None,
    raw: bool = False,
    streaming: bool | None = None,
) -> Any:
    """Decorator registering ``fn`` for :func:`serve` called without a mapping."""
    return _default.function(fn, name=name, raw=raw, streaming=streaming)


def serve(functions: Functions | None = None, *, spin: str | int | None = None) -> None:
    """Serves ``functions`` (default: those registered with ``@knit.function``) as the worker
    its host started, until the host shuts the pool down."""
    if functions is None:
        worker = _default
        worker._spin = spin_policy(spin)
    else:
        worker = Worker(functions, spin=spin)
    worker.run()
