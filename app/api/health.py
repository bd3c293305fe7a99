"""`/healthz` (the process answers) and `/readyz` (Redis reachable with Cascade's data, config
loaded); `POST /recover`, the operator's confirmation after Redis lost that data
(`app.storage.epoch`).
"""

from fastapi import APIRouter, HTTPException, Request, status

from app.api.deps import AdminDep, AuditDep, EpochDep, ReconcilerDep, TickDep
from app.api.pause import REFUSALS
from app.api.schemas import INVALID, Accepted
from app.config.catalog import Catalog
from app.config.settings import Settings
from app.core.refusals import errors
from app.storage.audit import Event
from app.storage.client import UNAVAILABLE, explain
from app.storage.epoch import HOW, Epoch

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Accepted)
async def healthz() -> Accepted:
    return Accepted(detail="alive")


@router.get(
    "/readyz",
    response_model=Accepted,
    responses=errors(
        {503: "starting, Redis unreachable or a cluster not serving every slot, or data lost"}
    ),
)
async def readyz(request: Request) -> Accepted:
    epoch: Epoch | None = getattr(request.app.state, "epoch", None)
    catalog: Catalog | None = getattr(request.app.state, "catalog", None)
    if epoch is None or catalog is None:
        raise HTTPException(503, "starting: services file or Redis not ready yet")
    try:
        lost = await epoch.verify()
    except UNAVAILABLE as error:
        settings: Settings = request.app.state.settings
        url = settings.redis_url
        why = await explain(url.get_secret_value() if url else None, epoch.redis, error)
        raise HTTPException(503, why) from None
    if lost is not None:
        raise HTTPException(503, f"{lost}; {HOW}")
    return Accepted(detail=f"ready: {len(catalog.services)} services")


@router.post(
    "/recover",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    dependencies=[AdminDep],
    responses=REFUSALS | errors({422: INVALID}),
)
async def recover(
    epoch: EpochDep, audit: AuditDep, reconciler: ReconcilerDep, tick: TickDep
) -> Accepted:
    """Redis lost Cascade's data and the operator has put back what matters (pauses):
    promote again, in every process, from what Heroku and Redis say now."""
    was = epoch.lost
    await epoch.recover()
    message = f"data loss confirmed: promoting again ({was})" if was else "data marker renewed"
    await audit.record(Event(kind="data.recovered", message=message, at=reconciler.clock()))
    tick()
    return Accepted(detail=message)
