"""A request FastAPI refused before any route ran: pydantic's errors, told as sentences.

The answer keeps the shape of every other refusal, `{"detail": "..."}` with a 422, one
sentence a problem, so an operator with curl reads what to change rather than a dump.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

_PLACES = {
    "body": "Field",
    "query": "Query parameter",
    "header": "Header",
    "path": "Path parameter",
}
_WHOLE = {"model_attributes_type", "model_type", "dict_type"}  # the body is no object


async def invalid_request(request: Request, error: Exception) -> JSONResponse:
    """Registered for `RequestValidationError` in `app.main`."""
    problems = error.errors() if isinstance(error, RequestValidationError) else []
    detail = " ".join(dict.fromkeys(sentence(problem) for problem in problems))
    return JSONResponse({"detail": detail or "The request is not valid."}, status_code=422)


def sentence(problem: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence: where, then what is wrong with it."""
    kind: str = problem.get("type", "")
    source, *path = _location(problem.get("loc", ()))
    message = str(problem.get("msg", "is not valid")).removeprefix("Value error, ")
    if kind == "json_invalid":
        why = str(problem.get("ctx", {}).get("error", "it cannot be parsed"))
        at = f" (at character {path[0]})" if path and isinstance(path[0], int) else ""
        return f"The body is not JSON: {why[:1].lower()}{why[1:]}{at}."
    if source == "body" and not path:  # the body as a whole
        if kind == "missing":
            return "The body is missing: send a JSON object."
        if kind in _WHOLE:
            return "The body should be a JSON object."
        return _capitalized(message)
    subject = f'{_PLACES.get(source, source.capitalize())} "{".".join(map(str, path))}"'
    if kind == "missing":
        return f"{subject} is required."
    for said in ("Input ", "String ", "Value "):  # "Input should be ..." -> "... should be ..."
        if message.startswith(said):
            return f"{subject} {message.removeprefix(said)}."
    return f"{subject}: {message}."


def _location(loc: Sequence[Any]) -> list[Any]:
    return list(loc) if loc else ["body"]


def _capitalized(message: str) -> str:
    text = message[:1].upper() + message[1:]
    return text if text.endswith(".") else f"{text}."
