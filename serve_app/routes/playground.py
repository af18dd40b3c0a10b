"""GET /playground: a static page for trying the API in a browser (no key needed to load it).

The page itself asks for the API key and builds its forms from /api/openapi.json, so routes and
fields added to the API appear in it without a change here. Everything it loads comes from this
server (the machines it runs on may have no internet): the assets below, nothing else; the
Content-Security-Policy makes the browser hold the page to that.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from serve_app.errors import APIError

ASSET_DIR = Path(__file__).resolve().parent.parent / "static" / "playground"

#: File name -> media type: the only files served (no path from the URL ever reaches the disk).
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}

# Same-origin only (the progress socket included: CSP 3's 'self' covers ws/wss to this host);
# blob: for the result's <audio> and the recorder's playback.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files, read fresh by the browser after an upgrade.
    "Cache-Control": "no-cache",
}

# Read once when the replica starts: a few kB each, and no file I/O on the event loop later.
BODIES = {name: (ASSET_DIR / name).read_bytes() for name in ASSETS}

router = APIRouter()


def _asset(name: str) -> Response:
    if name not in ASSETS:
        raise APIError(404, "no such playground file")
    return Response(BODIES[name], media_type=ASSETS[name], headers=HEADERS)


@router.get("/playground")
async def playground_page() -> Response:
    return _asset("index.html")


@router.get("/playground/{name}")
async def playground_asset(name: str) -> Response:
    return _asset(name)
