"""`cascade check`: the services file and every configured peer, one finding per item.

Each finding says what is wrong and how to fix it (`app.cli.peers` tries the peers); what is
set is named, never its value. Without CASCADE_PUBLIC_URL it also prints the
`heroku webhooks:add` lines that subscribe every stage app by hand. Nothing is written
anywhere, and no secret is printed.
"""

import argparse
import asyncio
import sys

from app.cli import peers
from app.cli.peers import NOTE, OK, PROBLEM, Finding
from app.config import admin_token
from app.config.services import ConfigError, load_services
from app.config.settings import Settings, get_settings
from app.heroku.endpoint import endpoint
from app.heroku.manual import manual_commands


def check(args: argparse.Namespace) -> int:
    settings = get_settings()
    found = asyncio.run(run(settings))
    for finding in found:
        print(finding.line())
    if settings.public_url is None and not settings.sandbox:
        _print_subscription_commands(settings)
    problems = sum(f.mark == PROBLEM for f in found)
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


async def run(settings: Settings) -> list[Finding]:
    """Everything `cascade check` prints, in order; a bad services file stops it there."""
    try:
        config = load_services(settings.config_path)
    except ConfigError as error:
        return [Finding(PROBLEM, "services file", str(error))]
    count = len(config.services)
    names = ", ".join(s.name for s in config.services)
    text = f"{config.path}: {count} {'service' if count == 1 else 'services'}: {names}"
    found = [Finding(OK, "services file", text)]
    found += await peers.redis(settings)
    found += await peers.heroku(settings, config)
    found += await peers.over_http(settings, config)
    found += _secrets(settings)
    return found


def _secrets(settings: Settings) -> list[Finding]:
    """What is set, never its value; unset ones are notes: Cascade runs without them."""
    found = []
    if settings.admin_token is None and settings.sandbox:
        where = admin_token.path(settings.data_dir)
        text = f"CASCADE_ADMIN_TOKEN not set: the sandbox keeps one in {where} for this machine"
        found.append(Finding(NOTE, "admin token", text))
    elif settings.admin_token is None:
        text = "CASCADE_ADMIN_TOKEN not set: pause, resume and retry answer 403"
        found.append(Finding(NOTE, "admin token", text))
    if settings.heroku_api_key is not None and settings.heroku_webhook_secret is None:
        text = (
            "HEROKU_WEBHOOK_SECRET not set: release webhooks are refused,"
            " so Cascade learns only from the resync"
        )
        found.append(Finding(NOTE, "Heroku webhooks", text))
    if settings.public_url is not None and not settings.sandbox:
        url = endpoint(settings.public_url)
        source = (
            "HEROKU_APP_DEFAULT_DOMAIN_NAME, Heroku's dyno metadata"
            if settings.public_url_from_heroku
            else "CASCADE_PUBLIC_URL"
        )  # a one-off dyno sees what the web dynos see: step 7 confirms step 5
        text = f"Cascade keeps the api:release subscriptions at {url} (from {source})"
        found.append(Finding(NOTE, "public URL", text))
    if settings.slack_webhook_url is not None:
        text = "CASCADE_SLACK_WEBHOOK_URL set (not tried: that would post a message)"
        found.append(Finding(NOTE, "Slack", text))
    return found
