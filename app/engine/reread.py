"""The re-read before a POST: does the decision still hold on Heroku?

A promotion's claim goes out with one read of the pipeline (`reread`), and the POST goes
only while the source runs the release the decision saw and each target still runs what
it saw, with nothing pending (`changed_since`): a hotfix, a manual promotion or a rollback
since the decision is left alone.
"""

from collections.abc import Sequence

from app.config.durations import short
from app.core.models import PromotionRecord, Release, ReleaseStatus
from app.engine.topology import Topology
from app.heroku.client import HerokuClient, HerokuError


async def reread(
    heroku: HerokuClient,
    topology: Topology,
    records: Sequence[PromotionRecord],
    runs: Release,
    overs: Sequence[Release | None],
) -> tuple[list[Release], str | None]:
    """The pipeline now (one call), and why the decision no longer holds, if it doesn't:
    the source must still run `runs` (the pinned release, or the one a proven release
    moves in place of), each target what the decision saw (its record's `over`).

    Returns the releases to fold into the view: each app's newest and, when that one
    failed or is pending, the one that runs (read only when the view cannot tell).
    """
    first = records[0]
    try:
        latest = await heroku.latest_releases(topology.pipeline_id)
        newest = {r.app: r for r in latest}
        source = newest.get(first.source)
        if source is None:
            return latest, f"{first.source} has no release"
        running = await heroku.running(source, runs)
        if running is not None and running is not source:
            latest.append(running)
        found = []
        for record, over in zip(records, overs, strict=True):
            target, target_running = newest.get(record.target), None
            if target is not None and target.status is not ReleaseStatus.PENDING:
                target_running = await heroku.running(target, over)
                if target_running is not None and target_running is not target:
                    latest.append(target_running)
            found.append(changed_since(record, runs, running, target, target_running))
    except HerokuError as error:
        return [], f"cannot re-read the pipeline: {error}"
    return latest, "; ".join(why for why in found if why) or None


def changed_since(
    record: PromotionRecord,
    runs: Release,
    source: Release | None,
    target: Release | None,
    target_running: Release | None,
) -> str | None:
    """Why the re-read pipeline no longer allows the claimed promotion, if it doesn't.

    `source` and `target_running` are what runs on each app (the newest succeeded release),
    `target` the target's newest release. The POST goes only while the source runs what the
    decision saw (`runs`) and the target still runs what it saw, with nothing pending.
    """
    if source is None:
        return f"no succeeded release of {record.source} is known"
    if source.id != runs.id:
        return f"{record.source} runs v{source.version} now, not the release decided on"
    if target is not None and target.status is ReleaseStatus.PENDING:
        return f"{record.target} release v{target.version} is in progress"
    if target_running is not None and target_running.commit == record.commit:
        return f"{record.target} already runs {short(record.commit)}"
    if (target_running.id if target_running else None) != record.over:
        return (
            f"{record.target} runs {_described(target_running)}, not what the decision saw"
            " (a hotfix, a manual promotion or a rollback since): left alone"
        )
    return None


def _described(release: Release | None) -> str:
    return f"v{release.version} ({short(release.commit)})" if release else "no release"
