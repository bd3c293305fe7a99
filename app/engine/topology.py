"""Where a service's stages are: the pipeline id, the stage apps in promotion order, their ids.

Read from the Platform API (pipeline, couplings, latest releases: three calls, and the
stack of each app whose newest release runs no build, one more each) when a service is
first seen, and cached in Redis so status reads and other
processes need no call. A cached id Heroku no longer knows (a 404: the pipeline or
an app was re-created, or the sandbox restarted) makes the reconciler read it again.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import TypeAdapter

from app.config.services import Service
from app.core.models import Release
from app.heroku.client import HerokuClient

PROMOTION_STAGES = ("development", "staging", "production")
CONTAINER = "container"  # the stack of Docker-deployed apps: pipeline promotions refuse them


class TopologyError(Exception):
    """The pipeline does not match the services file; the message says how."""


@dataclass(frozen=True)
class Topology:
    pipeline_id: str
    stages: tuple[str, ...]  # app names in promotion order
    app_ids: Mapping[str, str] = field(default_factory=dict)  # app name -> app id
    container: tuple[str, ...] = ()  # stage apps on the container stack (stored before: none)


codec = TypeAdapter(Topology)


def order_stages(couplings: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """Apps by stage (development, staging, production), then by name; other stages don't count."""
    rank = {stage: i for i, stage in enumerate(PROMOTION_STAGES)}
    coupled = sorted((rank[stage], app) for app, stage in couplings if stage in rank)
    return tuple(app for _rank, app in coupled)


async def load(heroku: HerokuClient, service: Service) -> tuple[Topology, list[Release]]:
    """The service's topology, and the latest releases read on the way."""
    pipeline = await heroku.get_pipeline(service.pipeline)
    couplings = await heroku.couplings(pipeline.id)
    releases = await heroku.latest_releases(pipeline.id)
    names = {r.app_id: r.app for r in releases if r.app_id}
    coupled = [(names[c.app_id], c.stage) for c in couplings if c.app_id in names]
    stages = service.stages or order_stages(coupled)
    coupled_apps = {app for app, _stage in coupled}
    missing = [app for app in stages if app not in coupled_apps]
    if missing:
        raise TopologyError(
            f'service "{service.name}": stage {", ".join(missing)} is not an app of pipeline'
            f' "{service.pipeline}" with a release (couplings: {", ".join(sorted(coupled_apps))})'
        )
    if len(stages) < 2:
        raise TopologyError(f'service "{service.name}": pipeline has fewer than two stages')
    ids = {name: app_id for app_id, name in names.items() if name in stages}
    container = await on_container_stack(heroku, releases, ids)
    return Topology(pipeline.id, tuple(stages), ids, container), releases


async def on_container_stack(
    heroku: HerokuClient, releases: Iterable[Release], ids: Mapping[str, str]
) -> tuple[str, ...]:
    """The stage apps (`ids`) on the container stack, whose releases run no slug nor OCI image.

    Only an app whose newest release runs no build is asked (one call): that is all a
    container-stack app's releases, and an app's before its first deploy.
    """
    bare = sorted({r.app for r in releases if r.app in ids and r.artifact is None})
    return tuple([app for app in bare if await heroku.stack(ids[app]) == CONTAINER])


def moved(old: Topology, new: Topology) -> tuple[str, ...]:
    """Apps of `new` that `old` knew under another id: re-created, so what was learnt of them
    (their stage, their history) belongs to an app that no longer exists."""
    return tuple(
        app
        for app in new.stages
        if app in old.app_ids and old.app_ids[app] != new.app_ids.get(app, old.app_ids[app])
    )
