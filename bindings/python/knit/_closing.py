"""The context-manager and finalizer protocol shared by the binding's handle wrappers."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_T = TypeVar("_T", bound="Closing")


class Closing:
    """A wrapper whose ``close()`` frees its libknit handle: ``with`` closes it on exit and
    garbage collection closes it too. Subclasses define ``close()`` (idempotent)."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
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
