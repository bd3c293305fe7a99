"""The urls gate, a pure function of the snapshot's URL checks: a table."""

from datetime import datetime, timedelta

import pytest

from app.core.models import GateState, Signals
from app.gates import urls
from app.signals.urls.facts import NOT_CHECKED, UrlCheck, shown
from tests.factories import NOW, service, snapshot, stage

CI = "https://ci.example.com/status/api"
SMOKE = "https://smoke.example.com/ok"
LATER = NOW + timedelta(seconds=10)
SOONER = NOW + timedelta(seconds=4)


def answered(url: str, status: int, phrase: str = "", **more: object) -> UrlCheck:
    return UrlCheck(url, status, None, NOW, LATER, phrase, **more)  # type: ignore[arg-type]


def silent(url: str, error: str, recheck_at: datetime = LATER) -> UrlCheck:
    return UrlCheck(url, None, error, NOW, recheck_at)


CASES = [
    pytest.param((CI,), (answered(CI, 200, "OK"),), "open", f"{CI} answers 200", None, id="one"),
    pytest.param(
        (CI, SMOKE),
        (answered(CI, 200), answered(SMOKE, 200)),
        "open",
        "all 2 URLs answer 200",
        None,
        id="all-200",
    ),
    pytest.param(
        (CI,),
        (answered(CI, 500, "Internal Server Error"),),
        "closed",
        f"{CI} answered 500 Internal Server Error",
        LATER,
        id="500",
    ),
    pytest.param(
        (CI, SMOKE),
        (answered(CI, 200), answered(SMOKE, 503, "Service Unavailable")),
        "closed",
        f"{SMOKE} answered 503 Service Unavailable",
        LATER,
        id="one-of-two-fails",
    ),
    pytest.param(
        (CI,), (answered(CI, 599),), "closed", f"{CI} answered 599", LATER, id="no-phrase"
    ),
    pytest.param(
        (CI,),
        (answered(CI, 204, "No Content"),),
        "closed",
        f"{CI} answered 204 No Content",
        LATER,
        id="2xx-is-not-200",
    ),
    pytest.param(
        (CI,),
        (answered(CI, 302, "Found", location="https://sso.example.com/login"),),
        "closed",
        f"{CI} answered 302 Found, a redirect to https://sso.example.com/login"
        " (list the URL that answers 200)",
        LATER,
        id="redirect-not-followed",
    ),
    pytest.param(
        (CI,),
        (silent(CI, "timed out after 5s"),),
        "unknown",
        f"{CI} did not answer: timed out after 5s",
        LATER,
        id="timeout",
    ),
    pytest.param(
        (CI, SMOKE),
        (silent(CI, "connection refused", SOONER), silent(SMOKE, "timed out after 5s")),
        "unknown",
        f"{CI} did not answer: connection refused; {SMOKE} did not answer: timed out after 5s",
        SOONER,
        id="both-silent-earliest-recheck",
    ),
    pytest.param(
        (CI, SMOKE),
        (answered(CI, 500, "Internal Server Error"), silent(SMOKE, "connection refused")),
        "closed",
        f"{CI} answered 500 Internal Server Error; {SMOKE} did not answer: connection refused",
        LATER,
        id="a-no-beats-a-silence",
    ),
    pytest.param(
        (CI,),
        (UrlCheck(CI, None, NOT_CHECKED, None),),
        "unknown",
        f"{CI} not checked yet",
        None,
        id="not-checked-yet",
    ),
    pytest.param((CI,), (), "unknown", "the URLs were not checked", None, id="not-gathered"),
    pytest.param(
        ("https://bot:s3cret@ci.example.com/api",),
        (
            answered(
                "https://bot:s3cret@ci.example.com/api",
                302,
                "Found",
                location="https://bot:s3cret@ci.example.com/api/",
            ),
        ),
        "closed",
        "https://ci.example.com/api answered 302 Found, a redirect to"
        " https://ci.example.com/api/ (list the URL that answers 200)",
        LATER,
        id="userinfo-never-shown",
    ),
]


@pytest.mark.parametrize(("listed", "checks", "state", "reason", "recheck_at"), CASES)
def test_urls_gate(
    listed: tuple[str, ...],
    checks: tuple[UrlCheck, ...],
    state: str,
    reason: str,
    recheck_at: datetime | None,
) -> None:
    snap = snapshot(
        (stage("api-qa", "a" * 40), stage("api-st", "b" * 40)),
        service=service(urls=listed),
        signals=Signals(urls=checks),
    )
    result = urls.check(snap, snap.pairs()[0])
    assert result is not None
    assert (result.name, result.state, result.reason) == ("urls", GateState(state), reason)
    assert result.recheck_at == recheck_at
    assert result.opens_at is None
    assert "s3cret" not in result.reason


def test_a_service_without_urls_has_no_urls_gate() -> None:
    snap = snapshot((stage("api-qa", "a" * 40), stage("api-st", None)))
    assert urls.check(snap, snap.pairs()[0]) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(CI, CI, id="plain"),
        pytest.param("https://u:p@h.example/x?y=1#z", "https://h.example/x?y=1#z", id="user-pass"),
        pytest.param("http://token@h.example:8080/", "http://h.example:8080/", id="user-port"),
        pytest.param("https://a@b:c@h.example/", "https://h.example/", id="at-in-password"),
        pytest.param("https://h.example/x@y", "https://h.example/x@y", id="at-in-path"),
    ],
)
def test_shown_strips_userinfo(url: str, expected: str) -> None:
    assert shown(url) == expected
