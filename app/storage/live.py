"""The change feed behind the live dashboard, across every Cascade process.

Whatever may change the page (an audit event, a finished reconcile) is published
on one Redis channel as the name of the service it touched ("*": everything).
Each process keeps one subscription and fans the names out to its open pages,
which re-render only what was touched; a lost subscription counts as "*".
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from app.core.models import PairState, Plan, Snapshot
from app.storage import keys
from app.storage.audit import Event, gate_signature
from app.storage.batch import Batch, Reply
from app.storage.client import UNAVAILABLE, Client
from app.tasks import cancel

log = logging.getLogger(__name__)
EVERYTHING = "*"
RETRY_SECONDS = 1.0  # after a lost subscription; pages are told to redraw everything
SUBSCRIBE_SECONDS = 5.0


def fingerprint(snapshot: Snapshot, decided: Plan) -> int:
    """Changes when a status page of the service would: its stages or its candidates.

    A waiting candidate counts by when it opens, not by its reason, which counts down.
    """
    candidates = tuple(
        (gate_signature(c), c.opens_at if c.state is PairState.WAITING else c.reason)
        for c in decided.candidates
    )
    return hash((snapshot.stages, candidates))


class Changes:
    """One page's view of the feed: the names touched since it last looked."""

    def __init__(self) -> None:
        self._touched: set[str] = set()
        self._signal = asyncio.Event()

    def add(self, name: str) -> None:
        self._touched.add(name)
        self._signal.set()

    async def next(self) -> set[str]:
        """Wait for news, and take all of it at once (a burst is one redraw)."""
        await self._signal.wait()
        self._signal.clear()
        touched, self._touched = self._touched, set()
        return touched


class Live:
    def __init__(self, client: Client) -> None:
        self.redis = client
        self._shown: dict[str, int] = {}  # service -> its `fingerprint` when pages were last told
        self._pages: set[Changes] = set()
        self._reader: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    def redraws(self, service: str, shown: int | None) -> bool:
        """Whether the service's pages would look different from when they were last told
        (`fingerprint`: a release may have arrived without any audited event); noted as told."""
        if shown is None or self._shown.get(service) == shown:
            return False
        self._shown[service] = shown
        return True

    def forget_shown(self) -> None:
        """Redis lost Cascade's data (`app.storage.epoch`): the next look tells the pages."""
        self._shown.clear()

    async def changed(self, service: str | None) -> None:
        """Tell every process's pages that `service` (None: everything) may look different."""
        try:
            await self.redis.publish(keys.LIVE, service or EVERYTHING)
        except UNAVAILABLE as error:
            log.warning("live: cannot publish a change: %s", type(error).__name__)

    @staticmethod
    def send_change(batch: Batch, service: str | None) -> Reply[int]:
        """`changed`, in a round trip that goes out anyway (a reconcile's lock, released): how
        many subscriptions heard it. The raw command: redis-py's cluster pipeline refuses its
        `publish` method, but sends the command itself (a cluster hears it on every node)."""
        message = service or EVERYTHING
        return batch.add(
            lambda pipe: pipe.execute_command("PUBLISH", keys.LIVE, message), lambda r: int(r[0])
        )

    async def on_event(self, event: Event) -> None:
        """Audit listener: every recorded event may change the page."""
        await self.changed(event.service)

    @asynccontextmanager
    async def watch(self) -> AsyncIterator[Changes]:
        """A page's changes while it is open; the first page starts the subscription."""
        changes = Changes()
        self._pages.add(changes)
        if self._reader is None or self._reader.done():
            self._listening.clear()
            self._reader = asyncio.create_task(self._read())
        try:
            # Subscribed before the page draws itself, so nothing in between is missed; with
            # Redis away the page is drawn anyway and redrawn once the subscription is back.
            with suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), timeout=SUBSCRIBE_SECONDS)
            yield changes
        finally:
            self._pages.discard(changes)

    async def stop(self) -> None:
        if self._reader is not None:
            await cancel([self._reader])
            self._reader = None

    def _tell(self, name: str) -> None:
        for page in list(self._pages):
            page.add(name)

    async def _read(self) -> None:
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(keys.LIVE)
                    self._listening.set()
                    async for message in pubsub.listen():
                        self._tell(str(message["data"]))
            except UNAVAILABLE as error:
                log.warning("live: subscription lost (%s); retrying", type(error).__name__)
            self._tell(EVERYTHING)  # whatever was published meanwhile is lost
            await asyncio.sleep(RETRY_SECONDS)
