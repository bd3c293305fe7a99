"""The `cascade` command: run the service, talk to a running one, or check the setup.

`serve` runs Cascade; `status`, `pause`, `resume`, `retry`, `events`, `dora` and `recover` are
clients of `CASCADE_URL` (writes send `CASCADE_ADMIN_TOKEN`) and say plainly
when it cannot be reached or refuses; `check` (in `app.cli.check`) validates the
services file and tries every configured peer.
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import httpx
import uvicorn

from app.cli import check as checks
from app.config import admin_token
from app.config.durations import short, spoken
from app.config.services import ConfigError, load_services, parse_duration
from app.config.settings import Settings, get_settings
from app.core.models import pause_scope
from app.heroku.subscriptions import manual_commands
from app.signals.freshness import describe

DESCRIPTION = """\
Run Cascade (serve), or talk to a running one: status, pause, resume, retry, events, dora
and recover use CASCADE_URL (default: http://localhost:$PORT, or port 8000), and writes send
CASCADE_ADMIN_TOKEN. check validates the services file and tries every configured peer."""
UNREACHABLE, REFUSED = 2, 1  # exit codes
TIMEOUT_SECONDS = 10.0
GRACEFUL_SHUTDOWN_SECONDS = 10  # open streams may not eat Heroku's 30 s after SIGTERM


class ClientError(Exception):
    """A client command could not do its job; the message says what to do about it."""

    def __init__(self, message: str, code: int = REFUSED) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code = int(args.run(args))
        sys.stdout.flush()  # here, so a closed pipe is caught below rather than at exit
    except ClientError as error:
        print(f"cascade: {error}", file=sys.stderr)
        return error.code
    except BrokenPipeError:
        return _reader_gone()
    return code


def _reader_gone() -> int:
    """The reader of our output left (`cascade events | head`): stop quietly, as git does.

    stdout is pointed at /dev/null so the interpreter's own flush at exit cannot fail again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        load_services(settings.config_path)  # refuse a bad file with its message alone
    except ConfigError as error:
        print(f"cascade: cannot start: {error}", file=sys.stderr)
        return UNREACHABLE
    port = args.port or settings.port
    try:
        _try_to_listen(args.host, port)
    except OSError as error:
        print(
            f"cascade: cannot start: cannot listen on {args.host}:{port} ({error.strerror}):"
            " is Cascade already running there? Stop it, or choose another port with --port",
            file=sys.stderr,
        )
        return UNREACHABLE  # as for a bad services file: it cannot start
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _asked_to_stop)  # uvicorn calls it again once it has shut down
    with contextlib.suppress(_Stopped):  # a stop asked for is a success: no make "Error 130"
        uvicorn.run(
            "app.main:app",
            host=args.host,
            port=port,
            proxy_headers=True,
            log_config=None,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    return 0


def _try_to_listen(host: str, port: int) -> None:
    """Raise OSError if `host:port` cannot be listened on, before Cascade starts: uvicorn
    binds only after the app's startup, so a second `cascade serve` on a port in use
    reconciled, and could promote, for the moment it lived. (Handing uvicorn the bound
    socket instead loses its "running on" line.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        probe.bind((host, port))


class _Stopped(BaseException):
    """Ctrl-C or SIGTERM reached `cascade serve`; like KeyboardInterrupt, no `except Exception`
    stops it on its way out (before uvicorn listens for signals, or after it has shut down)."""


def _asked_to_stop(signum: int, frame: FrameType | None) -> None:
    """uvicorn puts this handler back after its graceful shutdown and raises the signal again."""
    raise _Stopped


def check(args: argparse.Namespace) -> int:
    settings = get_settings()
    found = asyncio.run(checks.run(settings))
    for finding in found:
        print(finding.line())
    if settings.public_url is None and not settings.sandbox:
        _print_subscription_commands(settings)
    problems = sum(f.mark == checks.PROBLEM for f in found)
    if problems:
        print(f"{problems} {'problem' if problems == 1 else 'problems'} found", file=sys.stderr)
    return 1 if problems else 0


def _print_subscription_commands(settings: Settings) -> None:
    """Without CASCADE_PUBLIC_URL Cascade cannot subscribe by itself: say how to, by hand."""
    try:
        config = load_services(settings.config_path)
    except ConfigError:
        return  # already reported above
    print("\nCASCADE_PUBLIC_URL is not set, so add the Heroku webhooks by hand:")
    for line in manual_commands(config):
        print(f"  {line}")


def status(args: argparse.Namespace) -> int:
    body = _call("GET", f"/status/{args.service}" if args.service else "/status")
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
            print(f"PAUSED   everything: {_pause(body['paused'], now)}")
        if body.get("problem"):
            print(f"PROBLEM  {body['problem']}")
        for source in body.get("sources", []):
            print(f"{'STALE' if source['stale'] else 'SOURCE':<8} {_source(source, now)}")
    for service in [body] if args.service else body["services"]:
        print(f"\n{service['name']} (pipeline {service['pipeline']})")
        if service.get("paused"):
            print(f"  PAUSED: {_pause(service['paused'], now)}")
        if service.get("problem"):
            print(f"  PROBLEM: {service['problem']}")
        stages = [("STAGE", "COMMIT", "RELEASE", "SINCE")]
        stages += [_stage(stage, now) for stage in service["stages"]]
        print(_table(stages))
        if service["promotions"]:
            moving = [("COMMIT", "FROM → TO", "STATE", "WHY")]
            moving += [_promotion(p, now) for p in service["promotions"]]
            print(_table(moving))
    return 0


def pause(args: argparse.Namespace) -> int:
    body = {"reason": args.reason, "service": args.service, "until": args.until, "by": args.by}
    made = _call("POST", "/pause", json=body, write=True)
    print(f"paused {pause_scope(made['service'])}: {_pause(made, datetime.now(UTC))}")
    return 0


def resume(args: argparse.Namespace) -> int:
    """Say what was lifted, and which service pauses still hold (read from /status first)."""
    before = _call("GET", "/status")
    paused = {s["name"]: s["paused"] for s in before["services"] if s.get("paused")}
    was = paused.pop(args.service, None) if args.service else before.get("paused")
    params = {"service": args.service} if args.service else None
    _call("DELETE", "/pause", params=params, write=True)
    which = f"the pause of service {args.service}" if args.service else "the global pause"
    if was:
        print(f"lifted {which}: {_pause(was, datetime.now(UTC))}")
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
    print(_call("POST", "/retry", json=body, write=True)["detail"])
    return 0


def recover(args: argparse.Namespace) -> int:
    """Confirm that Redis lost Cascade's data (pauses put back first): promote again."""
    print(_call("POST", "/recover", write=True)["detail"])
    return 0


def events(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.service:
        params["service"] = args.service
    found = _call("GET", "/events", params=params)["events"]
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
    body = _call("GET", "/dora", params=params)
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    for service in body["services"]:
        print(f"\n{service['name']} (last {body['days']} days)")
        rows = [("STAGE", "DEPLOYS", "LEAD P50", "LEAD P90", "FAILURES", "RESTORE")]
        rows += [_dora_row(stage) for stage in service["stages"]]
        print(_table(rows))
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


def _call(method: str, path: str, *, write: bool = False, **kwargs: Any) -> Any:
    """One request to the running Cascade; a refusal becomes a `ClientError` that says why."""
    settings = get_settings()
    url = settings.client_url.rstrip("/")
    token = settings.admin_token or admin_token.for_client(url, settings.data_dir)
    headers = {}
    if write and token is not None:
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    try:
        response = httpx.request(
            method, url + path, headers=headers, timeout=TIMEOUT_SECONDS, **kwargs
        )
    except httpx.TimeoutException:
        raise ClientError(
            f"Cascade at {url} did not answer within {TIMEOUT_SECONDS:.0f}s", UNREACHABLE
        ) from None
    except httpx.HTTPError as error:
        reason = str(error) or type(error).__name__
        raise ClientError(
            f"cannot reach Cascade at {url} ({reason}): is it running? CASCADE_URL says where",
            UNREACHABLE,
        ) from None
    if response.status_code >= 400:
        raise ClientError(_refusal(response, url, write and token is not None))
    try:
        return response.json() if response.content else None
    except ValueError:
        raise ClientError(
            f"{url} answered {path} with something other than JSON: is it Cascade?"
        ) from None


def _refusal(response: httpx.Response, url: str, sent_token: bool) -> str:
    detail = _detail(response)
    if response.status_code == 401:
        fix = (
            "CASCADE_ADMIN_TOKEN here does not match the one Cascade runs with"
            if sent_token
            else "set CASCADE_ADMIN_TOKEN to the admin token Cascade runs with"
        )
        return f"Cascade at {url} refused: missing or wrong admin token (401): {fix}"
    if response.status_code == 403:
        return f"Cascade at {url} refused (403): {detail}"
    return (
        f"{response.request.method} {response.request.url.path}: {response.status_code}: {detail}"
    )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        detail = body.get("detail") or body.get("message")  # Cascade's, or another service's
    except (ValueError, AttributeError):
        detail = None
    if not detail:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
        )
    return str(detail)


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


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


def _pause(pause: dict[str, Any], now: datetime) -> str:
    text = str(pause["reason"])
    if pause.get("by"):
        text += f" (by {pause['by']})"
    if pause.get("until"):
        until = datetime.fromisoformat(pause["until"]).astimezone(UTC)
        text += f", until {until:%Y-%m-%dT%H:%MZ}"  # one format, as --until takes it
    return text


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


def _until(value: str) -> str:
    """An RFC 3339 time as given, or a duration from now (`2h`); anything else is a usage error."""
    try:
        return (datetime.now(UTC) + parse_duration(value)).isoformat()
    except ValueError:
        pass
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither an RFC 3339 time (2026-05-01T18:00:00Z)"
            " nor a duration (2h, 30m, 1d, 1h30m)"
        ) from None
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cascade", description=DESCRIPTION)
    commands = parser.add_subparsers(required=True, metavar="command")

    run = commands.add_parser("serve", help="run Cascade")
    run.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    run.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    run.set_defaults(run=serve)

    show = commands.add_parser("status", help="what runs where, and why anything waits")
    show.add_argument("service", nargs="?", help="one service in detail (default: all)")
    show.add_argument("--json", action="store_true", help="the raw JSON of GET /status")
    show.set_defaults(run=status)

    hold = commands.add_parser("pause", help="stop promotions (all, or one service)")
    hold.add_argument("--service", help="pause this service only (default: everything)")
    hold.add_argument("--reason", required=True, help="why (shown with the pause)")
    hold.add_argument(
        "--until", type=_until, help="an RFC 3339 time, or a duration such as 2h, 30m, 1d"
    )
    hold.add_argument("--by", help="who is pausing (shown with the pause)")
    hold.set_defaults(run=pause)

    go = commands.add_parser("resume", help="lift a pause")
    go.add_argument("--service", help="lift this service's pause (default: the global one)")
    go.set_defaults(run=resume)

    again = commands.add_parser("retry", help="clear a failed promotion into a stage")
    again.add_argument("service", help="the service whose promotion failed")
    again.add_argument("to", help="the target app")
    again.set_defaults(run=retry)

    log = commands.add_parser("events", help="the audit trail, newest first")
    log.add_argument("--service", help="this service's events only")
    log.add_argument("--limit", type=int, default=50, help="how many (default: 50)")
    log.add_argument("--json", action="store_true", help="the raw JSON of GET /events")
    log.set_defaults(run=events)

    measure = commands.add_parser(
        "dora", help="delivery metrics: deployments, lead time, failure rate, time to restore"
    )
    measure.add_argument("service", nargs="?", help="one service (default: all)")
    measure.add_argument("--days", type=int, default=30, help="the window (default: 30)")
    measure.add_argument("--json", action="store_true", help="the raw JSON of GET /dora")
    measure.set_defaults(run=dora)

    confirm = commands.add_parser(
        "recover", help="after Redis lost Cascade's data, put pauses back, then promote again"
    )
    confirm.set_defaults(run=recover)

    validate = commands.add_parser(
        "check", help="validate the services file and try every configured peer"
    )
    validate.set_defaults(run=check)
    return parser


if __name__ == "__main__":
    sys.exit(main())
