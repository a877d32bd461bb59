"""Pools whose workers are threads of this process running Python handlers."""

from __future__ import annotations

import asyncio
import gc
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


def test_results_their_content_type_does_not_describe_are_argument_errors() -> None:
    bad = {
        "bad_json": lambda: knit.Payload(b"{", knit.JSON),
        "bad_text": lambda: knit.Payload(b"\xff\xfe", knit.UTF8),
        "bad_array": lambda: knit.Payload(b"\x63\x00\x00\x00\x00\x00\x00\x00", knit.TYPED_ARRAY),
        "deep_json": lambda: knit.Payload(b"[" * 100_000 + b"]" * 100_000, knit.JSON),
    }
    with knit.Pool(handlers=bad) as pool:
        for name in bad:
            with pytest.raises(knit.InvalidArgument):
                pool.call(name)

        async def main() -> None:
            with pytest.raises(knit.InvalidArgument):
                await pool.acall.bad_json()
            with pytest.raises(knit.InvalidArgument):
                await pool.acall.deep_json()  # raised in the task, not lost in the loop

        asyncio.run(main())


def test_a_pool_nobody_holds_is_freed_at_once() -> None:
    gc.disable()  # only reference counting may free it
    try:
        _pool_freed_by_refcount()
    finally:
        gc.enable()


def _pool_freed_by_refcount() -> None:
    before = knit.handle_count()
    pool = knit.Pool(handlers={"hello": lambda n: f"Hello, {n}"})
    hello = pool.call.hello
    assert hello("x") == "Hello, x"
    assert knit.handle_count() == before + 1
    del pool  # no reference cycle: freed without waiting for the garbage collector
    assert knit.handle_count() == before
    with pytest.raises(knit.Shutdown):
        hello("y")
