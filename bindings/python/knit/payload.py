"""Python values to payloads and back, by content type (spec/09 §9.2).

The transport never interprets a payload (CT-1); this module is the binding's codec:

================================  ======================  =====================================
Python value                      content type            sent as
================================  ======================  =====================================
``None`` (or no argument)         ``BYTES``               nothing (empty payload)
``bytes``, ``bytearray``,         ``BYTES``               the object's own memory (no copy)
byte ``memoryview``
``str``                           ``UTF8``                its UTF-8 encoding
``dict``, ``list``, ``tuple``,    ``JSON``                compact JSON text
``int``, ``float``, ``bool``
numpy array, ``array.array``,     ``TYPED_ARRAY``         dtype + shape header, then the
typed ``memoryview``                                      elements (little-endian, C order)
:class:`Payload`                  its own                 its bytes as they are
================================  ======================  =====================================

Decoding is the reverse: ``BYTES`` gives ``bytes`` (an empty payload gives ``None``), ``UTF8``
``str``, ``JSON`` the parsed value, ``TYPED_ARRAY`` a numpy array when numpy is installed (else
a :class:`TypedArray`), and any other content type (CBOR, MessagePack, application types) a
:class:`Payload` with the bytes untouched. A payload that its content type does not describe
(invalid UTF-8 or JSON, a typed array failing CT-2) raises :class:`knit.InvalidArgument`
(CT-3): an argument error of the endpoint that decodes it, not a protocol violation.
"""

from __future__ import annotations

import array
import json
import struct
from dataclasses import dataclass
from typing import Any

from . import _lib
from .errors import InvalidArgument

BYTES = 0
UTF8 = 1
JSON = 2
CBOR = 3
TYPED_ARRAY = 4
MSGPACK = 5
APPLICATION = 0x8000_0000

NOTHING: Any = object()
"""Marks an absent payload argument (``pool.call.ping()``)."""


@dataclass(frozen=True)
class Payload:
    """Bytes with an explicit content type: sent as they are, and what a content type this
    binding does not decode (CBOR, MessagePack, application types) comes back as."""

    data: bytes | bytearray | memoryview
    content_type: int = BYTES

    def __post_init__(self) -> None:
        if not 0 <= self.content_type <= 0xFFFF_FFFF:
            raise ValueError(f"a content type is a u32, not {self.content_type}")


# --- typed arrays (spec/09 §9.2) ---------------------------------------------------------------


@dataclass(frozen=True)
class DType:
    """One element type of the typed-array header."""

    code: int
    name: str
    itemsize: int
    struct_char: str | None  # memoryview / struct format, None when Python has none
    numpy: str  # numpy dtype string (little-endian)


DTYPES: dict[int, DType] = {
    d.code: d
    for d in (
        DType(1, "uint8", 1, "B", "<u1"),
        DType(2, "int8", 1, "b", "<i1"),
        DType(3, "uint16", 2, "H", "<u2"),
        DType(4, "int16", 2, "h", "<i2"),
        DType(5, "uint32", 4, "I", "<u4"),
        DType(6, "int32", 4, "i", "<i4"),
        DType(7, "uint64", 8, "Q", "<u8"),
        DType(8, "int64", 8, "q", "<i8"),
        DType(9, "float16", 2, "e", "<f2"),
        DType(10, "float32", 4, "f", "<f4"),
        DType(11, "float64", 8, "d", "<f8"),
        DType(12, "bfloat16", 2, None, "bfloat16"),
        DType(13, "bool", 1, "?", "?"),
    )
}
_BY_NAME = {d.name: d for d in DTYPES.values()}
MAX_NDIM = 32
_HEAD = struct.Struct("<HHI")


@dataclass(frozen=True)
class TypedArray:
    """A decoded typed array when numpy is not installed: ``dtype`` name, ``shape`` and the
    element bytes (little-endian, C order) in ``data``."""

    dtype: str
    shape: tuple[int, ...]
    data: memoryview

    def view(self) -> memoryview:
        """The elements as a memoryview of their type and shape (for the dtypes Python's
        memoryview can cast to; float16 and bfloat16 stay bytes)."""
        d = _BY_NAME[self.dtype]
        if d.struct_char is None or d.struct_char == "e" or not _lib.is_little_endian():
            return self.data
        fmt: Any = d.struct_char  # a format the checks above allow
        return self.data.cast(fmt, self.shape) if self.shape else self.data.cast(fmt)

    def tolist(self) -> Any:
        """The elements as (nested) Python lists."""
        v = self.view()
        if v.format == "B" and self.dtype != "uint8":
            raise TypeError(f"no Python element type for {self.dtype}")
        return v.tolist()

    def to_numpy(self) -> Any:
        """The array as a numpy array (sharing the bytes; needs numpy)."""
        import numpy as np

        return np.frombuffer(self.data, dtype=_numpy_dtype(np, DTYPES[_code(self.dtype)])).reshape(
            self.shape
        )


def _code(name: str) -> int:
    return _BY_NAME[name].code


_numpy_module: Any = None
_numpy_tried = False


def numpy() -> Any:
    """The numpy module, or None when it is not installed (imported on first need)."""
    global _numpy_module, _numpy_tried
    if not _numpy_tried:
        _numpy_tried = True
        try:
            import numpy as np

            _numpy_module = np
        except ImportError:
            _numpy_module = None
    return _numpy_module


def _numpy_dtype(np: Any, d: DType) -> Any:
    if d.code == 12:
        try:
            import ml_dtypes  # type: ignore[import-not-found]  # bfloat16 lives outside numpy

            return np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            return np.dtype("<u2")  # the raw 16-bit patterns
    return np.dtype(d.numpy)


def _is_numpy_array(value: object) -> bool:
    t = type(value)
    return t.__module__ == "numpy" and t.__name__ == "ndarray"


_FORMAT_KIND = {
    **{c: "u" for c in "BHILQN"},
    **{c: "i" for c in "bhilqn"},
    **{c: "f" for c in "efd"},
    "?": "b",
}
_KIND_SIZE = {
    ("u", 1): 1,
    ("i", 1): 2,
    ("u", 2): 3,
    ("i", 2): 4,
    ("u", 4): 5,
    ("i", 4): 6,
    ("u", 8): 7,
    ("i", 8): 8,
    ("f", 2): 9,
    ("f", 4): 10,
    ("f", 8): 11,
    ("b", 1): 13,
}


def _dtype_of_format(fmt: str, itemsize: int) -> DType:
    """The typed-array dtype of a buffer format (struct syntax) with ``itemsize``."""
    order = fmt[0] if fmt and fmt[0] in "@=<>!" else "@"
    letter = fmt[1:] if order != "@" or fmt.startswith("@") else fmt
    big = order in ">!" or (order in "@=" and not _lib.is_little_endian())
    kind = _FORMAT_KIND.get(letter)
    code = _KIND_SIZE.get((kind, itemsize)) if kind else None
    if code is None or big:
        why = "big-endian" if big else "an element type the protocol has no dtype for"
        raise TypeError(f"cannot send a buffer of format {fmt!r} as a typed array: {why}")
    return DTYPES[code]


def typed_array_header(dtype: int, shape: tuple[int, ...]) -> bytes:
    """The typed-array header: dtype, ndim, reserved, then the shape."""
    if len(shape) > MAX_NDIM:
        raise ValueError(f"a typed array has at most {MAX_NDIM} dimensions, not {len(shape)}")
    return _HEAD.pack(dtype, len(shape), 0) + struct.pack(f"<{len(shape)}Q", *shape)


@dataclass(frozen=True)
class ArrayParts:
    """A typed array ready to send: its header, and its elements (exported, C-contiguous)."""

    head: bytes
    body: Any  # what the elements are exported from (bytes or an object of the buffer protocol)
    nbytes: int


def array_parts(value: Any) -> ArrayParts:
    """Splits an array-like value into the typed-array header and its element buffer."""
    if _is_numpy_array(value):
        np = numpy()
        arr = value
        name = arr.dtype.name
        if name == "bfloat16":
            d = DTYPES[12]
            arr = arr.view(np.uint16)
        else:
            code = _KIND_SIZE.get((arr.dtype.kind, arr.dtype.itemsize))
            if code is None:
                raise TypeError(f"the protocol has no dtype for numpy {arr.dtype}")
            d = DTYPES[code]
        if arr.dtype.byteorder == ">" or (
            arr.dtype.byteorder == "=" and not _lib.is_little_endian()
        ):
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        return ArrayParts(typed_array_header(d.code, tuple(value.shape)), arr, arr.nbytes)
    m = value if isinstance(value, memoryview) else memoryview(value)
    d = _dtype_of_format(m.format, m.itemsize)
    shape = tuple(m.shape) if m.shape is not None else ()
    body: Any = m if m.c_contiguous else m.tobytes(order="C")
    return ArrayParts(typed_array_header(d.code, shape), body, m.nbytes)


def _is_byte_view(m: memoryview) -> bool:
    return m.format in ("B", "b", "c", "@B", "@b", "@c") and m.ndim == 1


class Outgoing:
    """An encoded payload: ``data`` (bytes, or an object of the buffer protocol, C-contiguous)
    is sent as it is after ``head`` (the typed-array header, or empty). A plain class: one is
    made per call."""

    __slots__ = ("content_type", "data", "head", "nbytes")

    def __init__(self, content_type: int, data: Any, nbytes: int, head: bytes = b"") -> None:
        self.content_type = content_type
        self.data = data
        self.nbytes = nbytes
        self.head = head

    @property
    def total(self) -> int:
        """Bytes of the whole payload."""
        return len(self.head) + self.nbytes

    def contiguous(self) -> Any:
        """The whole payload as one buffer (a copy only when a header must precede the data)."""
        if not self.head:
            return self.data
        out = bytearray(self.total)
        out[: len(self.head)] = self.head
        if self.nbytes:
            out[len(self.head) :] = memoryview(self.data).cast("B")
        return out


def _json(value: Any) -> bytes:
    try:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as e:
        raise TypeError(f"cannot send {type(value).__name__} as JSON: {e}") from e


def encode(value: Any, content_type: int | None = None) -> Outgoing:
    """Encodes ``value`` for sending (see the module's table). ``content_type`` tags bytes,
    str or buffers with another content type, or asks for JSON (``JSON``) of any value."""
    if content_type is not None and not 0 <= content_type <= 0xFFFF_FFFF:
        raise ValueError(f"a content type is a u32, not {content_type}")
    if value is NOTHING or value is None:
        if content_type is not None and content_type == JSON:
            return Outgoing(JSON, b"null", 4)
        return Outgoing(BYTES if content_type is None else content_type, b"", 0)
    if isinstance(value, Payload):
        ct = value.content_type if content_type is None else content_type
        return _raw(value.data, ct)
    if isinstance(value, TypedArray):
        head = typed_array_header(_code(value.dtype), value.shape)
        return Outgoing(TYPED_ARRAY, value.data, value.data.nbytes, head)
    if content_type == JSON and not isinstance(value, (bytes, bytearray, memoryview)):
        data = _json(value)
        return Outgoing(JSON, data, len(data))
    if isinstance(value, bytes):
        return Outgoing(BYTES if content_type is None else content_type, value, len(value))
    if isinstance(value, str):
        data = value.encode("utf-8")
        return Outgoing(UTF8 if content_type is None else content_type, data, len(data))
    if isinstance(value, (dict, list, tuple, int, float)) and content_type is None:
        data = _json(value)
        return Outgoing(JSON, data, len(data))
    if isinstance(value, (bytearray, memoryview)) or content_type is not None:
        m = memoryview(value)
        if isinstance(value, bytearray) or _is_byte_view(m) or content_type is not None:
            return _raw(value, BYTES if content_type is None else content_type)
        parts = array_parts(m)
        return Outgoing(TYPED_ARRAY, parts.body, parts.nbytes, parts.head)
    if _is_numpy_array(value) or isinstance(value, array.array):
        parts = array_parts(value)
        return Outgoing(TYPED_ARRAY, parts.body, parts.nbytes, parts.head)
    try:
        m = memoryview(value)
    except TypeError:
        data = _json(value)  # raises TypeError naming the type when it is not JSON-able
        return Outgoing(JSON, data, len(data))
    if _is_byte_view(m):
        # A plain byte buffer (mmap, ...): bytes, not a one-dimensional uint8 array.
        return _raw(value, BYTES)
    parts = array_parts(m)
    return Outgoing(TYPED_ARRAY, parts.body, parts.nbytes, parts.head)


def _raw(data: Any, content_type: int) -> Outgoing:
    if isinstance(data, bytes):
        return Outgoing(content_type, data, len(data))
    m = memoryview(data)
    if not m.c_contiguous:
        b = m.tobytes(order="C")
        return Outgoing(content_type, b, len(b))
    return Outgoing(content_type, data, m.nbytes)


# --- decoding ----------------------------------------------------------------------------------


def parse_typed_array(data: memoryview) -> tuple[DType, tuple[int, ...], int]:
    """Validates a typed-array payload (CT-2) and gives its dtype, shape and the offset of its
    elements. Raises :class:`InvalidArgument` (CT-3) when it breaks CT-2."""
    if len(data) < _HEAD.size:
        raise InvalidArgument(f"typed array: {len(data)} bytes, shorter than its 8-byte header")
    dtype, ndim, _reserved = _HEAD.unpack_from(data, 0)
    d = DTYPES.get(dtype)
    if d is None:
        raise InvalidArgument(f"typed array: dtype {dtype} is not in the registry (1 to 13)")
    if ndim > MAX_NDIM:
        raise InvalidArgument(f"typed array: ndim {ndim} exceeds {MAX_NDIM}")
    offset = _HEAD.size + 8 * ndim
    if len(data) < offset:
        raise InvalidArgument(f"typed array: {len(data)} bytes cannot hold {ndim} dimensions")
    shape = struct.unpack_from(f"<{ndim}Q", data, _HEAD.size)
    count = 1
    for n in shape:
        count *= n
        if count >= 1 << 64:
            raise InvalidArgument(f"typed array: the product of shape {shape} overflows 64 bits")
    want = count * d.itemsize
    have = len(data) - offset
    if want >= 1 << 64 or have != want:
        raise InvalidArgument(
            f"typed array: shape {shape} of {d.name} needs {want} element bytes, found {have}"
        )
    return d, tuple(shape), offset


def decode(data: bytes | memoryview, content_type: int) -> Any:
    """Decodes a received payload by its content type (see the module's docstring)."""
    if content_type == BYTES:
        return bytes(data) if len(data) else None
    if content_type == UTF8:
        try:
            return str(data, "utf-8")
        except UnicodeDecodeError as e:
            raise InvalidArgument(f"a payload tagged UTF8 is not UTF-8: {e}") from e
    if content_type == JSON:
        try:
            return json.loads(bytes(data))
        except ValueError as e:
            raise InvalidArgument(f"a payload tagged JSON is not JSON: {e}") from e
        except RecursionError as e:
            raise InvalidArgument("a JSON payload nests deeper than Python can decode") from e
    if content_type == TYPED_ARRAY:
        m = data if isinstance(data, memoryview) else memoryview(data)
        d, shape, offset = parse_typed_array(m)
        np = numpy()
        if np is None:
            return TypedArray(d.name, shape, m[offset:])
        count = 1
        for n in shape:
            count *= n
        return np.frombuffer(m, dtype=_numpy_dtype(np, d), count=count, offset=offset).reshape(
            shape
        )
    return Payload(bytes(data), content_type)
