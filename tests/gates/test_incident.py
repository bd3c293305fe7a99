"""The incident gate and the merge of webhook news with the feed: pure, as tables."""

from datetime import timedelta

import pytest

from app.core.models import GateResult, GateState, Signals
from app.gates import incident
from app.signals.incidents.facts import (
    Component,
    Feed,
    Incident,
    IncidentsFacts,
    is_open,
    merge,
    touches,
)
from tests.factories import NOW, service, snapshot, stage

T0 = NOW - timedelta(minutes=30)
PAGE = "jb7j80lkgqvb"
URL = "http://stspg.io/646947c1e"


def judge(view: IncidentsFacts | None, systems: tuple[str, ...] = ()) -> GateResult | None:
    snap = snapshot(
        (stage("api-qa", "a" * 40), stage("api-st", "b" * 40)),
        service=service(incident_systems=systems),
        signals=Signals(incidents=view),
    )
    return incident.check(snap, snap.pairs()[0])


def inc(
    status: str = "identified",
    components: tuple[str, ...] = ("Apps",),
    name: str = "Elevated API errors",
    ident: str = "i1",
    **more: object,
) -> Incident:
    return Incident(ident, name, status, components, **more)  # type: ignore[arg-type]


# the gate ------------------------------------------------------------------------------

GATE_CASES = [
    ("nothing-open", IncidentsFacts(()), ("Apps",), GateState.OPEN,
     "no open incident on the status page (watching Apps)"),
    ("nothing-open-watching-all", IncidentsFacts(()), (), GateState.OPEN,
     "no open incident on the status page (watching every system)"),
    ("incident-on-watched", IncidentsFacts((inc(url=URL),)), ("Apps", "Data"), GateState.CLOSED,
     f"incident 'Elevated API errors' (identified) on Apps: {URL}"),
    ("incident-elsewhere", IncidentsFacts((inc(components=("Data",)),)), ("Apps",),
     GateState.OPEN, "no open incident on the status page (watching Apps)"),
    ("incident-case-insensitive", IncidentsFacts((inc(components=("apps",)),)), ("Apps",),
     GateState.CLOSED, "incident 'Elevated API errors' (identified) on apps"),
    ("incident-naming-none-touches-all", IncidentsFacts((inc(components=()),)), ("Apps",),
     GateState.CLOSED, "incident 'Elevated API errors' (identified) on every system"),
    ("service-watching-all", IncidentsFacts((inc(components=("Data",)),)), (),
     GateState.CLOSED, "incident 'Elevated API errors' (identified) on Data"),
    ("maintenance-in-progress", IncidentsFacts((inc("in_progress", name="DB upgrade"),)),
     ("Apps",), GateState.CLOSED, "incident 'DB upgrade' (in_progress) on Apps"),
    ("maintenance-its-own-reason",
     IncidentsFacts((inc("in progress", name="DB upgrade", kind="maintenance", url=URL),)),
     ("Apps",), GateState.CLOSED, f"maintenance 'DB upgrade' (in progress) on Apps: {URL}"),
    ("troubled-component", IncidentsFacts((), (Component("Data", "major_outage"),)),
     ("Data",), GateState.CLOSED, "Data is major outage on the status page"),
    ("troubled-component-elsewhere", IncidentsFacts((), (Component("Data", "red"),)),
     ("Apps",), GateState.OPEN, "no open incident on the status page (watching Apps)"),
    ("incident-and-component",
     IncidentsFacts((inc(),), (Component("Apps", "degraded_performance"),)), ("Apps",),
     GateState.CLOSED,
     "incident 'Elevated API errors' (identified) on Apps;"
     " Apps is degraded performance on the status page"),
    ("unknown", IncidentsFacts((), problem="the status page has not been read yet",
                              recheck_at=NOW + timedelta(seconds=10)),
     ("Apps",), GateState.UNKNOWN, "the status page has not been read yet"),
    ("unknown-meanwhile", IncidentsFacts((inc(),), problem="cannot be read"), ("Apps",),
     GateState.UNKNOWN,
     "cannot be read; meanwhile incident 'Elevated API errors' (identified) on Apps"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("view", "systems", "state", "reason"),
    [case[1:] for case in GATE_CASES],
    ids=[case[0] for case in GATE_CASES],
)
def test_gate(
    view: IncidentsFacts, systems: tuple[str, ...], state: GateState, reason: str
) -> None:
    result = judge(view, systems)
    assert result is not None
    assert (result.name, result.state, result.reason) == ("incident", state, reason)
    assert result.opens_at is None  # nobody knows when an incident ends
    assert result.recheck_at == view.recheck_at


def test_gate_does_not_apply_without_a_status_source() -> None:
    assert judge(None, ("Apps",)) is None


# statuses and systems ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "open_"),
    [
        ("investigating", True),
        ("identified", True),
        ("monitoring", True),
        ("in_progress", True),
        ("verifying", True),
        ("something-new", True),  # unknown is closed: the gate stays shut
        ("resolved", False),
        ("postmortem", False),
        ("scheduled", False),
        ("completed", False),
        ("Resolved", False),
    ],
    ids=lambda v: str(v),
)
def test_open_statuses(status: str, open_: bool) -> None:
    assert is_open(status) is open_


@pytest.mark.parametrize(
    ("systems", "names", "touched"),
    [
        ((), ("Apps",), True),
        (("Apps",), (), True),
        (("Apps",), ("Apps", "Data"), True),
        (("apps",), ("Apps",), True),
        (("Apps",), ("Data",), False),
    ],
    ids=["watching-all", "naming-none", "overlap", "case", "elsewhere"],
)
def test_touches(systems: tuple[str, ...], names: tuple[str, ...], touched: bool) -> None:
    assert touches(systems, names) is touched


@pytest.mark.parametrize(
    ("status", "troubled"),
    [
        ("operational", False),
        ("green", False),
        ("degraded_performance", True),
        ("partial_outage", True),
        ("major_outage", True),
        ("under_maintenance", True),
        ("yellow", True),
        ("red", True),
    ],
    ids=lambda v: str(v),
)
def test_troubled_components(status: str, troubled: bool) -> None:
    assert Component("Apps", status).troubled is troubled


# merging webhook news with the feed -----------------------------------------------------


def feed(
    *items: Incident | Component, at: timedelta = timedelta(0), page: str | None = PAGE
) -> Feed:
    return Feed(
        T0 + at,
        tuple(i for i in items if isinstance(i, Incident)),
        tuple(c for c in items if isinstance(c, Component)),
        page,
    )


def hooked(status: str, at: timedelta, page: str | None = PAGE) -> Incident:
    return inc(status, updated_at=T0 + at, page_id=page)


def listed(status: str = "identified", at: timedelta = timedelta(0)) -> Incident:
    return inc(status, updated_at=T0 + at, page_id=PAGE)


M = timedelta(minutes=1)
MERGE_CASES = [
    # (id, webhook incidents, feed, the open incidents' statuses)
    ("webhook-only", [hooked("identified", M)], None, ["identified"]),
    ("feed-only", [], feed(listed()), ["identified"]),
    ("resolved-after-the-read-wins", [hooked("resolved", 2 * M)], feed(listed(), at=M), []),
    ("resolved-after-the-read-wins-whatever-the-page-clock", [hooked("resolved", 2 * M)],
     feed(listed(at=3 * M), at=M), []),
    ("feed-newer-than-webhook", [hooked("identified", M)], feed(listed("monitoring", 2 * M),
                                                                 at=3 * M), ["monitoring"]),
    ("webhook-newer-than-feed", [hooked("monitoring", 2 * M)], feed(listed(at=M), at=M),
     ["monitoring"]),
    ("tie-goes-to-the-webhook", [hooked("resolved", M)], feed(listed(at=M), at=2 * M), []),
    ("same-page-read-later-without-it", [hooked("identified", M)], feed(at=2 * M), []),
    ("same-page-read-before-it", [hooked("identified", 2 * M)], feed(at=M), ["identified"]),
    ("other-page-keeps-it", [hooked("identified", M, page="other")], feed(at=2 * M),
     ["identified"]),
    ("heroku-feed-keeps-it", [hooked("identified", M)], feed(at=2 * M, page=None),
     ["identified"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("hooks", "read", "statuses"),
    [case[1:] for case in MERGE_CASES],
    ids=[case[0] for case in MERGE_CASES],
)
def test_merge_incidents(hooks: list[Incident], read: Feed | None, statuses: list[str]) -> None:
    incidents, _components = merge(hooks, (), read)
    assert [i.status for i in incidents] == statuses


def comp(status: str, at: timedelta, page: str | None = PAGE) -> Component:
    return Component("Data", status, T0 + at, page)


COMPONENT_CASES = [
    ("webhook-troubled", [comp("major_outage", M)], None, ["major_outage"]),
    ("webhook-operational", [comp("operational", M)], None, []),
    ("feed-troubled", [], feed(comp("partial_outage", M)), ["partial_outage"]),
    ("webhook-recovered-later", [comp("operational", 2 * M)], feed(comp("major_outage", M)), []),
    ("feed-troubled-later", [comp("operational", M)], feed(comp("major_outage", 2 * M),
                                                            at=3 * M), ["major_outage"]),
    ("same-page-read-later-says-fine", [comp("major_outage", M)], feed(at=2 * M), []),
    ("other-page-keeps-it", [comp("major_outage", M, "other")], feed(at=2 * M),
     ["major_outage"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("hooks", "read", "statuses"),
    [case[1:] for case in COMPONENT_CASES],
    ids=[case[0] for case in COMPONENT_CASES],
)
def test_merge_components(hooks: list[Component], read: Feed | None, statuses: list[str]) -> None:
    _incidents, components = merge((), hooks, read)
    assert [c.status for c in components] == statuses
