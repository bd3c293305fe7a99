"""`python -m app.sandbox`: the simulated Heroku on its own, for the e2e tests and demos.

It serves the pipelines of a services file (`--fir`, `--container` choose their kind) and
signs its webhooks with HEROKU_WEBHOOK_SECRET; every line it logs says it is the sandbox.
"""

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from app.config.settings import get_settings
from app.sandbox import Sandbox, pipelines_from_services

log = logging.getLogger("cascade.sandbox")


def _say_sandbox(record: logging.LogRecord) -> bool:
    """Standalone, uvicorn's lines too say that they come from the sandbox."""
    if not record.name.startswith(log.name):
        record.msg = f"sandbox: {record.msg}"
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m app.sandbox`: serve the simulated Heroku for the pipelines of a services file."""
    parser = argparse.ArgumentParser(
        prog="python -m app.sandbox",
        description="Cascade's sandbox platform: a simulated Heroku (Platform API + webhooks).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--config", type=Path, default=Path("cascade.toml"))
    parser.add_argument("--webhook-url", help="where to POST api:release webhooks (Cascade)")
    parser.add_argument("--deploy-every", type=float, help="demo: deploy a new commit every N s")
    parser.add_argument("--release-seconds", type=float, default=1.0)
    parser.add_argument(
        "--copy-seconds", type=float, help="a promotion's slug copy (default: --release-seconds)"
    )
    parser.add_argument(
        "--fir", action="append", default=[], metavar="PIPELINE", help="a Fir pipeline (OCI images)"
    )
    parser.add_argument(
        "--container",
        action="append",
        default=[],
        metavar="APP",
        help="an app on the container stack",
    )
    args = parser.parse_args(argv)
    secret = get_settings().heroku_webhook_secret
    if secret is None or not secret.get_secret_value():
        parser.error("HEROKU_WEBHOOK_SECRET is not set: the sandbox signs its webhooks with it")
    from app.config.services import ConfigError, load_services  # written alongside; load only here

    try:
        config = load_services(args.config)
    except ConfigError as exc:
        parser.exit(2, f"sandbox: {exc}\n")
    handler = logging.StreamHandler()
    handler.addFilter(_say_sandbox)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", handlers=[handler]
    )
    sandbox = Sandbox(
        pipelines_from_services(config, args.fir, args.container),
        webhook_url=args.webhook_url,
        webhook_secret=secret.get_secret_value(),
        release_seconds=args.release_seconds,
        copy_seconds=args.copy_seconds,
        deploy_every=args.deploy_every,
    )
    log.info("sandbox: SIMULATED Heroku, not the real platform, on %s:%d", args.host, args.port)
    # A request held by a fault (`delays`, `promotion_response_delay`) must not hold up a stop.
    uvicorn.run(
        sandbox.app, host=args.host, port=args.port, log_config=None, timeout_graceful_shutdown=1
    )
    return 0
