"""Turning the library's statuses into exceptions."""

from __future__ import annotations

from typing import NoReturn

from ._lib import last_error
from .errors import KnitError, error_for, name_of

OK = 0
CANCELLED = 4
HANDLER_FAILED = 2
CHANNEL_CLOSED = 9
INVALID_ARGUMENT = 11
TIMED_OUT = 14


def _peer_text(status: int, message: str) -> str:
    """The worker's own text: libknit prefixes a call's failure message with the status's
    registry name (or ``status N``), which the exception already carries."""
    for prefix in (f"{name_of(status)}: ", f"status {status}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def fail(status: int) -> NoReturn:
    """Raises the exception of ``status``, with the message the library stored for the
    failure on this thread (call it right after the failing function, on the same thread)."""
    code, message = last_error()
    if code != status:
        message = ""  # the thread's message belongs to another call
    raise error_for(status, _peer_text(status, message))


def check(status: int) -> None:
    """Raises unless ``status`` is OK."""
    if status != OK:
        fail(status)


def error(status: int, message: str) -> KnitError:
    """The exception of ``status`` with ``message`` (for outcomes carried by value)."""
    return error_for(status, _peer_text(status, message))
