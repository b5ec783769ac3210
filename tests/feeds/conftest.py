"""A real HTTP origin on 127.0.0.1 for the fetcher tests, and a Fetcher allowed to reach it."""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from feeds.fetch import Fetcher, FetchSettings

FIXTURES = Path(__file__).parent / "fixtures"
BODY_CAP = 64 * 1024


def fixture_bytes(name: str) -> bytes:
    """Return the bytes of a fixture file."""
    return (FIXTURES / name).read_bytes()


class Origin:
    """Routes that misbehave in every way a feed server can; records what it was asked."""

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[web.Request] = []
        self.never = asyncio.Event()  # set at teardown only, releases /slow handlers
        self.release = asyncio.Event()
        self.first_arrived = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0

    def url(self, path: str) -> str:
        """Return the absolute URL of `path` on this origin."""
        return f"http://127.0.0.1:{self.port}{path}"

    def app(self) -> web.Application:
        """Build the aiohttp application."""
        app = web.Application()
        app.middlewares.append(self._record)
        r = app.router
        r.add_get("/f/{name}", self.fixture)
        r.add_get("/status/{code}", self.status)
        r.add_get("/slow", self.slow)
        r.add_get("/big", self.big)
        r.add_get("/big-declared", self.big_declared)
        r.add_get("/gzip/{name}", self.gzipped)
        r.add_get("/deflate/{name}", self.deflated)
        r.add_get("/gzip-bomb", self.gzip_bomb)
        r.add_get("/zlib/{name}", self.zlib_wrapped)
        r.add_get("/corrupt-gzip", self.corrupt_gzip)
        r.add_get("/loop/{step}", self.loop)
        r.add_get("/chain/{n}", self.chain)
        r.add_get("/redirect", self.redirect)
        r.add_get("/etag", self.etag)
        r.add_get("/held", self.held)
        r.add_get("/ping", self.ping)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(request)
        return await handler(request)

    async def fixture(self, request: web.Request) -> web.Response:
        ctype = request.query.get("ct", "application/rss+xml")
        return web.Response(body=fixture_bytes(request.match_info["name"]), content_type=None,
                            headers={"Content-Type": ctype})  # fmt: skip

    async def status(self, request: web.Request) -> web.Response:
        headers = {}
        if "retry_after" in request.query:
            headers["Retry-After"] = request.query["retry_after"]
        return web.Response(status=int(request.match_info["code"]), text="nope", headers=headers)

    async def slow(self, request: web.Request) -> web.Response:
        await self.never.wait()
        return web.Response(text="too late")

    async def big(self, request: web.Request) -> web.StreamResponse:
        # Streamed without Content-Length: the cap must apply while reading.
        resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        await resp.prepare(request)
        chunk = b"<!-- padding -->" * 1024
        for _ in range(BODY_CAP // len(chunk) + 2):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def big_declared(self, request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (BODY_CAP + 1), content_type="application/rss+xml")

    async def gzipped(self, request: web.Request) -> web.Response:
        body = gzip.compress(fixture_bytes(request.match_info["name"]))
        return web.Response(body=body, headers={"Content-Type": "application/rss+xml",
                                                "Content-Encoding": "gzip"})  # fmt: skip

    async def deflated(self, request: web.Request) -> web.Response:
        # Raw deflate without the zlib header, as many servers send it.
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        raw = fixture_bytes(request.match_info["name"])
        body = compressor.compress(raw) + compressor.flush()
        return web.Response(body=body, headers={"Content-Type": "application/rss+xml",
                                                "Content-Encoding": "deflate"})  # fmt: skip

    async def zlib_wrapped(self, request: web.Request) -> web.Response:
        # "deflate" as RFC 9110 defines it: a zlib stream.
        body = zlib.compress(fixture_bytes(request.match_info["name"]))
        return web.Response(body=body, headers={"Content-Type": "application/rss+xml",
                                                "Content-Encoding": "deflate"})  # fmt: skip

    async def corrupt_gzip(self, request: web.Request) -> web.Response:
        body = gzip.compress(fixture_bytes("rss20.xml"))
        body = body[:20] + b"garbage" * 10 + body[90:]
        return web.Response(body=body, headers={"Content-Type": "application/rss+xml",
                                                "Content-Encoding": "gzip"})  # fmt: skip

    async def gzip_bomb(self, request: web.Request) -> web.Response:
        # 8 MiB of zeros compress to ~8 KiB: far under the cap on the wire, far over it decoded.
        body = gzip.compress(b"\0" * (8 * 1024 * 1024), compresslevel=9)
        assert len(body) < BODY_CAP
        return web.Response(body=body, headers={"Content-Type": "application/rss+xml",
                                                "Content-Encoding": "gzip"})  # fmt: skip

    async def loop(self, request: web.Request) -> web.Response:
        nxt = "b" if request.match_info["step"] == "a" else "a"
        raise web.HTTPFound(f"/loop/{nxt}")

    async def chain(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/chain/{int(request.match_info['n']) + 1}")

    async def redirect(self, request: web.Request) -> web.Response:
        status = int(request.query.get("status", "302"))
        return web.Response(status=status, headers={"Location": request.query["to"]})

    async def etag(self, request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(body=fixture_bytes("rss20.xml"), headers={
            "Content-Type": "application/rss+xml", "ETag": '"v1"',
            "Last-Modified": "Tue, 09 Jul 2024 15:00:00 GMT"})  # fmt: skip

    async def held(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.first_arrived.set()
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return web.Response(body=fixture_bytes("rss_empty.xml"), content_type="application/xml")

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong")


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    """Start the misbehaving origin on 127.0.0.1 and stop it (releasing stuck handlers)."""
    server = Origin()
    runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        server.never.set()
        server.release.set()
        await runner.cleanup()


def fetch_settings(**overrides: object) -> FetchSettings:
    """Return test FetchSettings: small cap, short timeout, 127.0.0.1 allowed."""
    values: dict[str, object] = {
        "timeout_seconds": 5.0,
        "max_body_bytes": BODY_CAP,
        "user_agent": "TimelineBot-tests/1.0",
        "per_host_concurrency": 4,
        "allow_private": ("127.0.0.1",),
    }
    values.update(overrides)
    return FetchSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    """A Fetcher allowed to reach 127.0.0.1 only."""
    async with Fetcher(fetch_settings()) as f:
        yield f


@pytest.fixture
def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_failure_logged(caplog: pytest.LogCaptureFixture, url: str, kind: str) -> None:
    """Assert exactly one warning line was logged for this failed fetch, naming url and kind."""
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "feeds.fetch" and r.levelno == logging.WARNING
    ]
    matching = [line for line in lines if url in line and f"kind={kind}" in line]
    assert len(matching) == 1, lines
