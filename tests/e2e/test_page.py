"""``GET /`` and ``/static/``: the ops-room page's files over HTTP, on the real app.

The shell is public (it carries no data), typed and cached correctly, and refers only to
the server's own files (closed networks: no CDN, no external fonts or scripts).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from web.page import CSP, STATIC_DIR


async def fetch(api: Any, path: str, **headers: str) -> tuple[int, Any, bytes]:
    async with api.client.get(path, headers=headers) as response:
        return response.status, response.headers, await response.read()


async def test_the_page_is_served_without_a_key_in_vietnamese(api: Any) -> None:
    status, headers, body = await fetch(api, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    html = body.decode()
    assert '<html lang="vi">' in html
    assert "Trung tâm Giám sát, điều hành" in html
    # every overview tile names its number's path in the overview answer
    metrics = set(re.findall(r'data-metric="([^"]+)"', html))
    assert metrics >= {
        "devices.camera.online",
        "devices.camera.offline",
        "devices.camera.degraded",
        "devices.radio.online",
        "devices.radio.offline",
        "broadcasts.active",
        "broadcasts.emergency_active",
        "services.received_today",
        "services.completed_today",
        "services.on_time_rate",
        "services.overdue",
        "kpis.on_track",
        "kpis.off_track",
        "alarms.active",
    }


async def test_an_unchanged_page_answers_304(api: Any) -> None:
    _, headers, _ = await fetch(api, "/")
    status, again, body = await fetch(api, "/", **{"If-None-Match": headers["ETag"]})
    assert status == 304
    assert body == b""
    assert again["ETag"] == headers["ETag"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("i18n.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ],
)
async def test_assets_are_versioned_and_immutable(api: Any, name: str, content_type: str) -> None:
    _, _, body = await fetch(api, "/")
    match = re.search(rf"/static/{re.escape(name)}\?v=([0-9a-f]{{12}})", body.decode())
    assert match, f"the page does not refer to {name} with a version"
    status, headers, content = await fetch(api, match.group(0))
    assert status == 200
    assert headers["Content-Type"] == content_type
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert content == (STATIC_DIR / name).read_bytes()
    # without (or with another) version: revalidated, never cached for a year
    status, headers, _ = await fetch(api, f"/static/{name}?v=000000000000")
    assert status == 200
    assert headers["Cache-Control"] == "no-cache"


async def test_unknown_static_files_are_404(api: Any) -> None:
    status, _, _ = await fetch(api, "/static/nope.js")
    assert status == 404
    status, _, _ = await fetch(api, "/static/..%2Fpage.py")
    assert status == 404


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """No CDN, no external font or script: no absolute URL in any file (the SVG namespace
    is a name, not a download)."""
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8").replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), path.name
        assert "@import" not in text, path.name
        assert "@font-face" not in text, path.name
