"""asyncio calls: readiness arrives from the library's ticket thread and never blocks
the event loop."""

from __future__ import annotations

import asyncio
import struct
import threading

import pytest

import knit


def test_many_concurrent_calls(rust_pool: knit.Pool) -> None:
    async def main() -> list[str]:
        return await asyncio.gather(*(rust_pool.acall.hello(str(i)) for i in range(200)))

    assert asyncio.run(main()) == [f"Hello, {i}" for i in range(200)]


def test_errors_are_raised_in_the_awaiting_task(rust_pool: knit.Pool) -> None:
    async def main() -> None:
        with pytest.raises(knit.UnknownFunction):
            await rust_pool.acall("nope", b"")
        with pytest.raises(knit.HandlerFailed):
            await rust_pool.acall.panic()
        with pytest.raises(knit.DeadlineExceeded):
            await rust_pool.acall.sleep_ms(struct.pack("<Q", 5000), deadline=0.02)

    asyncio.run(main())


def test_the_loop_runs_while_a_call_is_outstanding() -> None:
    # The handler waits for an event that only another coroutine of the same loop sets, after
    # the call was started: if acall blocked the loop this would end in DeadlineExceeded.
    release = threading.Event()

    def wait_for_release() -> str:
        return "released" if release.wait(timeout=20) else "never released"

    with knit.Pool(handlers={"wait_for_release": wait_for_release}) as pool:

        async def main() -> str:
            call = asyncio.ensure_future(pool.acall.wait_for_release(deadline=30))
            await asyncio.sleep(0)  # the call is sent
            assert not call.done()
            release.set()
            return await call

        assert asyncio.run(main()) == "released"


def test_a_cancelled_task_leaves_the_pool_usable(rust_pool: knit.Pool) -> None:
    async def main() -> str:
        task = asyncio.ensure_future(rust_pool.acall.sleep_ms(struct.pack("<Q", 100)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await rust_pool.acall.hello("after")  # the late outcome is dropped quietly

    assert asyncio.run(main()) == "Hello, after"


def test_pool_shutdown_fails_pending_calls(rust_worker: str) -> None:
    pool = knit.Pool([rust_worker])

    async def main() -> None:
        call = asyncio.ensure_future(pool.acall.sleep_until_cancelled(struct.pack("<Q", 60_000)))
        await asyncio.sleep(0)
        await asyncio.get_running_loop().run_in_executor(None, pool.close)
        with pytest.raises(knit.Shutdown):
            await call

    asyncio.run(main())


def test_cancelling_the_task_cancels_the_call_at_the_worker() -> None:
    # CANCEL-1: the task's cancellation reaches the handler (which would otherwise wait 20 s).
    started, saw_cancel = threading.Event(), threading.Event()

    def wait_for_cancel() -> str:
        started.set()
        for _ in range(20_000):
            if knit.cancelled():
                saw_cancel.set()
                raise knit.Cancelled("the host cancelled")
            threading.Event().wait(0.001)
        return "never cancelled"

    with knit.Pool(handlers={"wait_for_cancel": wait_for_cancel}) as pool:

        async def main() -> None:
            task = asyncio.ensure_future(pool.acall.wait_for_cancel())
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, started.wait, 20)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert saw_cancel.wait(timeout=20)
