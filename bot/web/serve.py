"""Serving the web application with uvicorn inside an asyncio loop svarbot already runs.

`svarbot web` runs it alone; `svarbot run` runs it beside the senders when `web.enabled`.
uvicorn's own signal handling is not used: the caller's stop event ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import uvicorn

from bot.web.app import create_app
from bot.web.context import WebContext

log = logging.getLogger(__name__)


class WebServer:
    """One uvicorn server for `ctx` on `host:port` (port 0: any free port, see `port`)."""

    def __init__(self, ctx: WebContext, *, host: str, port: int) -> None:
        config = uvicorn.Config(create_app(ctx), host=host, port=port, lifespan="off",
                                log_level="warning", access_log=False, proxy_headers=True,
                                forwarded_allow_ips="127.0.0.1", server_header=False)
        self._server = uvicorn.Server(config)
        self.host = host
        self.port = port

    async def run(self, stop: asyncio.Event,
                  on_ready: Callable[[WebServer], None] | None = None) -> None:
        """Serve until `stop` is set."""
        server = self._server
        config = server.config
        if not config.loaded:
            config.load()
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup()
        except SystemExit as exc:  # uvicorn exits when it cannot bind (it has logged why)
            raise OSError(f"web: cannot listen on {self.host}:{self.port}") from exc
        if server.should_exit:
            raise OSError(f"web: cannot listen on {self.host}:{self.port}")
        sockets = [s for srv in server.servers for s in srv.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("web: serving on http://%s:%s/", self.host, self.port)
        if on_ready is not None:
            on_ready(self)
        loop = asyncio.create_task(server.main_loop(), name="web")
        try:
            await stop.wait()
        finally:
            server.should_exit = True
            await loop
            await server.shutdown()
