"""Newer and older, from immutable facts: Git ancestry, else Heroku's own release order.

Never from when Cascade heard of a commit: a webhook that arrives late, or a resync that
finds a release before its webhook, must not change which of two commits is newer.

Heroku's order: each release of an app has a version, monotonic and immutable. A commit's
position in an app is the lowest version of a succeeded release that carried it there,
where a rollback ("Rollback to vN", which reuses vN's slug) counts as vN: rolling back to
an old commit never makes it look newest, even when vN is older than anything Cascade read.
The lowest version seen only goes down as more releases are seen, whatever their order.
"""

import re
from collections.abc import Iterable, Mapping, Sequence

from app.config.durations import short
from app.core.models import Release, ReleaseStatus
from app.signals.github.facts import Relation

_ROLLBACK = re.compile(r"Rollback to v(\d+)")


def rolled_back_to(description: str | None) -> int | None:
    """The version a release rolled back to, from Heroku's description of it; else None."""
    found = _ROLLBACK.fullmatch(description.strip()) if description else None
    return int(found.group(1)) if found else None


def position(release: Release) -> int:
    """Where the release's commit stands in its app's order: its version, or the older
    version a rollback brought back."""
    back = release.rollback_of
    return back if back is not None and back < release.version else release.version


def positions(releases: Iterable[Release]) -> dict[str, int]:
    """Each commit's position among the succeeded `releases` of one app (the lowest)."""
    found: dict[str, int] = {}
    for release in releases:
        commit = release.commit
        if release.status is ReleaseStatus.SUCCEEDED and commit:
            at = position(release)
            found[commit] = min(at, found.get(commit, at))
    return found


def held(
    source: str,
    target: str,
    commit: str,
    target_commit: str,
    relation: Relation | None,
    known: Mapping[str, int] | None,
    upstream: Sequence[tuple[str, Mapping[str, int]]] = (),
) -> str | None:
    """Why moving `commit` (run by `source`) over `target_commit` (run by `target`) is not
    shown to go forwards; None when it is.

    GitHub saying the source's commit contains the target's settles it. Otherwise the target's
    commit must have run in the source (else it is a hotfix or a direct deploy, left alone),
    must not contain the source's commit (GitHub: behind), and must stand before it in the
    release order (`known`: commit -> position, from `positions`) of the first stage that ran
    both: `upstream` (app, positions), from the pipeline's first stage down to the source's
    predecessor, then the source. Commits enter the pipeline at its first stage, in the
    order they were built; an old commit promoted by hand into a later stage would look
    newest by that stage's releases alone.
    """
    if relation is Relation.AHEAD:
        return None
    if not known:
        return f"which commits ran in {source} is not known yet"
    target_at = known.get(target_commit)
    if target_at is None:
        return (
            f"{target} runs {short(target_commit)}, which never ran in {source}"
            " (a hotfix or a direct deploy): left alone"
        )
    backwards = (
        f"{short(commit)} is older than {short(target_commit)}, which {target} runs:"
        " promoting it would go backwards"
    )
    if relation is Relation.BEHIND:
        return f"{backwards} (Git ancestry)"
    for app, places in (*upstream, (source, known)):
        at, other_at = places.get(commit), places.get(target_commit)
        if at is not None and other_at is not None and at != other_at:
            return f"{backwards} (v{at} and v{other_at} of {app})" if at < other_at else None
    return (
        f"the order of {short(commit)} and {short(target_commit)} in {source}'s releases"
        " is not known: blocked until it is"
    )
