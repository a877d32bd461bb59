"""A Knit worker in Python, serving `hello` and `checksum` like examples/c/worker.c and the
Rust test worker. A host in any language starts it as a process worker, for example:

    Rust:    Pool::builder()
                 .process(Command::new("python3").arg("bindings/python/examples/worker.py"))
    Python:  knit.Pool(["python3", "bindings/python/examples/worker.py"])

    hello     "World" -> "Hello, World"                            (UTF-8 text)
    checksum  any bytes -> FNV-1a-64 over little-endian 8-byte words, then the tail bytes,
              xor the length, as 8 little-endian bytes
"""

from __future__ import annotations

import struct

import knit

MASK = (1 << 64) - 1


@knit.function
def hello(name: str) -> str:
    return f"Hello, {name}"


@knit.function(raw=True)
def checksum(request: knit.Request) -> bytes:
    data = request.payload  # the request bytes, read in place (valid during this handler)
    h = 0xCBF29CE484222325
    whole = len(data) // 8 * 8
    for (word,) in struct.iter_unpack("<Q", data[:whole]):
        h = ((h ^ word) * 0x100000001B3) & MASK
    for byte in data[whole:]:
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return struct.pack("<Q", h ^ len(data))


if __name__ == "__main__":
    knit.serve()  # until the host shuts the pool down
