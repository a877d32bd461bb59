"""Pools whose workers are threads of this process running Python handlers."""

from __future__ import annotations

import threading

import pytest

import knit


def test_thread_workers_run_python_handlers() -> None:
    seen: set[int] = set()

    def where(_: object = None) -> str:
        seen.add(threading.get_ident())
        return threading.current_thread().name

    with knit.Pool(handlers={"where": where, "hello": lambda n: f"Hello, {n}"}, workers=2) as pool:
        assert pool.call.hello("threads") == "Hello, threads"
        pool.call.where()
        assert threading.get_ident() not in seen  # ran on a worker thread, not the caller's
        assert all(w.pid == 0 and w.ready for w in pool.workers())


def test_handler_options_raw_and_streaming() -> None:
    def size(req: knit.Request) -> int:
        return len(req.payload)

    def chunks(n: int):  # type: ignore[no-untyped-def]
        yield from range(n)
        return "done"

    functions = {"size": knit.handler(size, raw=True), "chunks": chunks}
    with knit.Pool(handlers=functions) as pool:
        assert pool.call.size(b"12345") == 5
        with pool.stream("chunks", 3) as s:
            assert list(s) == [0, 1, 2] and s.result() == "done"


def test_open_channel_needs_a_streaming_handler() -> None:
    def opens(req: knit.Request) -> None:
        req.open_channel()

    with (
        knit.Pool(handlers={"opens": knit.handler(opens, raw=True)}) as pool,
        pytest.raises(knit.InvalidArgument),
    ):
        pool.call.opens()


def test_a_pool_needs_exactly_one_kind_of_worker() -> None:
    with pytest.raises(ValueError):
        knit.Pool()
    with pytest.raises(ValueError):
        knit.Pool(["x"], handlers={})
