"""Every Redis key Cascade uses, and how long each lives.

Keys of one service share the hash tag `{service}` so that a Redis Cluster keeps
them on one slot.
"""

from datetime import timedelta

PREFIX = "cascade"

GLOBAL_PAUSE = f"{PREFIX}:pause"
EVENTS = f"{PREFIX}:events"
EVENTS_MAXLEN = 10_000
SERVICE_EVENTS_MAXLEN = 1_000
HEARD = f"{PREFIX}:heard"  # hash: signal source -> epoch seconds of its last authentic delivery
SUBSCRIPTIONS = f"{PREFIX}:subscriptions"  # hash: app -> our webhook subscription (id, secret tag)
COMMIT_STATUS_TTL = timedelta(days=30)
GITHUB_DEPLOYMENT_TTL = timedelta(days=30)  # a deployment's id, kept while its promotion may settle
GITHUB_DEPLOYMENT_CLAIM_TTL = timedelta(seconds=30)  # a claim while one is created: > a POST's time
LIVE = f"{PREFIX}:live"  # pub/sub channel: the name of a service whose state changed, or "*"
HISTORY_MAXLEN = 200
POLLED = f"{PREFIX}:feeds-polled"  # set by the one process that polls the fallback feeds now

DEDUP_TTL = timedelta(days=3)
LOCK_TTL = timedelta(seconds=10)  # renewed by its holder while it works
BLOCKED_TOLD_TTL = timedelta(days=30)  # a Slack notice told once per pair and commit
# Builds never change, but a flood of releases must not keep one key each for ever: past this,
# a build's commit is asked of the Platform API again (one call) if it is ever needed.
ARTIFACT_TTL = timedelta(days=30)


def _service(service: str) -> str:
    return f"{PREFIX}:{{{service}}}"


def stage(service: str, app: str) -> str:
    """JSON of the stage's StageView (current succeeded release, newer pending one)."""
    return f"{_service(service)}:stage:{app}"


def history(service: str, app: str) -> str:
    """Sorted set: commit -> epoch seconds it first ran (succeeded) on the app."""
    return f"{_service(service)}:history:{app}"


def positions(service: str, app: str) -> str:
    """Sorted set: commit -> its position in the app's release order (`app.core.order`), the lowest
    seen. Trimmed with `history`: a commit of the history is in both or in neither (one whose
    release never ran has a position only)."""
    return f"{_service(service)}:order:{app}"


def history_loaded(service: str, app: str) -> str:
    """Set once the app's releases were read for `history` and `positions` (a history loaded
    before positions were kept is read again, under this newer name): "whole" while they hold
    every release since the app's first, "1" once one may be missing or was trimmed."""
    return f"{_service(service)}:order-loaded:{app}"


def ran(service: str, app: str) -> str:
    """Hash: commit -> "version id created_at" of the newest release of it that ran on the app:
    the release a promotion pins when the commit proved itself there but the app has moved on
    (`app.core.proven`). Trimmed with `history`."""
    return f"{_service(service)}:ran:{app}"


def looked_up(service: str, app: str) -> str:
    """Hash: commit -> its position in the app's release order, found by reading further back
    than `positions` reaches ("0": not among the releases read). Kept apart from `positions`,
    whose trim would drop these old commits again at once."""
    return f"{_service(service)}:looked-up:{app}"


LOOKED_UP_TTL = timedelta(days=30)  # positions never change: only what a re-read costs


def promotion(service: str, target: str, commit: str) -> str:
    return f"{_service(service)}:promotion:{target}:{commit}"


def promotions(service: str) -> str:
    """Set of promotion record keys of the service that are not yet settled."""
    return f"{_service(service)}:promotions"


def in_flight(service: str, target: str) -> str:
    """The key of the one unsettled promotion record into `target`: promotions into a
    target are serialised, so an older one can never land after a newer one."""
    return f"{_service(service)}:in-flight:{target}"


def settled(service: str, target: str) -> str:
    """Sorted set of the settled promotion record keys into `target`, in the order they
    settled: the newest `SETTLED_KEPT` records are kept, the older ones deleted (no expiry:
    an operator's rollback is respected, and a failed promotion not made again by itself).
    A plain set under the older name `settled:` retired every older record as soon as a
    newer commit succeeded, and a target sent back past it met a commit again (simulation
    seed 39)."""
    return f"{_service(service)}:settled-in-order:{target}"


SETTLED_KEPT = 100  # settled promotion records kept per target: its last 100 commits


def lock(service: str) -> str:
    return f"{_service(service)}:lock"


def dirty(service: str) -> str:
    return f"{_service(service)}:dirty"


def pause(service: str) -> str:
    return f"{_service(service)}:pause"


def halted(service: str, target: str, commit: str) -> str:
    """Set once (SET NX) by the process that halts the service for this promotion: a halt
    is applied once, however many processes and repeated webhooks see its signal."""
    return f"{_service(service)}:halted:{target}:{commit}"


def suspects(service: str) -> str:
    """Hash: commit -> why it is suspect (`app.core.halt`): it moves no further until retried."""
    return f"{_service(service)}:suspects"


def rolled_back(service: str, target: str, commit: str) -> str:
    """Set once (SET NX) by the process that rolls back the stage a halt of `commit` names."""
    return f"{_service(service)}:rolled-back:{target}:{commit}"


HALT_TTL = timedelta(days=30)  # a halt's and its rollback's once-marks: past any halt window


def gates(service: str) -> str:
    """Hash: target app -> last gate states seen, to record transitions only."""
    return f"{_service(service)}:gates"


def service_events(service: str) -> str:
    return f"{_service(service)}:events"


DORA_KEPT = timedelta(days=90)  # the longest window `/dora?days=` may ask for


def dora_deployed(service: str, app: str) -> str:
    """Sorted set: commit -> epoch seconds its promotion into the app first succeeded
    (`app.storage.dora_record`); trimmed to `DORA_KEPT`."""
    return f"{_service(service)}:dora-deployed:{app}"


def dora_halted(service: str, app: str) -> str:
    """Sorted set: commit -> epoch seconds the app was auto-halted on it; trimmed like
    `dora_deployed`."""
    return f"{_service(service)}:dora-halted:{app}"


def topology(service: str) -> str:
    return f"{_service(service)}:topology"


def resynced(service: str) -> str:
    return f"{_service(service)}:resynced"


def dedup(sender: str, delivery: str) -> str:
    """A delivery marked seen by a command of its own (one key: any slot will do)."""
    return f"{PREFIX}:dedup:{sender}:{delivery}"


def seen(service: str, sender: str, delivery: str) -> str:
    """A delivery about one service, marked seen with its fold (same slot, one script)."""
    return f"{_service(service)}:seen:{sender}:{delivery}"


def artifact(kind: str, artifact_id: str) -> str:
    """The commit a build (`models.Artifact`) was made from; a slug's is `cascade:slug:<id>`.
    Shared by every service, so written by a command of its own, never by a script."""
    return f"{PREFIX}:{kind}:{artifact_id}"


def blocked_since(service: str) -> str:
    """Hash: "target commit" -> epoch seconds it was first seen blocked (Slack notices)."""
    return f"{_service(service)}:blocked-since"


def blocked_told(service: str, target: str, commit: str) -> str:
    """Set once by the process that tells Slack a commit is blocked, so it is told once."""
    return f"{_service(service)}:blocked-told:{target}:{commit}"


def commit_status(service: str, commit: str, context: str) -> str:
    """The last `state description` posted to GitHub for a commit and context, not to repeat it."""
    return f"{_service(service)}:commit-status:{context}:{commit}"


def github_deployment(service: str, target: str, commit: str) -> str:
    """The id of the GitHub deployment of a commit to a stage app, or a claim while it is made."""
    return f"{_service(service)}:github-deployment:{target}:{commit}"


# --- github signal (app/signals/github/view.py) ----------------------------------------------
# Keys of one repository share the hash tag `{owner/name}`. Everything learnt about the
# repository's history lives under its generation, which a forced push or a deleted branch
# increments: what was cached before is then never read again and expires by itself.
GITHUB_ON_BRANCH_TTL = timedelta(days=30)  # a commit on the branch stays there
GITHUB_OFF_BRANCH_FRESH = timedelta(seconds=60)  # "not on the branch" is asked again after it
GITHUB_OFF_BRANCH_TTL = timedelta(days=1)  # ... and shown on status pages meanwhile
GITHUB_COMPARE_TTL = timedelta(days=30)  # two fixed commits compare the same for ever
GITHUB_CHECKS_TTL = timedelta(days=7)  # statuses and check suites reported on a commit


def _github(repo: str) -> str:
    return f"{PREFIX}:github:{{{repo.lower()}}}"


def github_generation(repo: str) -> str:
    """Counter: forced pushes and branch deletions seen; part of every history key below."""
    return f"{_github(repo)}:generation"


def github_pushes(repo: str, branch: str) -> str:
    """Counter: pushes recorded to the branch; a push voids every "not on the branch" before it."""
    return f"{_github(repo)}:pushes:{branch}"


def github_parent(repo: str, generation: int, branch: str, sha: str) -> str:
    """The `before` of the fast-forward push whose `after` was `sha`: an ancestor of it."""
    return f"{_github(repo)}:g{generation}:parent:{branch}:{sha}"


def github_on_branch(repo: str, generation: int, branch: str, sha: str) -> str:
    """Set when the commit is known to be on the branch."""
    return f"{_github(repo)}:g{generation}:on:{branch}:{sha}"


def github_off_branch(repo: str, generation: int, branch: str, sha: str) -> str:
    """`<push number>|<epoch s>`: GitHub said the commit was not on the branch (until a push)."""
    return f"{_github(repo)}:g{generation}:off:{branch}:{sha}"


def github_compare(repo: str, generation: int, base: str, head: str) -> str:
    """GitHub's compare status of `base...head`."""
    return f"{_github(repo)}:g{generation}:compare:{base}...{head}"


def github_seen(repo: str, delivery: str) -> str:
    """A push delivery marked seen by the script that records it (one slot, the repository's)."""
    return f"{_github(repo)}:seen:{delivery}"


def github_checks(repo: str, sha: str) -> str:
    """Hash: "status:<context>" / "suite:<id>" -> "<ms>|<state>|<name>", the latest report."""
    return f"{_github(repo)}:checks:{sha}"


# incident gate (status webhooks and STATUS_API_URL) --------------------------------------

STATUS_VIEW = f"{PREFIX}:status:view"  # hash: "incident:<id>" / "component:<name>" -> JSON
STATUS_VIEW_MAX = 500  # fields; past it the oldest news is dropped, closed news first
STATUS_VIEW_KEEP = timedelta(days=1)  # how long resolved incidents and operational components stay
# the feed's two keys share a slot: one transaction replaces both (`app.signals.incidents.view`)
STATUS_FEED = f"{PREFIX}:{{status}}:feed"  # JSON: the last successful read of STATUS_API_URL
STATUS_FEED_FAILURE = f"{PREFIX}:{{status}}:feed-failure"  # JSON: reads failing since that one
STATUS_FEED_TTL = timedelta(days=1)


# alerts gate (Librato and Alertmanager webhooks, Librato's alert status API) -------------

ALERTS_FIRING = f"{PREFIX}:{{alerts}}:firing"  # hash: "<source>:<id>" -> JSON of a firing alert
ALERTS_ENDED = f"{PREFIX}:{{alerts}}:ended"  # hash: "<source>:<id>" -> "<episode end>|<expiry>"
ALERTS_TRUNCATED = f"{PREFIX}:{{alerts}}:truncated"  # hash: Alertmanager groupKey -> JSON
ALERTS_MAX = 10_000  # firing alerts kept; past it new ones are refused and every gate is unknown
ALERTMANAGER_TTL = timedelta(hours=24)  # refreshed by each repeat (repeat_interval, default 4h)
LIBRATO_TTL = timedelta(days=10)  # Librato clears a triggered alert itself after 10 days
LIBRATO_POLLED = f"{PREFIX}:{{alerts}}:librato-polled"  # epoch seconds of the last good poll
LIBRATO_FAILURE = f"{PREFIX}:{{alerts}}:librato-failure"  # why the polls since then failed
LIBRATO_TRIED = f"{PREFIX}:{{alerts}}:librato-tried"  # a reconcile's own poll: one per retry
LIBRATO_FAILURE_TTL = timedelta(days=1)

# timed pauses: the allow gate decides by `until` and Cascade's clock; Redis drops the key this
# long after `until` by its own clock, as housekeeping only (its clock may run ahead of ours)
PAUSE_KEPT_AFTER = timedelta(days=1)

# data loss (app/storage/epoch.py) --------------------------------------------------
DATA_LOST = f"{PREFIX}:data-lost"  # why promoting stopped, set by whoever saw the loss first


def epoch(place: str | None) -> str:
    """Hash of a place where data can be lost on its own (`app.storage.epoch`): "marker", which each
    process remembers (gone or replaced, data was lost), and "claims", the guarding writes
    counted there (going back, recent writes were lost). A service's is on its slot. None:
    the global pause's, on its slot too: the tag is that key, which has none and so is
    hashed whole. (Before clusters, one server's were `cascade:epoch` and `cascade:claims`.)"""
    return f"{_service(place)}:epoch" if place else f"{PREFIX}:{{{GLOBAL_PAUSE}}}:epoch"
