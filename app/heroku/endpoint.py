"""Cascade's webhook endpoint as Heroku sees it, and what makes a subscription ours.

Where Heroku should post (`endpoint`), whether a listed subscription points there
(`same_endpoint`), what ours includes and at which level, and the tag Redis keeps to notice
that the secret changed (Heroku never shows a secret). `app.heroku.subscriptions` keeps
the subscriptions by these; `cascade check` says where they point.
"""

import hashlib
import hmac
from urllib.parse import urlsplit

ENDPOINT = "/webhooks/heroku"
INCLUDE = ("api:release",)
LEVEL = "sync"


def endpoint(public_url: str) -> str:
    """Where Heroku should post: the public URL's `/webhooks/heroku`."""
    return public_url.rstrip("/") + ENDPOINT


def same_endpoint(url: str, ours: str) -> bool:
    """Same scheme, host, port and path (case of the host and a trailing slash aside)."""
    try:
        a, b = urlsplit(url), urlsplit(ours)
        ports = (a.port, b.port)
    except ValueError:
        return False
    return (
        (a.scheme.lower(), (a.hostname or "").lower(), ports[0], a.path.rstrip("/"))
        == (b.scheme.lower(), (b.hostname or "").lower(), ports[1], b.path.rstrip("/"))
    )  # fmt: skip


def secret_tag(secret: str) -> str:
    """What Redis keeps to notice a changed secret (Heroku never shows one): not the secret."""
    return hmac.new(secret.encode(), b"cascade app webhook", hashlib.sha256).hexdigest()[:16]
