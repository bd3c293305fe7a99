"""Apps whose webhook subscription may be broken, between the reconcile that finds them and the
subscriptions' check (`app.heroku.subscriptions`) that looks at them."""

import asyncio
import time


class Suspects:
    """Apps whose subscription may be broken: a resync found a release of theirs that no webhook
    had brought. Told by the reconcile, taken by the subscriptions' check; made before both,
    so neither is patched onto the other.

    Telling never blocks; an app told again within `every` seconds (the resync interval) is
    not queued again, so a broken fleet cannot turn into a storm of calls.
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self.wanted = asyncio.Event()  # an app to check, or (`Subscriptions.request`) every app
        self._apps: set[str] = set()  # apps to check on their own, next time round
        self._told: dict[str, float] = {}  # app -> when it was last queued (monotonic)

    def suspect(self, app: str) -> None:
        """Check `app` soon."""
        now, last = time.monotonic(), self._told.get(app)
        if last is not None and now - last < self.every:
            return
        self._told[app] = now
        self._apps.add(app)
        self.wanted.set()

    def take(self) -> set[str]:
        """The apps queued since the last take; those told longer than `every` ago may be
        queued again."""
        apps, self._apps = self._apps, set()
        now = time.monotonic()
        self._told = {a: t for a, t in self._told.items() if now - t < self.every}
        return apps

    def again(self, apps: set[str]) -> None:
        """Apps whose check failed: taken again with the next one."""
        self._apps |= apps
