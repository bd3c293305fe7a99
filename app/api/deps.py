"""Short dependency aliases, so route signatures read like sentences."""

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from app.config.services import Service
from app.core.bearer import bearer, matches
from app.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The app's runtime; 503 while it starts."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Cascade is starting")
    return runtime


async def get_runtime(request: Request) -> Runtime:
    """Async, so FastAPI calls it on the event loop: a plain `def` would cost a thread hop."""
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def service_named(runtime: Runtime, name: str) -> Service:
    """The configured service `name`; a 404 that names it otherwise."""
    found = runtime.config.get(name)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no service named {name!r}")
    return found


async def require_admin(
    runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Writes need `Authorization: Bearer $CASCADE_ADMIN_TOKEN`."""
    token = runtime.settings.admin_token
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
