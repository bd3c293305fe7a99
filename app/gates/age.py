"""age: the commit has run in the source stage for at least the target's `min_age`.

Counted from the first succeeded release that carried the commit into the
source stage (the snapshot's history), so a config-var release does not reset it.
"""

from app.config.durations import humanize
from app.core.models import GateResult, GateState, Pair, Snapshot

NAME = "age"
# Bound once, as in `app.core.plan`: this gate is asked for every pair of every service.
OPEN, CLOSED, UNKNOWN = GateState.OPEN, GateState.CLOSED, GateState.UNKNOWN


def check(snapshot: Snapshot, pair: Pair) -> GateResult:
    source, commit = pair.source.app, pair.source.commit
    arrived = snapshot.arrived(source, commit) if commit else None
    if arrived is None:
        return GateResult(NAME, UNKNOWN, f"when the commit reached {source} is not known")
    needed = snapshot.service.min_age_for(pair.target.app)
    opens_at = arrived + needed
    if snapshot.now >= opens_at:
        ran = humanize(snapshot.now - arrived)
        return GateResult(NAME, OPEN, f"ran {ran} in {source}, needs {humanize(needed)}")
    wait = humanize(opens_at - snapshot.now)
    return GateResult(
        NAME, CLOSED, f"needs {humanize(needed)} in {source}, opens in {wait}", opens_at
    )
