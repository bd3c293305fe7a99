"""The alerts signal's pure parts: entries, matching, the gate, and the services file's check."""

from datetime import timedelta
from pathlib import Path

import pytest

from app.config.services import ConfigError, load_services
from app.core.models import GateState, Signals
from app.gates import alerts as gate
from app.signals.alerts.facts import (
    ALERTMANAGER,
    LIBRATO,
    Alert,
    AlertsFacts,
    Entry,
    matches,
    matching,
    parse_entry,
)
from tests.factories import NOW, service, snapshot, stage

# entries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "labels"),
    [
        ("api 5xx rate", "api 5xx rate", ()),
        ("  APIHighLatency ", "APIHighLatency", ()),
        ("6268092", "6268092", ()),
        ('APIHighLatency{job="api"}', "APIHighLatency", (("job", "api"),)),
        (
            'APIHighLatency{ job = "api" , instance="a:9100", }',
            "APIHighLatency",
            (("instance", "a:9100"), ("job", "api")),
        ),
        (
            '{alertname="High CPU Temperature", host="andromeda"}',
            "High CPU Temperature",
            (("host", "andromeda"),),
        ),
        ('X{alertname="X"}', "X", ()),
        ("X{}", "X", ()),
        (r'X{path="/a}\"b\\"}', "X", (("path", '/a}"b\\'),)),
        (
            'High CPU Temperature{severity="critical"}',
            "High CPU Temperature",
            (("severity", "critical"),),
        ),
    ],
    ids=[
        "plain-name",
        "plain-stripped",
        "librato-id",
        "one-label",
        "spaces-and-trailing-comma",
        "alertname-as-label",
        "alertname-repeated",
        "empty-braces",
        "escapes-and-brace-in-value",
        "name-with-spaces",
    ],
)
def test_parse_entry(text: str, name: str, labels: tuple[tuple[str, str], ...]) -> None:
    assert parse_entry(text) == Entry(text, name, labels)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (" ", "empty name"),
        ('X{job="api"', 'write label matchers as name{label="value"'),
        ('X{job=~"api.*"}', "not =~"),
        ('X{job!="api"}', "not !="),
        ("X{job=api}", 'expected label="value" at "job=api"'),
        ('X{job="a" instance="b"}', 'expected label="value"'),
        ('X{job="a", job="b"}', "the label job is matched twice"),
        ('X{alertname="Y"}', "two different alertnames"),
        ('{job="api"}', "no alertname"),
        ('X{1abc="a"}', 'expected label="value"'),
        ('X{a="b"}c}', 'expected label="value"'),
    ],
    ids=[
        "blank",
        "unclosed",
        "regex-matcher",
        "negative-matcher",
        "unquoted-value",
        "missing-comma",
        "duplicate-label",
        "conflicting-alertname",
        "no-alertname",
        "bad-label-name",
        "text-after-braces",
    ],
)
def test_parse_entry_refuses(text: str, says: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_entry(text)
    assert says in str(error.value)


# matching ------------------------------------------------------------------------------

LATENCY = Alert(
    ALERTMANAGER, "APIHighLatency", "fp1", {"alertname": "APIHighLatency", "job": "api"}
)
LATENCY_WEB = Alert(
    ALERTMANAGER, "APIHighLatency", "fp2", {"alertname": "APIHighLatency", "job": "web"}
)
RATE = Alert(LIBRATO, "api 5xx rate", "123")
UNNAMED = Alert(LIBRATO, "", "129")


@pytest.mark.parametrize(
    ("entry", "alert", "expected"),
    [
        ("APIHighLatency", LATENCY, True),
        ("APIHighLatency", LATENCY_WEB, True),
        ('APIHighLatency{job="api"}', LATENCY, True),
        ('APIHighLatency{job="api"}', LATENCY_WEB, False),
        ('APIHighLatency{job="api", env="prod"}', LATENCY, False),
        ('Other{job="api"}', LATENCY, False),
        ("apihighlatency", LATENCY, False),
        ("api 5xx rate", RATE, True),
        ("123", RATE, True),
        ("129", UNNAMED, True),
        ("api 5xx rate", UNNAMED, False),
        ('api 5xx rate{job="api"}', RATE, False),
        ("fp1", LATENCY, False),
    ],
    ids=[
        "alertname",
        "alertname-any-labels",
        "labels-match",
        "labels-differ",
        "label-missing",
        "other-alertname",
        "case-matters",
        "librato-name",
        "librato-id",
        "librato-id-without-name",
        "librato-name-not-known",
        "labels-never-match-librato",
        "fingerprint-is-not-a-name",
    ],
)
def test_matches(entry: str, alert: Alert, expected: bool) -> None:
    assert matches(parse_entry(entry), alert) is expected


def test_matching_keeps_the_alerts_any_entry_matches() -> None:
    alerts = [LATENCY, LATENCY_WEB, RATE, UNNAMED]
    assert matching(['APIHighLatency{job="web"}', "123"], alerts) == (LATENCY_WEB, RATE)
    assert matching([], alerts) == ()


# the gate ------------------------------------------------------------------------------

ENTRIES = ("api 5xx rate", "APIHighLatency")
STAGES = (stage("api-qa", "b" * 40), stage("api-st", "a" * 40))
SINCE = NOW - timedelta(minutes=57)  # 11:03 UTC
AM = Alert(
    ALERTMANAGER, "APIHighLatency", "f1", {"alertname": "APIHighLatency", "instance": "i-1"}, SINCE
)
AM2 = Alert(
    ALERTMANAGER, "APIHighLatency", "f2", {"alertname": "APIHighLatency", "instance": "i-2"}, NOW
)
LIB = Alert(LIBRATO, "api 5xx rate", "6", since=NOW - timedelta(days=2), url="http://run/book")
LATER = NOW + timedelta(seconds=10)


@pytest.mark.parametrize(
    ("view", "state", "reason", "recheck_at"),
    [
        (AlertsFacts(()), GateState.OPEN, "none of api 5xx rate, APIHighLatency is firing", None),
        (
            AlertsFacts((AM,)),
            GateState.CLOSED,
            '"APIHighLatency" firing since 11:03 UTC (alertmanager, instance=i-1)',
            None,
        ),
        (
            AlertsFacts((AM, AM2)),
            GateState.CLOSED,
            '"APIHighLatency" firing since 11:03 UTC (alertmanager, 2 alerts)',
            None,
        ),
        (
            AlertsFacts((LIB,)),
            GateState.CLOSED,
            '"api 5xx rate" firing since 2026-04-29 12:00 UTC (librato #6, runbook http://run/book)',
            None,
        ),
        (
            AlertsFacts((Alert(LIBRATO, "", "6"),)),
            GateState.CLOSED,
            "Librato alert #6 firing (librato #6)",
            None,
        ),
        (
            AlertsFacts((AM, LIB)),
            GateState.CLOSED,
            '"APIHighLatency" firing since 11:03 UTC (alertmanager, instance=i-1); "api 5xx rate"'
            " firing since 2026-04-29 12:00 UTC (librato #6, runbook http://run/book)",
            None,
        ),
        (
            AlertsFacts((AM,), "Librato is down", LATER),
            GateState.CLOSED,
            '"APIHighLatency" firing since 11:03 UTC (alertmanager, instance=i-1);'
            " also, Librato is down",
            LATER,
        ),
        (AlertsFacts((), "Librato is down", LATER), GateState.UNKNOWN, "Librato is down", LATER),
        (None, GateState.UNKNOWN, "the alerts were not read", None),
    ],
    ids=[
        "open",
        "one-alertmanager-alert",
        "two-alerts-one-name",
        "librato-other-day",
        "librato-unnamed",
        "both-sources",
        "firing-and-a-problem",
        "unknown",
        "not-gathered",
    ],
)
def test_gate(view: AlertsFacts | None, state: GateState, reason: str, recheck_at: object) -> None:
    snap = snapshot(STAGES, service=service(alerts=ENTRIES), signals=Signals(alerts=view))
    result = gate.check(snap, snap.pairs()[0])
    assert result is not None
    assert (result.state, result.reason, result.recheck_at, result.opens_at) == (
        state,
        reason,
        recheck_at,
        None,
    )


def test_gate_does_not_apply_without_alerts() -> None:
    snap = snapshot(STAGES, signals=Signals(alerts=AlertsFacts((AM,))))
    assert gate.check(snap, snap.pairs()[0]) is None


# the services file ---------------------------------------------------------------------

FILE = """
[[service]]
name = "api"
pipeline = "api"
alerts = {alerts}
"""


def test_services_file_reads_entries_with_labels(tmp_path: Path) -> None:
    path = tmp_path / "cascade.toml"
    path.write_text(FILE.format(alerts="""["api 5xx rate", 'APIHighLatency{job="api"}']"""))
    assert load_services(path).services[0].alerts == ("api 5xx rate", 'APIHighLatency{job="api"}')


@pytest.mark.parametrize(
    ("alerts", "says"),
    [
        ("""['APIHighLatency{job=~"api"}']""", 'only label="value" matchers are supported, not =~'),
        ("""['APIHighLatency{job="api"']""", 'write label matchers as name{label="value"'),
        ('[""]', '"" is not one'),
        ('"APIHighLatency"', "expected a list of alert names"),
    ],
    ids=["regex", "unclosed", "empty", "not-a-list"],
)
def test_services_file_refuses_bad_entries(tmp_path: Path, alerts: str, says: str) -> None:
    path = tmp_path / "cascade.toml"
    path.write_text(FILE.format(alerts=alerts))
    with pytest.raises(ConfigError) as error:
        load_services(path)
    message = str(error.value)
    assert message.startswith(f'{path}: service "api": field "alerts": ')
    assert says in message


# alerts per stage ----------------------------------------------------------------------

STAGED = service(alerts=("api 5xx rate",), stage_alerts={"api-qa": ("APIHighLatency",)})


@pytest.mark.parametrize(
    ("source", "state"),
    [("api-qa", GateState.CLOSED), ("api-st", GateState.OPEN)],
    ids=["out-of-its-stage", "out-of-another-stage"],
)
def test_stage_alert_closes_promotions_out_of_its_stage_only(source: str, state: GateState) -> None:
    stages = (stage("api-qa", "c" * 40), stage("api-st", "b" * 40), stage("api-prod", "a" * 40))
    snap = snapshot(stages, service=STAGED, signals=Signals(alerts=AlertsFacts((AM,))))
    pair = next(p for p in snap.pairs() if p.source.app == source)
    result = gate.check(snap, pair)
    assert result is not None
    assert result.state is state


def test_stage_alerts_alone_apply_to_their_stage_only() -> None:
    svc = service(stage_alerts={"api-qa": ("APIHighLatency",)})
    stages = (stage("api-qa", "c" * 40), stage("api-st", "b" * 40), stage("api-prod", "a" * 40))
    snap = snapshot(stages, service=svc, signals=Signals(alerts=AlertsFacts((AM,))))
    first, second = snap.pairs()
    assert gate.check(snap, second) is None
    assert (result := gate.check(snap, first)) is not None
    assert result.state is GateState.CLOSED


STAGED_FILE = """
[[service]]
name = "api"
pipeline = "api"
{stages}
alerts = ["api 5xx rate"]
[service.stage_alerts]
{key} = ['APIHighLatency{{job="api"}}']
"""


def test_services_file_reads_stage_alerts(tmp_path: Path) -> None:
    path = tmp_path / "cascade.toml"
    path.write_text(STAGED_FILE.format(stages='stages = ["api-qa", "api-st"]', key='"api-st"'))
    svc = load_services(path).services[0]
    assert svc.stage_alerts == {"api-st": ('APIHighLatency{job="api"}',)}
    assert svc.every_alert == ("api 5xx rate", 'APIHighLatency{job="api"}')


@pytest.mark.parametrize(
    ("stages", "key", "says"),
    [
        ('stages = ["api-qa", "api-st"]', '"api-jp"', '"api-jp" is not a stage; expected one of'),
        ("", '"api-st"', 'needs "stages"'),
    ],
    ids=["not-a-stage", "no-stages"],
)
def test_services_file_refuses_stage_alerts_of_no_stage(
    tmp_path: Path, stages: str, key: str, says: str
) -> None:
    path = tmp_path / "cascade.toml"
    path.write_text(STAGED_FILE.format(stages=stages, key=key))
    with pytest.raises(ConfigError) as error:
        load_services(path)
    assert f'service "api": field "stage_alerts": {says}' in str(error.value)
