"""Fixtures shared by the whole suite: a feed server on 127.0.0.1 and a migrated SQLite file.

Also a leak check: every aiosqlite connection records the test that opened it and where; a
test fails at teardown when a connection it opened is garbage-collected without being closed
(aiosqlite would otherwise only warn, later, in whichever test the collector happens to run).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import sysconfig
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import aiosqlite
import greenlet
import pytest
from aiohttp import web

from tests.helpers import FeedServer
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async

_THIS_FILE = str(Path(__file__).resolve())
# Frames from these are left out of a connection's recorded origin: only the project's own
# code (and a test's) says who opened it.
_LIBRARY_DIRS = (
    "<",
    *{sysconfig.get_path(name) for name in ("stdlib", "purelib", "platlib", "scripts")},
)


@dataclass(frozen=True)
class _Origin:
    """Where an aiosqlite connection was opened: the test running then and the repo's frames."""

    nodeid: str
    stack: tuple[str, ...]

    def describe(self) -> str:
        return f"opened during {self.nodeid} at:\n" + "\n".join(self.stack)


@dataclass(frozen=True)
class _Leak:
    origin: _Origin
    found_during: str


class _LeakRegistry:
    """Connections opened per test (weakly held) and those collected while still open."""

    def __init__(self) -> None:
        self.current = "<no test>"
        self.opened: weakref.WeakSet[aiosqlite.Connection] = weakref.WeakSet()
        self.leaks: list[_Leak] = []

    def origin_here(self) -> _Origin:
        # Innermost first. SQLAlchemy opens the connection inside a greenlet whose stack
        # starts at greenlet_spawn; the code that asked for it is on the parent greenlets'.
        # Walked by hand: traceback.extract_stack reads source lines, ~4 ms a connection.
        frames: list[str] = []
        frame: FrameType | None = sys._getframe(1)
        parent = greenlet.getcurrent().parent
        while frame is not None or parent is not None:
            if frame is None:
                assert parent is not None
                frame, parent = parent.gr_frame, parent.parent
                continue
            name = frame.f_code.co_filename
            if not name.startswith(_LIBRARY_DIRS) and name != _THIS_FILE:
                frames.append(f"  {name}:{frame.f_lineno} in {frame.f_code.co_name}")
            frame = frame.f_back
        return _Origin(self.current, tuple(reversed(frames[:12])))


_registry = _LeakRegistry()
_original_init = aiosqlite.Connection.__init__
_original_del: Callable[[aiosqlite.Connection], None] = aiosqlite.Connection.__del__


def _recording_init(self: aiosqlite.Connection, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self._leak_origin = _registry.origin_here()  # type: ignore[attr-defined]
    _registry.opened.add(self)


def _recording_del(self: aiosqlite.Connection) -> None:
    if self._connection is None or not hasattr(self, "_leak_origin"):
        _original_del(self)
        return
    _registry.leaks.append(_Leak(self._leak_origin, _registry.current))
    # What aiosqlite's __del__ does after its warning; the warning itself would only name the
    # test the collector happened to run in, the fixture below names the one that leaked.
    self.stop()


aiosqlite.Connection.__init__ = _recording_init  # type: ignore[method-assign]
aiosqlite.Connection.__del__ = _recording_del  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    # Set before any fixture, so connections opened by module/session fixtures are named too.
    _registry.current = item.nodeid
    yield
    _registry.current = "<between tests>"


def _report(leaks: list[_Leak]) -> str:
    return "\n\n".join(
        f"aiosqlite connection never closed (garbage-collected while open during "
        f"{leak.found_during}); {leak.origin.describe()}"
        for leak in leaks
    )


@pytest.fixture(autouse=True)
def _aiosqlite_connections_closed(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test that opens an aiosqlite connection and lets it be collected unclosed."""
    yield
    mine = [c for c in _registry.opened if c._leak_origin.nodeid == request.node.nodeid]  # type: ignore[attr-defined]
    # Only a connection still open can leak; collect (costly) only when this test left one.
    if any(c._connection is not None for c in mine):
        del mine
        gc.collect()
    else:
        del mine
    if _registry.leaks:
        leaks, _registry.leaks = _registry.leaks, []
        pytest.fail(_report(leaks), pytrace=False)


_left_open: list[str] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run for connections still open at its end, or leaks no teardown saw."""
    gc.collect()
    if _registry.leaks:
        _left_open.append(_report(_registry.leaks))
    _left_open.extend(
        f"aiosqlite connection still open at the end of the run; {c._leak_origin.describe()}"  # type: ignore[attr-defined]
        for c in _registry.opened
        if c._connection is not None
    )
    if _left_open:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _left_open:
        terminalreporter.write_sep("=", "aiosqlite connections left open", red=True)
        terminalreporter.write_line("\n\n".join(_left_open))


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.dispatch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert isinstance(site._server, asyncio.Server)
    server.port = site._server.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path / 'timeline.db'}"
    await upgrade_async(url)
    database = Database(url)
    try:
        yield database
    finally:
        await database.dispose()
