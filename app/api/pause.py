"""`POST /pause`, `DELETE /pause` and `POST /retry`: the operator's hands on the wheel."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status

from app.api.deps import AdminDep, RuntimeDep, service_named
from app.api.schemas import (
    INVALID,
    NOT_JSON,
    UNTIL_FORMS,
    Accepted,
    PauseIn,
    PauseOut,
    RetryIn,
    errors,
)
from app.api.status import pause_out
from app.config.services import Service, parse_duration
from app.core.models import Pause, PromotionRecord, PromotionState, StageView, pause_scope
from app.runtime import Runtime
from app.storage.audit import Event

router = APIRouter(tags=["pause"], dependencies=[AdminDep])
REFUSALS = errors({401: "missing or wrong admin token", 403: "CASCADE_ADMIN_TOKEN is not set"})
NO_SERVICE = "no service of that name"
NOT_KEPT = (
    "the pause is in force, but Redis did not confirm it on disk or on a replica in time:"
    " a crash or a failover now could lose it; send it again"
)


@router.post(
    "/pause",
    status_code=status.HTTP_201_CREATED,
    response_model=PauseOut,
    responses=REFUSALS
    | errors(
        {
            400: NOT_JSON,
            404: NO_SERVICE,
            422: "a field is missing or wrong; until is neither a time nor a duration, or past",
            503: NOT_KEPT,
        }
    ),
)
async def set_pause(body: PauseIn, runtime: RuntimeDep) -> PauseOut:
    now = runtime.reconciler.clock()  # the clock the allow gate reads `until` with
    _known(runtime, body.service)
    until = None if body.until is None else _until(body.until, now)
    pause = Pause(reason=body.reason, created_at=now, by=body.by, until=until, service=body.service)
    await runtime.store.set_pause(pause)
    # Only the process that wrote it could tell a failover lost it: wait for a replica.
    kept = await runtime.epoch.durable()
    scope = pause_scope(pause.service)
    await _record(runtime, "pause.set", f"{scope} paused: {pause.reason}", pause.service, now)
    _reconcile(runtime, pause.service)
    if not kept:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, NOT_KEPT)
    out = pause_out(pause)
    assert out is not None
    return out


@router.delete(
    "/pause",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=REFUSALS | errors({404: NO_SERVICE, 422: INVALID}),
)
async def lift_pause(
    runtime: RuntimeDep, service: Annotated[str | None, Query()] = None
) -> Response:
    _known(runtime, service)
    lifted = await runtime.store.lift_pause(service)
    if lifted is not None:
        scope = pause_scope(service)
        now = runtime.reconciler.clock()
        await _record(runtime, "pause.lifted", f"{scope} resumed", service, now)
        _reconcile(runtime, service)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=REFUSALS
    | errors({400: NOT_JSON, 404: "no such service or target stage", 422: "a field is wrong"}),
)
async def retry(body: RetryIn, runtime: RuntimeDep) -> Accepted:
    """Clear a failed promotion into `to`, and the auto-halt's suspect mark of the commit
    that would move there, so that pair is evaluated again."""
    service = _known(runtime, body.service)
    if service is None:
        raise HTTPException(404, "name the service")
    snapshot = await runtime.reconciler.snapshots.observe(service, runtime.config.freezes)
    targets = [stage.app for stage in snapshot.stages[1:]]
    if body.to not in targets:
        named = ", ".join(targets) or "none"
        raise HTTPException(
            404, f"{body.to!r} is not a target stage of {service.name}; its targets: {named}"
        )
    failed = [
        record
        for (target, _commit), record in snapshot.promotions.items()
        if target == body.to and record.state is PromotionState.FAILED
    ]
    cleared: list[PromotionRecord] = []
    for record in failed:
        if not await runtime.ledger.drop(record):  # changed since it was read: not cleared
            continue
        cleared.append(record)
        message = f"failed promotion of {record.commit[:7]} to {record.target} cleared for retry"
        await _record(runtime, "promotion.retry", message, service.name, runtime.reconciler.clock())
    suspect = await _clear_suspect(runtime, service, snapshot.stages, body)
    runtime.queue.enqueue(service.name)
    done = [
        what
        for what, did in (("a failed promotion", cleared), ("a suspect commit", suspect))
        if did
    ]
    detail = f"cleared {' and '.join(done)}" if done else "nothing had failed; re-evaluating"
    return Accepted(detail=detail)


async def _clear_suspect(
    runtime: Runtime, service: Service, stages: Sequence[StageView], body: RetryIn
) -> bool:
    """Forget the suspect mark of `body.commit`, or of the commit the stage before `to` runs."""
    apps = [stage.app for stage in stages]
    commit = body.commit or stages[apps.index(body.to) - 1].commit
    if not commit or not await runtime.store.clear_suspect(service.name, commit):
        return False
    message = f"suspect {commit[:7]} cleared for retry: it may move on from the halted stage"
    await _record(runtime, "promotion.retry", message, service.name, runtime.reconciler.clock())
    return True


def _until(value: str, now: datetime) -> datetime:
    """`until` as sent: an RFC 3339 time, or a duration (as `cascade pause --until` takes)
    counted from `now`, the server's clock, so a sender's wrong clock cannot shorten it."""
    try:
        length: timedelta | None = parse_duration(value)
    except ValueError:
        length = None
    try:
        until = now + length if length is not None else datetime.fromisoformat(value)
    except OverflowError:
        raise HTTPException(422, f"until {value!r} is too far ahead; send {UNTIL_FORMS}") from None
    except ValueError:
        raise HTTPException(
            422, f"until {value!r} is neither a time nor a duration; send {UNTIL_FORMS}"
        ) from None
    if until.tzinfo is None:
        raise HTTPException(422, f"until {value!r} needs a time zone; send {UNTIL_FORMS}")
    if until <= now:
        raise HTTPException(422, f"until {until.isoformat()} is in the past")
    return until


def _known(runtime: Runtime, service: str | None) -> Service | None:
    if service is None:
        return None
    return service_named(runtime, service)


def _reconcile(runtime: Runtime, service: str | None) -> None:
    names = [service] if service else [s.name for s in runtime.config.services]
    for name in names:
        runtime.queue.enqueue(name)


async def _record(
    runtime: Runtime, kind: str, message: str, service: str | None, at: datetime
) -> None:
    await runtime.audit.record(Event(kind=kind, message=message, at=at, service=service))
