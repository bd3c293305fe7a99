"""`GET /docs`: Swagger UI, with its files served by Cascade itself (`app.swagger`), mounted
at `ASSETS` by `app.main`."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.swagger import swagger_page

ASSETS = "/docs/assets"
router = APIRouter()


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return swagger_page(request, ASSETS)
