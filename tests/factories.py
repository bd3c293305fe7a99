"""Factories for domain values, so each test says only what matters to it."""

from datetime import UTC, datetime, timedelta

import respx

from app.config.services import Service
from app.core.models import Pause, Release, ReleaseStatus, Snapshot, StageView

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
# A services-file entry for a second service, ready to promote at once (tests of several).
WEB = """
[[service]]
name = "web"
pipeline = "web"
stages = ["web-dev", "web-prod"]
min_age = "0s"
"""


def service(name: str = "api", **overrides: object) -> Service:
    values: dict[str, object] = {
        "name": name,
        "pipeline": name,
        "stages": (f"{name}-qa", f"{name}-st", f"{name}-prod"),
        "min_age": timedelta(minutes=30),
    }
    values.update(overrides)
    return Service(**values)  # type: ignore[arg-type]


def release(
    app: str,
    version: int,
    commit: str | None,
    status: ReleaseStatus = ReleaseStatus.SUCCEEDED,
    created_at: datetime = NOW - timedelta(hours=1),
) -> Release:
    return Release(
        id=f"{app}-v{version}",
        app=app,
        version=version,
        status=status,
        commit=commit,
        created_at=created_at,
        app_id=f"id-{app}",
        slug_id=f"slug-{commit}",
    )


def stage(
    app: str, commit: str | None, version: int = 1, pending: Release | None = None
) -> StageView:
    current = release(app, version, commit) if commit else None
    return StageView(app, current, pending)


def snapshot(
    stages: tuple[StageView, ...],
    history: dict[str, dict[str, datetime]] | None = None,
    now: datetime = NOW,
    positions: dict[str, dict[str, int]] | None = None,
    **overrides: object,
) -> Snapshot:
    svc = overrides.pop("service", None) or service()
    return Snapshot(
        service=svc,
        now=now,
        stages=stages,
        history=history or {},
        positions=positions or {},
        **overrides,  # type: ignore[arg-type]
    )


def pause(
    reason: str = "deploy freeze", until: datetime | None = None, svc: str | None = None
) -> Pause:
    return Pause(
        reason=reason, created_at=NOW - timedelta(minutes=5), by="ops", until=until, service=svc
    )


def refuse_the_platform_token(router: respx.MockRouter) -> None:
    """The Platform API of NOT_THE_SANDBOX refuses the token at once (a 4xx is not retried:
    with nothing listening, each reconcile retried with back-off for seconds)."""
    unauthorized = {"id": "unauthorized", "message": "Invalid credentials provided."}
    router.route(host="127.0.0.1", port=9).respond(401, json=unauthorized)
