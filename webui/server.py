"""Serve the web timeline beside the bot in the same process (`run` or `discord`)."""

from __future__ import annotations

import logging

from aiohttp import web

from timeline.app.config import Settings
from timeline.storage.engine import Database
from webui.app import make_app

log = logging.getLogger(__name__)


class WebServer:
    """`async with WebServer(settings, db):` serves the pages while the bot runs.

    A no-op unless `[web] enabled`. The secret comes from the environment variable the
    config names (a ConfigError when it is missing, which the CLI turns into exit 78).
    """

    def __init__(self, settings: Settings, db: Database, *, secret: bytes | None = None) -> None:
        self.settings = settings
        self.db = db
        self.secret = secret
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> WebServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on `[web] host` and `port` (no-op when the web timeline is off)."""
        web_settings = self.settings.web
        if not web_settings.enabled or self._runner is not None:
            return
        secret = self.secret or web_settings.secret(self.settings.path)
        app = make_app(
            self.db, web_settings, secret, default_timezone=self.settings.discord.timezone
        )
        # No access log: a first visit's address carries the token.
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, web_settings.host, web_settings.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or ()
        self.port = sockets[0].getsockname()[1] if sockets else web_settings.port
        log.info(
            "web timeline on http://%s:%s (links point at %s)",
            web_settings.host,
            self.port,
            web_settings.public_url,
        )

    async def stop(self) -> None:
        """Stop listening."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
