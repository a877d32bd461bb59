"""Addresses of Python buffers, for handing them to libknit without a copy.

``bytes`` is passed to ctypes as is (ctypes gives C its internal pointer). Any other object of
the buffer protocol (bytearray, memoryview, array.array, numpy arrays, mmap, read-only or not)
is exported with ``PyObject_GetBuffer`` for the duration of one foreign call: the exporter
cannot move or free the memory while the export is held.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, Structure, c_char_p, c_int, c_ssize_t, c_void_p, py_object
from types import TracebackType

# Python's buffer request flags (Include/pybuffer.h): C-contiguous with its format and shape.
_PyBUF_FORMAT = 0x0004
_PyBUF_ND = 0x0008
_PyBUF_STRIDES = 0x0010 | _PyBUF_ND
_PyBUF_C_CONTIGUOUS = 0x0020 | _PyBUF_STRIDES


class _PyBuffer(Structure):
    """``Py_buffer`` (part of the stable ABI since Python 3.11)."""

    _fields_ = [
        ("buf", c_void_p),
        ("obj", c_void_p),
        ("len", c_ssize_t),
        ("itemsize", c_ssize_t),
        ("readonly", c_int),
        ("ndim", c_int),
        ("format", c_char_p),
        ("shape", POINTER(c_ssize_t)),
        ("strides", POINTER(c_ssize_t)),
        ("suboffsets", POINTER(c_ssize_t)),
        ("internal", c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [py_object, POINTER(_PyBuffer), c_int]
_get_buffer.restype = c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [POINTER(_PyBuffer)]
_release_buffer.restype = None


class Exported:
    """A C-contiguous export of ``obj``: ``address`` and ``nbytes`` stay valid until
    :meth:`release` (or the end of the ``with`` block)."""

    __slots__ = ("_held", "_view", "address", "nbytes")

    def __init__(self, obj: object) -> None:
        self._view = _PyBuffer()
        self._held = False
        # Raises BufferError (or TypeError) when obj has no C-contiguous buffer.
        _get_buffer(obj, ctypes.byref(self._view), _PyBUF_C_CONTIGUOUS | _PyBUF_FORMAT)
        self._held = True
        self.address: int = self._view.buf or 0
        self.nbytes: int = self._view.len

    def release(self) -> None:
        """Ends the export; the address must not be used afterwards."""
        if self._held:
            self._held = False
            _release_buffer(ctypes.byref(self._view))

    def __enter__(self) -> Exported:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def view_of(address: int, length: int, owner: object | None = None) -> memoryview:
    """A read-only byte memoryview of ``length`` bytes at ``address`` (no copy). ``owner`` is
    kept alive as long as any view of the memory lives."""
    if length == 0:
        return memoryview(b"")
    arr = (ctypes.c_ubyte * length).from_address(address)
    if owner is not None:
        # The array (kept alive by every memoryview made from it) keeps the owner alive.
        arr._knit_owner = owner  # type: ignore[attr-defined]
    return memoryview(arr).cast("B").toreadonly()
