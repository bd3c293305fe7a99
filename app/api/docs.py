"""`GET /docs`: Swagger UI, with its script, style and icon served by Cascade itself.

FastAPI's own page loads them from a CDN, so it was blank on a machine with no network.
They come from the `fastapi-swagger` package (Swagger UI 5, which reads OpenAPI 3.1),
mounted at `ASSETS` by `app.main`; only its files are used, not its patching of the app.
"""

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
router = APIRouter()


def swagger_assets() -> StaticFiles:
    """The package's folder of Swagger UI files, to mount at `ASSETS`."""
    return StaticFiles(packages=[("fastapi_swagger", "resources")])


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy's path prefix
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
    )
