"""Knit for Python: call functions in worker processes of any language over shared memory.

Host::

    import knit
    with knit.Pool(workers=4, command=["./worker"]) as pool:
        print(pool.call.hello("World!"))

Worker (a process a host starts)::

    import knit

    @knit.function
    def hello(name):
        return f"Hello, {name}"

    knit.serve()

The binding drives libknit (the C interface, include/knit.h) through ctypes; see README.md.
"""

from __future__ import annotations

from . import payload
from ._lib import LibraryNotFound, lib, monotonic_ns
from .call import Call, Stream, wait_any
from .channel import Receiver, Sender
from .errors import (
    ApiError,
    ApplicationError,
    AttachError,
    BadChannel,
    BadChecksum,
    BadFragment,
    BadLayout,
    BadMagic,
    BadPadding,
    BadParticipant,
    BadPosition,
    BadRecord,
    BadRecordLength,
    CallError,
    Cancelled,
    ChannelAborted,
    ChannelClosed,
    ChannelError,
    DeadlineExceeded,
    HandlerFailed,
    InvalidArgument,
    KnitError,
    LivenessError,
    MissingFeature,
    NotReady,
    OsError,
    PayloadTooLarge,
    PeerDied,
    Poisoned,
    ProtocolViolation,
    RegionTooSmall,
    Shutdown,
    SlotTaken,
    TimedOut,
    UnknownFunction,
    UnknownRecord,
    UnknownRequest,
    UnsupportedVersion,
    WouldBlock,
)
from .payload import (
    BYTES,
    CBOR,
    JSON,
    MSGPACK,
    TYPED_ARRAY,
    UTF8,
    Payload,
    TypedArray,
)
from .pool import Pool
from .region import Region
from .response import Response
from .states import ParticipantState, RegionState, WorkerState
from .worker import Request, Worker, cancelled, current, function, handler, serve


def version() -> str:
    """The version of the loaded libknit (``"0.1.0"``)."""
    return str(lib.knit_version_string().decode())


def handle_count() -> int:
    """Live libknit handles of every type (a leak check: 0 once everything is freed)."""
    return int(lib.knit_handle_count())


__version__ = "0.1.0"

__all__ = [
    "BYTES",
    "CBOR",
    "JSON",
    "MSGPACK",
    "TYPED_ARRAY",
    "UTF8",
    "ApiError",
    "ApplicationError",
    "AttachError",
    "BadChannel",
    "BadChecksum",
    "BadFragment",
    "BadLayout",
    "BadMagic",
    "BadPadding",
    "BadParticipant",
    "BadPosition",
    "BadRecord",
    "BadRecordLength",
    "Call",
    "CallError",
    "Cancelled",
    "ChannelAborted",
    "ChannelClosed",
    "ChannelError",
    "DeadlineExceeded",
    "HandlerFailed",
    "InvalidArgument",
    "KnitError",
    "LibraryNotFound",
    "LivenessError",
    "MissingFeature",
    "NotReady",
    "OsError",
    "ParticipantState",
    "Payload",
    "PayloadTooLarge",
    "PeerDied",
    "Poisoned",
    "Pool",
    "ProtocolViolation",
    "Receiver",
    "Region",
    "RegionState",
    "RegionTooSmall",
    "Request",
    "Response",
    "Sender",
    "Shutdown",
    "SlotTaken",
    "Stream",
    "TimedOut",
    "TypedArray",
    "UnknownFunction",
    "UnknownRecord",
    "UnknownRequest",
    "UnsupportedVersion",
    "Worker",
    "WorkerState",
    "WouldBlock",
    "cancelled",
    "current",
    "function",
    "handle_count",
    "handler",
    "monotonic_ns",
    "payload",
    "serve",
    "version",
    "wait_any",
]
