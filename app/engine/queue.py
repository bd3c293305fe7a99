"""The coalescing reconcile queue: webhooks and timers only enqueue, workers reconcile.

A service is queued at most once; news arriving while its reconcile runs queues
exactly one more run. Different services reconcile in parallel.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from app.tasks import cancel

log = logging.getLogger(__name__)


class ReconcileQueue:
    def __init__(self, workers: int = 4) -> None:
        self._workers = workers
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._idle = asyncio.Event()  # set whenever the last running reconcile ends

    def enqueue(self, service: str) -> None:
        if service in self._queued:
            return
        if service in self._running:
            self._again.add(service)
            return
        self._queued.add(service)
        self._queue.put_nowait(service)

    async def join(self) -> None:
        """Wait until nothing is queued or running (tests and shutdown)."""
        await self._queue.join()

    def start(self, handle: Callable[[str], Awaitable[None]]) -> None:
        """Reconcile what is queued with `handle` (built after the queue: it may enqueue)."""
        self._tasks = [asyncio.create_task(self._work(handle)) for _ in range(self._workers)]

    async def stop(self, grace: float = 0.0) -> None:
        """Take no new work; give reconciles in progress `grace` seconds, then cancel.

        Cancelling hands the work back: the lock is released on the way out and a promotion
        claim stays in Redis for the next process to settle (`app.engine.promote`). Cancel again
        if a worker swallowed it (asyncio.wait_for in 3.11 can).
        """
        self._stopping = True
        if self._running and grace > 0:
            log.info("shutdown: finishing the reconcile of %s", ", ".join(sorted(self._running)))
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._idle.wait()
        if self._running:
            log.warning(
                "shutdown: handing back the reconcile of %s (still running after %.0fs)",
                ", ".join(sorted(self._running)),
                grace,
            )
        await cancel(self._tasks)
        self._tasks = []

    async def _work(self, handle: Callable[[str], Awaitable[None]]) -> None:
        while not self._stopping:
            service = await self._queue.get()
            if self._stopping:  # woken during shutdown: leave it to the next process
                self._queue.task_done()
                return
            self._queued.discard(service)
            self._running.add(service)
            try:
                await handle(service)
            except Exception:
                log.exception("reconcile failed service=%s", service)
            finally:
                self._running.discard(service)
                if not self._running:
                    self._idle.set()
                if service in self._again:  # before task_done, so join() waits for it
                    self._again.discard(service)
                    self.enqueue(service)
                self._queue.task_done()
