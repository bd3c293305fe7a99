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
SUBSCRIPTIONS_DUE = f"{PREFIX}:subscriptions-due"  # one process checks them per interval
COMMIT_STATUS_TTL = timedelta(days=30)
LIVE = f"{PREFIX}:live"  # pub/sub channel: the name of a service whose state changed, or "*"
HISTORY_MAXLEN = 200

DEDUP_TTL = timedelta(days=3)
LOCK_TTL = timedelta(seconds=10)  # renewed by its holder while it works
RECORD_TTL = timedelta(days=30)
TOPOLOGY_TTL = timedelta(hours=1)


def _service(service: str) -> str:
    return f"{PREFIX}:{{{service}}}"


def stage(service: str, app: str) -> str:
    """JSON of the stage's StageView (current succeeded release, newer pending one)."""
    return f"{_service(service)}:stage:{app}"


def history(service: str, app: str) -> str:
    """Sorted set: commit -> epoch seconds it first ran (succeeded) on the app."""
    return f"{_service(service)}:history:{app}"


def history_loaded(service: str, app: str) -> str:
    return f"{_service(service)}:history-loaded:{app}"


def promotion(service: str, target: str, commit: str) -> str:
    return f"{_service(service)}:promotion:{target}:{commit}"


def promotions(service: str) -> str:
    """Set of promotion record keys of the service that are not yet settled."""
    return f"{_service(service)}:promotions"


def lock(service: str) -> str:
    return f"{_service(service)}:lock"


def dirty(service: str) -> str:
    return f"{_service(service)}:dirty"


def pause(service: str) -> str:
    return f"{_service(service)}:pause"


def gates(service: str) -> str:
    """Hash: target app -> last gate states seen, to record transitions only."""
    return f"{_service(service)}:gates"


def service_events(service: str) -> str:
    return f"{_service(service)}:events"


def topology(service: str) -> str:
    return f"{_service(service)}:topology"


def resynced(service: str) -> str:
    return f"{_service(service)}:resynced"


def dedup(sender: str, delivery: str) -> str:
    return f"{PREFIX}:dedup:{sender}:{delivery}"


def slug(slug_id: str) -> str:
    return f"{PREFIX}:slug:{slug_id}"


def blocked_since(service: str) -> str:
    """Hash: "target commit" -> epoch seconds it was first seen blocked (Slack notices)."""
    return f"{_service(service)}:blocked-since"


def blocked_told(service: str, target: str, commit: str) -> str:
    """Set once by the process that tells Slack a commit is blocked, so it is told once."""
    return f"{_service(service)}:blocked-told:{target}:{commit}"


def commit_status(service: str, commit: str, context: str) -> str:
    """The last `state description` posted to GitHub for a commit and context, not to repeat it."""
    return f"{_service(service)}:commit-status:{context}:{commit}"
