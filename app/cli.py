"""The `cascade` command: run the service, or talk to a running one over its HTTP API.

`serve` runs it; `status`, `pause`, `resume`, `retry` and `events` are clients of
`CASCADE_URL` (with `CASCADE_ADMIN_TOKEN` for writes); `check` validates the
services file.
"""

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn

from app.services import ConfigError, load_services, parse_duration
from app.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except httpx.HTTPError as error:
        url = get_settings().url
        print(f"cascade: cannot reach Cascade at {url} ({error}); is it running?", file=sys.stderr)
        return 2


def serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        load_services(settings.config_path)  # refuse a bad file with its message alone
    except ConfigError as error:
        print(f"cascade: cannot start: {error}", file=sys.stderr)
        return 2
    port = args.port or settings.port
    uvicorn.run("app.main:app", host=args.host, port=port, proxy_headers=True, log_config=None)
    return 0


def check(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        config = load_services(settings.config_path)
    except ConfigError as error:
        print(f"✗ services file: {error}", file=sys.stderr)
        return 1
    print(f"✓ services file {config.path}: {len(config.services)} services")
    return 0


def status(args: argparse.Namespace) -> int:
    body = _call("GET", f"/status/{args.service}" if args.service else "/status")
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    services = [body] if args.service else body["services"]
    if not args.service and body.get("sandbox"):
        print("SANDBOX: a simulated Heroku; nothing real is promoted")
    if not args.service and body.get("paused"):
        print(f"PAUSED: {body['paused']['reason']}")
    for service in services:
        stages = "  →  ".join(f"{s['app']} {(s['commit'] or '?')[:7]}" for s in service["stages"])
        print(f"{service['name']}: {stages}")
        for p in service["promotions"]:
            print(
                f"  {(p['commit'] or '?')[:7]} {p['from']} → {p['to']}: {p['state']}: {p['reason']}"
            )
    return 0


def pause(args: argparse.Namespace) -> int:
    until = _until(args.until) if args.until else None
    body = {"reason": args.reason, "service": args.service, "until": until, "by": args.by}
    made = _call("POST", "/pause", json=body)
    print(f"paused {made['service'] or 'everything'}: {made['reason']}")
    return 0


def resume(args: argparse.Namespace) -> int:
    _call("DELETE", "/pause", params={"service": args.service} if args.service else None)
    print(f"resumed {args.service or 'everything'}")
    return 0


def retry(args: argparse.Namespace) -> int:
    print(_call("POST", "/retry", json={"service": args.service, "to": args.to})["detail"])
    return 0


def events(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.service:
        params["service"] = args.service
    for event in _call("GET", "/events", params=params)["events"]:
        print(f"{event['at']}  {event['kind']:<20} {event['message']}")
    return 0


def _call(method: str, path: str, **kwargs: Any) -> Any:
    settings = get_settings()
    headers = {}
    if settings.admin_token is not None:
        headers["Authorization"] = f"Bearer {settings.admin_token.get_secret_value()}"
    response = httpx.request(method, settings.url + path, headers=headers, timeout=10, **kwargs)
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        print(f"cascade: {method} {path}: {response.status_code}: {detail}", file=sys.stderr)
        raise SystemExit(1)
    return response.json() if response.content else None


def _until(value: str) -> str:
    """An RFC 3339 time as given, or a duration from now (`2h`)."""
    try:
        return (datetime.now(UTC) + parse_duration(value)).isoformat()
    except ValueError:
        return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cascade", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="command")

    run = commands.add_parser("serve", help="run Cascade")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    run.set_defaults(run=serve)

    show = commands.add_parser("status", help="what runs where, and why anything waits")
    show.add_argument("service", nargs="?")
    show.add_argument("--json", action="store_true", help="the raw JSON of GET /status")
    show.set_defaults(run=status)

    hold = commands.add_parser("pause", help="stop promotions (all, or one service)")
    hold.add_argument("--service")
    hold.add_argument("--reason", required=True)
    hold.add_argument("--until", help="RFC 3339 time or a duration such as 2h")
    hold.add_argument("--by")
    hold.set_defaults(run=pause)

    go = commands.add_parser("resume", help="lift a pause")
    go.add_argument("--service")
    go.set_defaults(run=resume)

    again = commands.add_parser("retry", help="clear a failed promotion into a stage")
    again.add_argument("service")
    again.add_argument("to", help="the target app")
    again.set_defaults(run=retry)

    log = commands.add_parser("events", help="the audit trail, newest first")
    log.add_argument("--service")
    log.add_argument("--limit", type=int, default=50)
    log.set_defaults(run=events)

    validate = commands.add_parser("check", help="validate the services file")
    validate.set_defaults(run=check)
    return parser


if __name__ == "__main__":
    sys.exit(main())
