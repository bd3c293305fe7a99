"""Cascade's promise, checked after every step from the world's own record of what Heroku did.

Never from Cascade's records: a Redis that lost data would vouch for itself. Each check gets
one promotion Cascade asked for (`Asked`, recorded by the sandbox as the POST arrived) and
the decision's moment. The decision of a POST is made between the engine's last parked call
before its re-read and the re-read itself (nothing else runs between two park points), so
the step at which the re-read was sent is when the decision was made.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.sandbox.resources import Release
from tests.simulation.world import Asked, Truth, newer


@dataclass
class Pause:
    """A pause the operator set through Cascade's `POST /pause`, as the simulation knows it."""

    set_step: int
    until: datetime | None
    scope: str | None  # the service paused, or None: every service (the global pause)
    lifted_step: int | None = None

    def in_force(self, step: int, at: datetime) -> bool:
        lifted = self.lifted_step is not None and self.lifted_step <= step
        return self.set_step < step and not lifted and (self.until is None or at < self.until)


@dataclass
class Judge:
    """Checks each promotion as Heroku receives it, and each release Cascade made as it lands."""

    truth: Truth
    min_age: timedelta
    times: dict[int, datetime] = field(default_factory=dict)  # virtual time at each step
    pauses: list[Pause] = field(default_factory=list)
    # Age from when the commit started to run (its release succeeded), by the one true
    # clock; not strict: from its release's creation as Heroku stamps it (row 9 is about
    # ages taken from Heroku's stamps, so only a run with its kinds on is strict).
    strict_age: bool = True
    # A pause counts from the decision (strict), or only when it was in force already when
    # the reconcile that decided started (row 10: the pause read with the lock is reused).
    pause_from_start: bool = False

    def decided_at(self, asked: Asked) -> int | None:
        """The step of the decision: when its engine sent the re-read before this POST."""
        op = asked.op
        if op is None:
            return None
        rereads = [step for step, call in op.issued if call.is_reread and step <= asked.step]
        return rereads[-1] if rereads else None

    def halts(self, halted: dict[str, int]) -> list[str]:
        """The halts' promises, for every POST and rollback so far: a commit Cascade halted
        (at the step in `halted`) is never promoted after it, unless an operator retried
        since; a release rollback is asked once per (app, release) at most."""
        broken = []
        retried = max(self.truth.retried.values(), default=-1)
        for asked in self.truth.asked:
            at = halted.get(asked.commit)
            if at is not None and at < self.post_issued(asked) and retried < at:
                broken.append(
                    f"suspect: {asked.commit[:8]} promoted to {asked.target} at step"
                    f" {asked.step}, after Cascade halted it at step {at}"
                )
        seen: set[tuple[str, str]] = set()
        for step, app, release in self.truth.rolled_back:
            if (app, release) in seen:
                broken.append(f"rollback twice: {app} to release {release[:8]} at step {step}")
            seen.add((app, release))
        return broken

    def post_issued(self, asked: Asked) -> int:
        """The step at which its engine sent this POST (it may reach Heroku later)."""
        op = asked.op
        posts = [step for step, call in op.issued if call.is_promotion] if op else []
        return max((step for step in posts if step <= asked.step), default=asked.step)

    def reread_answered(self, asked: Asked) -> int:
        """When the re-read before this POST was answered: what landed on the target after
        it is a race no check of Cascade's can see (the Platform API has no precondition)."""
        op = asked.op
        calls = [c for s, c in op.issued if c.is_reread and s <= asked.step] if op else []
        answered = calls[-1].answered if calls else None
        return answered if answered is not None else asked.step

    def promotion(self, asked: Asked) -> list[str]:
        """Every broken promise of one POST, in words; empty when it keeps them all."""
        broken = self._once(asked)
        replaced = asked.replaced
        if replaced is not None:
            since = self.truth.current_since.get(replaced.id, 0)
            if since > self.reread_answered(asked):
                return broken  # landed between the re-read and the POST: not decidable
        broken += self._forwards(asked)
        decided = self.decided_at(asked)
        if decided is not None:
            broken += self._seen(asked, decided) + self._gates(asked, decided)
        return broken

    def _once(self, asked: Asked) -> list[str]:
        """At most once: again only after it failed and an operator asked for a retry, or
        after a data loss that took its record, which Cascade noticed and an operator
        confirmed (`POST /recover`: Cascade said promotion records may be gone)."""
        earlier = [
            a
            for a in self.truth.asked
            if a is not asked and (a.target, a.commit) == (asked.target, asked.commit)
        ]
        for before in earlier:
            failed = before.failed
            retried = self.truth.retried.get(asked.target, -1) > before.step
            if not (failed and retried) and not self._confirmed_loss(before, asked):
                return [
                    f"at most once: {asked.commit[:8]} promoted to {asked.target} again"
                    f" (first at step {before.step}, {before.landing.status})"
                ]
        return []

    def _confirmed_loss(self, first: Asked, again: Asked) -> bool:
        """Redis lost data after `first` was asked for, and an operator confirmed the loss
        before `again` was (in the same step too: seed 118, `--rounds 4`)."""
        order = {id(a): i for i, a in enumerate(self.truth.asked)}
        i, j = order[id(first)], order[id(again)]
        return any(
            i < lost[0] and any(lost < r and r[0] <= j for r in self.truth.recovered)
            for lost in self.truth.lost
        )

    def _forwards(self, asked: Asked) -> list[str]:
        replaced = asked.replaced
        if replaced is not None and newer(self.truth, replaced.slug.commit, asked.commit):
            return [
                f"never backwards: {asked.target} ran {replaced.slug.commit[:8]}, newer than"
                f" {asked.commit[:8]} which Cascade promoted over it"
            ]
        return []

    def _seen(self, asked: Asked, decided: int) -> list[str]:
        """Never over a release the decision did not see."""
        replaced = asked.replaced
        if replaced is None:
            return []
        since = self.truth.current_since.get(replaced.id, 0)
        known = self.truth.revealed.get(replaced.id)
        if since > decided or known is None or known > decided:
            return [
                f"never over an unseen release: {asked.target} v{replaced.version}"
                f" ({replaced.slug.commit[:8]}, current since step {since}, known to Cascade"
                f" {'never' if known is None else f'at step {known}'}) replaced by a POST"
                f" decided at step {decided}"
            ]
        return []

    def _gates(self, asked: Asked, decided: int) -> list[str]:
        at = self.times[decided]
        started = asked.op.started if asked.op is not None else decided
        # Cascade judges the pauses last as it marks the record sent, right before the POST:
        # a pause lifted by then held nothing back (the operator's pause had ended).
        sent = self.post_issued(asked)
        broken = [
            f"gate: promoted while paused (set at step {p.set_step}, decided at step {decided})"
            for p in self.pauses
            if p.in_force(decided, at)
            and p.in_force(sent, self.times.get(sent, at))
            and (not self.pause_from_start or p.in_force(started, self.times[started]))
        ]
        arrivals = self.truth.arrived if self.strict_age else self.truth.stamped
        arrived = arrivals.get((asked.source, asked.commit))
        if arrived is None or at - arrived < self.min_age:
            age = "never ran there" if arrived is None else f"had run {at - arrived}"
            broken.append(
                f"gate: {asked.commit[:8]} promoted from {asked.source} before min_age"
                f" {self.min_age} ({age} at decision step {decided})"
            )
        return broken

    def landing(self, release: Release, replaced: Release | None) -> list[str]:
        """A release a Cascade promotion made became current: not over a newer commit that
        Cascade put there itself after this POST (two promotions in flight into one target).
        What the POST replaced was judged with the POST."""
        mine = next((a for a in self.truth.asked if a.release is release), None)
        if mine is None or replaced is None or replaced is mine.replaced:
            return []
        if not any(a.release is replaced and a.step > mine.step for a in self.truth.asked):
            return []
        if newer(self.truth, replaced.slug.commit, release.slug.commit):
            return [
                f"never backwards: Cascade's promotion of {release.slug.commit[:8]} landed on"
                f" {release.app.name} over newer {replaced.slug.commit[:8]}"
            ]
        return []
