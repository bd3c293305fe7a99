"""The seeded scheduler: one `random.Random(seed)` picks every step, so a seed replays exactly.

Engines (Cascade processes on one Redis), the sandbox world and the virtual clock are built
per seed on a clean Redis database. Only one engine coroutine runs at a time: each step does
one thing (start a reconcile, let one parked Platform API call go on, deliver one webhook,
change the world, inject one fault, move the clock) and then waits until every engine is
parked again or done (`settle`). After every step the invariants judge what Heroku was asked
to do. Then faults stop, gates open, a new commit is deployed, and every stage must run it
within `CONVERGE_WITHIN` of virtual time (no wedge).
"""

import asyncio
import contextvars
import logging
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as redis

from app.sandbox.resources import App, PromotionTarget, Release, ReleaseStatus
from app.signals.alerts.facts import ALERTMANAGER, Alert
from app.storage import keys
from app.storage.client import connect
from app.storage.ledger import Ledger
from app.webhooks.alerts import take
from tests.simulation.engine import ALERT, Engine, services
from tests.simulation.faults import MODES, RATES, WEIGHTS, Enabled
from tests.simulation.invariants import Judge, Pause
from tests.simulation.platform import OPERATION, Call
from tests.simulation.world import SimSandbox, VirtualClock, Webhook, pipeline_spec

SERVICE = "sim"
MIN_AGE = timedelta(minutes=3)
WAVES_RATE = 0.3  # seeds whose last stage is a wave of two apps
FIR_RATE = 0.3  # seeds whose pipeline is of the Fir generation
ROLLBACK_RATE = 0.5  # seeds whose service rolls a halted stage back
HALT_FOCUS = 20  # how much likelier the alert fires just after a promotion landed
DRILL_RATE = 0.5  # seeds whose quiet phase halts its commit once (`Simulation._drill`)
DRILL_FOR = timedelta(minutes=5)  # how long the drill's alert fires before the operator acts
LATE = timedelta(minutes=15)  # a late webhook arrives this long after its event
CONVERGE_WITHIN = timedelta(hours=3)
QUIET_TICK = timedelta(minutes=2)
HISTORY_BEFORE_ONBOARDING = 60  # releases on the first stage before Cascade starts


# ARGV: milliseconds gone by, the ending of keys left alone ("" for none). Every other key
# with an expiry gets that much closer to it.
_AGE_KEYS = """
local gone, keep = tonumber(ARGV[1]), ARGV[2]
for _, name in ipairs(redis.call('keys', '*')) do
  if keep == '' or string.sub(name, -#keep) ~= keep then
    local ttl = redis.call('pttl', name)
    if ttl > 0 then
      if ttl <= gone then redis.call('del', name) else redis.call('pexpire', name, ttl - gone) end
    end
  end
end
"""


@dataclass
class Op:
    """One engine coroutine the scheduler started (a reconcile through the worker step)."""

    number: int
    engine: Engine
    started: int
    task: "asyncio.Task[None] | None" = None
    issued: list[tuple[int, Call]] = field(default_factory=list)
    error: str | None = None


@dataclass
class Result:
    seed: int
    steps: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    modes: tuple[str, ...] = ()
    rate: float = 1.0  # the fault rate drawn for the seed (`faults.RATES`)
    promotions: int = 0
    proven: int = 0  # of them, pinning a release older than the source's current
    shape: tuple[str, ...] = ()  # "waves", "fir": what the world is made of
    halts: int = 0  # commits Cascade halted (its auto-halt)
    rollbacks: int = 0  # release rollbacks it asked of Heroku
    violations: list[str] = field(default_factory=list)
    converged_after: timedelta | None = None
    trace: list[str] = field(default_factory=list)

    def report(self, lines: int = 2000) -> str:
        head = (
            f"seed {self.seed}: {len(self.violations)} violation(s), modes {self.modes or '-'},"
            f" world {'+'.join(self.shape) or 'slugs, no wave'},"
            f" fault rate {self.rate}"
        )
        shown = self.trace[-lines:]
        return "\n".join([head, *self.violations, "trace:", *shown])


@dataclass(frozen=True)
class Stall:
    """When a stalled process wakes: at `until`, or once the sandbox has received more than
    `sent` promotions (None: only at `until`)."""

    until: datetime
    sent: int | None = None

    def over(self, now: datetime, sent: int) -> bool:
        return now >= self.until or (self.sent is not None and sent > self.sent)


class Simulation:
    def __init__(
        self,
        seed: int,
        redis_url: str,
        enabled: Enabled,
        steps: int = 60,
        engines: int = 3,
        rounds: int = 1,
    ) -> None:
        self.seed, self.redis_url, self.enabled = seed, redis_url, enabled
        self.rng = random.Random(seed)
        self.steps, self.engine_count, self.rounds = steps, engines, rounds
        self.base = 0  # the first step's number in this round
        self.clock = VirtualClock()
        self.result = Result(seed)
        self.modes = tuple(
            m
            for m in MODES
            if m in enabled.kinds and (self.rng.random() < 0.5 or m in enabled.focus)
        )
        self.rate = self.rng.choice(RATES)  # how often faults come, against the work
        self.result.modes, self.result.rate = self.modes, self.rate
        self.redis_skew = (
            timedelta(minutes=self.rng.randint(2, 8))
            if "clock_skew" in self.modes
            else timedelta(0)
        )
        heroku_skew = (
            -timedelta(minutes=self.rng.randint(2, 8))
            if "clock_skew" in self.modes
            else timedelta(0)
        )
        # The world's shape, drawn apart from the steps (other seeds keep their draws): its
        # last stage a wave of two apps, promoted together (SPEC, waves); of the Fir
        # generation (OCI images, no slugs).
        shape = random.Random(f"shape-{seed}")
        waves, fir = shape.random() < WAVES_RATE, shape.random() < FIR_RATE
        rollback = shape.random() < ROLLBACK_RATE
        self.drill = shape.random() < DRILL_RATE  # the quiet phase's commit is halted once
        self.result.shape = ("waves",) * waves + ("fir",) * fir + ("rollback",) * rollback
        spec = pipeline_spec(4 if waves else 3, fir=fir)
        self.sandbox = SimSandbox(spec, self.clock, self.rng, skew=lambda: heroku_skew)
        self.sandbox.copy_window = "copy_window" in self.modes
        apps = tuple(a.name for a in self.sandbox.apps)
        grouped = ((apps[0],), (apps[1],), apps[2:]) if waves else ()
        self.config = services(apps, MIN_AGE, grouped, rollback)
        self.alert_since: datetime | None = None  # when the service's alert started firing
        self.halted: dict[str, int] = {}  # commit -> the step Cascade's halt of it was seen
        self.judge = Judge(self.sandbox.truth, MIN_AGE, strict_age="clock_skew" in enabled.kinds)
        self.judge.pause_from_start = "pause_mid_reconcile" not in enabled.kinds
        self.parked: list[Call] = []
        self.ops: list[Op] = []
        self.engines: list[Engine] = []
        self.late: dict[int, Any] = {}  # webhook number -> when it may arrive
        self.stalled: dict[tuple[int, int], Stall] = {}  # (call, op) -> when its process wakes
        self.snapshot: list[tuple[str, int, bytes]] = []
        self.checked = 0
        self.numbered = 0
        self.redis: redis.Redis = connect(redis_url)
        # Raw bytes, for DUMP. Both clients are also used from inside an engine's coroutine
        # (`_replicated`), so `settle` counts their commands on the wire as work going on.
        self.dumper = redis.Redis.from_url(redis_url)  # owns its pool: aclose closes it

    # building ------------------------------------------------------------

    async def _engine(self, name: str) -> Engine:
        engine = Engine(
            name,
            self.redis_url,
            self.sandbox,
            self.clock,
            self.config,
            self.parked.append,
            self._replicated,
        )
        return await engine.start()

    async def _replicated(self) -> None:
        """A process waited for the replica (`Epoch.durable`): it has caught up."""
        if "redis_rewind" in self.enabled.kinds:
            await self._take_snapshot()

    async def run(self) -> Result:
        logging.disable(logging.WARNING)  # a seed's story is its trace
        try:
            await self.redis.flushdb()
            if "long_history" in self.modes:
                self._long_history()
            self.engines = [await self._engine(f"e{i}") for i in range(self.engine_count)]
            await self._alert(firing=False)  # the alert source is heard from: the gate opens
            for _ in range(self.rounds):  # a later round's faults meet settled promotions
                for step in range(self.base, self.base + self.steps):
                    await self.step(step)
                    if self.result.violations:
                        return self.result
                await self.quiet()
                if self.result.violations or self.result.converged_after is None:
                    return self.result
            return self.result
        finally:
            await self.close()
            logging.disable(logging.NOTSET)

    async def close(self) -> None:
        for op in list(self.ops):
            await self._cancel(op)
        for engine in self.engines:
            await engine.close()
        await self.redis.aclose()
        await self.dumper.aclose()

    def _long_history(self) -> None:
        """The first stage released many commits before Cascade was set up (its history)."""
        dev, *rest = self.sandbox.apps
        for i in range(HISTORY_BEFORE_ONBOARDING):
            self.clock.advance(timedelta(minutes=5))
            release = self.sandbox.deploy_commit(dev, self.sandbox.new_commit())
            self.sandbox.finish(release)
            if i in (HISTORY_BEFORE_ONBOARDING // 3, HISTORY_BEFORE_ONBOARDING // 2):
                for source, target in zip([dev, *rest], rest, strict=False):
                    made = self.sandbox.manual_promotion(source, target)
                    if made is not None:
                        self._land(made)
        self.sandbox.webhooks.held.clear()
        self.clock.advance(timedelta(hours=1))

    def _land(self, release: Release) -> None:
        self.sandbox.finish(release)

    # one step ------------------------------------------------------------

    async def step(self, number: int) -> None:
        self.sandbox.step = number
        self.judge.times[self.sandbox.step] = self.clock()
        kind = self._draw()
        said = await getattr(self, f"_{kind}")()
        self.result.steps += 1
        self.result.kinds[kind] += 1
        await self.settle()
        self._note(number, f"{kind}: {said}")
        self._check(number)
        await self._check_halts(number)

    def _note(self, number: int, text: str) -> None:
        self.result.trace.append(f"{number:5d} {self.clock().strftime('%d %H:%M:%S')} {text}")

    def _draw(self) -> str:
        kinds = [k for k, w in WEIGHTS.items() if w and k in self.enabled.kinds and self._can(k)]
        weights = [self.enabled.weight(k, self.rate) for k in kinds]
        if "alert_fires" in kinds and self._just_promoted():  # an alert where a halt can follow
            weights[kinds.index("alert_fires")] *= HALT_FOCUS
        return self.rng.choices(kinds, weights)[0]

    def _just_promoted(self) -> bool:
        """Whether a release Cascade's promotion made became current in the last few steps."""
        truth, now = self.sandbox.truth, self.sandbox.step
        landed = [a.release for a in truth.asked[-3:] if a.release is not None]
        return any(now - truth.current_since.get(r.id, -100) <= 10 for r in landed)

    def _can(self, kind: str) -> bool:
        parked = bool(self._releasable())
        if kind in ("release_call", "http_429", "http_5xx", "http_5xx_after", "stall", "kill"):
            return parked
        if kind in ("deliver_webhook", "duplicate_webhook", "reorder_webhooks"):
            return bool(self._deliverable())
        if kind in ("lose_webhook", "late_webhook"):
            return bool(self.sandbox.webhooks.held)
        if kind == "finish_release":
            return bool(self._finishable())
        if kind == "reconcile":
            return bool(self._idle_engines())
        if kind in ("alert_fires", "alert_resolves"):
            return (self.alert_since is None) == (kind == "alert_fires")
        if kind == "recover":  # once Redis lost data since the last confirmation
            truth = self.sandbox.truth
            return bool(truth.lost) and (
                not truth.recovered or truth.recovered[-1] < truth.lost[-1]
            )
        return True

    def _check(self, number: int) -> None:
        asked = self.sandbox.truth.asked
        for made in asked[self.checked :]:
            for broken in self.judge.promotion(made):
                self._violation(number, broken)
        self.checked = len(asked)
        self.result.promotions = len(asked)
        self.result.proven = sum(a.proven for a in asked)

    def _violation(self, number: int, text: str) -> None:
        self.result.violations.append(f"step {number}: {text}")
        self._note(number, f"VIOLATION {text}")

    async def settle(self) -> None:
        """Wait until every engine coroutine is parked or done: none runs, none reads Redis."""
        loop = asyncio.get_running_loop()
        quiet = 0
        while quiet < 3:
            await asyncio.sleep(0)
            mine = (self.redis, self.dumper)
            reading = any(getattr(c.connection_pool, "_in_use_connections", ()) for c in mine)
            busy = any(e.busy() for e in self.engines) or reading or len(loop._ready) > 0  # type: ignore[attr-defined]
            quiet = 0 if busy else quiet + 1
        for op in [op for op in self.ops if op.task is not None and op.task.done()]:
            self.ops.remove(op)
            if not op.task.cancelled() and op.task.exception() is not None:
                op.error = repr(op.task.exception())
                self._note(
                    self.sandbox.step, f"  op#{op.number} on {op.engine.name} failed: {op.error}"
                )

    # engine work -----------------------------------------------------------

    def _idle_engines(self) -> list[Engine]:
        running = {op.engine for op in self.ops}
        return [e for e in self.engines if e not in running]

    def _start(self, engine: Engine) -> Op:
        self.numbered += 1
        op = Op(self.numbered, engine, self.sandbox.step)
        context = contextvars.copy_context()
        context.run(OPERATION.set, op)
        engine.queue.wanted.discard(SERVICE)
        op.task = asyncio.get_running_loop().create_task(engine.handle(SERVICE), context=context)
        self.ops.append(op)
        return op

    async def _reconcile(self) -> str:
        engine = self.rng.choice(self._idle_engines())
        op = self._start(engine)
        return f"op#{op.number} reconcile on {engine.name}"

    def _releasable(self) -> list[Call]:
        live, now = {id(op) for op in self.ops}, self.clock()
        self.parked[:] = [c for c in self.parked if not c.answer.done() and id(c.op) in live]
        # A stalled process stays stalled once faults stop: it wakes into the quiet phase,
        # where the others promote (seen with `--mutant 3`).
        asked = len(self.sandbox.truth.asked)
        return [
            c
            for c in self.parked
            if (stall := self.stalled.get((c.number, id(c.op)))) is None or stall.over(now, asked)
        ]

    def _pick_call(self) -> Call:
        calls = self._releasable()
        return calls[0] if self.rng.random() < 0.5 else self.rng.choice(calls)

    async def _answer(self, how: str) -> str:
        call = self._pick_call()
        call.answered = self.sandbox.step
        call.answer.set_result(how)
        self.parked.remove(call)
        return f"{call.describe()} of op#{call.op.number} on {call.op.engine.name}: {how}"

    async def _release_call(self) -> str:
        return await self._answer("ok")

    async def _http_429(self) -> str:
        return await self._answer("429")

    async def _http_5xx(self) -> str:
        return await self._answer("503")

    async def _http_5xx_after(self) -> str:
        return await self._answer("503-after")

    async def _kill(self) -> str:
        """A process dies mid-step; a fresh one (empty caches) takes its place."""
        victim = self._pick_call().op.engine
        for op in [op for op in self.ops if op.engine is victim]:
            await self._cancel(op)
        index = self.engines.index(victim)
        await victim.close()
        self.engines[index] = await self._engine(f"{victim.name}'")
        return f"killed {victim.name}, started {self.engines[index].name}"

    async def _cancel(self, op: Op) -> None:
        if op.task is not None and not op.task.done():
            op.task.cancel()
            await asyncio.wait({op.task})
        if op in self.ops:
            self.ops.remove(op)

    async def _stall(self) -> str:
        """The process holding the lock stalls past it: its lock expires under it, and it
        wakes only minutes later (virtual), whatever else happens meanwhile, or as soon as
        another process has sent a promotion (the worst moment to wake, as a long GC pause
        or a frozen VM may make it)."""
        calls = self._releasable()
        claiming = await self._claiming()
        rereads = [c for c in calls if c.is_reread]
        # Most often between a claim and its POST: the promoter's re-read goes with the claim.
        between = [c for c in rereads if c.op.engine.name in claiming] or rereads
        call = self.rng.choice(between if between and self.rng.random() < 0.7 else calls)
        await self.redis.delete(keys.lock(SERVICE))
        minutes = self.rng.choice((1, 5, 15, 30))
        sent = len(self.sandbox.truth.asked) if minutes == 30 else None
        self.stalled[call.number, id(call.op)] = Stall(
            self.clock() + timedelta(minutes=minutes), sent
        )
        who = f"op#{call.op.number} on {call.op.engine.name}"
        until = "until another process sends a promotion" if sent is not None else ""
        return f"{who} stalled at {call.describe()}: its lock expired {until}".rstrip()

    async def _claiming(self) -> set[str]:
        """The processes that hold a claim they have not sent yet (a record names its owner)."""
        return {r.by for r in await Ledger(self.redis).unsettled(SERVICE) if not r.sent}

    # webhooks --------------------------------------------------------------

    def _deliverable(self) -> list[Webhook]:
        now = self.clock()
        return [w for w in self.sandbox.webhooks.held if self.late.get(w.number, now) <= now]

    async def _deliver(self, webhook: Webhook, keep: bool = False) -> str:
        engine = self.rng.choice(self.engines)
        body, headers = self.sandbox.webhooks.body(webhook)
        response = await engine.request("POST", "/webhooks/heroku", content=body, headers=headers)
        answer = response.json() if response.status_code < 500 else {}
        if response.status_code == 202 and answer.get("status") in ("accepted", "duplicate"):
            if webhook.status == str(ReleaseStatus.SUCCEEDED):
                self.sandbox.reveal([webhook.release])
            if not keep:
                self.sandbox.webhooks.held.remove(webhook)
        elif response.status_code < 500 and not keep:  # refused for good: Heroku gives up
            self.sandbox.webhooks.held.remove(webhook)
        return (
            f"{webhook.describe()} to {engine.name}: {response.status_code} {answer.get('status')}"
        )

    async def _deliver_webhook(self) -> str:
        return await self._deliver(self._deliverable()[0])

    async def _reorder_webhooks(self) -> str:
        return await self._deliver(self.rng.choice(self._deliverable()))

    async def _duplicate_webhook(self) -> str:
        return await self._deliver(self.rng.choice(self._deliverable()), keep=True)

    async def _lose_webhook(self) -> str:
        webhook = self.rng.choice(self.sandbox.webhooks.held)
        self.sandbox.webhooks.held.remove(webhook)
        return f"{webhook.describe()} lost"

    async def _late_webhook(self) -> str:
        webhook = self.rng.choice(self.sandbox.webhooks.held)
        self.late[webhook.number] = self.clock() + LATE
        return f"{webhook.describe()} held back {LATE}"

    # the world ---------------------------------------------------------------

    def _app(self, first: bool = False) -> App:
        apps = self.sandbox.apps
        return apps[0] if first else self.rng.choice(apps[1:])

    def _finishable(self) -> list[Release | PromotionTarget]:
        """Pending releases, and slug copies whose time has come (on the virtual clock)."""
        now = self.clock()
        copies = [t for t in self.sandbox.copying if self.sandbox.copied_at[t] <= now]
        return [*self.sandbox.unfinished, *copies]

    async def _finish_release(self) -> str:
        item = self.rng.choice(self._finishable())
        if isinstance(item, PromotionTarget):
            release = self.sandbox.copied(item)
            what = f"{release.app.name} v{release.version} {release.slug.commit[:8]}"
            return f"slug copied: {what} created"
        replaced = self.sandbox.finish(item)
        for broken in self.judge.landing(item, replaced):
            self._violation(self.sandbox.step, broken)
        return f"{item.app.name} v{item.version} {item.slug.commit[:8]} {item.status}"

    async def _deploy(self) -> str:
        release = self.sandbox.deploy_commit(self._app(first=True), self.sandbox.new_commit())
        return f"deploy {release.slug.commit[:8]} on {release.app.name} v{release.version}"

    async def _failed_release(self) -> str:
        app = self._app(first=self.rng.random() < 0.7)
        release = self.sandbox.deploy_commit(app, self.sandbox.new_commit(app), succeed=False)
        return f"deploy {release.slug.commit[:8]} on {app.name} v{release.version} (will fail)"

    async def _hotfix(self) -> str:
        app = self._app()
        release = self.sandbox.deploy_commit(app, self.sandbox.new_commit(app))
        said = f"hotfix {release.slug.commit[:8]} on {release.app.name} v{release.version}"
        if self.rng.random() < 0.5:  # no release phase: it runs at once, webhooks on their way
            self.sandbox.finish(release)
            said += " (released at once)"
        return said

    async def _manual_promotion(self) -> str:
        apps = self.sandbox.apps
        i = self.rng.randrange(len(apps) - 1)
        release = self.sandbox.manual_promotion(apps[i], apps[i + 1])
        what = release.slug.commit[:8] if release else "nothing"
        return f"operator promotes {what} from {apps[i].name} to {apps[i + 1].name}"

    async def _rollback(self) -> str:
        """An operator rolls a stage back to a commit it ran before: most often a target."""
        ran = self.sandbox.truth.ran
        apps = [a for a in self.sandbox.apps if len(ran.get(a.name, ())) > 1 and a.current]
        if not apps:
            return "nothing to roll back to"
        targets = [a for a in apps if a is not self.sandbox.apps[0]]
        app = self.rng.choice(targets if targets and self.rng.random() < 0.7 else apps)
        current = app.current.slug.commit if app.current else ""
        commit = self.rng.choice(sorted(ran[app.name] - {current}))
        self.sandbox.deploy_commit(app, commit)
        return f"rollback of {app.name} to {commit[:8]}"

    async def _recreate_pipeline(self) -> str:
        self.sandbox.recreate_pipeline()
        return "pipeline deleted and re-created (new pipeline id)"

    async def _failed_promotion(self) -> str:
        self.sandbox.faults.fail_promotions += 1
        return "the next promotion's release will fail"

    # operator --------------------------------------------------------------

    async def _pause(self, until: Any = None) -> str:
        """The operator pauses the service, or every service (the global pause, judged apart
        from the record's compare-and-set: it lives on another cluster slot)."""
        engine = self.rng.choice(self.engines)
        scope = self._draw_scope()
        body = {
            "reason": "simulated",
            "service": scope,
            "until": until.isoformat() if until else None,
        }
        response = await engine.request("POST", "/pause", json=body)
        if response.status_code == 201:
            self._lift(scope)  # a new pause replaces the old one of its scope
            self.judge.pauses.append(Pause(self.sandbox.step, until, scope))
            if self.redis_skew:
                await self._skew_expiry(keys.pause(scope) if scope else keys.GLOBAL_PAUSE)
        how = f"until {until:%H:%M:%S}" if until else "indefinite"
        return f"{_scope(scope)} pause ({how}) via {engine.name}: {response.status_code}"

    def _lift(self, scope: str | None) -> None:
        for pause in self.judge.pauses:
            if pause.scope == scope and pause.lifted_step is None:
                pause.lifted_step = self.sandbox.step

    async def _skew_expiry(self, key: str) -> None:
        """The expiry the process asked for, as a Redis whose clock runs `redis_skew` ahead of
        the virtual one would keep it: the real server measured it from the real clock."""
        left_ms = await self.redis.pttl(key)
        if left_ms < 0:
            return
        asked = datetime.fromtimestamp(time.time() + left_ms / 1000, UTC)  # its PXAT
        left = asked - self.clock() - self.redis_skew
        await self.redis.pexpire(key, max(1, int(left.total_seconds() * 1000)))

    async def _timed_pause(self) -> str:
        return await self._pause(self.clock() + timedelta(minutes=self.rng.randint(1, 30)))

    async def _unpause(self) -> str:
        return await self._lift_pause(self._draw_scope())

    async def _lift_pause(self, scope: str | None) -> str:
        engine = self.rng.choice(self.engines)
        params = {"service": scope} if scope else {}
        response = await engine.request("DELETE", "/pause", params=params)
        if response.status_code == 204:
            self._lift(scope)
        return f"{_scope(scope)} unpause via {engine.name}: {response.status_code}"

    def _draw_scope(self) -> str | None:
        """The service most often, sometimes every service (the global pause)."""
        return SERVICE if self.rng.random() < 0.7 else None

    async def _retry(self, target: str | None = None) -> str:
        engine = self.rng.choice(self.engines)
        target = target or self._app().name
        response = await engine.request("POST", "/retry", json={"service": SERVICE, "to": target})
        detail = str(response.json().get("detail", ""))
        if response.status_code == 202 and detail.startswith("cleared"):
            self.sandbox.truth.retried[target] = self.sandbox.step
        return f"POST /retry to {target} via {engine.name}: {response.status_code} {detail[:60]}"

    # alerts and halts ------------------------------------------------------------

    async def _alert_fires(self) -> str:
        return await self._alert(firing=True)

    async def _alert_resolves(self) -> str:
        return await self._alert(firing=False)

    async def _alert(self, *, firing: bool) -> str:
        """The service's alert, as an Alertmanager webhook brings it past its token check
        (`app.webhooks.alerts.take`), at the virtual time: firing since now (or since it
        started, while it fires), or resolved."""
        if firing and self.alert_since is None:
            self.alert_since = self.clock()
        since = self.alert_since or self.clock()
        alert = Alert(ALERTMANAGER, ALERT, "sim-alert", {"alertname": ALERT}, since=since)
        if not firing:
            self.alert_since = None
        engine = self.rng.choice(self.engines)
        shown = [alert] if firing else []
        await engine.store.heard(ALERTMANAGER, self.clock())
        await take(engine.intake, ALERTMANAGER, shown, [] if firing else [alert], self.clock())
        return f"{ALERT} {'firing' if firing else 'resolved'} via {engine.name}"

    async def _drill(self, step: int, newest: str) -> str:
        """The quiet phase's halt drill: once `newest` lands on the second stage by Cascade's
        promotion, the service's alert starts firing, inside the halt window: Cascade must halt
        it (a violation if not, once the alert has fired `DRILL_FOR`). Then the operator
        resolves the alert, lifts the pause and ships a fix: the commit to converge on."""
        if not self.drill:
            return newest
        second = self.sandbox.apps[1].name
        if self.alert_since is None:
            landed = [
                a for a in self.sandbox.truth.asked if a.commit == newest and a.target == second
            ]
            if any(a.release is not None and a.release is a.landing.app.current for a in landed):
                self._note(step, "quiet: drill: " + await self._alert(firing=True))
            return newest
        if self.clock() - self.alert_since < DRILL_FOR:
            return newest
        await self._check_halts(step)
        if newest not in self.halted:
            self._violation(step, f"no halt: {ALERT} fired as {newest[:8]} reached {second}")
        self.drill = False
        self._note(step, "quiet: drill over: " + await self._alert(firing=False))
        await self._unpause_quietly(step)
        fixed = self.sandbox.new_commit()
        self.sandbox.deploy_commit(self.sandbox.apps[0], fixed)
        self._note(step, f"quiet: drill: a fix, {fixed[:8]}, deployed")
        return fixed

    async def _check_halts(self, number: int) -> None:
        """Cascade's halts, as its events say: a halted commit is never promoted again before a
        retry; no release rollback is asked twice."""
        engine = self.engines[0]
        for event in await engine.audit.read(SERVICE, limit=20):
            if event["kind"] == "service.halted" and event["commit"] not in self.halted:
                self.halted[event["commit"]] = number
        for broken in self.judge.halts(self.halted):
            self._violation(number, broken)
        self.result.halts = len(self.halted)
        self.result.rollbacks = len(self.sandbox.truth.rolled_back)

    # time and Redis ------------------------------------------------------------

    async def _advance(self, by: timedelta | None = None) -> str:
        by = by or timedelta(seconds=self.rng.choice((1, 5, 30, 60, 120, 300, 600)))
        self.clock.advance(by)
        await self._age_keys(by)
        self._fire_timers()
        if "redis_rewind" in self.enabled.kinds and self.rng.random() < 0.3:
            await self._take_snapshot()
        return f"clock +{by}"

    async def _time_jump(self) -> str:
        return await self._advance(timedelta(days=31))

    async def _age_keys(self, by: timedelta) -> None:
        """Redis's clock moves with the virtual one: keys with an expiry get closer to it.

        The lock too, when no process is at work: it is then held by one that died (a live
        holder renews its own; one that stalls is `_stall`). One script over the seed's
        database (a few hundred keys): no round trip per key.
        """
        keep = ":lock" if self.ops else ""
        await self.redis.eval(_AGE_KEYS, 0, int(by.total_seconds() * 1000), keep)

    async def _take_snapshot(self) -> None:
        """What a replica that lags would hold if it took over now."""
        names = [k async for k in self.redis.scan_iter(count=1000)]
        async with self.dumper.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.dump(name)
                pipe.pttl(name)
            answers = await pipe.execute()
        self.snapshot = [
            (name, int(answers[2 * i + 1]), answers[2 * i])
            for i, name in enumerate(names)
            if answers[2 * i] is not None
        ]

    async def _redis_flush(self) -> str:
        self.sandbox.truth.lost.append(self.sandbox.truth.moment())
        await self.redis.flushdb()
        return "Redis lost everything (FLUSHDB)"

    async def _redis_rewind(self) -> str:
        self.sandbox.truth.lost.append(self.sandbox.truth.moment())
        raw = redis.Redis.from_url(self.redis_url)
        try:
            await raw.flushdb()
            async with raw.pipeline(transaction=False) as pipe:
                for name, ttl, value in self.snapshot:
                    pipe.restore(name, max(ttl, 0), value, replace=True)
                await pipe.execute()
        finally:
            await raw.aclose()
        return f"Redis failed over to a replica that lagged ({len(self.snapshot)} keys)"

    # no wedge ------------------------------------------------------------------

    async def quiet(self) -> None:
        """Faults stop, gates open: a new commit must reach every stage in bounded time."""
        start, step = self.clock(), self.base + self.steps
        self.late.clear()
        # A promotion that fails in the quiet phase, which the operator retries, is row 6's.
        self.sandbox.faults.fail_promotions = int("failed_release" in self.enabled.kinds)
        await self._alert(firing=False)
        await self._unpause_quietly(step)
        newest = self.sandbox.new_commit()
        dev = self.sandbox.apps[0]
        self.sandbox.deploy_commit(dev, newest)
        failing_after = "failed_release" in self.enabled.kinds
        retried: set[str] = set()
        while self.clock() - start <= CONVERGE_WITHIN:
            step += 1
            self.sandbox.step = step
            self.judge.times[step] = self.clock()
            await self._drain(step)
            await self._recover_quietly(step)
            if failing_after and dev.current is not None and dev.current.slug.commit == newest:
                failing_after = False  # a release that fails after it: the source's last release
                self.sandbox.deploy_commit(dev, self.sandbox.new_commit(), succeed=False)
                self._note(step, "quiet: a deploy on the first stage fails after the new commit")
            asked = self.sandbox.truth.asked
            failed = {a.target for a in asked if a.commit == newest and a.failed} - retried
            for target in await self._failed_into(newest) if failed else []:  # read /status
                if target not in retried:
                    retried.add(target)
                    self._note(step, "quiet: " + await self._retry(target))
            newest = await self._drill(step, newest)
            await self._check_halts(step)
            if self.result.violations:
                return
            if self._converged(newest):
                self.result.converged_after = self.clock() - start
                self._note(step, f"converged after {self.result.converged_after}")
                self.base = step + 1  # a next round goes on from here
                return
            if self.result.violations:
                return
            await self._quiet_reconciles(step)
            await self._drain(step)
            by = self._until_next_wake()
            self._note(step, f"quiet: clock +{by}")
            self.clock.advance(by)
            await self._age_keys(by)
            self._fire_timers()
        state = ", ".join(
            f"{a.name}={a.current.slug.commit[:8] if a.current else None}"
            for a in self.sandbox.apps
        )
        self._violation(
            step, f"no wedge: {newest[:8]} not on every stage after {CONVERGE_WITHIN} ({state})"
        )
        self._note(step, "Cascade says: " + await self._said())

    async def _pairs(self) -> tuple[int, list[dict[str, Any]]]:
        """What one process's `/status` says of each pair, as an operator reads it."""
        response = await self.engines[0].request("GET", f"/status/{SERVICE}")
        ok = response.status_code == 200
        return response.status_code, response.json()["promotions"] if ok else []

    async def _failed_into(self, commit: str) -> list[str]:
        """The targets `/status` says a promotion of `commit` failed into."""
        _, pairs = await self._pairs()
        return [p["to"] for p in pairs if p["commit"] == commit and p["state"] == "failed"]

    async def _said(self) -> str:
        """Why each pair waits, by `/status`, for the trace."""
        status, pairs = await self._pairs()
        if status != 200:
            return f"/status {status}"
        return "; ".join(
            f"{(p['commit'] or '-')[:8]} to {p['to']}: {p['state']}: {p['reason']}" for p in pairs
        )

    async def _quiet_reconciles(self, step: int) -> None:
        """What the engines' queues and timers ask for; else one engine's tick, in turn."""
        busy = {op.engine for op in self.ops}
        wanted = [e for e in self.engines if SERVICE in e.queue.wanted and e not in busy]
        if not wanted and not busy:
            wanted = [self.engines[step % len(self.engines)]]
        for engine in wanted:  # one after the other: each sees the last one's work
            op = self._start(engine)
            self._note(step, f"quiet: op#{op.number} reconcile on {engine.name}")
            await self.settle()
            await self._drain(step)

    def _until_next_wake(self) -> timedelta:
        """Time to the engines' next timer (a gate opening, a promotion to follow), at most
        `QUIET_TICK`: the tick that every process runs anyway."""
        now = self.clock()
        wakes = [at - now for e in self.engines if (at := e.wakeups.at.get(SERVICE)) and at > now]
        by = max(timedelta(seconds=1), min([*wakes, QUIET_TICK]))
        return timedelta(seconds=math.ceil(by.total_seconds()))  # Heroku stamps whole seconds

    def _fire_timers(self) -> None:
        for engine in self.engines:  # timers due fire: they only enqueue
            at = engine.wakeups.at.get(SERVICE)
            if at is not None and at <= self.clock():
                engine.wakeups.at.pop(SERVICE)
                engine.queue.enqueue(SERVICE)

    async def _unpause_quietly(self, step: int) -> None:
        self.sandbox.step = step
        lifted = [await self._lift_pause(scope) for scope in (SERVICE, None)]
        self._note(step, "quiet: faults stop, " + ", ".join(lifted))

    async def _recover_quietly(self, step: int) -> None:
        self.sandbox.step = step
        for said in await self._confirm_loss():
            self._note(step, f"quiet: {said}")

    async def _recover(self) -> str:
        """The operator, told of a data loss mid-run, puts the pauses back and confirms it."""
        return "; ".join(await self._confirm_loss()) or "no process stopped for a data loss"

    async def _confirm_loss(self) -> list[str]:
        """`POST /recover` to each process that stopped for a data loss (its watch tells
        /readyz), once the pauses in force are back, as Cascade asks: nothing without a loss."""
        said: list[str] = []
        for engine in self.engines:
            await engine.epoch.verify()  # what its watch (`Epoch.watch`) would find by now
            if engine.epoch.lost:
                if not said:
                    said += await self._restore_pauses(engine)
                response = await engine.request("POST", "/recover")
                if response.status_code < 300:
                    self.sandbox.truth.recovered.append(self.sandbox.truth.moment())
                said.append(
                    f"{engine.name} stopped for a data loss; POST /recover: {response.status_code}"
                )
        return said

    async def _restore_pauses(self, engine: Engine) -> list[str]:
        now, said = self.clock(), []
        for pause in self.judge.pauses:
            if pause.in_force(self.sandbox.step + 1, now):
                until = pause.until.isoformat() if pause.until else None
                body = {"reason": "simulated", "service": pause.scope, "until": until}
                response = await engine.request("POST", "/pause", json=body)
                said.append(f"{_scope(pause.scope)} pause set again: {response.status_code}")
        return said

    async def _drain(self, step: int) -> None:
        """Deliver every webhook, let every call through, end every release, until none is left."""
        for _ in range(200):
            if self._deliverable():
                self._note(step, "quiet: " + await self._deliver(self._deliverable()[0]))
            elif self._releasable():
                call = self._releasable()[0]
                call.answered = step
                call.answer.set_result("ok")
                self.parked.remove(call)
                self._note(step, f"quiet: {call.describe()} of op#{call.op.number}: ok")
            elif self._finishable():
                self._note(step, "quiet: " + await self._finish_release())
            else:
                return
            await self.settle()
            self._check(step)

    def _converged(self, newest: str) -> bool:
        truth, apps = self.sandbox.truth, self.sandbox.apps
        for i, app in enumerate(apps):
            current = app.current.slug.commit if app.current else None
            if current == newest:
                continue
            left_alone = any(
                apps[j].current is not None
                and apps[j].current.slug.commit != newest
                and apps[j].current.slug.commit not in truth.ran.get(apps[j - 1].name, set())
                for j in range(1, i + 1)
            )
            if not left_alone:
                return False
        return True


def _scope(service: str | None) -> str:
    return f"service {service}" if service else "global"
