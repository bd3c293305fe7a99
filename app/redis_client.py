"""Open the asyncio Redis client: `REDIS_URL` as given, or the embedded server's."""

import redis.asyncio as redis


def connect(url: str) -> "redis.Redis":
    """A client for `url`; `rediss://` accepts Heroku Redis's self-signed certificate."""
    if url.startswith("rediss://"):
        return redis.Redis.from_url(url, decode_responses=True, ssl_cert_reqs="none")
    return redis.Redis.from_url(url, decode_responses=True)
