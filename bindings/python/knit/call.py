"""Calls in flight (``knit_ticket``): waiting with a bound, cancelling, taking the channel
of a streaming handler."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from ctypes import byref, c_bool, c_size_t, c_void_p
from types import TracebackType
from typing import Any

from . import payload
from ._closing import Closing
from ._lib import FOREVER, lib, seconds_to_ns
from ._status import CHANNEL_CLOSED, OK, TIMED_OUT, check, fail
from .channel import Receiver
from .errors import InvalidArgument, KnitError, TimedOut
from .response import take_bytes


def timeout_ns(timeout: float | None) -> int:
    """A wait bound in seconds as the C argument: 0 does not wait, None waits forever."""
    if timeout is None:
        return FOREVER
    if timeout <= 0:
        return 0
    return seconds_to_ns(timeout)


_UNSET: Any = object()


class Call(Closing):
    """A call in flight (a ``knit_ticket``). ``result()`` waits for its outcome (given again
    on every later ``result()``), ``cancel()`` cancels it at the worker (CANCEL-1),
    ``channel()`` takes the channel its handler streams on."""

    __slots__ = ("__weakref__", "_error", "_h", "_raw", "_result")

    def __init__(self, handle: int) -> None:
        self._h: int | None = handle
        self._raw: tuple[bytes, int] | None = None
        self._result: Any = _UNSET
        self._error: KnitError | None = None

    def _handle(self) -> int:
        if self._h is None:
            raise InvalidArgument("this call was closed")
        return self._h

    def done(self) -> bool:
        """Whether the outcome is ready (never blocks)."""
        if self._raw is not None or self._error is not None:
            return True
        flag = c_bool(False)
        check(lib.knit_ticket_poll(self._handle(), byref(flag)))
        return bool(flag.value)

    def result(self, timeout: float | None = None) -> Any:
        """The call's result, waiting at most ``timeout`` seconds (None: no bound); raises the
        call's error, or :class:`knit.TimedOut` when it has not finished in time (the call
        goes on)."""
        data, ct = self.result_bytes(timeout)
        if self._result is _UNSET:
            try:
                self._result = payload.decode(data, ct)
            except KnitError as e:
                self._error = e
                raise
        return self._result

    def result_bytes(self, timeout: float | None = None) -> tuple[bytes, int]:
        """Like :meth:`result`, but the result undecoded: its bytes and content type."""
        if self._raw is None and self._error is None:
            response = c_void_p()
            bound = timeout_ns(timeout)
            status = lib.knit_ticket_wait(self._handle(), bound, byref(response))
            if status == TIMED_OUT and bound != FOREVER and not self.done():
                raise TimedOut(f"the call has not finished within {timeout} s")
            if status != OK:
                try:
                    fail(status)
                except KnitError as e:
                    self._error = e
            else:
                self._raw = take_bytes(response.value or 0)
        if self._error is not None:
            raise self._error
        assert self._raw is not None
        return self._raw

    def cancel(self) -> None:
        """Cancels the call: the worker is told, and the outcome becomes
        :class:`knit.Cancelled` unless the call had already finished."""
        check(lib.knit_ticket_cancel(self._handle()))

    def channel(self) -> Receiver:
        """Waits until the handler opens its channel and returns the reading end; raises
        :class:`knit.ChannelClosed` when the call ends without opening one. Take it before
        waiting for the result: a handler filling its channel waits for the host to read."""
        receiver = c_void_p()
        check(lib.knit_ticket_channel(self._handle(), byref(receiver)))
        return Receiver(receiver.value or 0)

    def close(self) -> None:
        """Frees the call; a call still running is cancelled."""
        h, self._h = self._h, None
        if h is not None:
            lib.knit_ticket_free(h)


def wait_any(calls: Sequence[Call], timeout: float | None = None) -> int:
    """Waits until one of ``calls`` has finished and returns its position; raises
    :class:`knit.TimedOut` when none finished within ``timeout`` seconds."""
    handles = (c_void_p * len(calls))(*[c._handle() for c in calls])
    index = c_size_t()
    status = lib.knit_wait_any(handles, len(calls), timeout_ns(timeout), byref(index))
    if status != OK:
        fail(status)
    return index.value


class Stream:
    """The messages a streaming call sends on its channel, then its result."""

    __slots__ = ("_receiver", "call")

    def __init__(self, call: Call) -> None:
        self.call = call
        self._receiver: Receiver | None = None

    def __iter__(self) -> Iterator[Any]:
        try:
            self._receiver = self.call.channel()
        except KnitError as e:
            if e.code == CHANNEL_CLOSED:
                return  # the call ended without a channel
            raise
        yield from self._receiver

    def result(self, timeout: float | None = None) -> Any:
        """The call's result (after the stream)."""
        return self.call.result(timeout)

    def close(self) -> None:
        """Frees the channel and the call (cancelled if still running)."""
        if self._receiver is not None:
            self._receiver.close()
        self.call.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
