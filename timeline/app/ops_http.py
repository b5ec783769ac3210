"""The optional operations endpoint of a process: `GET /healthz` and `GET /metrics`.

Each long-running process (`run`, `poller`, `discord`) serves it when `[metrics] port` is set.
`/healthz` answers 200 with a JSON body when every check passes (the database answers, plus
the role's own checks such as "the gateway is connected"), 503 naming the failing check
otherwise. `/metrics` is the Prometheus text format of `timeline.app.metrics`, with the outbox depth
read from the database at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from timeline.app import metrics
from timeline.app.config import MetricsSettings
from timeline.storage.engine import Database

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool] | bool]
CHECK_TIMEOUT = 5.0


class OpsServer:
    """Serve /healthz and /metrics for one process; `async with OpsServer(...) as ops:`."""

    def __init__(
        self,
        settings: MetricsSettings,
        db: Database,
        *,
        role: str,
        checks: Mapping[str, Check] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.role = role
        self.checks: dict[str, Check] = {"database": self._database_ok, **(checks or {})}
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def enabled(self) -> bool:
        """Whether a port is configured."""
        return self.settings.port is not None

    @property
    def url(self) -> str | None:
        """The base URL served, once started."""
        if self.port is None:
            return None
        return f"http://{self.settings.host}:{self.port}"

    async def __aenter__(self) -> OpsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on the configured host and port (no-op when no port is set)."""
        if not self.enabled or self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or ()
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port
        log.info("%s: health and metrics on %s/healthz and /metrics", self.role, self.url)

    async def stop(self) -> None:
        """Stop listening."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _database_ok(self) -> bool:
        return await metrics.database_ok(self.db)

    async def _run_check(self, check: Check) -> bool:
        result = check()
        if isinstance(result, bool):
            return result
        return bool(await asyncio.wait_for(result, CHECK_TIMEOUT))

    async def healthz(self, request: web.Request) -> web.Response:
        """Answer 200 when every check passes, 503 otherwise, with a JSON body per check."""
        results: dict[str, Any] = {}
        for name, check in self.checks.items():
            try:
                results[name] = "ok" if await self._run_check(check) else "failing"
            except Exception as exc:
                results[name] = f"failing: {type(exc).__name__}"
        healthy = all(v == "ok" for v in results.values())
        body = {"status": "ok" if healthy else "failing", "role": self.role, "checks": results}
        return web.json_response(body, status=200 if healthy else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        """Answer the Prometheus text format."""
        try:
            await asyncio.wait_for(metrics.refresh_outbox_depth(self.db), CHECK_TIMEOUT)
        except Exception as exc:
            # The counters are still worth serving when the database is slow or down.
            log.warning("outbox depth not refreshed for /metrics: %s", exc)
        body, content_type = metrics.render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response
