"""A promotion's life: claim, re-read, POST with the source release pinned, follow, settle.

The record is claimed (one at a time per target) before anything is sent, marked
sent just before the POST and saved before the POST's answer is acted on, each
write a compare-and-set on the record as its writer saw it, so a crash or a stall
at any step is resumed by `follow`, never repeated: a claim that was never sent is
taken back and decided afresh, one that may have reached Heroku is followed. The
POST goes only while the source runs the decision's release, the target still
runs the one it saw and no pause is in force (judged again as the record is marked
sent). A promotion that fails, or whose outcome is lost, stays failed until a newer
commit or an operator (`POST /retry`) clears the way.
"""

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from app import logs
from app.config.durations import short
from app.core.models import (
    Candidate,
    PromotionRecord,
    PromotionState,
    Release,
    ReleaseStatus,
    Snapshot,
    StageView,
)
from app.engine.releases import fold
from app.engine.topology import Topology
from app.heroku.client import HerokuClient, HerokuError, NotFound, OutcomeUnknown, PromotionRefused
from app.storage.audit import Audit, Event, gate_details
from app.storage.ledger import Ledger, Sent
from app.storage.store import Store

log = logging.getLogger(__name__)

CLAIM_GRACE = timedelta(minutes=3)  # a claim with no promotion id and no sign of it: lost


class Promoter:
    def __init__(
        self,
        heroku: HerokuClient,
        store: Store,
        ledger: Ledger,
        audit: Audit,
        clock: Callable[[], datetime],
        owner: str,
        durable: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.heroku, self.store, self.ledger, self.audit = heroku, store, ledger, audit
        self.clock, self.owner = clock, owner
        self.durable = durable  # waits until a claim is on Redis's disk (`Epoch.durable`)

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
            self._reread(topology, records, runs, [c.over for c in candidates]),
        )
        if not all(claimed):
            await self._give_back([r for r, ok in zip(records, claimed, strict=True) if ok])
            return False
        if not await self._kept(records, "claim"):
            return False
        with logs.scope(commit=first.commit):
            sent = await self._send(records, topology, first, changed)
        # What the re-read found, into the view after the POST: the POST waits for nothing.
        await fold(self.store, service, topology, latest, self.clock())
        return sent

    async def _give_back(self, records: Sequence[PromotionRecord]) -> None:
        """Drop records this process claimed and never sent (only if still its own)."""
        await asyncio.gather(*(self.ledger.drop(record) for record in records))

    async def _kept(self, records: Sequence[PromotionRecord], what: str) -> bool:
        """Whether Redis confirmed the records' last writes on disk and on a replica in time;
        if not, they are given back unsent. A crash or a failover could lose them: a lost
        claim lets another process claim again, a lost mark makes a sent claim read as never
        sent, and either way the promotion would be made twice."""
        if self.durable is None or await self.durable():
            return True
        await self._give_back(records)
        log.warning(
            "promotion not sent service=%s to=%s: its %s not on disk or a replica in time",
            records[0].service,
            ", ".join(r.target for r in records),
            what,
        )
        return False

    async def _reread(
        self,
        topology: Topology,
        records: Sequence[PromotionRecord],
        runs: Release,
        overs: Sequence[Release | None],
    ) -> tuple[list[Release], str | None]:
        """The pipeline now (one call), and why the decision no longer holds, if it doesn't:
        the source must still run `runs` (the pinned release, or the one a proven release
        moves in place of), each target what the decision saw (its record's `over`).

        Returns the releases to fold into the view: each app's newest and, when that one
        failed or is pending, the one that runs (read only when the view cannot tell).
        """
        first = records[0]
        try:
            latest = await self.heroku.latest_releases(topology.pipeline_id)
            newest = {r.app: r for r in latest}
            source = newest.get(first.source)
            if source is None:
                return latest, f"{first.source} has no release"
            running = await self.heroku.running(source, runs)
            if running is not None and running is not source:
                latest.append(running)
            found = []
            for record, over in zip(records, overs, strict=True):
                target, target_running = newest.get(record.target), None
                if target is not None and target.status is not ReleaseStatus.PENDING:
                    target_running = await self.heroku.running(target, over)
                    if target_running is not None and target_running is not target:
                        latest.append(target_running)
                found.append(_changed_since(record, runs, running, target, target_running))
        except HerokuError as error:
            return [], f"cannot re-read the pipeline: {error}"
        return latest, "; ".join(why for why in found if why) or None

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
            await self._give_back(records)  # only if still ours: a stalled process drops nothing
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
            await self._give_back([*done, *records[len(done) :]])
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
                await self._settle(record, PromotionState.FAILED, f"Heroku refused it: {error}")
            return True
        except OutcomeUnknown as error:
            # Heroku may or may not have acted: keep the claims, never POST again.
            why = f"outcome unknown: {error}"
            records = [await self._swapped(r, replace(r, error=why)) for r in records]
            log.warning("promotion outcome unknown service=%s to=%s: %s", service, targets, error)
        except HerokuError as error:
            # Never reached Heroku (no connection, rate limited throughout): try again later.
            await self._give_back(records)  # only if still ours
            message = f"promotion of {short(candidate.commit)} not sent, will try again: {error}"
            for record in records:
                await self._event("promotion.deferred", record, message)
            return False
        else:
            records = [
                await self._swapped(
                    r, replace(r, state=PromotionState.PROMOTING, promotion_id=promotion_id)
                )
                for r in records
            ]
        for record in records:
            await self._event("promotion.started", record, _started(record, candidate), candidate)
        return True

    async def _swapped(self, record: PromotionRecord, new: PromotionRecord) -> PromotionRecord:
        """`new` (stamped now) in place of `record`, if the record is still as seen; else
        `record` (a follower settled it already)."""
        new = replace(new, updated_at=self.clock())
        return new if await self.ledger.swap(record, new) else record

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
                await self._event("promotion.deferred", record, message)
            return
        if view.commit == record.commit:
            await self._settle(record, PromotionState.SUCCEEDED, f"{record.target} runs it")
            return
        if record.promotion_id is not None:
            try:
                targets = await self.heroku.promotion_targets(record.promotion_id)
            except NotFound:
                # The pipeline was re-created (or the sandbox restarted): nothing to follow,
                # and an unsettled record would hold its target for ever.
                why = f"Heroku no longer knows promotion {record.promotion_id}"
                await self._settle(record, PromotionState.FAILED, why)
                return
            except HerokuError as error:
                log.warning("cannot follow promotion %s: %s", record.promotion_id, error)
                return
            # A wave's promotion has several targets: each record follows its own.
            app_id = topology.app_ids.get(record.target)
            targets = [t for t in targets if t.app_id == app_id]
            if any(t.status == "failed" for t in targets):
                errors = "; ".join(t.error_message or "failed" for t in targets)
                await self._settle(record, PromotionState.FAILED, errors)
            elif targets and all(t.status == "succeeded" for t in targets):
                await self._settle(record, PromotionState.SUCCEEDED, "Heroku reports it succeeded")
                await self._refresh(record.service, topology)
            return
        if view.pending is not None and view.pending.commit == record.commit:
            return  # the release is on its way
        if self.clock() - record.claimed_at > CLAIM_GRACE:
            reason = record.error or "Cascade stopped before Heroku answered"
            reason = f"outcome unknown: {reason}, and {record.target} never got the commit"
            await self._settle(record, PromotionState.FAILED, reason)

    async def _refresh(self, service: str, topology: Topology) -> None:
        """Read the pipeline's latest releases into the view; Heroku's state is the truth."""
        latest = await self.heroku.latest_releases(topology.pipeline_id)
        await fold(self.store, service, topology, latest, self.clock())

    async def _settle(self, record: PromotionRecord, state: PromotionState, why: str) -> None:
        error = why if state is PromotionState.FAILED else None
        settled = replace(record, state=state, error=error, updated_at=self.clock())
        if not await self.ledger.swap(record, settled):
            log.info("promotion of %s to %s changed meanwhile: left", record.commit, record.target)
            return
        record = settled
        verb = "succeeded" if state is PromotionState.SUCCEEDED else "failed"
        message = f"promotion of {short(record.commit)} to {record.target} {verb}: {why}"
        await self._event(f"promotion.{verb}", record, message)

    async def _event(
        self, kind: str, record: PromotionRecord, message: str, candidate: Candidate | None = None
    ) -> None:
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


def _started(record: PromotionRecord, candidate: Candidate) -> str:
    opened = ", ".join(f"{g.name} ({g.reason})" for g in candidate.gates) or "no gates"
    return f"promoting {short(record.commit)} from {record.source} to {record.target}: {opened}"


def _changed_since(
    record: PromotionRecord,
    runs: Release,
    source: Release | None,
    target: Release | None,
    target_running: Release | None,
) -> str | None:
    """Why the re-read pipeline no longer allows the claimed promotion, if it doesn't.

    `source` and `target_running` are what runs on each app (the newest succeeded release),
    `target` the target's newest release. The POST goes only while the source runs what the
    decision saw (`runs`) and the target still runs what it saw, with nothing pending.
    """
    if source is None:
        return f"no succeeded release of {record.source} is known"
    if source.id != runs.id:
        return f"{record.source} runs v{source.version} now, not the release decided on"
    if target is not None and target.status is ReleaseStatus.PENDING:
        return f"{record.target} release v{target.version} is in progress"
    if target_running is not None and target_running.commit == record.commit:
        return f"{record.target} already runs {short(record.commit)}"
    if (target_running.id if target_running else None) != record.over:
        return (
            f"{record.target} runs {_described(target_running)}, not what the decision saw"
            " (a hotfix, a manual promotion or a rollback since): left alone"
        )
    return None


def _described(release: Release | None) -> str:
    return f"v{release.version} ({short(release.commit)})" if release else "no release"
