"""A promotion's start: claim, re-read, POST with the source release pinned, record.

The record is claimed (one at a time per target) before anything is sent, marked
sent just before the POST and saved before the POST's answer is acted on, each
write a compare-and-set on the record as its writer saw it, so a crash or a stall
at any step is resumed by `app.engine.follow`, never repeated: a claim that was never
sent is taken back and decided afresh, one that may have reached Heroku is followed. The
POST goes only while the source runs the decision's release, the target still
runs the one it saw (`app.engine.reread`) and no pause is in force (judged again as the
record is marked sent). A promotion that fails, or whose outcome is lost, stays failed
until a newer commit or an operator (`POST /retry`) clears the way.
"""

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime

from app import logs
from app.config.durations import short
from app.core.models import Candidate, PromotionRecord, PromotionState, Snapshot
from app.engine.records import Records
from app.engine.releases import fold
from app.engine.reread import reread
from app.engine.topology import Topology
from app.heroku.client import HerokuClient, HerokuError, OutcomeUnknown, PromotionRefused
from app.storage.audit import Audit
from app.storage.ledger import Ledger, Sent
from app.storage.store import Store

log = logging.getLogger(__name__)


class Promoter:
    def __init__(
        self,
        heroku: HerokuClient,
        store: Store,
        ledger: Ledger,
        audit: Audit,
        clock: Callable[[], datetime],
        owner: str,
        durable: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.heroku, self.store, self.ledger, self.clock = heroku, store, ledger, clock
        self.owner = owner  # who claims, as its records say
        self.durable = durable  # waits until a claim is on Redis's disk (`Epoch.durable`)
        self.records = Records(ledger, audit, clock)

    async def promote_ready(
        self, snapshot: Snapshot, topology: Topology, ready: Sequence[Candidate]
    ) -> bool:
        """Promote every ready candidate, a wave's targets (from one source release) with one
        POST; True when a POST was sent."""
        together: dict[tuple[int, str | None], list[Candidate]] = {}
        for c in ready:
            together.setdefault((c.pair.index, c.release.id if c.release else None), []).append(c)
        promoted = False
        for candidates in together.values():
            promoted |= await self.promote(snapshot, topology, candidates)
        return promoted

    async def promote(
        self, snapshot: Snapshot, topology: Topology, candidates: Sequence[Candidate]
    ) -> bool:
        """Promote ready candidates of one source release, each at most once, with one POST
        (a wave's targets together); True when a POST was sent.

        Each target has its own record, claimed on its own: should another process hold one
        of them, it makes that promotion, and this one gives its claims back.
        """
        first, service = candidates[0], snapshot.service.name
        release = first.release  # what the decision saw, the same for every target
        assert release is not None
        assert first.commit is not None
        now = self.clock()
        token = secrets.token_hex(8)
        records = [
            PromotionRecord(
                service=service,
                source=c.pair.source.app,
                target=c.pair.target.app,
                commit=first.commit,
                release_id=release.id,
                state=PromotionState.CLAIMED,
                claimed_at=now,
                updated_at=now,
                by=self.owner,
                sent=False,
                token=token,
                over=c.over.id if c.over else None,
            )
            for c in candidates
        ]
        # The re-read (a GET) goes out with the claims, not after them: only the decision's
        # check stands between them and the POST (BENCHMARKS.md). A lost claim wastes a read.
        runs = first.pair.source.release or release  # the source's current release, as decided
        claimed, (latest, changed) = await asyncio.gather(
            asyncio.gather(*(self.ledger.claim(record) for record in records)),
            reread(self.heroku, topology, records, runs, [c.over for c in candidates]),
        )
        if not all(claimed):
            await self.records.give_back([r for r, ok in zip(records, claimed, strict=True) if ok])
            return False
        if not await self._kept(records, "claim"):
            return False
        with logs.scope(commit=first.commit):
            sent = await self._send(records, topology, first, changed)
        # What the re-read found, into the view after the POST: the POST waits for nothing.
        await fold(self.store, service, topology, latest, self.clock())
        return sent

    async def _kept(self, records: Sequence[PromotionRecord], what: str) -> bool:
        """Whether Redis confirmed the records' last writes on disk and on a replica in time;
        if not, they are given back unsent. A crash or a failover could lose them: a lost
        claim lets another process claim again, a lost mark makes a sent claim read as never
        sent, and either way the promotion would be made twice."""
        if self.durable is None or await self.durable(records[0].service):
            return True
        await self.records.give_back(records)
        log.warning(
            "promotion not sent service=%s to=%s: its %s not on disk or a replica in time",
            records[0].service,
            ", ".join(r.target for r in records),
            what,
        )
        return False

    async def _send(
        self,
        records: list[PromotionRecord],
        topology: Topology,
        candidate: Candidate,
        changed: str | None,
    ) -> bool:
        """POST the claimed promotion unless the re-read says the decision no longer holds.

        Recorded after the POST (decide, act once, record): its audit entries wait for
        nothing, and carry Heroku's promotion id.
        """
        service, source = records[0].service, candidate.pair.source
        targets = ", ".join(r.target for r in records)
        if changed:
            # Only if still ours: a stalled process drops nothing.
            await self.records.give_back(records)
            log.info("promotion skipped service=%s to=%s: %s", service, targets, changed)
            return False
        # The pauses are judged again here, as late as can be: the plan decided on the ones
        # read with the lock, and an operator may have paused since (the re-read, the claim).
        # The service's pause is checked in the compare-and-set that marks each record sent;
        # the global one lives on another cluster slot, so it is read just before it.
        now = self.clock()
        sending = [replace(record, sent=True, updated_at=now) for record in records]
        paused = await self.store.pause(None)
        outcomes = []
        for record, marked in zip(records, sending, strict=True):
            if paused is not None and paused.active(now):
                outcomes.append(Sent.PAUSED)
            else:
                outcomes.append(await self.ledger.mark_sent(record, marked, now))
            if outcomes[-1] is not Sent.SENT:
                break
        if any(outcome is not Sent.SENT for outcome in outcomes):
            # Not one POST for part of a wave: every record is given back (those marked sent
            # too, nothing having been sent), and decided afresh.
            done = [m for m, o in zip(sending, outcomes, strict=False) if o is Sent.SENT]
            await self.records.give_back([*done, *records[len(done) :]])
            why = "paused since the decision" if Sent.PAUSED in outcomes else "claim taken back"
            log.warning("promotion not sent service=%s to=%s: %s", service, targets, why)
            return False
        records = sending
        if not await self._kept(records, "mark that it is sent"):
            return False
        try:
            promotion_id = await self.heroku.create_promotion(
                topology.pipeline_id,
                topology.app_ids[source.app],
                records[0].release_id,
                [topology.app_ids[record.target] for record in records],
            )
        except PromotionRefused as error:
            for record in records:
                why = f"Heroku refused it: {error}"
                await self.records.settle(record, PromotionState.FAILED, why)
            return True
        except OutcomeUnknown as error:
            # Heroku may or may not have acted: keep the claims, never POST again.
            why = f"outcome unknown: {error}"
            records = [await self.records.swapped(r, replace(r, error=why)) for r in records]
            log.warning("promotion outcome unknown service=%s to=%s: %s", service, targets, error)
        except HerokuError as error:
            # Never reached Heroku (no connection, rate limited throughout): try again later.
            await self.records.give_back(records)  # only if still ours
            message = f"promotion of {short(candidate.commit)} not sent, will try again: {error}"
            for record in records:
                await self.records.event("promotion.deferred", record, message)
            return False
        else:
            records = [
                await self.records.swapped(
                    r, replace(r, state=PromotionState.PROMOTING, promotion_id=promotion_id)
                )
                for r in records
            ]
        for record in records:
            started = _started(record, candidate)
            await self.records.event("promotion.started", record, started, candidate)
        return True


def _started(record: PromotionRecord, candidate: Candidate) -> str:
    opened = ", ".join(f"{g.name} ({g.reason})" for g in candidate.gates) or "no gates"
    return f"promoting {short(record.commit)} from {record.source} to {record.target}: {opened}"
