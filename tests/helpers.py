"""Test helpers shared across the suite: a real feed server and tiny feed builders."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NoReturn

import pytest
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FeedServer:
    """An aiohttp server whose routes tests set: static bodies with ETags, or handlers."""

    bodies: dict[str, bytes] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        if path in self.handlers:
            return await self.handlers[path](request)
        if path not in self.bodies:
            raise web.HTTPNotFound()
        body = self.bodies[path]
        etag = '"' + hashlib.sha256(body).hexdigest()[:12] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, headers={"ETag": etag, "Content-Type": "application/xml"})


def rss(*items: tuple[str, str, str], title: str = "Test feed") -> bytes:
    """Build an RSS 2.0 document from (guid, title, summary) triples."""
    parts = [
        f"<item><guid isPermaLink='false'>{guid}</guid><title>{t}</title>"
        f"<link>https://news.example/{guid}</link>"
        f"<description>{s}</description>"
        "<pubDate>Tue, 08 Jul 2025 09:00:00 GMT</pubDate></item>"
        for guid, t, s in items
    ]
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{title}</title><link>https://news.example/</link><description>d</description>"
        + "".join(parts)
        + "</channel></rss>"
    ).encode()


def gzip_bomb(size: int) -> bytes:
    return gzip.compress(b"\0" * size)


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, within: float, what: str, every: float = 0.05
) -> None:
    """Re-check `condition` until it holds; fail naming `what` after `within` seconds.

    A bounded wait for state another process writes to the database, where no event can be
    awaited; never a stand-in for a fixed sleep.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(every)


def postgres_unreachable(exc: BaseException) -> NoReturn:
    """Skip a PostgreSQL test on a machine without the server; in CI (`CI` set) fail it:
    there the server is part of the set-up, and a skip would hide that it was not tested."""
    reason = f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(reason)
    pytest.skip(reason)
