"""Exceptions mapped from the error registry of spec/09 §9.1.

Every failure of the library surfaces as a :class:`KnitError` subclass chosen by its code
(ERR-1: the numeric values are the registry's on every boundary), carrying the code, its
registry name and the UTF-8 message (ERR-3). Codes 1000 to 65535 are application codes a
handler may answer with (:class:`ApplicationError`); any other code the registry does not name
is still delivered as a :class:`KnitError` with that raw code (CALL-7).
"""

from __future__ import annotations


class KnitError(Exception):
    """A Knit failure: ``code`` (registry number), ``name`` (registry name), ``message``."""

    code: int = 0
    name: str = "UNKNOWN"

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
            self.name = name_of(code)
        self.message = message

    def __str__(self) -> str:
        return f"{self.name} ({self.code}): {self.message}" if self.message else self.name

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.code, self.message))


def _rebuild(code: int, message: str) -> KnitError:
    return error_for(code, message)


# Classes of the registry (spec/09 §9.1, column "class").
class CallError(KnitError):
    """Class *call*: the call failed (worker's answer or a local refusal)."""


class LivenessError(KnitError):
    """Class *liveness*: a peer died."""


class ChannelError(KnitError):
    """Class *channel*: a channel ended."""


class ApiError(KnitError):
    """Class *api*: the calling interface refused or could not complete an operation."""


class AttachError(KnitError):
    """Class *attach*: a region was refused when created or attached."""


class ProtocolViolation(KnitError):
    """Class *violation*: a peer broke the protocol; the region is poisoned (ERR-2)."""


class ApplicationError(KnitError):
    """A handler's own code, 1000 to 65535 (ERR-1)."""

    name = "APPLICATION"

    def __init__(self, message: str = "", code: int = 1000) -> None:
        if not 1000 <= code <= 65535:
            raise ValueError(f"an application code is 1000 to 65535, not {code}")
        super().__init__(message, code)


# The table of spec/09 §9.1: one class per code, under the class of its row.


class UnknownFunction(CallError):
    """UNKNOWN_FUNCTION (1): No function of that name or id."""

    code = 1
    name = "UNKNOWN_FUNCTION"


class HandlerFailed(CallError):
    """HANDLER_FAILED (2): The handler raised, panicked or returned an error."""

    code = 2
    name = "HANDLER_FAILED"


class PayloadTooLarge(CallError):
    """PAYLOAD_TOO_LARGE (3): A payload exceeds max_message_len or a limit."""

    code = 3
    name = "PAYLOAD_TOO_LARGE"


class Cancelled(CallError):
    """CANCELLED (4): The call or channel operation was cancelled."""

    code = 4
    name = "CANCELLED"


class DeadlineExceeded(CallError):
    """DEADLINE_EXCEEDED (5): The call's deadline passed."""

    code = 5
    name = "DEADLINE_EXCEEDED"


class PeerDied(LivenessError):
    """PEER_DIED (6): The peer process or thread died."""

    code = 6
    name = "PEER_DIED"


class Shutdown(CallError):
    """SHUTDOWN (7): The pool or worker is shutting down."""

    code = 7
    name = "SHUTDOWN"


class WouldBlock(CallError):
    """WOULD_BLOCK (8): No space, and the caller asked not to wait."""

    code = 8
    name = "WOULD_BLOCK"


class ChannelClosed(ChannelError):
    """CHANNEL_CLOSED (9): The channel was closed by its writer."""

    code = 9
    name = "CHANNEL_CLOSED"


class ChannelAborted(ChannelError):
    """CHANNEL_ABORTED (10): The channel was aborted."""

    code = 10
    name = "CHANNEL_ABORTED"


class InvalidArgument(ApiError):
    """INVALID_ARGUMENT (11): An argument broke the API contract."""

    code = 11
    name = "INVALID_ARGUMENT"


class OsError(ApiError):
    """OS_ERROR (12): An operating-system call failed."""

    code = 12
    name = "OS_ERROR"


class SlotTaken(ApiError):
    """SLOT_TAKEN (13): The participant entry was not RESERVED."""

    code = 13
    name = "SLOT_TAKEN"


class TimedOut(ApiError):
    """TIMED_OUT (14): A bounded wait in the API ran out."""

    code = 14
    name = "TIMED_OUT"


class BadMagic(AttachError):
    """BAD_MAGIC (100): The region does not start with the Knit magic (HDR-1)."""

    code = 100
    name = "BAD_MAGIC"


class UnsupportedVersion(AttachError):
    """UNSUPPORTED_VERSION (101): The region's major version is unknown (HDR-2)."""

    code = 101
    name = "UNSUPPORTED_VERSION"


class MissingFeature(AttachError):
    """MISSING_FEATURE (102): The region requires an unknown feature (HDR-3)."""

    code = 102
    name = "MISSING_FEATURE"


class BadChecksum(AttachError):
    """BAD_CHECKSUM (103): The header checksum does not match (HDR-4)."""

    code = 103
    name = "BAD_CHECKSUM"


class BadLayout(AttachError):
    """BAD_LAYOUT (104): The header geometry is invalid (HDR-6, INIT-4)."""

    code = 104
    name = "BAD_LAYOUT"


class RegionTooSmall(AttachError):
    """REGION_TOO_SMALL (105): The mapping is shorter than the region (HDR-7)."""

    code = 105
    name = "REGION_TOO_SMALL"


class NotReady(AttachError):
    """NOT_READY (106): The region was not initialised in time (INIT-2)."""

    code = 106
    name = "NOT_READY"


class Poisoned(AttachError):
    """POISONED (107): The region is poisoned (INIT-3, LIVE-6)."""

    code = 107
    name = "POISONED"


class BadPosition(ProtocolViolation):
    """BAD_POSITION (200): A ring position is out of range (RING-8)."""

    code = 200
    name = "BAD_POSITION"


class BadRecordLength(ProtocolViolation):
    """BAD_RECORD_LENGTH (201): A record length is out of range (RING-9)."""

    code = 201
    name = "BAD_RECORD_LENGTH"


class BadPadding(ProtocolViolation):
    """BAD_PADDING (202): A padding record is misplaced (RING-10)."""

    code = 202
    name = "BAD_PADDING"


class UnknownRecord(ProtocolViolation):
    """UNKNOWN_RECORD (203): A record type is unknown (RING-11)."""

    code = 203
    name = "UNKNOWN_RECORD"


class BadFragment(ProtocolViolation):
    """BAD_FRAGMENT (204): A fragment sequence is broken (MSG-3)."""

    code = 204
    name = "BAD_FRAGMENT"


class UnknownRequest(ProtocolViolation):
    """UNKNOWN_REQUEST (205): A response names no outstanding request."""

    code = 205
    name = "UNKNOWN_REQUEST"


class BadRecord(ProtocolViolation):
    """BAD_RECORD (206): A record body breaks its own rules."""

    code = 206
    name = "BAD_RECORD"


class BadParticipant(ProtocolViolation):
    """BAD_PARTICIPANT (207): The participant table holds garbage."""

    code = 207
    name = "BAD_PARTICIPANT"


class BadChannel(ProtocolViolation):
    """BAD_CHANNEL (208): A channel slot holds garbage."""

    code = 208
    name = "BAD_CHANNEL"


_BY_CODE: dict[int, type[KnitError]] = {
    cls.code: cls
    for cls in (
        UnknownFunction,
        HandlerFailed,
        PayloadTooLarge,
        Cancelled,
        DeadlineExceeded,
        PeerDied,
        Shutdown,
        WouldBlock,
        ChannelClosed,
        ChannelAborted,
        InvalidArgument,
        OsError,
        SlotTaken,
        TimedOut,
        BadMagic,
        UnsupportedVersion,
        MissingFeature,
        BadChecksum,
        BadLayout,
        RegionTooSmall,
        NotReady,
        Poisoned,
        BadPosition,
        BadRecordLength,
        BadPadding,
        UnknownRecord,
        BadFragment,
        UnknownRequest,
        BadRecord,
        BadParticipant,
        BadChannel,
    )
}
_NAMES: dict[int, str] = {0: "OK", **{c: cls.name for c, cls in _BY_CODE.items()}}


def name_of(code: int) -> str:
    """The registry name of ``code``; ``APPLICATION`` for 1000 to 65535, else ``UNKNOWN``."""
    if code in _NAMES:
        return _NAMES[code]
    return "APPLICATION" if 1000 <= code <= 65535 else "UNKNOWN"


def error_for(code: int, message: str = "") -> KnitError:
    """The exception for status ``code`` (not 0) with ``message``."""
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message)
    if 1000 <= code <= 65535:
        return ApplicationError(message, code)
    # CALL-7: a code the registry does not name is delivered as that raw code.
    return KnitError(message, code)


def registry() -> dict[int, type[KnitError]]:
    """Every registry code (spec/09 §9.1) and its exception class."""
    return dict(_BY_CODE)
