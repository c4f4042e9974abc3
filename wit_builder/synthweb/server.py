"""The synthetic website served over HTTP by aiohttp: `wit synthweb serve`, and `SiteServer`, the
same server in a background thread for tests and for the crawl stage.

Pages are stored with a placeholder origin (see site.py); each HTML or text response gets the origin
the request was made to (`http://` + its Host header), so absolute links work on any port.
`site_response` is the whole answer logic, free of aiohttp, so the WARC writer records exactly what
the server sends. Every request is logged (method, path, user agent) in `SiteServer.requests`, which
tests read to prove, e.g., that a crawler fetched robots.txt and never /private/.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from aiohttp import web

from wit_builder.core.options import WitError
from wit_builder.synthweb.site import PLACEHOLDER_ORIGIN, RESPONSES

log = logging.getLogger(__name__)

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8",
                 ".jpg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
                 ".json": "application/json"}
TEXT_SUFFIXES = {".html", ".txt"}
NOT_FOUND = b"<!DOCTYPE html>\n<html lang=\"en\"><head><title>Not found</title></head>" \
            b"<body><p>Not found</p></body></html>\n"


@dataclass(frozen=True)
class SiteResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # with its query string
    user_agent: str


@dataclass
class StaticSite:
    """The files of a generated site and the special answers of some paths (redirects, extra
    headers), from its `.responses.json`."""

    root: Path
    special: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def open(cls, site_dir: str | Path) -> StaticSite:
        root = Path(site_dir)
        if not (root / "index.html").is_file():
            raise WitError(f"synthweb: '{root}' is not a generated site (no index.html); "
                           f"run `wit synthweb generate` first")
        responses = root / RESPONSES
        special = json.loads(responses.read_text()) if responses.exists() else {}
        return cls(root.resolve(), special)

    def file_for(self, path: str) -> Path | None:
        """The file serving URL `path`, or None (missing, hidden, or outside the site)."""
        parts = PurePosixPath(path).parts[1:]
        if any(part in ("..", ".") or part.startswith(".") for part in parts):
            return None
        candidate = self.root.joinpath(*parts)
        if path.endswith("/") or candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None


def site_response(site: StaticSite, path: str, origin: str) -> SiteResponse:
    """What the server answers to GET `path` when reached at `origin` (http://HOST:PORT)."""
    special = site.special.get(path, {"status": 200, "headers": {}})
    if special["status"] != 200:
        return SiteResponse(special["status"], {"Content-Type": CONTENT_TYPES[".html"],
                                                **special["headers"]}, b"")
    file = site.file_for(path)
    if file is not None and not path.endswith("/") and file.name == "index.html" \
            and not path.endswith("index.html"):
        return SiteResponse(301, {"Content-Type": CONTENT_TYPES[".html"], "Location": path + "/"},
                            b"")
    if file is None:
        return SiteResponse(404, {"Content-Type": CONTENT_TYPES[".html"]}, NOT_FOUND)
    body = file.read_bytes()
    if file.suffix in TEXT_SUFFIXES:
        body = body.replace(PLACEHOLDER_ORIGIN.encode(), origin.encode())
    headers = {"Content-Type": CONTENT_TYPES.get(file.suffix, "application/octet-stream")}
    headers.update(special["headers"])
    return SiteResponse(200, headers, body)


def make_app(site: StaticSite, requests: list[LoggedRequest]) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        requests.append(LoggedRequest(request.method, request.path_qs,
                                      request.headers.get("User-Agent", "")))
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        answer = site_response(site, request.path, f"{request.scheme}://{request.host}")
        headers = {key: value for key, value in answer.headers.items() if key != "Content-Type"}
        content_type, _, charset = answer.headers["Content-Type"].partition("; charset=")
        return web.Response(status=answer.status, body=answer.body, headers=headers,
                            content_type=content_type, charset=charset or None)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


class SiteServer:
    """The site served from a background thread: `with SiteServer(dir) as server: server.url`."""

    def __init__(self, site_dir: str | Path, host: str = "127.0.0.1", port: int = 0):
        self.site = StaticSite.open(site_dir)
        self.host, self.port = host, port
        self.requests: list[LoggedRequest] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The origin the site is served at, e.g. http://127.0.0.1:40123 (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start_site(self) -> int:
        self.runner = web.AppRunner(make_app(self.site, self.requests), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port).start()
        return self.runner.addresses[0][1]

    def __enter__(self) -> SiteServer:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="synthweb-server",
                                       daemon=True)
        self.thread.start()
        try:
            self.port = asyncio.run_coroutine_threadsafe(self.start_site(), self.loop).result(30)
        except OSError as error:
            self.stop()
            raise WitError(f"synthweb: cannot serve on {self.host}:{self.port}: {error.strerror}") \
                from None
        log.info("synthweb: serving %s at %s", self.site.root, self.url)
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        if self.loop is None:
            return
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
            self.runner = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
        self.loop = self.thread = None

    def paths(self, method: str = "GET") -> list[str]:
        """The paths requested so far with `method`, in order."""
        return [item.path for item in list(self.requests) if item.method == method]


def serve_forever(site_dir: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve the site until Ctrl-C, printing its URL."""
    with SiteServer(site_dir, host, port) as server:
        try:  # from the announcement on: a Ctrl-C right after it must stop cleanly too
            print(f"synthweb: serving {site_dir} at {server.url}/ (Ctrl-C stops)", flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("synthweb: stopped", flush=True)
