"""Channels (spec/06): ordered streams of messages between a host and the worker running
one of its calls, in either direction.

- Worker to host: a streaming handler opens the channel (``Request.open_channel()``, or a
  generator handler); the host takes the reading end from the call (``Call.channel()``).
- Host to worker: the host starts the call with a channel (``Pool.submit_with_channel``); the
  handler takes the reading end (``Request.take_channel()``).

Both directions use :class:`Sender` and :class:`Receiver`. Messages arrive in the order sent,
each once (CHAN-3); a full channel makes ``send`` wait (backpressure, CHAN-6) and
``try_send`` raise :class:`knit.WouldBlock`; ``close`` ends the stream after the last message
(CHAN-4); ``abort`` ends it at once with a code (CHAN-5). A worker's ends belong to its
handler call: they are closed (a sender aborted with CANCELLED, a receiver not read to its
end aborted too) when the handler returns.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from . import payload
from ._buffer import Exported
from ._closing import Closing
from ._lib import lib
from ._status import CANCELLED, OK, check, fail
from .errors import ChannelClosed, KnitError
from .response import Response, take_bytes


class Sender:
    """The writing end of a channel. A worker's is valid only inside the handler that opened
    it, on its thread, and is aborted when the handler returns unless closed. A host's may be
    used from any thread (sends are serialised); dropping it without ``close`` aborts the
    channel with CANCELLED, so a handler never takes a cut stream for a whole one."""

    __slots__ = ("_h", "_owned")

    def __init__(self, handle: int, owned: bool = False) -> None:
        self._h: int | None = handle
        self._owned = owned  # a host's sender is freed by this object

    def _handle(self) -> int:
        if self._h is None:
            raise ChannelClosed("this sender was closed or aborted")
        return self._h

    def send(self, value: Any, content_type: int | None = None) -> None:
        """Sends one message (encoded as a call payload is), waiting while the channel is full.
        Raises :class:`knit.ChannelAborted` when the caller aborted, :class:`knit.PeerDied`
        when the host died."""
        h = self._handle()
        out = payload.encode(value, content_type)
        data = out.contiguous()
        if isinstance(data, bytes):
            check(lib.knit_sender_send(h, data, len(data), out.content_type))
            return
        with Exported(data) as e:
            check(lib.knit_sender_send(h, e.address, e.nbytes, out.content_type))

    def try_send(self, data: bytes | bytearray | memoryview) -> None:
        """Sends ``data`` as one ``BYTES`` message without waiting: raises
        :class:`knit.WouldBlock` (nothing sent) when the channel has no room now."""
        h = self._handle()
        if isinstance(data, bytes):
            check(lib.knit_sender_try_send(h, data, len(data)))
            return
        with Exported(data) as e:
            check(lib.knit_sender_try_send(h, e.address, e.nbytes))

    def close(self) -> None:
        """Ends the stream: the caller receives every message sent, then the end."""
        h, self._h = self._h, None
        if h is not None:
            check(lib.knit_sender_close(h))

    def abort(self, code: int = CANCELLED) -> None:
        """Aborts the channel with status ``code``; undelivered messages are discarded."""
        h, self._h = self._h, None
        if h is not None:
            check(lib.knit_sender_abort(h, code))

    @property
    def closed(self) -> bool:
        """True once closed or aborted."""
        return self._h is None

    def _forget(self) -> None:
        """The handler returned: the library already closed what was left open."""
        self._h = None

    def __del__(self) -> None:
        h, self._h = self._h, None
        if h is not None and self._owned:
            lib.knit_sender_free(h)

    def __enter__(self) -> Sender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        elif self._h is not None:
            code = exc.code if isinstance(exc, KnitError) and exc.code else 2
            self.abort(code)


class Receiver(Closing):
    """The reading end of a channel. Iterating it yields each message decoded by its content
    type until the writer closes the channel; an abort or the other side's death raises
    (:class:`knit.ChannelAborted`, :class:`knit.PeerDied`; in a worker, :class:`knit.Cancelled`
    when the host cancelled the call). A worker's is valid only inside its handler."""

    __slots__ = ("_h",)

    def __init__(self, handle: int) -> None:
        self._h: int | None = handle

    def _handle(self) -> int:
        if self._h is None:
            raise ChannelClosed("this receiver was closed")
        return self._h

    def _recv_handle(self) -> int:
        message = ctypes.c_void_p()
        status = lib.knit_receiver_recv(self._handle(), ctypes.byref(message))
        if status != OK:
            fail(status)
        return message.value or 0

    def recv(self) -> Any:
        """The next message, decoded; raises :class:`knit.ChannelClosed` at the end."""
        data, ct = take_bytes(self._recv_handle())
        return payload.decode(data, ct)

    def recv_response(self) -> Response:
        """The next message as a :class:`Response` (its bytes without a copy)."""
        return Response(self._recv_handle())

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                yield self.recv()
            except ChannelClosed:
                return

    def abort(self, code: int = CANCELLED) -> None:
        """Aborts the channel with ``code``: the worker's sends fail with CHANNEL_ABORTED."""
        check(lib.knit_receiver_abort(self._handle(), code))

    def close(self) -> None:
        """Frees the receiver; a channel not read to its end is aborted with CANCELLED."""
        h, self._h = self._h, None
        if h is not None:
            lib.knit_receiver_free(h)
