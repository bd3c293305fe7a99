"""Swagger UI pages whose script, style and icon the app serves itself.

FastAPI's own page loads them from a CDN, so it was blank on a machine with no network.
They come from the `fastapi-swagger` package (Swagger UI 5, which reads OpenAPI 3.1); only
its files are used, not its patching of the app. Cascade's `/docs` and the sandbox's
`/_sandbox/docs` are made here.
"""

from fastapi import Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles


def swagger_assets() -> StaticFiles:
    """The package's folder of Swagger UI files, to mount where `swagger_page` says."""
    return StaticFiles(packages=[("fastapi_swagger", "resources")])


def swagger_page(request: Request, assets: str) -> HTMLResponse:
    """Swagger UI for the schema of `request.app`, its files mounted at `assets`."""
    root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy's path prefix
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{assets}/swagger-ui.css",
        swagger_favicon_url=f"{root}{assets}/favicon-32x32.png",
    )
