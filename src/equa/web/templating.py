"""The Jinja2 environment of the pages, with cache-busted static URLs and the security headers every page carries."""

from __future__ import annotations

import hashlib
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

# Everything a page uses comes from this origin; the only outside address is the admin-consent link a person follows.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


# Only these kinds of file are served; notes such as vendor/README.md stay in the tree, not on the web.
SERVED_SUFFIXES = (".css", ".js", ".svg")


@cache
def static_versions() -> dict[str, str]:
    """Path under static/ -> short content hash, so a changed file gets a new URL and browsers may cache the old one."""
    return {
        path.relative_to(STATIC_DIR).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in sorted(STATIC_DIR.rglob("*"))
        if path.is_file() and path.suffix in SERVED_SUFFIXES
    }


def static_url(name: str) -> str:
    version = static_versions().get(name)
    if version is None:
        raise KeyError(f"no static file named {name}")
    return f"/static/{name}?v={version}"


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals["static_url"] = static_url
# A fresh Idempotency-Key for each rendered create form: a repeat of that one submission cannot create twice.
templates.env.globals["new_key"] = lambda: str(uuid.uuid4())


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(PAGE_HEADERS)
    return response
