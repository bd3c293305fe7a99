"""`/healthz` (the process answers) and `/readyz` (Redis reachable, config loaded)."""

from fastapi import APIRouter, HTTPException, Request
from redis.exceptions import RedisError

from app.api.schemas import Accepted, errors

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Accepted)
async def healthz() -> Accepted:
    return Accepted(detail="alive")


@router.get(
    "/readyz", response_model=Accepted, responses=errors({503: "starting, or Redis unreachable"})
)
async def readyz(request: Request) -> Accepted:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise HTTPException(503, "starting: services file or Redis not ready yet")
    try:
        await runtime.redis.ping()
    except (RedisError, OSError) as error:
        raise HTTPException(503, f"Redis unreachable: {type(error).__name__}") from None
    return Accepted(detail=f"ready: {len(runtime.config.services)} services")
