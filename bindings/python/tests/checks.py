"""Helpers shared by the tests and the test worker: the checksum of Knit's test workers and
deterministic payloads."""

from __future__ import annotations

import struct

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def word_checksum(data: bytes | memoryview) -> int:
    """FNV-1a 64 over little-endian 8-byte words, then the tail bytes, xor the length: the
    `checksum` function of the Rust and C test workers."""
    b = bytes(data)
    h = FNV_OFFSET
    whole = len(b) // 8 * 8
    for (word,) in struct.iter_unpack("<Q", b[:whole]):
        h = ((h ^ word) * FNV_PRIME) & MASK
    for byte in b[whole:]:
        h = ((h ^ byte) * FNV_PRIME) & MASK
    return h ^ len(b)


def fnv1a(data: bytes | memoryview) -> int:
    """FNV-1a 64 over every byte."""
    h = FNV_OFFSET
    for byte in bytes(data):
        h = ((h ^ byte) * FNV_PRIME) & MASK
    return h


def pattern(length: int, seed: int) -> bytes:
    """Deterministic bytes (xorshift64)."""
    x = (seed | 1) & MASK
    out = bytearray(length)
    for i in range(length):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
        out[i] = (x >> 24) & 0xFF
    return bytes(out)
