"""Fixtures: pools of the Rust test worker and of the Python test worker, and the paths of
the Rust peers (scripts/test-python builds them and names them in the environment)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

try:
    import knit
except ImportError:  # running from the source tree
    sys.path.insert(0, str(HERE.parent))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE.parent), os.environ.get("PYTHONPATH", "")) if p
    )
    import knit


def _peer(env: str, relative: str) -> str | None:
    """A Rust peer named by ``env`` (which must then exist), else found in the target dir."""
    named = os.environ.get(env)
    if named:
        if not Path(named).is_file():
            raise RuntimeError(f"{env}={named} does not exist")
        return named
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    candidate = target / relative
    return str(candidate) if candidate.is_file() else None


RUST_WORKER = _peer("KNIT_TEST_WORKER", "debug/knit-test-worker")
RUST_HOST = _peer("KNIT_RUST_HOST", "debug/examples/rust_host")
KNIT_CLI = _peer("KNIT_CLI", "debug/knit")
PYTHON_WORKER = [sys.executable, str(HERE / "python_worker.py")]


@pytest.fixture(scope="session")
def rust_worker() -> str:
    if RUST_WORKER is None:
        pytest.skip("knit-test-worker is not built (scripts/test-python builds it)")
    return RUST_WORKER


@pytest.fixture(scope="session")
def rust_host() -> str:
    if RUST_HOST is None:
        pytest.skip("the rust_host example is not built (scripts/test-python builds it)")
    return RUST_HOST


@pytest.fixture(scope="module")
def rust_pool(rust_worker: str) -> Iterator[knit.Pool]:
    with knit.Pool([rust_worker], workers=2) as pool:
        yield pool


@pytest.fixture(scope="module")
def py_pool() -> Iterator[knit.Pool]:
    with knit.Pool(PYTHON_WORKER, workers=2) as pool:
        yield pool
