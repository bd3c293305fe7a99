"""`GET /dora`: delivery metrics per service and stage, from Cascade's own records.

Reads Redis alone (`app.storage.dora_record`, two round trips for all the services asked) and
folds with the pure `app.core.dora`; `/metrics`, the dashboard and `cascade dora` show the same
answer.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import RuntimeDep, service_named
from app.api.schemas import INVALID, DoraOut, ServiceDoraOut, StageDoraOut, errors
from app.config.services import Service
from app.core import dora
from app.runtime import Runtime
from app.storage import keys

router = APIRouter(tags=["dora"])
DEFAULT_DAYS = 30


@router.get(
    "/dora",
    response_model=DoraOut,
    responses=errors({404: "no service of that name", 422: INVALID}),
)
async def get_dora(
    runtime: RuntimeDep,
    service: Annotated[str | None, Query()] = None,
    days: Annotated[int, Query(ge=1, le=keys.DORA_KEPT.days)] = DEFAULT_DAYS,
) -> DoraOut:
    services = runtime.config.services if service is None else [service_named(runtime, service)]
    return await collect(runtime, services, days, runtime.reconciler.clock())


async def collect(
    runtime: Runtime, services: Sequence[Service], days: int, now: datetime
) -> DoraOut:
    """The figures of `services` over the `days` before `now`, as `/dora` answers."""
    since = now - timedelta(days=days)
    found = await measured(runtime, services, since)
    return DoraOut(
        days=days,
        since=since,
        services=[
            ServiceDoraOut(name=name, stages=[_out(f) for f in stages])
            for name, stages in found.items()
        ],
    )


async def measured(
    runtime: Runtime, services: Sequence[Service], since: datetime
) -> dict[str, tuple[dora.StageFigures, ...]]:
    """Each service's figures since `since`: two Redis round trips for them all."""
    wanted = {service.name: await _stages(runtime, service) for service in services}
    records = await runtime.dora.read(wanted, since)
    return {name: dora.figures(record, since) for name, record in records.items()}


async def _stages(runtime: Runtime, service: Service) -> Sequence[str]:
    """Configured, else the pipeline's as Cascade knows it (no Platform API call)."""
    if service.stages:
        return service.stages
    topology = await runtime.reconciler.topologies.cached(service)
    return topology.stages if topology else ()


def _out(figures: dora.StageFigures) -> StageDoraOut:
    return StageDoraOut(
        stage=figures.stage,
        deployments=figures.deployments,
        lead_time_p50_seconds=figures.lead_time_p50,
        lead_time_p90_seconds=figures.lead_time_p90,
        halts=figures.halts,
        change_failure_rate=figures.change_failure_rate,
        time_to_restore_seconds=figures.time_to_restore,
        open_halts=figures.open_halts,
    )
