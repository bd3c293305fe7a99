"""Cascade in this process, on the in-process sandbox: for counting calls and timing ticks.

The real app (`create_app`) with its lifespan (asgi-lifespan), as the tests run it
(`tests/inprocess.py`), but with a services file of the benchmark's own and no pytest.
"""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from asgi_lifespan import LifespanManager

from app.config.settings import Settings
from app.main import create_app
from app.runtime import Runtime
from tests.inprocess import ENV_NAMES, ENV_PREFIXES

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """On uvloop, as uvicorn runs Cascade (uvicorn[standard] brings it), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return asyncio.run(main)
    return uvloop.run(main)


def clean_environment() -> None:
    """No setting of the shell may leak into a benchmark's Cascade."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIXES) or name.upper() in ENV_NAMES:
            del os.environ[name]


@contextlib.asynccontextmanager
async def cascade(
    redis_url: str, config: Path, tmp: Path, **overrides: Any
) -> AsyncIterator[Runtime]:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "config_path": config,
        "admin_token": "bench",
        "heroku_webhook_secret": "bench",
        "tick_seconds": 3600,
        "resync_seconds": 900,
        "sandbox_deploy_seconds": 0,
        "data_dir": tmp / "data",
        "log_level": "WARNING",
        "log_format": "json",
    }
    values.update(overrides)
    settings = Settings(_env_file=None, **values)
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=600, shutdown_timeout=60):
        runtime: Runtime = app.state.runtime
        await runtime.queue.join()
        yield runtime
