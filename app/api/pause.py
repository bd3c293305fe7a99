"""`POST /pause`, `DELETE /pause` and `POST /retry`: the operator's hands on the wheel."""

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status

from app.api.deps import (
    NO_SERVICE,
    SERVICE_REFUSALS,
    AdminDep,
    AuditDep,
    CatalogDep,
    EnqueueDep,
    EpochDep,
    LedgerDep,
    ReconcilerDep,
    StoreDep,
    service_named,
    service_or_none,
)
from app.api.schemas import NOT_JSON, UNTIL_FORMS, Accepted, PauseIn, PauseOut, RetryIn
from app.api.status import pause_out
from app.config.catalog import Catalog
from app.config.services import Service, parse_duration
from app.core.models import Pause, PromotionRecord, PromotionState, StageView, pause_scope
from app.core.refusals import errors
from app.storage.audit import Audit, Event
from app.storage.store import Store

router = APIRouter(tags=["pause"], dependencies=[AdminDep])
REFUSALS = errors({401: "missing or wrong admin token", 403: "CASCADE_ADMIN_TOKEN is not set"})
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
async def set_pause(
    body: PauseIn,
    catalog: CatalogDep,
    store: StoreDep,
    reconciler: ReconcilerDep,
    epoch: EpochDep,
    audit: AuditDep,
    enqueue: EnqueueDep,
) -> PauseOut:
    now = reconciler.clock()  # the clock the allow gate reads `until` with
    service_or_none(catalog, body.service)
    until = None if body.until is None else _until(body.until, now)
    pause = Pause(reason=body.reason, created_at=now, by=body.by, until=until, service=body.service)
    await store.set_pause(pause)
    # Only the process that wrote it could tell a failover lost it: wait for a replica.
    kept = await epoch.durable(pause.service)
    scope = pause_scope(pause.service)
    await _record(audit, "pause.set", f"{scope} paused: {pause.reason}", pause.service, now)
    _reconcile(catalog, enqueue, pause.service)
    if not kept:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, NOT_KEPT)
    out = pause_out(pause)
    assert out is not None
    return out


@router.delete(
    "/pause",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=REFUSALS | SERVICE_REFUSALS,
)
async def lift_pause(
    catalog: CatalogDep,
    store: StoreDep,
    reconciler: ReconcilerDep,
    audit: AuditDep,
    enqueue: EnqueueDep,
    service: Annotated[str | None, Query()] = None,
) -> Response:
    service_or_none(catalog, service)
    lifted = await store.lift_pause(service)
    if lifted is not None:
        scope = pause_scope(service)
        await _record(audit, "pause.lifted", f"{scope} resumed", service, reconciler.clock())
        _reconcile(catalog, enqueue, service)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=REFUSALS
    | errors({400: NOT_JSON, 404: "no such service or target stage", 422: "a field is wrong"}),
)
async def retry(
    body: RetryIn,
    catalog: CatalogDep,
    store: StoreDep,
    ledger: LedgerDep,
    reconciler: ReconcilerDep,
    audit: AuditDep,
    enqueue: EnqueueDep,
) -> Accepted:
    """Clear a failed promotion into `to`, and the auto-halt's suspect mark of the commit
    that would move there, so that pair is evaluated again."""
    service = service_named(catalog, body.service)
    snapshot = await reconciler.snapshots.observe(service, reconciler.config.freezes)
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
        if not await ledger.drop(record):  # changed since it was read: not cleared
            continue
        cleared.append(record)
        message = f"failed promotion of {record.commit[:7]} to {record.target} cleared for retry"
        await _record(audit, "promotion.retry", message, service.name, reconciler.clock())
    suspect = await _clear_suspect(store, audit, reconciler.clock, service, snapshot.stages, body)
    enqueue(service.name)
    done = [
        what
        for what, did in (("a failed promotion", cleared), ("a suspect commit", suspect))
        if did
    ]
    detail = f"cleared {' and '.join(done)}" if done else "nothing had failed; re-evaluating"
    return Accepted(detail=detail)


async def _clear_suspect(
    store: Store,
    audit: Audit,
    clock: Callable[[], datetime],
    service: Service,
    stages: Sequence[StageView],
    body: RetryIn,
) -> bool:
    """Forget the suspect mark of `body.commit`, or of the commit the stage before `to` runs."""
    apps = [stage.app for stage in stages]
    commit = body.commit or stages[apps.index(body.to) - 1].commit
    if not commit or not await store.clear_suspect(service.name, commit):
        return False
    message = f"suspect {commit[:7]} cleared for retry: it may move on from the halted stage"
    await _record(audit, "promotion.retry", message, service.name, clock())
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


def _reconcile(catalog: Catalog, enqueue: Callable[[str], None], service: str | None) -> None:
    for name in [service] if service else catalog.names():
        enqueue(name)


async def _record(audit: Audit, kind: str, message: str, service: str | None, at: datetime) -> None:
    await audit.record(Event(kind=kind, message=message, at=at, service=service))
