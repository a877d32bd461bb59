"""A Python worker process whose host is killed with SIGKILL does not outlive it. (libknit's
pools give process workers PR_SET_PDEATHSIG by default; the worker's own LIVE-4 detection of
a dead host is checked by the conformance cases liveness.host-killed-*, run by
scripts/test-python with this binding's agent as the worker.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import PYTHON_WORKER

HOST = """
import sys, knit
with knit.Pool({worker!r}) as pool:
    print(pool.worker(1).pid, flush=True)
    sys.stdin.read()  # until killed
"""


def gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_the_worker_leaves_when_its_host_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOST.format(worker=PYTHON_WORKER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as host:
        try:
            worker_pid = int(host.stdout.readline())  # type: ignore[union-attr]
            assert not gone(worker_pid)
            os.kill(host.pid, signal.SIGKILL)
            host.wait(10)
            # A bounded wait for the worker to go.
            for _ in range(1000):
                if gone(worker_pid):
                    break
                time.sleep(0.01)
            assert gone(worker_pid)
        finally:
            host.kill()
