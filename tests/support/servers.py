"""Servers for tests: an aiohttp app on 127.0.0.1, run from a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from aiohttp import web


class Server:
    """An aiohttp app served on 127.0.0.1 from a background thread (for one test)."""

    def __init__(self, handler: Callable):
        self.handler = handler

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        return await self.handler(request)

    def __enter__(self) -> "Server":
        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.dispatch)
        app.router.add_route("HEAD", "/{tail:.*}", self.dispatch)
        self.runner = web.AppRunner(app, handler_cancellation=True)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.origin = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.origin}"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
