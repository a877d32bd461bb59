#!/usr/bin/env python3
"""Round trip of a 64-byte call from Python: Knit into a Rust worker process, against
multiprocessing.Pipe and multiprocessing.Pool.apply, measured in the same run.

    python3 bindings/python/bench.py [--worker PATH] [--seconds S] [--size BYTES] [--json FILE]

Every case echoes SIZE bytes through another process and waits for them back, one call at a
time, for S seconds after a warm-up; the table gives p50, p99 and mean latency and each
baseline's p50 as a multiple of Knit's (the DESIGN.md bar: "several times faster than
multiprocessing.Pipe"). The Rust worker is knit/src/bin/knit-test-worker.rs (`echo`); build it
with `cargo build --release -p knit --bin knit-test-worker` and libknit with `scripts/build-c`
(release builds: the debug ones are several times slower). A Knit Python worker (this script
with --serve) is measured too, for reference.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _find_worker() -> str:
    named = os.environ.get("KNIT_TEST_WORKER")
    if named:
        return named
    targets = [Path(os.environ["CARGO_TARGET_DIR"])] if os.environ.get("CARGO_TARGET_DIR") else []
    targets.append(REPO / "target")
    for profile in ("release", "debug"):
        for t in targets:
            p = t / profile / "knit-test-worker"
            if p.is_file():
                return str(p)
    sys.exit("knit-test-worker not found: cargo build --release -p knit --bin knit-test-worker")


def measure(one_call: Callable[[], object], seconds: float, warmup: int) -> list[int]:
    """Latencies in nanoseconds of calls made back to back for ``seconds``."""
    for _ in range(warmup):
        one_call()
    out: list[int] = []
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    while True:
        t0 = clock()
        one_call()
        t1 = clock()
        out.append(t1 - t0)
        if t1 >= end:
            return out


def summary(name: str, samples: list[int]) -> dict[str, float | int | str]:
    s = sorted(samples)
    return {
        "case": name,
        "calls": len(s),
        "p50_us": s[len(s) // 2] / 1000,
        "p99_us": s[min(len(s) - 1, len(s) * 99 // 100)] / 1000,
        "mean_us": statistics.fmean(s) / 1000,
    }


def _pipe_echo(conn: Connection) -> None:
    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:
            return
        conn.send_bytes(data)


def _identity(data: bytes) -> bytes:
    return data


def bench_knit(command: list[str], data: bytes, seconds: float, spin: str | None) -> list[int]:
    import knit

    with knit.Pool(command, spin=spin) as pool:
        echo = pool.call.echo
        assert echo(data) == data
        return measure(lambda: echo(data), seconds, 2000)


def bench_pipe(data: bytes, seconds: float) -> list[int]:
    parent, child = multiprocessing.Pipe()
    p = multiprocessing.Process(target=_pipe_echo, args=(child,), daemon=True)
    p.start()
    try:

        def one() -> bytes:
            parent.send_bytes(data)
            return parent.recv_bytes()

        assert one() == data
        return measure(one, seconds, 2000)
    finally:
        parent.close()
        p.join(5)


def bench_pool_apply(data: bytes, seconds: float) -> list[int]:
    with multiprocessing.Pool(1) as pool:
        assert pool.apply(_identity, (data,)) == data
        return measure(lambda: pool.apply(_identity, (data,)), seconds, 500)


def serve() -> None:
    """This script as a Knit worker in Python: `echo` of the request's bytes."""
    sys.path.insert(0, str(HERE))
    import knit

    knit.serve({"echo": knit.handler(lambda req: bytes(req.payload), raw=True)})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--worker", help="the Rust worker (default: knit-test-worker, release first)")
    ap.add_argument("--seconds", type=float, default=2.0, help="per case (default 2)")
    ap.add_argument("--size", type=int, default=64, help="payload bytes (default 64)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument(
        "--realtime",
        action="store_true",
        help="run every case as SCHED_FIFO priority 10 (root; inherited by the worker and\n"
        "child processes), so that other work cannot take a core from a spinning pair",
    )
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve()
        return 0
    sys.path.insert(0, str(HERE))
    import knit
    import knit._lib

    worker = args.worker or _find_worker()
    policy = "SCHED_OTHER"
    if args.realtime:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        policy = "SCHED_FIFO priority 10"
    data = os.urandom(args.size)
    print(f"libknit {knit.version()} from {knit._lib.lib.path}")
    print(f"Rust worker {worker}; {args.size} B payload, {args.seconds} s per case")
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    print(f"load average {load:.2f} on {cpus} CPUs; every case runs as {policy}")
    if load >= 0.5 and not args.realtime:
        print(
            "warning: the machine is busy; spinning waiters (Knit's default) then lose whole "
            "time slices to other processes: compare the no-spin row, run on an idle machine, "
            "or use --realtime"
        )
    rows = [
        summary("knit -> Rust worker", bench_knit([worker], data, args.seconds, None)),
        summary(
            "knit -> Rust worker, host parks at once",
            bench_knit([worker], data, args.seconds, "none"),
        ),
        summary(
            "knit -> Python worker",
            bench_knit(
                [sys.executable, str(Path(__file__).resolve()), "--serve"], data, args.seconds, None
            ),
        ),
        summary("multiprocessing.Pipe round trip", bench_pipe(data, args.seconds)),
        summary("multiprocessing.Pool.apply", bench_pool_apply(data, args.seconds)),
    ]
    print()
    print(f"| {'case':<40} | {'calls':>8} | {'p50 µs':>8} | {'p99 µs':>8} | {'mean µs':>8} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    for r in rows:
        print(
            f"| {r['case']:<40} | {r['calls']:>8} | {r['p50_us']:>8.2f} | {r['p99_us']:>8.2f} | "
            f"{r['mean_us']:>8.2f} |"
        )
    pipe, apply_ = float(rows[3]["p50_us"]), float(rows[4]["p50_us"])
    print()
    for r in rows[:2]:
        knit_p50 = float(r["p50_us"])
        r["pipe_ratio"], r["apply_ratio"] = pipe / knit_p50, apply_ / knit_p50
        print(
            f"{r['case']} ({args.size} B): {r['pipe_ratio']:.1f}x the speed of "
            f"multiprocessing.Pipe, {r['apply_ratio']:.1f}x the speed of "
            f"multiprocessing.Pool.apply (p50 latency ratios)."
        )
    if args.json:
        result = {"size": args.size, "load": load, "cpus": cpus, "policy": policy, "rows": rows}
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
