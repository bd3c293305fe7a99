"""`cascade status`: what runs where, and why anything waits (`GET /status`)."""

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from app.cli import remote, text
from app.config.durations import short, spoken
from app.signals.freshness import describe


def status(args: argparse.Namespace) -> int:
    body = remote.call("GET", f"/status/{args.service}" if args.service else "/status")
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    now = datetime.now(UTC)
    if not args.service:
        if body.get("config_problem"):
            print(_config_problem(body["config_problem"], now))
        if body.get("sandbox"):
            print("SANDBOX  Cascade runs on a simulated Heroku: nothing real is promoted")
        if body.get("dry_run"):
            print("DRY RUN  decisions are recorded, nothing is promoted")
        if body.get("paused"):
            print(f"PAUSED   everything: {text.pause(body['paused'], now)}")
        if body.get("problem"):
            print(f"PROBLEM  {body['problem']}")
        for source in body.get("sources", []):
            print(f"{'STALE' if source['stale'] else 'SOURCE':<8} {_source(source, now)}")
    for service in [body] if args.service else body["services"]:
        print(f"\n{service['name']} (pipeline {service['pipeline']})")
        if service.get("paused"):
            print(f"  PAUSED: {text.pause(service['paused'], now)}")
        if service.get("problem"):
            print(f"  PROBLEM: {service['problem']}")
        stages = [("STAGE", "COMMIT", "RELEASE", "SINCE")]
        stages += [_stage(stage, now) for stage in service["stages"]]
        print(text.table(stages))
        if service["promotions"]:
            moving = [("COMMIT", "FROM → TO", "STATE", "WHY")]
            moving += [_promotion(p, now) for p in service["promotions"]]
            print(text.table(moving))
    return 0


def _stage(stage: dict[str, Any], now: datetime) -> tuple[str, str, str, str]:
    release, pending = stage.get("release"), stage.get("pending")
    version = f"v{release['version']}" if release else "-"
    if pending:
        version += f" (v{pending['version']} {short(pending.get('commit'))} releasing)"
    since = _ago(release["created_at"], now) if release else "-"
    return stage["app"], short(stage["commit"]), version, since


def _promotion(p: dict[str, Any], now: datetime) -> tuple[str, str, str, str]:
    why = p["reason"]
    if p.get("opens_at") and p["state"] == "waiting" and "opens in" not in why:  # said once
        why += f" (opens in {spoken(datetime.fromisoformat(p['opens_at']) - now)})"
    return short(p["commit"]), f"{p['from']} → {p['to']}", p["state"], why


def _config_problem(problem: dict[str, Any], now: datetime) -> str:
    """First, so whoever just edited the services file sees their edit did not take. The
    file is named once: the message starts with it."""
    message, path = problem["message"], problem["path"]
    where = "" if message.startswith(path) else f"{path}, "
    return (
        f"CONFIG   services file NOT reloaded ({where}{_ago(problem['at'], now)}):"
        f" {message}; still running the previous configuration"
    )


def _source(source: dict[str, Any], now: datetime) -> str:
    """`alerts: last heard 3m ago from alertmanager (webhook)`."""
    last, limit = source.get("last_heard"), source.get("limit_seconds")
    return describe(
        source["signal"],
        source["source"],
        source["how"],
        datetime.fromisoformat(last) if last else None,
        timedelta(seconds=limit) if limit is not None else None,
        bool(source["stale"]),
        now,
    )


def _ago(moment: str, now: datetime) -> str:
    return f"{spoken(now - datetime.fromisoformat(moment))} ago"
