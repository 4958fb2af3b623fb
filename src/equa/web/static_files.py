"""Serves the pages' own CSS and JavaScript (and vendored htmx) from a fixed list of files: a URL only selects a
name from that list, it never walks the directory."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from equa.web.templating import STATIC_DIR, static_versions

router = APIRouter(include_in_schema=False)

MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@router.get("/favicon.ico")
async def favicon() -> Response:
    """Browsers ask for /favicon.ico on their own; it is the pages' icon (SVG, which they all read)."""
    return await static_file("favicon.svg")


@router.get("/static/{name:path}")
async def static_file(name: str, v: str | None = None) -> Response:
    if name not in static_versions():
        return Response("Not found", status_code=404, media_type="text/plain")
    path = STATIC_DIR / name
    # A versioned URL never changes content, so it may be cached for long; an unversioned one is revalidated.
    cache_control = "public, max-age=31536000, immutable" if v == static_versions()[name] else "no-cache"
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        headers={"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"},
    )
