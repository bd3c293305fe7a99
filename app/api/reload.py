"""`POST /reload`: read the services file again now (the admin's hand on `app.config.reload`).

200 with what changed; 422 with the loader's message when the new file is invalid, in
which case the previous configuration keeps running.
"""

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from app.api.deps import AdminDep, ReloaderDep
from app.api.pause import REFUSALS
from app.core.refusals import errors

router = APIRouter(tags=["reload"], dependencies=[AdminDep])


class ReloadOut(BaseModel):
    detail: str
    services: list[str]
    added: list[str]
    removed: list[str]
    changed: list[str]


@router.post(
    "/reload",
    response_model=ReloadOut,
    responses=REFUSALS
    | errors({422: "the services file is invalid: the old one runs on", 503: "starting"}),
)
async def reload(reloader: ReloaderDep) -> ReloadOut:
    done = await reloader.reload("POST /reload")
    if not done.applied:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, done.message)
    return ReloadOut(
        detail=done.message,
        services=list(done.services),
        added=list(done.added),
        removed=list(done.removed),
        changed=list(done.changed),
    )
