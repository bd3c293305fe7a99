"""What Heroku's releases say runs, folded into Cascade's view of each stage.

`fold` is the one way a read of the Platform API reaches the view: a resync, a topology's
first read, a promotion's re-read, a promotion followed to its end. (A webhook folds its one
release itself, marking its delivery seen in the same step.) A pipeline read shows each
app's newest release only: what runs behind a newest one that failed is looked for once.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from app.core.models import Release, ReleaseStatus
from app.engine.topology import Topology
from app.heroku.client import HerokuClient, HerokuError
from app.storage.store import ServiceView, Store

log = logging.getLogger(__name__)


async def fold(
    store: Store, service: str, topology: Topology, releases: Sequence[Release], now: datetime
) -> list[str]:
    """Fold the releases of the service's stages (others are not Cascade's) into the view,
    side by side (each stage is its own key); the apps whose stage they changed.

    `now`: a commit arrives when Cascade learns it runs, by Cascade's clock.
    """
    ours = [release for release in releases if release.app in topology.stages]
    folded = await asyncio.gather(*(store.put_release(service, r, now) for r in ours))
    return [release.app for release, f in zip(ours, folded, strict=True) if f.changed]


class Releases:
    """Reads each service's pipeline into the view: once per process, then when a resync
    falls due."""

    def __init__(
        self,
        heroku: HerokuClient,
        store: Store,
        clock: Callable[[], datetime],
        resync_seconds: float,
    ) -> None:
        self.heroku, self.store, self.clock = heroku, store, clock
        self.resync_seconds = resync_seconds
        self._caught_up: set[str] = set()  # pipelines read since this process started
        self._looked_behind: set[str] = set()  # failed newest releases whose runner was read

    def caught_up(self, name: str) -> bool:
        """Whether this process read the service's pipeline since it started."""
        return name in self._caught_up

    def forget(self, name: str) -> None:
        self._caught_up.discard(name)

    def forget_all(self) -> None:
        self._caught_up.clear()
        self._looked_behind.clear()

    async def due(self, name: str, view: ServiceView) -> bool:
        """Whether to read the pipeline now: once per process (news may have been missed while
        no process ran), and then by the one process per resync interval that takes the mark."""
        marked = view.resync_due and await self.store.mark_resync(name, self.resync_seconds)
        return marked or name not in self._caught_up

    async def resync(self, name: str, topology: Topology) -> list[str]:
        """Read the pipeline's newest releases (one call) into the view; the apps whose stage
        they changed."""
        latest = await self.heroku.latest_releases(topology.pipeline_id)
        return await self._read(name, topology, latest)

    async def read_with(self, name: str, topology: Topology, latest: list[Release]) -> None:
        """The newest releases read with the topology, into the view: the pipeline was just
        read, so no resync is due."""
        await self._read(name, topology, latest)
        await self.store.mark_resync(name, self.resync_seconds)

    async def _read(self, name: str, topology: Topology, latest: list[Release]) -> list[str]:
        now = self.clock()  # when Cascade learnt it: before looking behind a failed release
        behind = await self._behind_failed(name, topology, latest)
        news = await fold(self.store, name, topology, latest + behind, now)
        self._caught_up.add(name)
        return news

    async def _behind_failed(
        self, name: str, topology: Topology, latest: list[Release]
    ) -> list[Release]:
        """What runs on each app whose newest release failed, when the view cannot tell.

        A pipeline read shows each app's newest release only: a succeeded one behind a
        failed one (its webhook lost) would never be learnt. Looked for once per failed
        release (one call), and only when releases the view does not know lie between.
        """
        failed = [
            r
            for r in latest
            if r.app in topology.stages
            and r.status in (ReleaseStatus.FAILED, ReleaseStatus.EXPIRED)
            and r.id not in self._looked_behind
        ]
        if not failed:
            return []
        views = {stage.app: stage for stage in await self.store.stages(name, topology.stages)}
        found = []
        for release in failed:
            try:
                running = await self.heroku.running(release, views[release.app].release)
            except HerokuError as error:
                log.warning("cannot read what runs on %s: %s", release.app, error)
                continue
            self._looked_behind.add(release.id)
            if running is not None:
                found.append(running)
        return found
