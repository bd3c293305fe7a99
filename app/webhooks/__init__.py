"""One module per webhook sender; each exposes `router`. Adding a sender: a module and a line."""

from fastapi import APIRouter

from app.webhooks import alertmanager, github, heroku, librato, status

ROUTERS: tuple[APIRouter, ...] = (
    heroku.router,
    github.router,
    librato.router,
    alertmanager.router,
    status.router,
)
