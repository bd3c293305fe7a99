"""Short dependency aliases, so route signatures read like sentences.

Each collaborator a route uses is its own typed dependency, read from `app.state`, where the
composition root (`app.runtime.serve`) put it under its name; 503 while Cascade starts.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, status

from app.api.schemas import INVALID
from app.config.catalog import Catalog
from app.config.reload import Reloader
from app.config.services import Service
from app.config.settings import Settings
from app.core.bearer import bearer, matches
from app.core.refusals import errors
from app.engine.reconcile import Reconciler
from app.metrics import Metrics
from app.signals.views import Views
from app.storage.audit import Audit
from app.storage.dora_record import DoraRecord
from app.storage.epoch import Epoch
from app.storage.ledger import Ledger
from app.storage.live import Live
from app.storage.store import Store

NO_SERVICE = "no service of that name"
SERVICE_REFUSALS = errors({404: NO_SERVICE, 422: INVALID})  # a route naming a service


def built(request: Request, name: str) -> Any:
    """What the composition root put on `app.state` under `name`; 503 while Cascade starts."""
    found = getattr(request.app.state, name, None)
    if found is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Cascade is starting")
    return found


def _state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """The dependency reading `name` (async, so FastAPI calls it on the event loop: a plain
    `def` would cost a thread hop)."""

    async def dependency(request: Request) -> Any:
        return built(request, name)

    return dependency


SettingsDep = Annotated[Settings, Depends(_state("settings"))]
CatalogDep = Annotated[Catalog, Depends(_state("catalog"))]
StoreDep = Annotated[Store, Depends(_state("store"))]
AuditDep = Annotated[Audit, Depends(_state("audit"))]
LedgerDep = Annotated[Ledger, Depends(_state("ledger"))]
ReconcilerDep = Annotated[Reconciler, Depends(_state("reconciler"))]
EnqueueDep = Annotated[Callable[[str], None], Depends(_state("enqueue"))]  # a reconcile, soon
TickDep = Annotated[Callable[[], None], Depends(_state("tick"))]  # every service's, soon
MetricsDep = Annotated[Metrics, Depends(_state("metrics"))]
LiveDep = Annotated[Live, Depends(_state("live"))]
EpochDep = Annotated[Epoch, Depends(_state("epoch"))]
ViewsDep = Annotated[Views, Depends(_state("views"))]
DoraDep = Annotated[DoraRecord, Depends(_state("dora"))]
ReloaderDep = Annotated[Reloader, Depends(_state("reloader"))]


def service_named(catalog: Catalog, name: str) -> Service:
    """The configured service `name`; a 404 that names it otherwise."""
    found = catalog.get(name)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no service named {name!r}")
    return found


def service_or_none(catalog: Catalog, name: str | None) -> Service | None:
    """`service_named`, for a route where no name means every service."""
    return None if name is None else service_named(catalog, name)


async def require_admin(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Writes need `Authorization: Bearer $CASCADE_ADMIN_TOKEN`."""
    token = settings.admin_token
    if token is None or not token.get_secret_value():
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "writes are disabled: this Cascade runs without an admin token;"
            " set CASCADE_ADMIN_TOKEN in the server's environment (where Cascade runs)"
            " and restart it to allow them",
        )
    given = bearer(authorization)
    if given is None or not matches(given, token.get_secret_value()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send Authorization: Bearer <CASCADE_ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Depends(require_admin)
