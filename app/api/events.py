"""`GET /events`: the audit trail, newest first."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import SERVICE_REFUSALS, AuditDep, CatalogDep, service_or_none
from app.api.schemas import EventsOut

router = APIRouter(tags=["events"])


@router.get(
    "/events",
    response_model=EventsOut,
    response_model_by_alias=True,
    responses=SERVICE_REFUSALS,
)
async def events(
    catalog: CatalogDep,
    audit: AuditDep,
    service: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> EventsOut:
    service_or_none(catalog, service)
    return EventsOut.model_validate({"events": await audit.read(service, limit)})
