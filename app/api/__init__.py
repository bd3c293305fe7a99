"""The HTTP API's routers, included by name in `app.main`."""

from fastapi import APIRouter

from app.api import events, health, pause, status

ROUTERS: tuple[APIRouter, ...] = (status.router, pause.router, events.router, health.router)
