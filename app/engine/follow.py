"""Promotions in flight, followed to their end: succeeded, failed, or taken back unsent.

A reconcile that finds records unsettled moves each on from the target's stage (the
webhook brought its release) or from the promotion's targets (the Platform API). A claim
never sent was left by a process that stopped before its POST: it is taken back and
decided afresh. A record sent with no promotion id and no sign of its commit after
`CLAIM_GRACE` has an outcome nobody knows: failed, never POSTed again.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from app.config.durations import short
from app.core.models import PromotionRecord, PromotionState, StageView
from app.engine.records import Records
from app.engine.releases import fold
from app.engine.topology import Topology
from app.heroku.client import HerokuClient, HerokuError, NotFound
from app.storage.audit import Audit
from app.storage.ledger import Ledger
from app.storage.store import Store

log = logging.getLogger(__name__)

CLAIM_GRACE = timedelta(minutes=3)  # a claim with no promotion id and no sign of it: lost


class Follower:
    def __init__(
        self,
        heroku: HerokuClient,
        store: Store,
        ledger: Ledger,
        audit: Audit,
        clock: Callable[[], datetime],
    ) -> None:
        self.heroku, self.store, self.ledger, self.clock = heroku, store, ledger, clock
        self.records = Records(ledger, audit, clock)

    async def follow(self, service: str, topology: Topology) -> None:
        """Move every unsettled record of the service on, from the view or the Platform API."""
        records = await self.ledger.unsettled(service)
        if not records:
            return
        views = {stage.app: stage for stage in await self.store.stages(service, topology.stages)}
        for record in records:
            view = views.get(record.target, StageView(record.target))
            await self._follow_one(record, view, topology)

    async def _follow_one(
        self, record: PromotionRecord, view: StageView, topology: Topology
    ) -> None:
        if not record.sent:
            # Claimed under a lock that this reconcile holds now: its process stopped (or
            # stalled past the lock) before the POST, so nothing reached Heroku.
            if await self.ledger.swap(record, None):
                message = (
                    f"promotion of {short(record.commit)} to {record.target} was claimed by"
                    f" {record.by}, which stopped before sending it: deciding again"
                )
                await self.records.event("promotion.deferred", record, message)
            return
        if view.commit == record.commit:
            await self.records.settle(record, PromotionState.SUCCEEDED, f"{record.target} runs it")
            return
        if record.promotion_id is not None:
            await self._ask_heroku(record, record.promotion_id, topology)
            return
        if view.pending is not None and view.pending.commit == record.commit:
            return  # the release is on its way
        if self.clock() - record.claimed_at > CLAIM_GRACE:
            reason = record.error or "Cascade stopped before Heroku answered"
            reason = f"outcome unknown: {reason}, and {record.target} never got the commit"
            await self.records.settle(record, PromotionState.FAILED, reason)

    async def _ask_heroku(
        self, record: PromotionRecord, promotion: str, topology: Topology
    ) -> None:
        """Settle the record as the promotion's target for its app says, once it knows."""
        try:
            targets = await self.heroku.promotion_targets(promotion)
        except NotFound:
            # The pipeline was re-created (or the sandbox restarted): nothing to follow,
            # and an unsettled record would hold its target for ever.
            why = f"Heroku no longer knows promotion {promotion}"
            await self.records.settle(record, PromotionState.FAILED, why)
            return
        except HerokuError as error:
            log.warning("cannot follow promotion %s: %s", promotion, error)
            return
        # A wave's promotion has several targets: each record follows its own.
        app_id = topology.app_ids.get(record.target)
        targets = [t for t in targets if t.app_id == app_id]
        if any(t.status == "failed" for t in targets):
            errors = "; ".join(t.error_message or "failed" for t in targets)
            await self.records.settle(record, PromotionState.FAILED, errors)
        elif targets and all(t.status == "succeeded" for t in targets):
            await self.records.settle(
                record, PromotionState.SUCCEEDED, "Heroku reports it succeeded"
            )
            # Heroku's state is the truth: the pipeline's latest releases into the view.
            latest = await self.heroku.latest_releases(topology.pipeline_id)
            await fold(self.store, record.service, topology, latest, self.clock())
