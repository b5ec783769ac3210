"""The `match` / `search` commands, and the watch index against brute force."""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.domain.query.conftest import add_entries, add_feed
from timeline.cli.query import register, run_match, run_search
from timeline.domain.query import Document, WatchIndex, parse_query
from timeline.storage.engine import Database
from timeline.storage.models import Entry
from timeline.usecases import settings as settings_svc

SEED_TITLE = "NATO Summit Draft Communique Calls Out China for Supporting Russian War Machine"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="timeline-bot")
    parser.add_argument("--config")
    register(parser.add_subparsers(dest="command"))
    return parser


def test_match_exit_codes_and_terms() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_match("NATO communique", SEED_TITLE, "", out=out, err=err) == 0
    assert "terms: NATO, Communique" in out.getvalue()
    assert "**NATO** Summit Draft **Communique**" in out.getvalue()
    out = io.StringIO()
    assert run_match('"NATO communique"', SEED_TITLE, "", out=out, err=err) == 1
    assert out.getvalue().startswith("no match")
    err = io.StringIO()
    assert run_match('NATO "communique', SEED_TITLE, "", out=out, err=err) == 2
    assert "unbalanced quote at column 6" in err.getvalue()


def test_match_command_reads_summary_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here: no aliases, no error
    monkeypatch.setattr(sys, "stdin", io.StringIO("Beijing ships dual‑use goods"))
    args = _parser().parse_args(["match", "dual-use", "--title", "Exports"])
    assert args.func(args) == 0
    assert "terms: dual‑use" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO("individual use"))
    args = _parser().parse_args(["match", "dual-use", "--title", "Exports"])
    assert args.func(args) == 1
    args = _parser().parse_args(
        [
            "match",
            "source:reuters NATO",
            "--title",
            "NATO",
            "--summary",
            "",
            "--source",
            "https://www.reuters.com/world",
        ]
    )
    assert args.func(args) == 0
    args = _parser().parse_args(["match", "@nope", "--title", "x", "--summary", ""])
    assert args.func(args) == 2
    assert "unknown alias '@nope' at column 1" in capsys.readouterr().err


async def test_search_command_prints_text_and_json(sqlite_db: Database) -> None:
    feed = await add_feed(sqlite_db, "Reuters", "https://www.reuters.com/rss")
    [seed, _] = await add_entries(
        sqlite_db, feed, [(SEED_TITLE, "dual-use"), ("Fireworks \x1b[31m show", "")]
    )
    out, err = io.StringIO(), io.StringIO()
    args = _parser().parse_args(["search", "NATO communique", "--limit", "5"])
    assert await run_search(sqlite_db, args, {}, out=out, err=err) == 0
    text = out.getvalue()
    assert "[Reuters] **NATO** Summit Draft **Communique**" in text
    assert "https://example.test/0" in text
    out = io.StringIO()
    args = _parser().parse_args(["search", "@cn dual-use", "--json", "--since", "2024-07-09"])
    assert await run_search(sqlite_db, args, {"cn": "China"}, out=out, err=err) == 0
    [hit] = json.loads(out.getvalue())
    assert hit["entry_id"] == seed
    assert hit["terms"] == ["China", "dual-use"]
    assert hit["published_at"] == "2024-07-09T12:00:00Z"
    out = io.StringIO()
    args = _parser().parse_args(["search", "fireworks"])
    assert await run_search(sqlite_db, args, {}, out=out, err=err) == 0
    assert "\x1b" not in out.getvalue()  # control characters from a feed are not replayed
    args = _parser().parse_args(["search", "NATO", "--until", "2024-07-08"])
    out = io.StringIO()
    assert await run_search(sqlite_db, args, {}, out=out, err=err) == 0
    assert out.getvalue().startswith("no entries match")
    for bad in (
        ["search", "NATO OR"],
        ["search", "NATO", "--since", "soon"],
        ["search", "NATO", "--limit", "0"],
    ):
        err = io.StringIO()
        assert await run_search(sqlite_db, _parser().parse_args(bad), {}, out=out, err=err) == 2
        assert err.getvalue()


async def test_search_command_pages_with_the_cursor_it_prints(sqlite_db: Database) -> None:
    feed = await add_feed(sqlite_db, "Reuters", "https://www.reuters.com/rss")
    await add_entries(sqlite_db, feed, [(f"Drone report {i}", "") for i in range(5)])
    seen: list[str] = []
    argv = ["search", "drone", "--limit", "2", "--json"]
    for _ in range(5):
        out, err = io.StringIO(), io.StringIO()
        assert await run_search(sqlite_db, _parser().parse_args(argv), {}, out=out, err=err) == 0
        seen += [hit["title"] for hit in json.loads(out.getvalue())]
        if "next: --cursor " not in err.getvalue():
            break
        cursor = err.getvalue().split("next: --cursor ", 1)[1].split()[0]
        argv = ["search", "drone", "--limit", "2", "--json", "--cursor", cursor]
    assert seen == [f"Drone report {i}" for i in (4, 3, 2, 1, 0)]
    err = io.StringIO()
    args = _parser().parse_args(["search", "drone", "--cursor", "bogus"])
    assert await run_search(sqlite_db, args, {}, out=io.StringIO(), err=err) == 2
    assert "cursor is not valid" in err.getvalue()


def test_watch_index_equals_brute_force_and_skips_unrelated_watches() -> None:
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(300)] + ["NATO", "communique", "dual-use", "drone"]
    shapes = [
        "{a} {b}",
        '"{a} {b}"',
        "{a} OR {b}",
        "{a} -{b}",
        "({a} OR {b}) {c}",
        "{a} NEAR/3 {b}",
        "{p}*",
        "title:{a}",
        "source:reuters {a}",
        "source:bloomberg",
        "{a} OR {p}*",
        "-{a} {b}",
    ]
    watches = []
    for i in range(600):
        a, b, c = rng.sample(vocab, 3)
        text = rng.choice(shapes).format(a=a, b=b, c=c, p=a[:3])
        watches.append((i, parse_query(text)))
    index = WatchIndex(watches)
    assert len(index) == 600
    for n in range(150):
        title = " ".join(rng.choices(vocab, k=8))
        summary = " ".join(rng.choices(vocab, k=40))
        source = ("Reuters", "reuters.com") if n % 2 else ("Bloomberg", "bloomberg.com")
        doc = Document(title, summary, source)
        brute = [(wid, q.match(doc)) for wid, q in watches]
        expected = [(wid, m) for wid, m in brute if m is not None]
        assert index.match(doc) == expected
        # Only watches sharing an anchor with the item (or unanchored ones) are evaluated.
        assert len(index.candidates(doc)) < len(watches) / 2


async def test_search_command_reads_dates_as_days_in_the_guild_zone(sqlite_db: Database) -> None:

    async with sqlite_db.session() as session:
        await settings_svc.set_timezone(session, 7, "Europe/Paris", "admin", "UTC")
    feed = await add_feed(sqlite_db, "Reuters", "https://www.reuters.com/rss", guild_id=7)
    [late] = await add_entries(sqlite_db, feed, [("NATO late story", "")])
    async with sqlite_db.session() as session:
        # 23:30 UTC on the 9th is 01:30 on the 10th in Paris.
        at = datetime(2024, 7, 9, 23, 30, tzinfo=UTC)
        await session.execute(update(Entry).where(Entry.id == late).values(published_at=at))

    async def ids(*argv: str, default_timezone: str = "UTC") -> list[int]:
        out, err = io.StringIO(), io.StringIO()
        args = _parser().parse_args(["search", "NATO", "--json", *argv])
        code = await run_search(
            sqlite_db, args, {}, out=out, err=err, default_timezone=default_timezone
        )
        assert code == 0, err.getvalue()
        return [hit["entry_id"] for hit in json.loads(out.getvalue())]

    assert await ids("--guild", "7", "--since", "2024-07-10") == [late]
    assert await ids("--guild", "7", "--until", "2024-07-09") == []
    # Without --guild the config file's zone decides; a date-time with Z means what it says.
    assert await ids("--since", "2024-07-10", default_timezone="Europe/Paris") == [late]
    assert await ids("--since", "2024-07-10") == []
    assert await ids("--guild", "7", "--since", "2024-07-10T00:00Z") == []
