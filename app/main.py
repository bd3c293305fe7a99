"""`create_app()` and the lifespan, which runs the composition root (`app.runtime.open`).

`uvicorn app.main:app` serves it; `cascade serve` does the same.
"""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app import runtime as runtimes
from app.api import ROUTERS as API_ROUTERS
from app.api.docs import ASSETS
from app.api.errors import invalid_request
from app.config.services import ConfigError
from app.config.settings import Settings, get_settings
from app.logs import RequestIds, configure_logging, secret_values
from app.storage.client import REDIS_ERRORS, UnsupportedRedis
from app.swagger import swagger_assets
from app.webhooks import ROUTERS as WEBHOOK_ROUTERS
from app.webhooks.auth import BodyLimit

log = logging.getLogger("cascade")
YOUNG_COLLECTION_EVERY = 50_000  # allocations between collections of the young generation


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        chosen = settings or get_settings()
        configure_logging(chosen.log_level, chosen.log_format, secret_values(chosen))
        async with AsyncExitStack() as stack:
            try:
                runtime = await stack.enter_async_context(runtimes.open(chosen, app))
            except (ConfigError, UnsupportedRedis) as error:
                log.error("cannot start: %s", error)
                raise
            app.state.runtime = runtime  # for whoever runs Cascade in-process: no route reads it
            stack.callback(setattr, app.state, "runtime", None)
            # Everything made by start-up lives as long as the process: keep it out of the
            # collector's full passes, which otherwise stalled every request 50-80 ms a few
            # times a minute under load (the p99 in BENCHMARKS.md). And collect the young
            # generation every 50,000 allocations, not 700: almost everything a request or a
            # plan makes is freed by reference counting, and at 700 the collector walked the
            # live young objects so often that it took a fifth of a plan's CPU.
            thresholds = gc.get_threshold()
            gc.freeze()
            stack.callback(gc.unfreeze)
            gc.set_threshold(YOUNG_COLLECTION_EVERY, *thresholds[1:])
            stack.callback(gc.set_threshold, *thresholds)
            yield

    app = FastAPI(
        title="Cascade",
        summary="Continuous promotion for Heroku Pipelines",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # `app.api.docs` serves it, with no CDN
        redoc_url=None,  # FastAPI's ReDoc page loads its script from a CDN: blank offline
        swagger_ui_oauth2_redirect_url=None,
    )
    # Webhooks first: routes are matched in order, and deliveries are most of the traffic.
    for router in (*WEBHOOK_ROUTERS, *API_ROUTERS):
        app.include_router(router)
    app.mount(ASSETS, swagger_assets(), name="swagger-ui")
    for error in REDIS_ERRORS:  # Redis away, or a cluster not serving every slot
        app.add_exception_handler(error, redis_unavailable)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestIds)
    configure_logging()  # now, so that uvicorn's own first lines are formatted too
    return app


async def redis_unavailable(request: Request, error: Exception) -> JSONResponse:
    """Redis is down: say so with a 503, so webhook senders retry and nothing half-happens."""
    log.error("redis unavailable during %s %s: %s", request.method, request.url.path, error)
    detail = "Cascade's Redis is unreachable; nothing was changed, retry later"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})


app = create_app()
