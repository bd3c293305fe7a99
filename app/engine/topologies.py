"""Each service's topology as this process knows it, and which service a stage app is in.

From memory, else Redis (no Platform API call), else read from Heroku once (`topology.load`)
and kept in Redis for every process, the releases read with it folded into the view. A
webhook names an app: `owner_of` routes it.
"""

import logging

from app.config.services import Service, ServicesConfig
from app.engine.releases import Releases
from app.engine.topology import Topology, TopologyError, codec, load, moved
from app.heroku.client import HerokuClient, HerokuError
from app.storage.store import Store

log = logging.getLogger(__name__)


class Topologies:
    """Every service's topology, read once and kept; the routing of webhooks by app."""

    def __init__(self, heroku: HerokuClient, store: Store, releases: Releases) -> None:
        self.heroku, self.store, self.releases = heroku, store, releases
        self.known: dict[str, Topology] = {}
        self.problems: dict[str, str] = {}  # service -> why its pipeline cannot be read
        self._changes = 0  # topologies learnt or forgotten, to know when to index apps again
        self._owners: tuple[ServicesConfig, int, dict[str, Service]] | None = None

    def forget(self, name: str) -> None:
        self.known.pop(name, None)
        self._changes += 1
        self.problems.pop(name, None)

    def forget_all(self) -> None:
        self.known.clear()
        self._changes += 1

    async def cached(self, service: Service) -> Topology | None:
        """The service's topology from memory or Redis: no Platform API call."""
        known = self.known.get(service.name)
        if known is not None:
            return known
        cached = await self.store.topology(service.name)
        if cached is None:
            return None
        known = codec.validate_json(cached)
        if service.stages and known.stages != service.stages:
            return None  # the services file changed: read the pipeline again
        self.known[service.name] = known
        self._changes += 1
        return known

    async def get(self, service: Service, stale: Topology | None = None) -> Topology | None:
        """The known topology, else read from the Platform API (three calls, once) with its
        releases folded in; None, and the problem kept, when it cannot be read.

        `stale`: the one Heroku answered 404 for; its apps that now have other ids start
        afresh (their views are forgotten).
        """
        known = await self.cached(service)
        if known is not None:
            return known
        try:
            known, releases = await load(self.heroku, service)
        except (HerokuError, TopologyError) as error:
            self.problems[service.name] = str(error)
            log.error("cannot read pipeline service=%s: %s", service.name, error)
            return None
        gone = moved(stale, known) if stale is not None else ()
        if gone:
            log.warning("apps re-created service=%s: %s", service.name, ", ".join(gone))
            await self.store.forget_apps(service.name, gone)
        await self.store.set_topology(service.name, codec.dump_json(known).decode())
        await self.releases.read_with(service.name, known, releases)
        self.known[service.name] = known
        self._changes += 1
        self.problems.pop(service.name, None)
        return known

    def owner_of(self, config: ServicesConfig, app: str) -> Service | None:
        """The service whose stages include `app` (the first listed), for routing webhooks.

        Indexed once per services file and topology change: a delivery costs a dict lookup,
        not a scan of every service (BENCHMARKS.md).
        """
        if self._owners is None or self._owners[:2] != (config, self._changes):
            owners: dict[str, Service] = {}
            for service in config.services:
                stages = self.known.get(service.name)
                for stage in stages.stages if stages else service.stages or ():
                    owners.setdefault(stage, service)
            self._owners = (config, self._changes, owners)
        return self._owners[2].get(app)
