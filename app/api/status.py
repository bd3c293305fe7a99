"""`GET /status` and `GET /status/{service}`: what runs where, what moves, and why anything waits.

Built from Redis alone (no Platform API call), through the same snapshot and
plan a reconcile uses, so the status never disagrees with the decision.
"""

from datetime import datetime

from fastapi import APIRouter

from app.api.deps import RuntimeDep, service_named
from app.api.schemas import (
    INVALID,
    ConfigProblemOut,
    GateOut,
    PauseOut,
    PromotionOut,
    ReleaseOut,
    ServiceOut,
    SourceOut,
    StageOut,
    StatusOut,
    errors,
)
from app.config.services import Service
from app.core.models import PairState, Pause, Plan, Release, Snapshot
from app.core.plan import plan
from app.runtime import Runtime

router = APIRouter(tags=["status"])


@router.get("/status", response_model=StatusOut, response_model_by_alias=True)
async def get_status(runtime: RuntimeDep) -> StatusOut:
    services = [await _service(runtime, s) for s in runtime.config.services]
    paused = await runtime.store.pause(None)
    now = runtime.reconciler.clock()  # Redis keeps an ended pause a while: it never decides
    return StatusOut(
        sandbox=runtime.sandbox is not None,
        dry_run=runtime.settings.dry_run,
        paused=pause_out(paused) if paused and paused.active(now) else None,
        services=services,
        problem=runtime.epoch.lost,
        sources=await sources(runtime, now),
        config_problem=config_problem_out(runtime),
    )


def config_problem_out(runtime: Runtime) -> ConfigProblemOut | None:
    """The refused reload this process remembers, if any (see `app.config.reload.ConfigProblem`)."""
    found = runtime.config_problem
    if found is None:
        return None
    return ConfigProblemOut(message=found.message, path=found.path, at=found.at)


async def sources(runtime: Runtime, now: datetime) -> list[SourceOut]:
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
        for f in await runtime.views.freshness(now)
    ]


@router.get(
    "/status/{service}",
    response_model=ServiceOut,
    response_model_by_alias=True,
    responses=errors({404: "no service of that name", 422: INVALID}),
)
async def get_service_status(service: str, runtime: RuntimeDep) -> ServiceOut:
    return await _service(runtime, service_named(runtime, service))


async def _service(runtime: Runtime, service: Service) -> ServiceOut:
    snapshot = await runtime.reconciler.snapshots.observe(service, runtime.config.freezes)
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
