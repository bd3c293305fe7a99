"""An ordered background queue: what audit listeners send to GitHub, one at a time.

Items go out in the order they were put, in a task of their own, so a slow or failing
peer never delays the decision that produced them; one that fails is logged and the next
still goes. At shutdown what is queued gets a few seconds to go out.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from app.tasks import cancel

log = logging.getLogger(__name__)

DRAIN_SECONDS = 5.0  # at shutdown, how long items still queued may take to go out
T = TypeVar("T")


class Outbox(Generic[T]):
    """Calls `send` with each item put, in order, in the background."""

    def __init__(self, name: str, send: Callable[[T], Awaitable[object]]) -> None:
        self.name, self._send = name, send
        self._queue: asyncio.Queue[T] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._work())

    def put(self, item: T) -> None:
        self._queue.put_nowait(item)

    async def stop(self) -> None:
        """Let the queued items go out for a few seconds, then stop."""
        if self._task is None:
            return
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                await self._queue.join()
        except TimeoutError:
            log.warning("%s: %d not sent at shutdown", self.name, self._queue.qsize())
        await cancel([self._task])
        self._task = None

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._send(item)
            except Exception:  # Redis away, a bug: the next item still goes out
                log.exception("%s: not sent: %r", self.name, item)
            finally:
                self._queue.task_done()
