"""`GET /dora`: delivery metrics per service and stage, from Cascade's own records.

Reads Redis alone (`app.storage.dora_record`, two round trips for all the services asked) and
folds with the pure `app.core.dora`; `/metrics`, the dashboard and `cascade dora` show the same
answer.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import SERVICE_REFUSALS, CatalogDep, DoraDep, ReconcilerDep, service_named
from app.api.schemas import DoraOut, ServiceDoraOut, StageDoraOut
from app.config.services import Service
from app.core import dora
from app.engine.reconcile import Reconciler
from app.storage import keys
from app.storage.dora_record import DoraRecord

router = APIRouter(tags=["dora"])
DEFAULT_DAYS = 30


@router.get("/dora", response_model=DoraOut, responses=SERVICE_REFUSALS)
async def get_dora(
    catalog: CatalogDep,
    record: DoraDep,
    reconciler: ReconcilerDep,
    service: Annotated[str | None, Query()] = None,
    days: Annotated[int, Query(ge=1, le=keys.DORA_KEPT.days)] = DEFAULT_DAYS,
) -> DoraOut:
    services = catalog.services if service is None else [service_named(catalog, service)]
    since = reconciler.clock() - timedelta(days=days)
    found = await measured(record, reconciler, services, since)
    return DoraOut(
        days=days,
        since=since,
        services=[
            ServiceDoraOut(name=name, stages=[_out(f) for f in stages])
            for name, stages in found.items()
        ],
    )


async def measured(
    record: DoraRecord, reconciler: Reconciler, services: Sequence[Service], since: datetime
) -> dict[str, tuple[dora.StageFigures, ...]]:
    """Each service's figures since `since`: two Redis round trips for them all."""
    wanted = {service.name: await _stages(reconciler, service) for service in services}
    records = await record.read(wanted, since)
    return {name: dora.figures(kept, since) for name, kept in records.items()}


async def _stages(reconciler: Reconciler, service: Service) -> Sequence[str]:
    """Configured, else the pipeline's as Cascade knows it (no Platform API call)."""
    if service.stages:
        return service.stages
    topology = await reconciler.topologies.cached(service)
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
