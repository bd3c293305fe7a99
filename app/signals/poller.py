"""The fallback feeds' clock: every CASCADE_POLL_SECONDS one process polls them.

Alerts (Librato's status API) and the status page are polled by whichever process takes
the interval's mark in Redis; the services whose view changed are reconciled at once,
in that process. Webhooks stay the first way in: the poll repairs what they missed.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence

from app.config.services import Service
from app.signals.views import Views
from app.storage import keys
from app.storage.client import UNAVAILABLE, Client
from app.tasks import cancel

log = logging.getLogger(__name__)


class Poller:
    def __init__(
        self,
        views: Views,
        client: Client,
        services: Callable[[], Sequence[Service]],
        enqueue: Callable[[str], None],
        every: float,
    ) -> None:
        self.views, self.redis, self.services = views, client, services
        self.enqueue, self.every = enqueue, every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel([self._task])

    async def poll(self) -> list[str]:
        """Poll once if this process holds the interval's mark; the services reconciled."""
        mark = await self.redis.set(keys.POLLED, "1", nx=True, px=int(self.every * 900))
        if not mark:
            return []
        changed = await self.views.refresh(self.services())
        for name in changed:
            self.enqueue(name)
        if changed:
            log.info("feeds polled: reconciling %s", ", ".join(changed))
        return changed

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except UNAVAILABLE as error:
                log.warning("feeds not polled, Redis is unavailable: %s", error)
            except Exception:
                log.exception("polling the alert and status feeds failed")
            await asyncio.sleep(self.every)
