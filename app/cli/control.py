"""The operator's writes: `cascade pause`, `resume`, `retry` and `recover`.

Each sends the admin token (`app.cli.remote`) and says what it changed.
"""

import argparse
from datetime import UTC, datetime

from app.cli import remote, text
from app.core.models import pause_scope


def pause(args: argparse.Namespace) -> int:
    body = {"reason": args.reason, "service": args.service, "until": args.until, "by": args.by}
    made = remote.call("POST", "/pause", json=body, write=True)
    print(f"paused {pause_scope(made['service'])}: {text.pause(made, datetime.now(UTC))}")
    return 0


def resume(args: argparse.Namespace) -> int:
    """Say what was lifted, and which service pauses still hold (read from /status first)."""
    before = remote.call("GET", "/status")
    paused = {s["name"]: s["paused"] for s in before["services"] if s.get("paused")}
    was = paused.pop(args.service, None) if args.service else before.get("paused")
    params = {"service": args.service} if args.service else None
    remote.call("DELETE", "/pause", params=params, write=True)
    which = f"the pause of service {args.service}" if args.service else "the global pause"
    if was:
        print(f"lifted {which}: {text.pause(was, datetime.now(UTC))}")
    elif args.service:
        print(f"service {args.service} was not paused: nothing to resume")
    else:
        print("there was no global pause: nothing to resume")
    if paused and not args.service:
        names = ", ".join(sorted(paused))
        print(f"still paused: {names} (cascade resume --service NAME lifts one)")
    return 0


def retry(args: argparse.Namespace) -> int:
    body = {"service": args.service, "to": args.to}
    print(remote.call("POST", "/retry", json=body, write=True)["detail"])
    return 0


def recover(args: argparse.Namespace) -> int:
    """Confirm that Redis lost Cascade's data (pauses put back first): promote again."""
    print(remote.call("POST", "/recover", write=True)["detail"])
    return 0
