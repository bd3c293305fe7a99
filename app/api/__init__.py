"""The HTTP API's routers, included by name in `app.main`."""

from fastapi import APIRouter

from app.api import dashboard, docs, dora, events, health, metrics, pause, reload, status

ROUTERS: tuple[APIRouter, ...] = (
    status.router,
    pause.router,
    events.router,
    dora.router,
    health.router,
    dashboard.router,
    metrics.router,
    reload.router,
    docs.router,
)
