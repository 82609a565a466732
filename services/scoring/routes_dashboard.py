"""The dashboard: a static page on the read API's port (``static/``: HTML, one stylesheet, ES modules; no
build step, nothing from a CDN). It reads this API with the visitor's own key and writes to the write API,
whose public URL ``/dashboard/config.json`` gives it (the write API allows this origin: DASHBOARD_ORIGINS)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from shared.http import Problem

router = APIRouter(tags=["dashboard"], include_in_schema=False)
STATIC = Path(__file__).with_name("static")
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
# The page's files change with a deployment: the browser asks again each time (cheap: 304 by ETag).
_NO_STORE = {"Cache-Control": "no-cache"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(write_api_url: str) -> str:
    """Only this origin's scripts and styles, no inline script: API text put into the page can never run.
    The page may talk to this API and to the write API."""
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' {_origin(write_api_url)}; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


@router.get("/")
async def root(request: Request) -> RedirectResponse:
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/dashboard{query}")


@router.get("/dashboard")
async def dashboard(request: Request) -> FileResponse:
    settings = request.app.state.settings
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={
        **_NO_STORE, "Content-Security-Policy": content_security_policy(settings.write_api_public_url),
        "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})


@router.get("/dashboard/config.json")
async def dashboard_config(request: Request) -> JSONResponse:
    """What the page needs to know of this deployment: where the write API is."""
    return JSONResponse({"writeApiUrl": request.app.state.settings.write_api_public_url.rstrip("/")},
                        headers=_NO_STORE)


@router.get("/dashboard/assets/{path:path}")
async def dashboard_asset(path: str) -> FileResponse:
    """One of the page's files; nothing outside ``static/`` and only the kinds the page is made of."""
    file = (STATIC / path).resolve()
    media_type = _MEDIA_TYPES.get(file.suffix)
    if media_type is None or not file.is_relative_to(STATIC.resolve()) or not file.is_file():
        raise Problem(404, "Not found", f"the dashboard has no file {path!r}")
    return FileResponse(file, media_type=media_type, headers={**_NO_STORE, "X-Content-Type-Options": "nosniff"})
