"""Bearer tokens, as the admin API and the webhooks of senders that cannot sign take them."""

import hmac


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for any other header."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def matches(given: str, secret: str) -> bool:
    """In constant time: how much of a guess was right never shows in how long it took."""
    return hmac.compare_digest(given.encode(), secret.encode())
