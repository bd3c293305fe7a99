"""urls: every URL the service lists answers 200 to a GET, checked at decision time.

An answer is cached briefly (`CASCADE_SIGNAL_RETRY_SECONDS`); a gate that is not open
asks to be looked at again when the cache expires, so it reopens by itself.
"""

from app.core.models import GateResult, GateState, Pair, Snapshot
from app.signals.urls.facts import UrlCheck, shown

NAME = "urls"


def check(snapshot: Snapshot, pair: Pair) -> GateResult | None:
    checks = snapshot.signals.urls
    if not snapshot.service.urls:
        return None
    failing = [c for c in checks if c.status != 200]
    if checks and not failing:
        one = f"{shown(checks[0].url)} answers 200"
        every = f"all {len(checks)} URLs answer 200"
        return GateResult(NAME, GateState.OPEN, one if len(checks) == 1 else every)
    if not checks:  # configured but not gathered: never promote on missing information
        return GateResult(NAME, GateState.UNKNOWN, "the URLs were not checked")
    answered = any(c.status is not None for c in failing)
    recheck = [c.recheck_at for c in failing if c.recheck_at is not None]
    return GateResult(
        NAME,
        GateState.CLOSED if answered else GateState.UNKNOWN,
        "; ".join(_reason(c) for c in failing),
        recheck_at=min(recheck, default=None),
    )


def _reason(check: UrlCheck) -> str:
    url = shown(check.url)
    if check.status is None:
        return f"{url} {check.error}" if check.checked_at is None else _silent(url, check)
    answer = f"{check.status} {check.phrase}".rstrip()
    if check.location:
        where = shown(check.location)
        return f"{url} answered {answer}, a redirect to {where} (list the URL that answers 200)"
    return f"{url} answered {answer}"


def _silent(url: str, check: UrlCheck) -> str:
    return f"{url} did not answer: {check.error or 'no answer'}"
