"""The codec of knit.payload, without a pool: content types, typed-array headers, CT-2."""

from __future__ import annotations

import array
import struct

import pytest

import knit
from knit import payload


def test_plain_values_pick_their_content_types() -> None:
    assert payload.encode(b"ab").content_type == knit.BYTES
    assert payload.encode("é").data == "é".encode()
    assert payload.encode("é").content_type == knit.UTF8
    assert payload.encode({"a": [1, 2.5, None]}).data == b'{"a":[1,2.5,null]}'
    assert payload.encode([1, 2]).content_type == knit.JSON
    assert payload.encode(None).nbytes == 0
    assert payload.encode(payload.NOTHING).content_type == knit.BYTES


def test_bytes_like_objects_are_sent_without_a_copy() -> None:
    data = bytearray(b"xyz")
    out = payload.encode(data)
    assert out.content_type == knit.BYTES and out.data is data and out.contiguous() is data
    raw = b"123"
    assert payload.encode(raw).data is raw


def test_explicit_content_types_tag_bytes_and_ask_for_json() -> None:
    assert payload.encode(b"\xa1", knit.CBOR).content_type == knit.CBOR
    assert payload.encode("s", knit.JSON).data == b'"s"'
    tagged = payload.encode(knit.Payload(b"m", 0x8000_0001))
    assert (tagged.content_type, tagged.data) == (0x8000_0001, b"m")
    with pytest.raises(ValueError):
        payload.encode(b"", 1 << 32)
    with pytest.raises(TypeError):
        payload.encode(object())


def test_typed_array_header_follows_spec_09() -> None:
    out = payload.encode(array.array("i", [1, -2, 3]))
    assert out.content_type == knit.TYPED_ARRAY
    # dtype 6 (i32), ndim 1, reserved 0, shape [3]
    assert out.head == struct.pack("<HHIQ", 6, 1, 0, 3)
    whole = bytes(out.contiguous())
    assert whole[len(out.head) :] == struct.pack("<3i", 1, -2, 3)


def test_typed_memoryview_keeps_its_shape() -> None:
    m = memoryview(array.array("d", [0.5] * 6)).cast("B").cast("d", (2, 3))
    out = payload.encode(m)
    assert out.head == struct.pack("<HHI2Q", 11, 2, 0, 2, 3)


def test_decoding_by_content_type() -> None:
    assert payload.decode(b"", knit.BYTES) is None
    assert payload.decode(b"ab", knit.BYTES) == b"ab"
    assert payload.decode("é".encode(), knit.UTF8) == "é"
    assert payload.decode(b'{"k":1}', knit.JSON) == {"k": 1}
    other = payload.decode(b"\x01", 0x9000_0000)
    assert other == knit.Payload(b"\x01", 0x9000_0000)  # CT-1: delivered as is


def test_malformed_payloads_are_argument_errors() -> None:
    with pytest.raises(knit.InvalidArgument):
        payload.decode(b"\xff", knit.UTF8)
    with pytest.raises(knit.InvalidArgument):
        payload.decode(b"{", knit.JSON)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (struct.pack("<HHI", 99, 0, 0), "dtype"),
        (struct.pack("<HHI", 1, 33, 0), "ndim"),
        (struct.pack("<HHIQ", 1, 1, 0, 4) + b"abc", "element bytes"),
        (struct.pack("<HHI2Q", 7, 2, 0, 1 << 40, 1 << 40), "overflow"),
        (struct.pack("<HH", 1, 0), "header"),
        (struct.pack("<HHI", 1, 2, 0) + b"\0" * 8, "dimensions"),
    ],
)
def test_typed_arrays_breaking_ct2_are_refused(body: bytes, why: str) -> None:
    with pytest.raises(knit.InvalidArgument):
        payload.parse_typed_array(memoryview(body))


def test_typed_array_without_numpy_gives_its_elements() -> None:
    body = struct.pack("<HHI2Q", 3, 2, 0, 2, 2) + struct.pack("<4H", 1, 2, 3, 4)
    d, shape, offset = payload.parse_typed_array(memoryview(body))
    ta = knit.TypedArray(d.name, shape, memoryview(body)[offset:])
    assert ta.tolist() == [[1, 2], [3, 4]]


def test_numpy_arrays_round_trip_through_the_codec() -> None:
    np = pytest.importorskip("numpy")
    for dtype in ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8", "?"]:
        a = (np.arange(12) % 2 == 0) if dtype == "?" else np.arange(12, dtype=dtype)
        a = a.reshape(3, 4)
        out = payload.encode(a)
        back = payload.decode(bytes(out.contiguous()), out.content_type)
        assert back.dtype == a.dtype and back.shape == (3, 4) and (back == a).all()


def test_numpy_non_contiguous_and_big_endian_arrays_are_normalised() -> None:
    np = pytest.importorskip("numpy")
    a = np.arange(20, dtype=">i4").reshape(4, 5)[:, ::2]
    out = payload.encode(a)
    back = payload.decode(bytes(out.contiguous()), out.content_type)
    assert back.dtype == np.dtype("<i4") and (back == a).all()
