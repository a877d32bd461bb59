"""A Knit host in Python calling a worker of any language: by default the Python example
worker next to this file; give another command to call it instead, for example the C worker
(examples/c/build/worker) or the Rust test worker (target/debug/knit-test-worker).

    python3 bindings/python/examples/host.py [WORKER COMMAND...]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import knit


def main() -> int:
    command = sys.argv[1:] or [sys.executable, str(Path(__file__).with_name("worker.py"))]
    with knit.Pool(command, workers=2) as pool:
        print("hello    ->", pool.call.hello("World"))
        data = bytes(range(256)) * 4096  # 1 MiB
        print("checksum ->", pool.call.checksum(data)[::-1].hex(), f"({len(data)} bytes in)")
        try:
            pool.call("no-such-function", b"")
        except knit.UnknownFunction as e:
            print("unknown  ->", e)

        async def many() -> list[str]:
            return await asyncio.gather(*(pool.acall.hello(str(i)) for i in range(3)))

        print("asyncio  ->", asyncio.run(many()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
