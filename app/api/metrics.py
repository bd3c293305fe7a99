"""`GET /metrics`: this process's Prometheus metrics, in the text exposition format.

Each process (dyno) answers with its own counters; the signal ages are read from Redis
here, at scrape time, so they are the same whichever process answers.
"""

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from redis.exceptions import RedisError

from app.api.deps import RuntimeDep
from app.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])
log = logging.getLogger(__name__)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(runtime: RuntimeDep) -> Response:
    try:
        runtime.metrics.heard(await runtime.store.last_heard(), datetime.now(UTC))
    except RedisError as error:  # the counters are still worth a scrape
        log.warning("metrics: signal ages not refreshed, Redis unreachable: %s", error)
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)
