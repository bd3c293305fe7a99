"""The audit trail: one capped Redis stream entry and one log line per decision.

`/events` reads it back, newest first. Every event also goes to its service's
own stream, so `?service=` never scans the whole history. What a pair waits on
is audited when it changes (`record_gate_changes`), not on every reconcile.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, cast

from app import logs
from app.config.durations import short
from app.core.models import Candidate, GateResult, PairState, Plan, Snapshot
from app.storage import keys
from app.storage.client import Client
from app.storage.store import Store

log = logging.getLogger("cascade.audit")


@dataclass(frozen=True)
class Event:
    kind: str  # promotion.started|succeeded|failed, gate.changed, pause.set|lifted, signal.*
    message: str
    at: datetime
    service: str | None = None
    commit: str | None = None
    source: str | None = None
    target: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The `/events` shape of SPEC.md (`from`/`to`, RFC 3339 times)."""
        out = asdict(self)
        out["from"], out["to"] = out.pop("source"), out.pop("target")
        out["at"] = self.at.isoformat()
        return out


def gate_details(gates: Iterable[GateResult]) -> list[dict[str, str]]:
    """The gates of a decision as events record them (`/events`, Slack, the page)."""
    return [{"name": g.name, "state": g.state.value, "reason": g.reason} for g in gates]


def gate_signature(candidate: Candidate) -> str:
    """What a pair waits on: audited when it changes, not on every reconcile."""
    gates = ",".join(f"{g.name}={g.state}" for g in candidate.gates)
    return f"{candidate.commit}|{candidate.state}|{gates}"


def gate_changed(snapshot: Snapshot, candidate: Candidate, dry_run: bool) -> Event:
    """The event of a pair whose state or gates changed (`gate_signature`)."""
    source, target = candidate.pair.source.app, candidate.pair.target.app
    state = candidate.state.value
    if dry_run and candidate.state is PairState.READY:
        state = "ready (dry run: not promoting)"
    return Event(
        kind="gate.changed",
        message=f"{short(candidate.commit)} {source} → {target}: {state}: {candidate.reason}",
        at=snapshot.now,
        service=snapshot.service.name,
        commit=candidate.commit,
        source=source,
        target=target,
        details={
            "state": candidate.state.value,
            "gates": gate_details(candidate.gates),
            "reason": candidate.reason,
            "opens_at": candidate.opens_at.isoformat() if candidate.opens_at else None,
        },
    )


async def record_gate_changes(
    audit: "Audit",
    store: Store,
    snapshot: Snapshot,
    decided: Plan,
    seen: dict[str, str],
    dry_run: bool,
) -> None:
    """A `gate.changed` event for each pair whose signature differs from `seen` (the ones last
    audited, kept in the service's view), and the signatures kept when any changed."""
    now = {c.pair.target.app: gate_signature(c) for c in decided.candidates}
    for candidate in decided.candidates:
        if seen.get(candidate.pair.target.app) != now[candidate.pair.target.app]:
            await audit.record(gate_changed(snapshot, candidate, dry_run))
    gone = [target for target in seen if target not in now]
    if gone or any(seen.get(target) != state for target, state in now.items()):
        await store.set_gate_states(snapshot.service.name, now, gone)


Listener = Callable[[Event], Awaitable[None]]


class Audit:
    def __init__(self, client: Client) -> None:
        self.redis = client
        self._listeners: list[Listener] = []
        self._running: set[asyncio.Task[None]] = set()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` with every event recorded here, in the background.

        A slow or failing listener (a notifier, a live page) never delays a decision.
        """
        self._listeners.append(listener)

    async def drain(self) -> None:
        """Wait for the listeners still running (shutdown and tests)."""
        await asyncio.gather(*self._running, return_exceptions=True)

    async def record(self, event: Event, services: tuple[str, ...] = ()) -> None:
        """Append the event to the global stream and to each service it touches."""
        payload = {"e": json.dumps(event.public(), separators=(",", ":"))}
        touched = services or ((event.service,) if event.service else ())
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(keys.EVENTS, payload, maxlen=keys.EVENTS_MAXLEN, approximate=True)  # type: ignore[arg-type]
            for service in touched:
                stream = keys.service_events(service)
                pipe.xadd(stream, payload, maxlen=keys.SERVICE_EVENTS_MAXLEN, approximate=True)  # type: ignore[arg-type]
            await pipe.execute()
        log.info(
            "%s %s",
            event.kind,
            " ".join(f"{k}={v}" for k, v in _log_fields(event).items()),
            extra=logs.fields(event=event.kind, service=event.service, commit=event.commit),
        )
        for listener in self._listeners:
            task = asyncio.create_task(_quietly(listener, event))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def read(self, service: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        stream = keys.service_events(service) if service else keys.EVENTS
        rows = cast(
            list[tuple[str, dict[str, str]]], await self.redis.xrevrange(stream, count=limit)
        )
        return [json.loads(fields["e"]) for _id, fields in rows]


async def _quietly(listener: Listener, event: Event) -> None:
    try:
        await listener(event)
    except Exception:
        log.exception(
            "audit listener %s failed on %s", getattr(listener, "__name__", listener), event.kind
        )


def _log_fields(event: Event) -> dict[str, str]:
    fields = {
        "service": event.service,
        "commit": event.commit,
        "from": event.source,
        "to": event.target,
        "message": json.dumps(event.message),
    }
    return {k: v for k, v in fields.items() if v}
