"""How a Platform API call fails, in types that carry "at most once".

`PromotionRefused` means nothing happened; `OutcomeUnknown` means the POST may have reached
Heroku and must never be sent again; a plain `HerokuError` provably took no effect.
"""


class HerokuError(Exception):
    """A Platform API call failed; carries what Heroku support needs to trace it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.request_id = request_id


class PromotionRefused(HerokuError):
    """Heroku clearly refused the promotion (4xx other than 429): nothing happened."""


class OutcomeUnknown(HerokuError):
    """The promotion POST may have reached Heroku: never POST it again."""


class NotFound(HerokuError):
    """Heroku has nothing at that id (404): a cached pipeline or app id may be stale."""
