"""Redis and the Platform API as configured, or their local stand-ins: a Redis embedded in the
data directory without REDIS_URL, the simulated Heroku served in-process without
HEROKU_API_KEY (`app.sandbox`)."""

import asyncio
import secrets
from contextlib import AsyncExitStack

from pydantic import SecretStr
from starlette.applications import Starlette

from app import logs
from app import sandbox as sandboxes
from app.config.catalog import Catalog
from app.config.settings import Settings
from app.heroku.client import HerokuClient
from app.metrics import Metrics
from app.storage.client import Client, connect, open_client
from app.storage.embedded import EmbeddedRedis
from app.storage.store import Store


async def redis_for(settings: Settings, stack: AsyncExitStack) -> Client:
    """REDIS_URL's server, or one embedded in the data directory when it is unset."""
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        await asyncio.to_thread(embedded.start)
        stack.push_async_callback(asyncio.to_thread, embedded.stop)
        local = connect(embedded.url)
        stack.push_async_callback(local.aclose)
        return local
    client = await open_client(settings.redis_url.get_secret_value())  # a cluster's, if one
    stack.push_async_callback(client.aclose)
    return client


def heroku_secret(settings: Settings) -> SecretStr | None:
    """HEROKU_WEBHOOK_SECRET; the sandbox makes one up without it (and it is never logged)."""
    secret = settings.heroku_webhook_secret
    if settings.sandbox and secret is None:
        secret = SecretStr(secrets.token_urlsafe(32))
    if secret is not None:
        logs.REDACT.add(secret.get_secret_value())
    return secret


def heroku_for(
    settings: Settings,
    catalog: Catalog,
    app: Starlette,
    store: Store,
    metrics: Metrics,
    secret: SecretStr | None,
) -> tuple[sandboxes.Sandbox | None, HerokuClient]:
    """The real Platform API, or the sandbox served in-process when no token is set."""
    observe = metrics.heroku_call
    if settings.heroku_api_key is not None:
        key = settings.heroku_api_key.get_secret_value()
        return None, HerokuClient(settings.heroku_api_url, key, commits=store, observe=observe)
    sandbox, transport = sandboxes.in_process(
        catalog.config,
        cascade=app,
        webhook_secret=secret.get_secret_value() if secret else "",
        deploy_every=settings.sandbox_deploy_seconds,
    )
    url = "http://sandbox.invalid"
    heroku = HerokuClient(url, "sandbox", commits=store, transport=transport, observe=observe)
    return sandbox, heroku
