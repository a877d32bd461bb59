"""The host side: a pool of workers and the calls made to them.

::

    with knit.Pool(workers=4, command=["./worker"]) as pool:
        pool.call("hello", "World!")          # blocking
        pool.call.hello("World!")             # the same, attribute form
        await pool.acall.hello("World!")      # asyncio, never blocks the event loop
        c = pool.submit("slow", 10)           # a Call: cancel(), result(timeout), channel()
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from ctypes import byref, c_void_p
from types import TracebackType
from typing import Any, TypeVar

from . import _trampolines as tr
from . import payload
from ._buffer import Exported
from ._lib import (
    BACKPRESSURE_ERROR,
    BACKPRESSURE_WAIT,
    FOREVER,
    ParticipantInfo,
    RegionInfo,
    WorkerInfo,
    lib,
    seconds_to_ns,
)
from ._status import OK, check, fail
from .call import Call, Stream
from .channel import Sender
from .errors import KnitError, Shutdown
from .response import Response, take_bytes
from .states import (
    ParticipantState,
    RegionState,
    WorkerState,
    participant_state,
    region_state,
    worker_state,
)
from .worker import Functions, HandlerSet, spin_policy

T = TypeVar("T")

DEFAULT_CHANNELS = 8
DEFAULT_CHANNEL_RING = 64 * 1024
# Typed arrays at least this large are written straight into the request ring (loan) when
# they fit one record: below it, one extra copy costs less than the fill callback.
LOAN_THRESHOLD = 16 * 1024


def _deadline_ns(deadline: float | None) -> int:
    """A per-call deadline in seconds as the C argument: 0 is the pool's default."""
    if deadline is None:
        return 0
    if deadline == float("inf"):
        return FOREVER
    return seconds_to_ns(deadline)


def _pool_of(ref: weakref.ref[Pool]) -> Pool:
    pool = ref()
    if pool is None:
        raise Shutdown("the pool is gone")
    return pool


class _CallProxy:
    """``pool.call(name, value)`` and ``pool.call.name(value)``, or, over ``Pool._acall``,
    ``await pool.acall(name, value)`` and ``await pool.acall.name(value)``. It refers to its
    pool weakly (no reference cycle: a pool nobody holds is shut down at once)."""

    __slots__ = ("_bound", "_method", "_pool")

    def __init__(self, pool: Pool, method: str) -> None:
        self._pool = weakref.ref(pool)
        self._method = method  # "_call" or "_acall"
        self._bound: dict[str, Callable[..., Any]] = {}

    def __call__(
        self,
        function: str,
        value: Any = payload.NOTHING,
        *,
        deadline: float | None = None,
        content_type: int | None = None,
    ) -> Any:
        start = getattr(_pool_of(self._pool), self._method)
        return start(function, value, deadline, content_type)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)
        bound = self._bound.get(name)
        if bound is None:
            ref, method = self._pool, self._method

            def bound(
                value: Any = payload.NOTHING,
                *,
                deadline: float | None = None,
                content_type: int | None = None,
            ) -> Any:
                start = getattr(_pool_of(ref), method)
                return start(name, value, deadline, content_type)

            self._bound[name] = bound
        return bound


_live_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


@atexit.register
def _close_pools() -> None:
    # Shut pools down while the interpreter can still run the library's callbacks.
    for pool in list(_live_pools):
        pool.close()


class Pool:
    """A host and its workers: processes started from ``command`` (any language speaking
    Knit), threads of this process running Python ``handlers``, or (``external=True``)
    workers that someone else starts: the pool then only reserves their entries and adopts
    whoever attaches to the region (``info().name``) as worker 1 to ``workers``, for example
    a process given ``KNIT_REGION`` and ``KNIT_SLOT``; :meth:`wait_worker` waits for one,
    :meth:`call_on` and :meth:`submit_on` pin a call to one, :meth:`release_worker` lets one
    go and :meth:`reserve_worker` makes its entry ready for the next.

    Options (None keeps the library's default): ``workers`` (1 to 1024); ``deadline`` the
    default call deadline in seconds; ``restart`` a dead worker; ``spin`` ("balanced",
    "lowest-latency", "none" or a number of re-checks); ``ring_size`` of request and response
    rings (bytes, power of two; a pair for different sizes); ``channels`` slots (default 8, 0
    for none) of ``channel_ring`` bytes; ``inflight`` calls per worker; ``max_message_len``;
    ``backpressure`` "wait" or "error" (full ring: wait, or raise WouldBlock);
    ``start_timeout`` / ``shutdown_timeout`` in seconds; ``env`` added to the workers'
    environment.
    """

    def __init__(
        self,
        command: Sequence[str] | str | None = None,
        *,
        workers: int = 1,
        handlers: Functions | None = None,
        external: bool = False,
        env: Mapping[str, str] | None = None,
        deadline: float | None = None,
        restart: bool = False,
        spin: str | int | None = None,
        ring_size: int | tuple[int, int] | None = None,
        channels: int = DEFAULT_CHANNELS,
        channel_ring: int = DEFAULT_CHANNEL_RING,
        inflight: int | None = None,
        max_message_len: int | None = None,
        backpressure: str = "wait",
        start_timeout: float | None = None,
        shutdown_timeout: float | None = None,
    ) -> None:
        self._h: int | None = None
        if (command is not None) + (handlers is not None) + bool(external) != 1:
            raise ValueError(
                "give one of command (process workers), handlers (thread workers) "
                "or external=True (workers started by someone else)"
            )
        self._names: dict[str, bytes] = {}
        self.call = _CallProxy(self, "_call")
        """Blocking calls: ``pool.call(name, value)`` or ``pool.call.name(value)``."""
        self.acall = _CallProxy(self, "_acall")
        """Asyncio calls: ``await pool.acall(name, value)`` or ``pool.acall.name(value)``."""
        cfg = c_void_p()
        check(lib.knit_config_new(byref(cfg)))
        handler_set: HandlerSet | None = None
        try:
            c = cfg.value
            check(lib.knit_config_set_workers(c, workers))
            if command is not None:
                argv = [command] if isinstance(command, str) else list(command)
                if not argv:
                    raise ValueError("command is empty")
                c_argv = (ctypes.c_char_p * (len(argv) + 1))(*[a.encode() for a in argv], None)
                c_env = None
                if env:
                    pairs = [f"{k}={v}".encode() for k, v in env.items()]
                    c_env = (ctypes.c_char_p * (len(pairs) + 1))(*pairs, None)
                check(lib.knit_config_set_process(c, c_argv, c_env))
            elif external:
                check(lib.knit_config_set_external(c, True))
            else:
                handler_set = HandlerSet(handlers or {})
                check(lib.knit_config_set_threads(c, handler_set.handle))
            check(lib.knit_config_set_spin(c, *spin_policy(spin)))
            if ring_size is not None:
                request, response = (
                    ring_size if isinstance(ring_size, tuple) else (ring_size, ring_size)
                )
                check(lib.knit_config_set_ring_sizes(c, request, response))
            if channels:
                check(lib.knit_config_set_channels(c, channels, channel_ring))
            if inflight is not None:
                check(lib.knit_config_set_inflight(c, inflight))
            if max_message_len is not None:
                check(lib.knit_config_set_max_message_len(c, max_message_len))
            if deadline is not None:
                check(lib.knit_config_set_default_deadline(c, seconds_to_ns(deadline)))
            check(lib.knit_config_set_restart(c, restart))
            policies = {"wait": BACKPRESSURE_WAIT, "error": BACKPRESSURE_ERROR}
            if backpressure not in policies:
                raise ValueError(f"backpressure is 'wait' or 'error', not {backpressure!r}")
            check(lib.knit_config_set_backpressure(c, policies[backpressure]))
            if start_timeout is not None:
                check(lib.knit_config_set_start_timeout(c, seconds_to_ns(start_timeout)))
            if shutdown_timeout is not None:
                check(lib.knit_config_set_shutdown_timeout(c, seconds_to_ns(shutdown_timeout)))
            pool = c_void_p()
            check(lib.knit_pool_start(c, byref(pool)))
            self._h = pool.value
        finally:
            lib.knit_config_free(cfg.value)
            if handler_set is not None:
                handler_set.free()
        info = self.info()
        self._loan_limit = info.request_ring_cap // 2 - 48  # RING-1 minus the request headers
        _live_pools.add(self)

    # -- lifecycle --------------------------------------------------------------------------

    def _handle(self) -> int:
        h = self._h
        if h is None:
            raise Shutdown("the pool is closed")
        return h

    def close(self) -> None:
        """Shuts the pool down (workers finish what they read and leave; calls still
        outstanding fail with SHUTDOWN) and frees it. Idempotent."""
        h, self._h = self._h, None
        if h is not None:
            lib.knit_pool_free(h)

    def shutdown(self) -> None:
        """Shuts the pool down but keeps the handle (later calls raise Shutdown)."""
        if self._h is not None:
            lib.knit_pool_shutdown(self._h)

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # -- calls ------------------------------------------------------------------------------

    def _name(self, function: str) -> bytes:
        b = self._names.get(function)
        if b is None:
            if not isinstance(function, str):
                raise TypeError(f"a function name is a str, not {type(function).__name__}")
            b = function.encode("utf-8")
            self._names[function] = b
        return b

    def _call(
        self, function: str, value: Any, deadline: float | None, content_type: int | None
    ) -> Any:
        h = self._h
        if h is None:
            raise Shutdown("the pool is closed")
        name = self._names.get(function) or self._name(function)
        response = c_void_p()
        # The hot path: bytes and str go to the library as they are.
        kind = type(value)
        if content_type is None and (kind is bytes or kind is str):
            data = value if kind is bytes else value.encode("utf-8")
            ct = payload.BYTES if kind is bytes else payload.UTF8
            status = lib.knit_call(
                h, name, data, len(data), ct, _deadline_ns(deadline), byref(response)
            )
        else:
            status = self._call_encoded(h, name, value, deadline, content_type, response)
        if status != OK:
            fail(status)
        data_, ct = take_bytes(response.value or 0)
        return payload.decode(data_, ct)

    def _call_encoded(
        self,
        h: int,
        name: bytes,
        value: Any,
        deadline: float | None,
        content_type: int | None,
        response: c_void_p,
    ) -> int:
        out = payload.encode(value, content_type)
        if out.head and deadline is None and LOAN_THRESHOLD <= out.total <= self._loan_limit:
            return self._call_loan(h, name, out, response)
        data = out.contiguous()
        dl = _deadline_ns(deadline)
        if isinstance(data, bytes):
            return int(
                lib.knit_call(h, name, data, len(data), out.content_type, dl, byref(response))
            )
        with Exported(data) as e:
            return int(
                lib.knit_call(h, name, e.address, e.nbytes, out.content_type, dl, byref(response))
            )

    def _call_loan(self, h: int, name: bytes, out: payload.Outgoing, response: c_void_p) -> int:
        key = next(tr.keys)
        tr.fills[key] = out
        try:
            return int(
                lib.knit_call_loan(
                    h, name, out.total, out.content_type, tr.FILL, key, byref(response)
                )
            )
        finally:
            del tr.fills[key]

    def _start(
        self,
        cfn: Callable[..., int],
        function: str,
        value: Any,
        deadline: float | None,
        content_type: int | None,
        *outs: c_void_p,
        on: int | None = None,
    ) -> None:
        """Encodes ``value``, lends its bytes to ``cfn(pool, name, address, length, content
        type, deadline, *outs)`` (one of libknit's call functions; with ``on``, a pinned one
        that takes the worker after the pool) and raises on failure."""
        out = payload.encode(value, content_type)
        target = (self._handle(),) if on is None else (self._handle(), on)
        with Exported(out.contiguous()) as e:
            status = cfn(
                *target,
                self._name(function),
                e.address,
                e.nbytes,
                out.content_type,
                _deadline_ns(deadline),
                *(byref(o) for o in outs),
            )
        if status != OK:
            fail(status)

    def call_response(
        self,
        function: str,
        value: Any = payload.NOTHING,
        *,
        deadline: float | None = None,
        content_type: int | None = None,
    ) -> Response:
        """Like ``call``, but returns the :class:`Response` itself: its bytes as a memoryview
        without a copy, alive as long as a view of them is."""
        response = c_void_p()
        self._start(lib.knit_call, function, value, deadline, content_type, response)
        return Response(response.value or 0)

    def call_borrowed(
        self,
        function: str,
        value: Any,
        reader: Callable[[memoryview], T],
        *,
        content_type: int | None = None,
    ) -> T:
        """Calls ``function`` and runs ``reader(view)`` on the result where it lies (the
        response ring itself when it is one record: no copy at all); returns what ``reader``
        returns. Lifetime rule: ``view`` is valid only while ``reader`` runs; it is released
        when ``reader`` returns, so ``reader`` copies what it keeps. Keeping anything that
        still refers to it (a slice, a numpy array made with ``frombuffer``, ...) raises
        :class:`BufferError` after the call: that memory is the ring's and is reused at once.
        The deadline is the pool's default."""
        h = self._handle()
        out = payload.encode(value, content_type)
        data = out.contiguous()
        key = next(tr.keys)
        slot: list[Any] = [reader, None, None, False]
        tr.readers[key] = slot
        try:
            with Exported(data) as e:
                status = lib.knit_call_borrow(
                    h, self._name(function), e.address, e.nbytes, out.content_type, tr.BORROW, key
                )
        finally:
            del tr.readers[key]
        if status != OK:
            fail(status)
        if slot[2] is not None:
            raise slot[2]
        if slot[3]:
            raise BufferError(
                "a view of the borrowed result outlived its reader: copy what you keep"
            )
        return slot[1]  # type: ignore[no-any-return]

    async def _acall(
        self, function: str, value: Any, deadline: float | None, content_type: int | None
    ) -> Any:
        # The call goes out on a ticket; libknit's ticket thread says when it is ready and
        # call_soon_threadsafe wakes this task: the loop never blocks on the call. (Under the
        # "wait" backpressure a full request ring makes the send itself wait for room.) A
        # cancelled task cancels the call at the worker (CANCEL-1).
        loop = asyncio.get_running_loop()
        with self.submit(function, value, deadline=deadline, content_type=content_type) as call:
            woken: asyncio.Future[None] = loop.create_future()
            key = next(tr.keys)
            tr.ready[key] = (loop, woken)
            status = lib.knit_ticket_on_complete(call._handle(), tr.READY, key)
            if status != OK:
                tr.ready.pop(key, None)
                fail(status)
            try:
                await woken
            except asyncio.CancelledError:
                call.cancel()
                raise
            return call.result(0)

    def submit(
        self,
        function: str,
        value: Any = payload.NOTHING,
        *,
        deadline: float | None = None,
        content_type: int | None = None,
    ) -> Call:
        """Starts a call and returns at once with its :class:`Call` (the request is sent
        before this returns)."""
        ticket = c_void_p()
        self._start(lib.knit_call_async, function, value, deadline, content_type, ticket)
        return Call(ticket.value or 0)

    def submit_with_channel(
        self,
        function: str,
        value: Any = payload.NOTHING,
        *,
        deadline: float | None = None,
        content_type: int | None = None,
    ) -> tuple[Call, Sender]:
        """Starts a call together with a channel from this host to the worker that runs it:
        returns the :class:`Call` and the channel's :class:`Sender` (the handler reads it
        with ``knit.current().take_channel()``). Send, ``close()`` the sender, then take the
        result. A worker runs one call at a time: feed the channels of calls that may share a
        worker in the order the calls were made."""
        ticket, sender = c_void_p(), c_void_p()
        self._start(
            lib.knit_call_with_channel, function, value, deadline, content_type, ticket, sender
        )
        return Call(ticket.value or 0), Sender(sender.value or 0, owned=True)

    def call_with_stream(
        self,
        function: str,
        messages: Iterable[Any],
        value: Any = payload.NOTHING,
        *,
        deadline: float | None = None,
        content_type: int | None = None,
    ) -> Any:
        """Calls ``function`` with ``value`` and streams every item of ``messages`` to its
        handler on a channel (waiting while the channel is full), then returns the result.
        When ``messages`` raises, the channel is aborted and the exception goes on; when the
        worker stops reading, the call's error (or the send's) is raised."""
        call, tx = self.submit_with_channel(
            function, value, deadline=deadline, content_type=content_type
        )
        with call:
            try:
                for message in messages:
                    tx.send(message)
                tx.close()
            except KnitError as send_error:
                try:
                    call.result()
                except KnitError as call_error:
                    raise call_error from send_error
                raise
            except BaseException:
                tx.abort()
                raise
            return call.result()

    def stream(
        self,
        function: str,
        value: Any = payload.NOTHING,
        *,
        deadline: float | None = None,
        content_type: int | None = None,
    ) -> Stream:
        """Calls a streaming function: iterate the returned :class:`Stream` for the messages
        of its channel, then ``result()`` for the call's result."""
        return Stream(self.submit(function, value, deadline=deadline, content_type=content_type))

    # -- workers started by someone else (external=True) and pinned calls -------------------

    def wait_worker(self, index: int, timeout: float | None = None) -> list[str]:
        """Waits at most ``timeout`` seconds (None: no bound) until worker ``index`` (1 to
        the number of workers) attached and said HELLO, and returns its function names in id
        order. Raises TimedOut when it did not (nothing changes: wait again), PeerDied when
        it was declared dead or released."""
        h = self._handle()
        check(
            lib.knit_pool_wait_worker(
                h, index, FOREVER if timeout is None else seconds_to_ns(timeout)
            )
        )
        length = ctypes.c_size_t(0)
        check(lib.knit_pool_worker_functions(h, index, None, 0, byref(length)))
        buffer = ctypes.create_string_buffer(length.value)
        check(lib.knit_pool_worker_functions(h, index, buffer, length.value, byref(length)))
        listed = buffer.raw[: length.value]
        return [n.decode("utf-8") for n in listed.split(b"\0")[:-1]]

    def call_on(
        self,
        index: int,
        function: str,
        value: Any = payload.NOTHING,
        *,
        deadline: float | None = None,
        content_type: int | None = None,
    ) -> Any:
        """Like ``call``, but on worker ``index`` rather than the least busy one (a worker
        still starting is waited for, at most the start timeout)."""
        response = c_void_p()
        self._start(lib.knit_call_on, function, value, deadline, content_type, response, on=index)
        data, ct = take_bytes(response.value or 0)
        return payload.decode(data, ct)

    def submit_on(
        self,
        index: int,
        function: str,
        value: Any = payload.NOTHING,
        *,
        deadline: float | None = None,
        content_type: int | None = None,
    ) -> Call:
        """Like :meth:`submit`, but on worker ``index``."""
        ticket = c_void_p()
        self._start(
            lib.knit_call_async_on, function, value, deadline, content_type, ticket, on=index
        )
        return Call(ticket.value or 0)

    def release_worker(self, index: int, timeout: float | None = None) -> ParticipantState:
        """Sends worker ``index`` SHUTDOWN and waits at most ``timeout`` seconds (None: no
        bound) until it detached or died; returns its participant entry then. No new call
        goes to it; calls still outstanding fail with Shutdown (PeerDied if it died). An
        entry nobody claimed yet is withdrawn at once. Raises TimedOut when it is still
        there (the release goes on)."""
        ns = FOREVER if timeout is None else seconds_to_ns(timeout)
        check(lib.knit_pool_release_worker(self._handle(), index, ns))
        return self.participant(index)

    def reserve_worker(self, index: int) -> int:
        """Reserves worker ``index``'s entry again after its worker left, died or was
        released (external pools only), so that a new one can attach; returns the entry's
        new epoch (its current one when it is already waiting). Raises SlotTaken while a
        worker holds it."""
        epoch = ctypes.c_uint32(0)
        check(lib.knit_pool_reserve_worker(self._handle(), index, byref(epoch)))
        return int(epoch.value)

    # -- inspection -------------------------------------------------------------------------

    def info(self) -> RegionState:
        """The pool's region header and poison state."""
        i = RegionInfo(struct_size=ctypes.sizeof(RegionInfo))
        check(lib.knit_pool_get_info(self._handle(), byref(i)))
        return region_state(i)

    def worker(self, index: int) -> WorkerState:
        """The state of worker ``index`` (1 to the number of workers)."""
        w = WorkerInfo(struct_size=ctypes.sizeof(WorkerInfo))
        check(lib.knit_pool_get_worker(self._handle(), index, byref(w)))
        return worker_state(w)

    def workers(self) -> list[WorkerState]:
        """The state of every worker."""
        return [self.worker(i) for i in range(1, self.info().worker_slots + 1)]

    def participant(self, index: int) -> ParticipantState:
        """Participant entry ``index`` of the region (0 the host), read once and validated."""
        p = ParticipantInfo(struct_size=ctypes.sizeof(ParticipantInfo))
        check(lib.knit_pool_get_participant(self._handle(), index, byref(p)))
        return participant_state(p)
