"""`GET /metrics`: this process's Prometheus metrics, in the text exposition format.

Each process (dyno) answers with its own counters; the signal ages and the DORA series
(refreshed at most once a minute, `app.metrics.DORA_REFRESH`) are read from Redis here, at
scrape time, so they are the same whichever process answers.
"""

import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Response

from app.api.deps import CatalogDep, DoraDep, MetricsDep, ReconcilerDep, StoreDep
from app.api.dora import measured
from app.metrics import CONTENT_TYPE, DORA_DAYS
from app.storage.client import UNAVAILABLE

router = APIRouter(tags=["metrics"])
log = logging.getLogger(__name__)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(
    metrics: MetricsDep,
    store: StoreDep,
    catalog: CatalogDep,
    record: DoraDep,
    reconciler: ReconcilerDep,
) -> Response:
    now = datetime.now(UTC)
    try:
        metrics.heard(await store.last_heard(), now)
        if metrics.dora_due(now):
            since = reconciler.clock() - timedelta(days=DORA_DAYS)
            metrics.dora(await measured(record, reconciler, catalog.services, since), now)
    except UNAVAILABLE as error:  # the counters are still worth a scrape
        log.warning("metrics: signal ages or DORA not refreshed, Redis unreachable: %s", error)
    return Response(metrics.render(), media_type=CONTENT_TYPE)
