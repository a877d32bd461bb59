"""The examples: the Python example worker answers like the Rust test worker, and the example
host runs against both."""

from __future__ import annotations

import subprocess
import sys

from checks import pattern
from conftest import HERE

import knit

EXAMPLES = HERE.parent / "examples"
WORKER = [sys.executable, str(EXAMPLES / "worker.py")]


def test_example_worker_matches_the_rust_worker(rust_pool: knit.Pool) -> None:
    with knit.Pool(WORKER) as pool:
        assert pool.call.hello("World") == "Hello, World"
        for length in (0, 7, 8, 4097, 300_001):
            data = pattern(length, 11)
            assert pool.call.checksum(data) == rust_pool.call.checksum(data)


def test_example_host_against_python_and_rust(rust_worker: str) -> None:
    for command in ([], [rust_worker]):
        run = subprocess.run(
            [sys.executable, str(EXAMPLES / "host.py"), *command],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert "hello    -> Hello, World" in run.stdout
        assert "checksum -> 2e9fe6c40de22325 (1048576 bytes in)" in run.stdout
        assert "UNKNOWN_FUNCTION" in run.stdout
