"""The ops-room page: ``GET /`` and its static files under ``/static/`` (docs/CONTRACT.md §8).

The page shell carries no data and is served without a key (the auth middleware lets
``/`` and ``/static/`` through); the page asks for a token itself and sends it with every
data call and on ``/ws``. There is no build step: the files in ``web/static/`` are read
once when the routes are registered and kept in memory (a few tens of KiB).

Caching: ``/`` answers ``Cache-Control: no-cache`` with an ETag (a screen picks up a new
version on its next load). The page refers to each asset as ``/static/<name>?v=<hash>``
(the first 12 hex digits of its SHA-256); an asset requested with its current hash is
immutable for a year, any other request of it must be revalidated. Every answer carries
``X-Content-Type-Options: nosniff`` and a Content-Security-Policy allowing only the
server's own scripts, styles and connections (no CDN, no external fonts: the page works
on closed networks).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

#: The folder of the page's files.
STATIC_DIR: Final = Path(__file__).parent / "static"

#: Content types by file suffix; files of other suffixes are not served.
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

IMMUTABLE: Final = "public, max-age=31536000, immutable"
REVALIDATE: Final = "no-cache"

#: The page may load only its own files and talk only to its own server.
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_ASSET_REF: Final = re.compile(r"/static/([A-Za-z0-9_.-]+)\?v=ASSET")


@dataclass(frozen=True, slots=True)
class Asset:
    """A file's bytes, content type and version (a hash of its content)."""

    body: bytes
    content_type: str
    version: str

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


@dataclass(frozen=True, slots=True)
class PageFiles:
    """The page (with its asset references versioned) and its assets by name."""

    index: Asset
    assets: dict[str, Asset]


#: The page's files of this app (read when the routes are registered).
PAGE_FILES: Final = web.AppKey("page_files", PageFiles)


def _asset(body: bytes, suffix: str) -> Asset:
    version = hashlib.sha256(body).hexdigest()[:12]
    return Asset(body, CONTENT_TYPES[suffix], version)


def load_page(folder: Path = STATIC_DIR) -> PageFiles:
    """Read the page's files; ``/static/<name>?v=ASSET`` in index.html becomes the
    asset's current version. A reference to a missing file is an error (ValueError)."""
    assets = {
        path.name: _asset(path.read_bytes(), path.suffix)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix in CONTENT_TYPES and path.name != "index.html"
    }
    html = (folder / "index.html").read_text(encoding="utf-8")

    def versioned(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in assets:
            raise ValueError(f"index.html refers to {name!r}, which is not in {folder}")
        return f"/static/{name}?v={assets[name].version}"

    index = _asset(_ASSET_REF.sub(versioned, html).encode(), ".html")
    return PageFiles(index, assets)


def _send(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    headers = {
        "Cache-Control": cache_control,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CSP,
        "Referrer-Policy": "no-referrer",
    }
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    response = web.Response(body=asset.body, headers=headers)
    response.content_type = asset.content_type.split(";")[0]
    if "charset" in asset.content_type:
        response.charset = "utf-8"
    return response


async def get_page(request: web.Request) -> web.Response:
    """The ops-room page (no key needed: it holds no data)."""
    return _send(request, request.app[PAGE_FILES].index, REVALIDATE)


async def get_static(request: web.Request) -> web.Response:
    """One of the page's files; immutable when asked for with its current version."""
    asset = request.app[PAGE_FILES].assets.get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound(text="no such file")
    current = request.query.get("v") == asset.version
    return _send(request, asset, IMMUTABLE if current else REVALIDATE)


def add_page_routes(app: web.Application) -> None:
    """Register ``GET /`` and ``GET /static/{name}`` (files read now, once)."""
    app[PAGE_FILES] = load_page()
    app.router.add_get("/", get_page)
    app.router.add_get("/static/{name}", get_static)
