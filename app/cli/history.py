"""What happened: `cascade events` (the audit trail) and `cascade dora` (delivery metrics)."""

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from app.cli import remote, text
from app.config.durations import spoken


def events(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.service:
        params["service"] = args.service
    found = remote.call("GET", "/events", params=params)["events"]
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for event in found:
        at = datetime.fromisoformat(event["at"]).astimezone(UTC)
        print(
            f"{at:%Y-%m-%d %H:%M:%S}  {event['kind']:<19}"
            f" {event['service'] or '-':<12} {event['message']}"
        )
    if not found:
        print("no events yet")
    return 0


def dora(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"days": args.days}
    if args.service:
        params["service"] = args.service
    body = remote.call("GET", "/dora", params=params)
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    for service in body["services"]:
        print(f"\n{service['name']} (last {body['days']} days)")
        rows = [("STAGE", "DEPLOYS", "LEAD P50", "LEAD P90", "FAILURES", "RESTORE")]
        rows += [_dora_row(stage) for stage in service["stages"]]
        print(text.table(rows))
    if not body["services"]:
        print("no services")
    return 0


def _dora_row(stage: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    """One stage's figures in words: "-" where there is none (no deployment, no restore)."""
    rate = stage["change_failure_rate"]
    failures = "-" if rate is None else f"{rate:.0%} ({stage['halts']} of {stage['deployments']})"
    restore = _seconds(stage["time_to_restore_seconds"])
    if stage["open_halts"]:
        restore += f" ({stage['open_halts']} open)"
    return (
        stage["stage"],
        str(stage["deployments"]),
        _seconds(stage["lead_time_p50_seconds"]),
        _seconds(stage["lead_time_p90_seconds"]),
        failures,
        restore,
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else spoken(timedelta(seconds=value))
