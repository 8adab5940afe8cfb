"""The web dashboard, served by the API at ``/`` from its built folder (no CDN: every asset is ours).

The dashboard is a single-page app: any GET that no API route answers and that names no file of
the build gets ``index.html``, and the app's router shows the page. Hashed assets are cached for
a year; ``index.html`` never is, so a new build reaches browsers at once. A strict Content
Security Policy allows scripts, styles, images and connections to this origin only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response

from cardiogate.core.logs import get_logger

log = get_logger(__name__)

# In a source checkout (the demo, the tests) this module lies in <repo>/cloud/api; an installed wheel has no
# dashboard beside it, and api.dashboard_dir names the build.
REPO_DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cardiogate</title></head>
<body><main><h1>cardiogate API</h1><p>The web dashboard is not built. Build it with
<code>cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build</code> (<code>cardiogate demo</code> does this itself),
or set <code>api.dashboard_dir</code>. The API answers at <code>/graphql</code>.</p></main></body></html>"""
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def dashboard_dir(configured: Path | None) -> Path | None:
    """The build to serve: the configured folder, else the repository's ``dashboard/dist``; None if not built."""
    folder = configured if configured is not None else REPO_DASHBOARD / "dist"
    return folder if (folder / "index.html").is_file() else None


def mount_dashboard(app: FastAPI, configured: Path | None) -> None:
    """Add the dashboard's routes last, after every API route (they must not shadow one)."""
    root = dashboard_dir(configured)
    if root is None:
        log.info("web dashboard not built; / explains how", looked_in=str(configured or REPO_DASHBOARD / "dist"))
    else:
        log.info("serving the web dashboard", folder=str(root))
        root = root.resolve()

    @app.get("/{path:path}", include_in_schema=False)
    async def dashboard(path: str) -> Response:
        if root is None:
            return HTMLResponse(NOT_BUILT, headers=_HEADERS)
        if path.split("/", 1)[0] in ("graphql", "auth", "ws", "fhir", "api"):
            raise HTTPException(404)  # an API path this method does not serve, never the app's page
        wanted = (root / path).resolve()
        if path and wanted.is_relative_to(root) and wanted.is_file():
            cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
            return FileResponse(wanted, headers={**_HEADERS, "Cache-Control": cache})
        return FileResponse(root / "index.html", headers={**_HEADERS, "Cache-Control": "no-cache"})
