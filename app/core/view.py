"""Pure folds of news into the view Cascade keeps of each stage."""

from app.core.models import Release, ReleaseStatus, StageView


def fold_release(view: StageView, release: Release) -> StageView:
    """The stage after `release`; older or repeated news changes nothing."""
    current, pending = view.release, view.pending
    if release.status is ReleaseStatus.SUCCEEDED:
        if current is None or release.version >= current.version:
            current = release
        if pending is not None and pending.version <= release.version:
            pending = None
    elif release.status is ReleaseStatus.PENDING:
        newer_than_current = current is None or release.version > current.version
        if newer_than_current and (pending is None or release.version >= pending.version):
            pending = release
    elif pending is not None and pending.version <= release.version:
        # Failed or expired: the stage keeps running what it ran. A newer one that ended
        # ends the wait too: a resync reads only an app's newest release, so the end of
        # an older one whose news was lost (or folded in before a stale read of it being
        # on its way) would never come, and the pair would wait for it for ever.
        pending = None
    return StageView(view.app, current, pending)
