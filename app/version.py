"""Cascade's installed version: a label of its metrics, and part of the User-Agent of every
Platform and GitHub API call (both ask clients to name themselves)."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed


def version() -> str:
    try:
        return installed("cascade")
    except PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "unknown"


def user_agent() -> str:
    return f"cascade/{version()} (+https://github.com/cascade)"
