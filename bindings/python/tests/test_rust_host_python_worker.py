"""A Rust host (knit-ffi/examples/rust_host.rs, over the Rust runtime) driving the Python test
worker: every check it makes of a Knit test worker must pass."""

from __future__ import annotations

import subprocess

from conftest import PYTHON_WORKER


def test_rust_host_checks_the_python_worker(rust_host: str) -> None:
    run = subprocess.run(
        [rust_host, *PYTHON_WORKER], capture_output=True, text=True, timeout=300, check=False
    )
    lines = run.stdout.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert failed == [], run.stdout + run.stderr
    assert run.returncode == 0, run.stdout + run.stderr
    passed = [line for line in lines if line.startswith("PASS")]
    for check in [
        "PASS hello",
        "PASS handler failure crosses with its message",
        "PASS cancellation",
        "PASS peer death",
        "PASS restarted worker answers",
    ]:
        assert check in passed, run.stdout
