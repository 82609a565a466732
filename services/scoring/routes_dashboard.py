"""The dashboard: one static page on the read API's port that shows a tenant's score, its
requirements, the response time and open alerts, using the read API with the visitor's own key."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse

router = APIRouter(tags=["dashboard"], include_in_schema=False)
_PAGE = Path(__file__).with_name("static") / "dashboard.html"


@router.get("/")
async def root(request: Request) -> RedirectResponse:
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/dashboard{query}")


@router.get("/dashboard")
async def dashboard() -> FileResponse:
    return FileResponse(_PAGE, media_type="text/html")
