"""`GET /events`: the audit trail, newest first."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import RuntimeDep, service_named
from app.api.schemas import INVALID, EventsOut, errors

router = APIRouter(tags=["events"])


@router.get(
    "/events",
    response_model=EventsOut,
    response_model_by_alias=True,
    responses=errors({404: "no service of that name", 422: INVALID}),
)
async def events(
    runtime: RuntimeDep,
    service: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> EventsOut:
    if service is not None:
        service_named(runtime, service)
    return EventsOut.model_validate({"events": await runtime.audit.read(service, limit)})
