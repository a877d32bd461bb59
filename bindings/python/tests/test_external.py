"""A pool whose workers someone else starts (``Pool(external=True)``): it reserves their
entries and adopts a Python worker thread and worker processes (Python and Rust) started here
with ``KNIT_REGION`` / ``KNIT_SLOT``, the way a supervisor would."""

from __future__ import annotations

import os
import struct
import subprocess
import threading
from collections.abc import Iterator

import pytest
from conftest import PYTHON_WORKER

import knit

RESERVED, DETACHED, DEAD = 1, 4, 5


def start(command: list[str], pool: knit.Pool, slot: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, KNIT_REGION=pool.info().name, KNIT_SLOT=str(slot))
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)


class ThreadWorker:
    """A Python worker of the pool's region, serving on a thread of this process."""

    def __init__(self, pool: knit.Pool, slot: int) -> None:
        functions = {"echo": lambda data: data, "twice": lambda s: s + s}
        self.worker = knit.Worker(functions, region=pool.info().name, slot=slot)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as e:  # checked by the test
            self.error = e

    def join(self) -> BaseException | None:
        self.thread.join(20)
        assert not self.thread.is_alive(), "the worker did not end"
        return self.error


@pytest.fixture
def pool() -> Iterator[knit.Pool]:
    with knit.Pool(workers=2, external=True) as p:
        yield p


def test_exactly_one_kind_of_worker() -> None:
    with pytest.raises(ValueError):
        knit.Pool(["worker"], external=True)
    with pytest.raises(ValueError):
        knit.Pool()


def test_entries_are_reserved_and_nobody_is_waited_for(pool: knit.Pool) -> None:
    assert [pool.participant(i).state for i in (1, 2)] == [RESERVED, RESERVED]
    assert [w.ready for w in pool.workers()] == [False, False]
    with pytest.raises(knit.TimedOut):
        pool.wait_worker(1, timeout=0.05)
    with pytest.raises(knit.InvalidArgument):
        pool.wait_worker(3, timeout=0)


def test_a_thread_worker_is_adopted_released_and_replaced(pool: knit.Pool) -> None:
    first = ThreadWorker(pool, 1)
    assert pool.wait_worker(1, timeout=20) == ["echo", "twice"]
    assert pool.call_on(1, "twice", "ab") == "abab"
    assert pool.call("echo", b"any") == b"any"  # the only ready worker
    with pool.submit_on(1, "echo", b"async") as call:
        assert call.result(20) == b"async"
    with pytest.raises(knit.UnknownFunction):
        pool.call_on(1, "missing")
    with pytest.raises(knit.SlotTaken):
        pool.reserve_worker(1)
    assert pool.release_worker(1, timeout=20).state == DETACHED
    assert first.join() is None  # SHUTDOWN: a clean end
    with pytest.raises(knit.PeerDied):
        pool.call_on(1, "echo", b"x")
    assert pool.reserve_worker(1) == 2
    second = ThreadWorker(pool, 1)
    assert pool.wait_worker(1, timeout=20) == ["echo", "twice"]
    assert pool.call_on(1, "echo", b"epoch 2") == b"epoch 2"
    pool.close()
    assert second.join() is None


def test_an_unclaimed_entry_is_withdrawn(pool: knit.Pool) -> None:
    assert pool.release_worker(2, timeout=20).state == DEAD
    late = ThreadWorker(pool, 2)
    assert isinstance(late.join(), knit.SlotTaken)


def test_processes_of_two_languages_and_a_kill(pool: knit.Pool, rust_worker: str) -> None:
    python = start(PYTHON_WORKER, pool, 1)
    rust = start([rust_worker], pool, 2)
    try:
        assert "echo" in pool.wait_worker(1, timeout=20)
        assert "echo" in pool.wait_worker(2, timeout=20)
        assert pool.worker(2).pid == rust.pid
        assert pool.call_on(1, "hello", "Python") == "Hello, Python"
        assert pool.call_on(2, "echo", b"Rust") == b"Rust"
        # The Rust worker is not this pool's child: its death is found through its entry.
        call = pool.submit_on(2, "sleep_until_cancelled", struct.pack("<Q", 60_000))
        rust.kill()
        rust.wait()
        with call, pytest.raises(knit.PeerDied):
            call.result(20)
        assert pool.worker(2).dead
        assert pool.call("hello", "again") == "Hello, again"
    finally:
        pool.close()
        assert python.wait(20) == 0  # the pool's shutdown let it go
        rust.kill()
        rust.wait()
