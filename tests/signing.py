"""Webhook signatures as their senders make them, for tests and benchmarks alike.

Written apart from `app.webhooks.auth` on purpose: a test that signed with the code it tests
could not fail.
"""

import base64
import hashlib
import hmac


def heroku(body: bytes, secret: str) -> str:
    """`Heroku-Webhook-Hmac-SHA256`: the base64 HMAC-SHA256 of the body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def github(body: bytes, secret: str) -> str:
    """`X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
