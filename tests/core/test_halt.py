"""The auto-halt's pure decision: which recent promotion a signal that started halts."""

from datetime import timedelta

import pytest

from app.core.halt import Promoted, Signal, alert_signals, halts, incident_signals
from app.signals.alerts.facts import ALERTMANAGER, Alert
from app.signals.incidents.facts import Incident
from tests.factories import NOW, service

COMMIT = "abc1234" + "0" * 33
PROMOTED = Promoted("api-st", COMMIT, NOW - timedelta(minutes=2), NOW, over="api-st-v1")
SVC = service(alerts=("HighErrorRate",), halt_window=timedelta(minutes=30))


def at(seconds: float, stages: frozenset[str] | None = None) -> Signal:
    return Signal("alert HighErrorRate", NOW + timedelta(seconds=seconds), stages)


@pytest.mark.parametrize(
    ("signal", "halted"),
    [
        (at(40), True),
        (at(30 * 60), True),
        (at(30 * 60 + 1), False),
        (at(-60), True),  # between the decision and its success: it came with the promotion
        (at(-120), False),  # at the decision: it was already there
        (at(-3600), False),
        (at(40, frozenset({"api-st"})), True),
        (at(40, frozenset({"api-prod"})), False),
    ],
    ids=[
        "inside",
        "at-the-window-end",
        "after-the-window",
        "while-promoting",
        "at-the-claim",
        "firing-before",
        "stage-alert-of-that-stage",
        "stage-alert-of-another-stage",
    ],
)
def test_which_promotion_a_signal_halts(signal: Signal, halted: bool) -> None:
    found = halts(SVC, [PROMOTED], [signal])
    assert [h.promotion for h in found] == ([PROMOTED] if halted else [])


def test_a_window_of_zero_halts_nothing() -> None:
    assert halts(service(halt_window=timedelta(0)), [PROMOTED], [at(5)]) == []


def test_the_earliest_signal_names_the_halt() -> None:
    later = Signal("incident Database down", NOW + timedelta(seconds=90))
    (found,) = halts(SVC, [PROMOTED], [later, at(40)])
    assert (
        found.reason
        == "auto-halt: alert HighErrorRate started firing 40s after abc1234 reached api-st"
    )
    assert found.service == "api"


def test_an_incident_reason() -> None:
    (found,) = halts(
        SVC, [PROMOTED], [Signal("incident Database down", NOW + timedelta(minutes=3))]
    )
    assert (
        found.reason == "auto-halt: incident Database down opened 3m after abc1234 reached api-st"
    )


def test_alerts_become_signals_for_the_stages_they_watch() -> None:
    svc = service(alerts=("HighErrorRate",), stage_alerts={"api-st": ("StLatency",)})
    firing = [
        Alert(ALERTMANAGER, "HighErrorRate", "f1", since=NOW),
        Alert(ALERTMANAGER, "StLatency", "f2", since=NOW),
        Alert(ALERTMANAGER, "Unrelated", "f3", since=NOW),
        Alert(ALERTMANAGER, "HighErrorRate", "f4"),  # its start unknown
    ]
    assert alert_signals(svc, firing) == [
        Signal("alert HighErrorRate", NOW),
        Signal("alert StLatency", NOW, frozenset({"api-st"})),
    ]


def test_open_incidents_touching_the_service_become_signals() -> None:
    svc = service(incident_systems=("Apps",))
    incidents = [
        Incident("1", "Apps down", "investigating", ("Apps",), created_at=NOW),
        Incident("2", "Data down", "investigating", ("Data",), created_at=NOW),
        Incident("3", "Apps fixed", "resolved", ("Apps",), created_at=NOW),
        Incident("4", "Apps work", "in_progress", ("Apps",), created_at=NOW, kind="maintenance"),
        Incident("5", "Apps slow", "investigating", ("Apps",)),
    ]
    assert incident_signals(svc, incidents) == [Signal("incident Apps down", NOW)]
