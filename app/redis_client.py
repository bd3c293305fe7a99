"""Open the asyncio Redis client: `REDIS_URL` as given, or the embedded server."""

import redis.asyncio as redis


def connect(url: str) -> "redis.Redis":
    """A client for `url`; `rediss://` accepts Heroku Redis's self-signed certificate."""
    options: dict[str, object] = {"decode_responses": True, "health_check_interval": 30}
    if url.startswith("rediss://"):
        options["ssl_cert_reqs"] = "none"
    return redis.Redis.from_url(url, **options)
