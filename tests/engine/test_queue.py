import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from app.engine.queue import ReconcileQueue

Handler = Callable[[str], Awaitable[None]]
MakeQueue = Callable[..., ReconcileQueue]


@pytest.fixture
async def make_queue() -> AsyncIterator[MakeQueue]:
    started: list[ReconcileQueue] = []

    def make(handle: Handler, workers: int = 4) -> ReconcileQueue:
        queue = ReconcileQueue(workers)
        queue.start(handle)
        started.append(queue)
        return queue

    yield make
    for queue in started:
        await queue.stop()


async def settle(runs: list[str], count: int) -> None:
    """Let the workers go on until `count` runs happened (bounded), then a little more."""
    for _ in range(1000):
        if len(runs) >= count:
            break
        await asyncio.sleep(0.01)
    for _ in range(20):
        await asyncio.sleep(0)


async def test_news_during_a_run_coalesces_into_one_more_run(make_queue: MakeQueue) -> None:
    runs: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def handle(service: str) -> None:
        runs.append(service)
        started.set()
        await release.wait()

    queue = make_queue(handle)
    queue.enqueue("api")
    await asyncio.wait_for(started.wait(), timeout=10)
    for _ in range(49):
        queue.enqueue("api")
    release.set()
    await settle(runs, 2)
    assert runs == ["api", "api"]


async def test_queued_service_is_queued_once(make_queue: MakeQueue) -> None:
    runs: list[str] = []

    async def handle(service: str) -> None:
        runs.append(service)

    queue = make_queue(handle)
    for _ in range(50):
        queue.enqueue("api")  # no await: the worker has not picked it up yet
    await settle(runs, 1)
    assert runs == ["api"]


async def test_different_services_run_in_parallel(make_queue: MakeQueue) -> None:
    started = {"api": asyncio.Event(), "web": asyncio.Event()}

    async def handle(service: str) -> None:
        started[service].set()
        other = "web" if service == "api" else "api"
        await started[other].wait()  # deadlocks unless both run at once

    queue = make_queue(handle, workers=2)
    queue.enqueue("api")
    queue.enqueue("web")
    await asyncio.wait_for(queue.join(), timeout=10)


async def test_handler_error_is_logged_and_the_worker_goes_on(
    make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[str] = []

    async def handle(service: str) -> None:
        runs.append(service)
        if service == "bad":
            raise RuntimeError("boom")

    queue = make_queue(handle, workers=1)
    with caplog.at_level(logging.ERROR, logger="app.engine.queue"):
        queue.enqueue("bad")
        queue.enqueue("good")
        await settle(runs, 2)
    assert runs == ["bad", "good"]
    (entry,) = caplog.records
    assert entry.getMessage() == "reconcile failed service=bad"
    assert entry.exc_info is not None


async def test_join_waits_for_the_coalesced_run(make_queue: MakeQueue) -> None:
    runs: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def handle(service: str) -> None:
        started.set()
        await release.wait()
        await asyncio.sleep(0.05)  # a reconcile takes a while (no timing is asserted)
        runs.append(service)

    queue = make_queue(handle, workers=1)
    queue.enqueue("api")
    await asyncio.wait_for(started.wait(), timeout=10)
    queue.enqueue("api")
    release.set()
    await asyncio.wait_for(queue.join(), timeout=10)
    assert runs == ["api", "api"]


async def test_queue_stops_although_a_reconcile_swallowed_its_cancellation() -> None:
    loop = asyncio.get_running_loop()
    parked: asyncio.Future[asyncio.Future[None]] = loop.create_future()

    async def handle(service: str) -> None:
        # What asyncio.wait_for does on Python 3.11 (redis-py sends every command through it):
        # cancelled just as what it awaits completes, it returns the result instead.
        sent: asyncio.Future[None] = loop.create_future()
        parked.set_result(sent)
        try:
            await asyncio.shield(sent)
        except asyncio.CancelledError:
            if not sent.done():
                raise

    queue = ReconcileQueue(workers=1)
    queue.start(handle)
    queue.enqueue("api")
    sent = await asyncio.wait_for(parked, timeout=10)
    sent.set_result(None)  # the command went out, and then the shutdown cancels the worker
    try:
        async with asyncio.timeout(2):  # a bound: it stops at once or never
            await queue.stop()
    finally:
        for task in queue._tasks:  # cancel what the failed stop() left running
            task.cancel()
        await asyncio.gather(*queue._tasks, return_exceptions=True)
