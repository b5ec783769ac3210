"""The suite's aiosqlite leak check (tests/conftest.py), run on a small suite of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

INNER = """
import asyncio

import pytest
from sqlalchemy import text

from timeline.storage.engine import Database

KEPT = []


async def one_query(db):
    async with db.session() as s:
        await s.execute(text("SELECT 1"))


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    with asyncio.Runner() as runner:
        db = Database(f"sqlite:///{tmp_path_factory.mktemp('kept') / 'k.db'}")
        runner.run(one_query(db))
        yield db
        runner.run(db.dispose())


def test_kept_by_a_module_fixture(kept):
    pass


def test_uses_the_module_fixture_too(kept):
    pass


def test_disposes(tmp_path):
    async def run():
        db = Database(f"sqlite:///{tmp_path / 'a.db'}")
        await one_query(db)
        await db.dispose()

    asyncio.run(run())


def test_leaks(tmp_path):
    async def run():
        db = Database(f"sqlite:///{tmp_path / 'b.db'}")
        await one_query(db)

    asyncio.run(run())


def test_keeps_one_open_forever(tmp_path):
    async def run():
        db = Database(f"sqlite:///{tmp_path / 'c.db'}")
        await one_query(db)
        KEPT.append(db)

    asyncio.run(run())
"""


def test_the_test_that_leaks_a_connection_fails_naming_where_it_was_opened(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = done.stdout
    lines = INNER.splitlines()
    leak_line = lines.index("def test_leaks(tmp_path):") + 4
    kept_line = lines.index("def test_keeps_one_open_forever(tmp_path):") + 4
    query_line = lines.index('        await s.execute(text("SELECT 1"))') + 1
    assert done.returncode == 1, out + done.stderr
    assert "5 passed, 1 error" in out, out
    assert "ERROR at teardown of test_leaks" in out, out
    inner = tmp_path / "test_inner.py"
    leak_report = out.split("ERROR at teardown of test_leaks", 1)[1]
    assert "opened during test_inner.py::test_leaks at:" in leak_report, out
    assert f"{inner}:{leak_line} in run" in leak_report
    assert f"{inner}:{query_line} in one_query" in leak_report
    # One still reachable at the end is reported then, with where it was opened.
    end = out.split("aiosqlite connections left open", 1)[1]
    assert "still open at the end of the run; opened during" in end, out
    assert (
        "test_inner.py::test_keeps_one_open_forever" in end and f"{inner}:{kept_line} in run" in end
    )
    # The module fixture's connection, disposed at the module's end, is blamed on nobody.
    assert "kept" not in end and "test_kept_by" not in out.split("short test summary", 1)[1]
