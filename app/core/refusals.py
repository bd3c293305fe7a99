"""Every refusal's shape, `{"detail": "..."}`, for the API's routes and the webhooks' alike, so
`/docs` documents each status code a route may refuse with, and why."""

from typing import Any

from pydantic import BaseModel


class ErrorOut(BaseModel):
    """Every refusal: what was wrong, in sentences (one a problem for a bad request)."""

    detail: str


def errors(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route: each status code it may refuse with, and why, as ErrorOut."""
    return {code: {"model": ErrorOut, "description": why} for code, why in described.items()}
