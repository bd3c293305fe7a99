"""The sandbox platform's HTTP surface: Heroku's Platform API and the `/_sandbox` controls.

Every Platform API request passes Heroku's edge first (`app.sandbox.edge`: a bearer token,
the v3 Accept header, the 4500-call rate pool, injected faults). Then it reads or changes the
`app.sandbox.world` held by a `Sandbox`. `/_sandbox` needs no token: it lets people and tests
deploy, look at the world, and set faults (`app.sandbox.faults`).
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.clock import utcnow
from app.sandbox.bodies import (
    app_json,
    coupling_json,
    oci_image_json,
    pipeline_json,
    promotion_json,
    promotion_record,
    release_json,
    slug_json,
    state_json,
    target_json,
    webhook_json,
)
from app.sandbox.edge import Edge, Served, heroku_error
from app.sandbox.faults import Faults, FaultsRequest, RatePool
from app.sandbox.ranges import ACCEPT_RANGES, releases_page
from app.sandbox.resources import Json, PlatformError
from app.swagger import swagger_assets, swagger_page

log = logging.getLogger("cascade.sandbox")

DOCS_ASSETS = "/_sandbox/docs/assets"


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    app: str
    commit: str | None = Field(None, min_length=1)
    status: Literal["succeeded", "failed"] = "succeeded"


def build_app(sandbox: Served) -> FastAPI:
    """The ASGI app of `sandbox`; its lifespan starts and stops the sandbox (standalone)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await sandbox.start()
        try:
            yield
        finally:
            await sandbox.stop()

    app = FastAPI(
        title="Cascade sandbox platform (a simulated Heroku)",
        lifespan=lifespan,
        docs_url=None,  # below, with Swagger UI's files served here: no CDN
        openapi_url="/_sandbox/openapi.json",
        redoc_url=None,
    )
    app.mount(DOCS_ASSETS, swagger_assets(), name="swagger-ui")

    @app.get("/_sandbox/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return swagger_page(request, DOCS_ASSETS)

    app.middleware("http")(Edge(sandbox))

    @app.exception_handler(PlatformError)
    async def platform_error(_: Request, exc: PlatformError) -> Response:
        return heroku_error(exc.status, exc.message, exc.error_id)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return heroku_error(exc.status_code, str(exc.detail))

    _platform_routes(app, sandbox)
    _control_routes(app, sandbox)
    return app


def _platform_routes(app: FastAPI, sandbox: Served) -> None:
    world = sandbox.world

    @app.get("/pipelines/{ident}")
    async def pipeline(ident: str) -> Json:
        return pipeline_json(world.pipeline(ident))

    @app.get("/pipelines/{pipeline_id}/pipeline-couplings")
    async def couplings(pipeline_id: str) -> list[Json]:
        return [coupling_json(a) for a in world.pipeline(pipeline_id, by_name=False).apps]

    @app.get("/pipelines/{pipeline_id}/latest-releases")
    async def latest_releases(pipeline_id: str) -> list[Json]:
        apps = world.pipeline(pipeline_id, by_name=False).apps
        return [release_json(a.releases[-1]) for a in apps]

    @app.get("/apps/{ident}")
    async def app_info(ident: str) -> Json:
        return app_json(world.app(ident))

    @app.get("/apps/{ident}/pipeline-couplings")
    async def app_coupling(ident: str) -> Json:
        return coupling_json(world.app(ident), pipeline_name=True)

    @app.get("/apps/{ident}/releases")
    async def releases(ident: str, request: Request) -> Response:
        page = releases_page(world.app(ident).releases, request.headers.get("Range"))
        response = JSONResponse([release_json(r) for r in page.items])
        response.headers["Accept-Ranges"] = ACCEPT_RANGES
        if page.content_range:
            response.headers["Content-Range"] = page.content_range
        if page.next_range:
            response.status_code = 206
            response.headers["Next-Range"] = page.next_range
        return response

    @app.get("/apps/{ident}/releases/{release}")
    async def release_info(ident: str, release: str) -> Json:
        return release_json(world.release(world.app(ident), release))

    @app.post("/apps/{ident}/releases", status_code=201)
    async def rollback(ident: str, request: Request) -> Json:
        """The release Rollback link: a new release of an older release's build."""
        return sandbox.roll_back(ident, await _body(request))

    @app.get("/apps/{ident}/slugs/{slug_id}")
    async def slug_info(ident: str, slug_id: str) -> Json:
        return slug_json(world.slug(world.app(ident), slug_id))

    @app.get("/apps/{ident}/oci-images/{image_id}")
    async def oci_image_info(ident: str, image_id: str) -> list[Json]:
        """A list, as the schema answers: the images matching the identifier."""
        return [oci_image_json(world.slug(world.app(ident), image_id, "oci-image"))]

    @app.post("/pipeline-promotions", status_code=201)
    async def promote(request: Request) -> Response:
        promotion = sandbox.promote(await _body(request))
        if sandbox.faults.promotion_response_delay:  # created already; only the answer waits
            await asyncio.sleep(sandbox.faults.promotion_response_delay)
        return JSONResponse(promotion, status_code=201)

    @app.get("/pipeline-promotions/{promotion_id}")
    async def promotion_info(promotion_id: str) -> Json:
        return promotion_json(world.promotion(promotion_id))

    @app.get("/pipeline-promotions/{promotion_id}/promotion-targets")
    async def promotion_targets(promotion_id: str) -> list[Json]:
        return [target_json(t) for t in world.promotion(promotion_id).targets]

    @app.get("/apps/{ident}/webhooks")
    async def webhooks(ident: str) -> list[Json]:
        return [webhook_json(hook) for hook in world.app(ident).webhooks]

    @app.post("/apps/{ident}/webhooks", status_code=201)
    async def add_webhook(ident: str, request: Request) -> Response:
        body = await _body(request)
        hook = world.add_webhook(world.app(ident), body, utcnow())
        response = JSONResponse(webhook_json(hook), status_code=201)
        if not body.get("secret"):  # made here: told once, as `heroku webhooks:add` shows it
            response.headers["Heroku-Webhook-Secret"] = hook.secret
        return response

    @app.get("/apps/{ident}/webhooks/{webhook_id}")
    async def webhook_info(ident: str, webhook_id: str) -> Json:
        return webhook_json(world.webhook(world.app(ident), webhook_id))

    @app.patch("/apps/{ident}/webhooks/{webhook_id}")
    async def update_webhook(ident: str, webhook_id: str, request: Request) -> Json:
        hook = world.webhook(world.app(ident), webhook_id)
        world.update_webhook(hook, await _body(request), utcnow())
        return webhook_json(hook)

    @app.delete("/apps/{ident}/webhooks/{webhook_id}")
    async def delete_webhook(ident: str, webhook_id: str) -> Json:
        app_ = world.app(ident)
        hook = world.webhook(app_, webhook_id)
        app_.webhooks.remove(hook)
        return webhook_json(hook)

    @app.get("/account/rate-limits")
    async def rate_limits() -> Json:
        return {"remaining": sandbox.rate.remaining()}


async def _body(request: Request) -> Json:
    try:
        body = await request.json()
    except ValueError:
        raise PlatformError(400, "bad_request", "Request body is not JSON.") from None
    if not isinstance(body, dict):
        raise PlatformError(422, "invalid_params", "Request body must be a JSON object.")
    return body


def _control_routes(app: FastAPI, sandbox: Served) -> None:
    @app.post("/_sandbox/releases", status_code=201)
    async def control_deploy(body: DeployRequest) -> Json:
        return await sandbox.deploy(body.app, body.commit, succeed=body.status == "succeeded")

    @app.get("/_sandbox/state")
    async def control_state() -> Json:
        return state_json(sandbox.world)

    @app.get("/_sandbox/promotions")
    async def control_promotions() -> Json:
        return {"promotions": [promotion_record(p) for p in sandbox.world.promotions]}

    @app.get("/_sandbox/requests")
    async def control_requests() -> Json:
        return {"requests": list(sandbox.requests)}

    @app.get("/_sandbox/webhooks")
    async def control_webhooks() -> Json:
        return {"url": sandbox.webhooks.url, "deliveries": list(sandbox.webhooks.deliveries)}

    @app.get("/_sandbox/faults")
    async def control_faults() -> Json:
        return sandbox.faults.json() | {"rate_limit_remaining": sandbox.rate.remaining()}

    @app.post("/_sandbox/faults")
    async def control_set_faults(body: FaultsRequest) -> Json:
        if body.promotion_response_delay is not None:
            sandbox.faults.promotion_response_delay = body.promotion_response_delay
        if body.fail_promotions is not None:
            sandbox.faults.fail_promotions = body.fail_promotions
        if body.fail_targets is not None:
            sandbox.faults.fail_targets = list(body.fail_targets)
        sandbox.faults.errors.extend(body.errors)
        sandbox.faults.delays.extend(body.delays)
        if body.hold_releases is not None:
            sandbox.hold_releases(body.hold_releases)
        if body.rate_limit_remaining is not None:
            sandbox.rate.tokens, sandbox.rate.at = body.rate_limit_remaining, time.monotonic()
        log.warning("sandbox: faults now %s", sandbox.faults.json())
        return await control_faults()

    @app.delete("/_sandbox/faults", status_code=204)
    async def control_clear_faults() -> None:
        sandbox.faults, sandbox.rate = Faults(), RatePool()
        sandbox.hold_releases(False)
        log.info("sandbox: faults cleared")
