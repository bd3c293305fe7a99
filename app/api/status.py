"""`GET /status` and `GET /status/{service}`: what runs where, what moves, and why anything waits.

Built from Redis alone (no Platform API call), through the same snapshot and
plan a reconcile uses, so the status never disagrees with the decision.
"""

from datetime import datetime

from fastapi import APIRouter

from app.api.deps import (
    SERVICE_REFUSALS,
    CatalogDep,
    EpochDep,
    ReconcilerDep,
    SettingsDep,
    StoreDep,
    ViewsDep,
    service_named,
)
from app.api.schemas import (
    ConfigProblemOut,
    GateOut,
    PauseOut,
    PromotionOut,
    ReleaseOut,
    ServiceOut,
    SourceOut,
    StageOut,
    StatusOut,
)
from app.config.catalog import Catalog
from app.config.services import Service
from app.core.models import PairState, Pause, Plan, Release, Snapshot
from app.core.plan import plan
from app.engine.reconcile import Reconciler
from app.signals.views import Views

router = APIRouter(tags=["status"])


@router.get("/status", response_model=StatusOut, response_model_by_alias=True)
async def get_status(
    catalog: CatalogDep,
    store: StoreDep,
    reconciler: ReconcilerDep,
    settings: SettingsDep,
    epoch: EpochDep,
    views: ViewsDep,
) -> StatusOut:
    services = [await _service(reconciler, s) for s in catalog.services]
    paused = await store.pause(None)
    now = reconciler.clock()  # Redis keeps an ended pause a while: it never decides
    return StatusOut(
        sandbox=settings.sandbox,
        dry_run=settings.dry_run,
        paused=pause_out(paused) if paused and paused.active(now) else None,
        services=services,
        problem=epoch.lost,
        sources=await sources(views, now),
        config_problem=config_problem_out(catalog),
    )


def config_problem_out(catalog: Catalog) -> ConfigProblemOut | None:
    """The refused reload this process remembers, if any (`app.config.catalog.ConfigProblem`)."""
    found = catalog.problem
    if found is None:
        return None
    return ConfigProblemOut(message=found.message, path=found.path, at=found.at)


async def sources(views: Views, now: datetime) -> list[SourceOut]:
    """Each signal source's freshness, from Redis alone (absolute times: the answer does not
    change by itself from one second to the next)."""
    return [
        SourceOut(
            signal=f.signal,
            source=f.source,
            how=f.how,
            last_heard=f.last,
            stale=f.stale,
            limit_seconds=f.limit.total_seconds() if f.limit is not None else None,
        )
        for f in await views.freshness(now)
    ]


@router.get(
    "/status/{service}",
    response_model=ServiceOut,
    response_model_by_alias=True,
    responses=SERVICE_REFUSALS,
)
async def get_service_status(
    service: str, catalog: CatalogDep, reconciler: ReconcilerDep
) -> ServiceOut:
    return await _service(reconciler, service_named(catalog, service))


async def _service(reconciler: Reconciler, service: Service) -> ServiceOut:
    snapshot = await reconciler.snapshots.observe(service, reconciler.config.freezes)
    return render(snapshot, plan(snapshot))


def render(snapshot: Snapshot, decided: Plan) -> ServiceOut:
    """The SPEC's service object, from one snapshot and its plan."""
    service = snapshot.service
    active = snapshot.service_pause
    return ServiceOut(
        name=service.name,
        pipeline=service.pipeline,
        paused=pause_out(active) if active and active.active(snapshot.now) else None,
        stages=[
            StageOut(
                app=s.app,
                commit=s.commit,
                release=_release(s.release),
                pending=_release(s.pending),
                wave=wave,
            )
            for wave, stages in enumerate(snapshot.waves())
            for s in stages
        ],
        promotions=[
            PromotionOut(
                source=c.pair.source.app,
                to=c.pair.target.app,
                commit=c.commit,
                state=_public_state(c.state),
                reason=c.reason,
                opens_at=c.opens_at,
                gates=[GateOut(**vars(g)) for g in c.gates],
            )
            for c in decided.candidates
        ],
        problem=snapshot.problem,
    )


def pause_out(pause: Pause | None) -> PauseOut | None:
    if pause is None:
        return None
    return PauseOut(
        service=pause.service,
        reason=pause.reason,
        by=pause.by,
        until=pause.until,
        created_at=pause.created_at,
    )


def _release(release: Release | None) -> ReleaseOut | None:
    if release is None:
        return None
    return ReleaseOut(
        id=release.id,
        version=release.version,
        created_at=release.created_at,
        status=release.status.value,
        commit=release.commit,
    )


def _public_state(state: PairState) -> str:
    """SPEC's four states: a ready pair is waiting for the promotion about to start."""
    return PairState.WAITING.value if state is PairState.READY else state.value
