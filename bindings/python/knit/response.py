"""Results held in the library's memory, exposed as memoryviews without a copy."""

from __future__ import annotations

import ctypes
import threading
from ctypes import byref, c_size_t, c_uint32, c_void_p
from types import TracebackType
from typing import Any

from . import payload
from ._buffer import view_of
from ._lib import lib


class _Owned:
    """Owns a ``knit_response`` handle and frees it when the last view of its bytes is gone."""

    __slots__ = ("handle",)

    def __init__(self, handle: int) -> None:
        self.handle = handle

    def __del__(self) -> None:
        h, self.handle = self.handle, 0
        if h:
            lib.knit_response_free(h)


class _OutParams(threading.local):
    """The output parameters of knit_response_get, made once per thread (a call's hot path
    would otherwise allocate six ctypes objects)."""

    def __init__(self) -> None:
        self.data, self.length, self.ct = c_void_p(), c_size_t(), c_uint32()
        self.refs = (byref(self.data), byref(self.length), byref(self.ct))


_out = _OutParams()


def read_handle(handle: int) -> tuple[int, int, int]:
    """The address, length and content type of a response handle's bytes."""
    o = _out
    lib.knit_response_get(handle, *o.refs)
    return o.data.value or 0, o.length.value, o.ct.value


def take_bytes(handle: int) -> tuple[bytes, int]:
    """Copies a response's bytes out and frees the handle."""
    try:
        address, length, ct = read_handle(handle)
        return (ctypes.string_at(address, length) if length else b""), ct
    finally:
        lib.knit_response_free(handle)


class Response:
    """A call's result (or a channel message) left where the library put it.

    ``data`` is a read-only memoryview of the bytes, made without a copy. Lifetime rule: the
    bytes live as long as any view of them does (``data``, its slices, numpy arrays made from
    it), whatever happens to this object; the library frees them when the last one is gone.
    """

    __slots__ = ("_data", "content_type")

    def __init__(self, handle: int) -> None:
        owner = _Owned(handle)
        address, length, self.content_type = read_handle(handle)
        self._data: memoryview | None = view_of(address, length, owner) if length else None
        if self._data is None:
            del owner  # nothing refers to the bytes: free them now

    @property
    def data(self) -> memoryview:
        """The result bytes (read-only, no copy)."""
        return self._data if self._data is not None else memoryview(b"")

    def __len__(self) -> int:
        return len(self.data)

    def __bytes__(self) -> bytes:
        return bytes(self.data)

    def value(self) -> Any:
        """The result decoded by its content type (see :mod:`knit.payload`); a typed array
        shares these bytes."""
        return payload.decode(self.data, self.content_type)

    def close(self) -> None:
        """Drops this object's view; the bytes are freed once no other view holds them."""
        self._data = None

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Response(content_type={self.content_type}, {len(self)} bytes)"
