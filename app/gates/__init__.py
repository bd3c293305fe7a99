"""The gates, in the order they are shown. Adding a gate: a module and one line here.

Every gate has one shape: `check(snapshot, pair) -> GateResult | None`, pure,
reading only the snapshot; `None` means the gate does not apply to the service.
A gate that never reads `pair` is listed in `SAME_FOR_EVERY_PAIR` too.
"""

from collections.abc import Callable

from app.core.models import GateResult, Pair, Snapshot
from app.gates import age, alerts, allow, github, incident, urls

Gate = Callable[[Snapshot, Pair], GateResult | None]

GATES: tuple[Gate, ...] = (
    allow.check,
    age.check,
    github.check,
    incident.check,
    alerts.check,
    urls.check,
)

SAME_FOR_EVERY_PAIR: frozenset[Gate] = frozenset({allow.check, incident.check, urls.check})
"""The gates that never read the pair: the plan asks them once per service, not per pair."""
