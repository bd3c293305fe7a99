"""The `cascade` command: run the service, talk to a running one, or check the setup.

`serve` runs Cascade (`app.cli.serve`); `status`, `pause`, `resume`, `retry`, `events`,
`dora` and `recover` are clients of `CASCADE_URL` (writes send `CASCADE_ADMIN_TOKEN`; see
`app.cli.remote`) and say plainly when it cannot be reached or refuses; `check`
(`app.cli.check`) validates the services file and tries every configured peer. This module
holds the command line itself: its parser, and what every command shares on the way out.
"""

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from app.cli import check, control, history, serve, status
from app.cli.remote import ClientError
from app.config.services import parse_duration

DESCRIPTION = """\
Run Cascade (serve), or talk to a running one: status, pause, resume, retry, events, dora
and recover use CASCADE_URL (default: http://localhost:$PORT, or port 8000), and writes send
CASCADE_ADMIN_TOKEN. check validates the services file and tries every configured peer."""


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
    run.set_defaults(run=serve.serve)

    show = commands.add_parser("status", help="what runs where, and why anything waits")
    show.add_argument("service", nargs="?", help="one service in detail (default: all)")
    show.add_argument("--json", action="store_true", help="the raw JSON of GET /status")
    show.set_defaults(run=status.status)

    hold = commands.add_parser("pause", help="stop promotions (all, or one service)")
    hold.add_argument("--service", help="pause this service only (default: everything)")
    hold.add_argument("--reason", required=True, help="why (shown with the pause)")
    hold.add_argument(
        "--until", type=_until, help="an RFC 3339 time, or a duration such as 2h, 30m, 1d"
    )
    hold.add_argument("--by", help="who is pausing (shown with the pause)")
    hold.set_defaults(run=control.pause)

    go = commands.add_parser("resume", help="lift a pause")
    go.add_argument("--service", help="lift this service's pause (default: the global one)")
    go.set_defaults(run=control.resume)

    again = commands.add_parser("retry", help="clear a failed promotion into a stage")
    again.add_argument("service", help="the service whose promotion failed")
    again.add_argument("to", help="the target app")
    again.set_defaults(run=control.retry)

    log = commands.add_parser("events", help="the audit trail, newest first")
    log.add_argument("--service", help="this service's events only")
    log.add_argument("--limit", type=int, default=50, help="how many (default: 50)")
    log.add_argument("--json", action="store_true", help="the raw JSON of GET /events")
    log.set_defaults(run=history.events)

    measure = commands.add_parser(
        "dora", help="delivery metrics: deployments, lead time, failure rate, time to restore"
    )
    measure.add_argument("service", nargs="?", help="one service (default: all)")
    measure.add_argument("--days", type=int, default=30, help="the window (default: 30)")
    measure.add_argument("--json", action="store_true", help="the raw JSON of GET /dora")
    measure.set_defaults(run=history.dora)

    confirm = commands.add_parser(
        "recover", help="after Redis lost Cascade's data, put pauses back, then promote again"
    )
    confirm.set_defaults(run=control.recover)

    validate = commands.add_parser(
        "check", help="validate the services file and try every configured peer"
    )
    validate.set_defaults(run=check.check)
    return parser


if __name__ == "__main__":
    sys.exit(main())
