"""A promotion record's writes after its claim, and the events they make.

Shared by the promoter (`app.engine.promote`) and the follower (`app.engine.follow`): every
write is a compare-and-set on the record as its writer saw it, so a writer that lost the
record (a stalled process, a follower that settled it first) changes nothing.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from app.config.durations import short
from app.core.models import Candidate, PromotionRecord, PromotionState
from app.storage.audit import Audit, Event, gate_details
from app.storage.ledger import Ledger

log = logging.getLogger(__name__)


class Records:
    def __init__(self, ledger: Ledger, audit: Audit, clock: Callable[[], datetime]) -> None:
        self.ledger, self.audit, self.clock = ledger, audit, clock

    async def give_back(self, records: Sequence[PromotionRecord]) -> None:
        """Drop records this process claimed and never sent (only if still its own)."""
        await asyncio.gather(*(self.ledger.drop(record) for record in records))

    async def swapped(self, record: PromotionRecord, new: PromotionRecord) -> PromotionRecord:
        """`new` (stamped now) in place of `record`, if the record is still as seen; else
        `record` (a follower settled it already)."""
        new = replace(new, updated_at=self.clock())
        return new if await self.ledger.swap(record, new) else record

    async def settle(self, record: PromotionRecord, state: PromotionState, why: str) -> None:
        """Succeeded or failed, with its event; left alone if it changed meanwhile."""
        error = why if state is PromotionState.FAILED else None
        settled = replace(record, state=state, error=error, updated_at=self.clock())
        if not await self.ledger.swap(record, settled):
            log.info("promotion of %s to %s changed meanwhile: left", record.commit, record.target)
            return
        record = settled
        verb = "succeeded" if state is PromotionState.SUCCEEDED else "failed"
        message = f"promotion of {short(record.commit)} to {record.target} {verb}: {why}"
        await self.event(f"promotion.{verb}", record, message)

    async def event(
        self, kind: str, record: PromotionRecord, message: str, candidate: Candidate | None = None
    ) -> None:
        """The record's event, with the gates of the decision that made it, if given."""
        details: dict[str, Any] = {"release": record.release_id, "promotion": record.promotion_id}
        if candidate is not None:
            details["gates"] = gate_details(candidate.gates)
        await self.audit.record(
            Event(
                kind=kind,
                message=message,
                at=self.clock(),
                service=record.service,
                commit=record.commit,
                source=record.source,
                target=record.target,
                details=details,
            )
        )
