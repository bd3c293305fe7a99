"""The scheduler's jobs run on the event loop: enqueueing from a pool thread is unsafe."""

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app.engine.scheduler import Scheduler


async def _first_enqueue(start: Callable[[Scheduler], None]) -> tuple[str, int]:
    seen: list[tuple[str, int]] = []
    done = asyncio.Event()

    def enqueue(service: str) -> None:
        seen.append((service, threading.get_ident()))
        done.set()

    scheduler = Scheduler(enqueue, lambda: ["api"])
    try:
        start(scheduler)
        await asyncio.wait_for(done.wait(), timeout=10)
    finally:
        scheduler.stop()
    return seen[0]


async def test_a_wake_up_enqueues_on_the_event_loop_thread() -> None:
    def start(scheduler: Scheduler) -> None:
        scheduler.start(tick_seconds=3600)
        scheduler.wake("web", datetime.now(UTC) + timedelta(milliseconds=50))

    assert await _first_enqueue(start) == ("web", threading.get_ident())


async def test_the_tick_enqueues_on_the_event_loop_thread() -> None:
    def start(scheduler: Scheduler) -> None:
        scheduler.start(tick_seconds=0.05)

    assert await _first_enqueue(start) == ("api", threading.get_ident())


async def test_the_same_wake_up_asked_again_is_kept_and_a_new_one_replaces_it() -> None:
    scheduler = Scheduler(lambda _: None, list)
    scheduler.start(tick_seconds=3600)
    try:
        at = datetime.now(UTC) + timedelta(hours=1)
        scheduler.wake("api", at)
        scheduler.wake("api", at)
        assert scheduler.wake_at("api") == at
        scheduler.wake("api", at + timedelta(minutes=1))
        assert scheduler.wake_at("api") == at + timedelta(minutes=1)
    finally:
        scheduler.stop()
