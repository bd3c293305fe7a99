"""One module per webhook sender; each exposes `router`. Adding a sender: a module and a line."""

from fastapi import APIRouter

from app.webhooks import heroku

ROUTERS: tuple[APIRouter, ...] = (heroku.router,)
