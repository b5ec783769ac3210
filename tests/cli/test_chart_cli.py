"""`timeline-bot chart`: the terminal twin of /chart writes a PNG and says what it drew."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from timeline.cli.main import main
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Alert, Entry, Event, Feed, Watch, utcnow


async def _seed(url: str) -> None:
    await upgrade_async(url)
    db = Database(url)
    try:
        async with db.session() as s:
            feed = Feed(name="Reuters", url="https://reuters.example/rss")
            watch = Watch(name="NATO", query="NATO", channel_id=1)
            s.add_all([feed, watch])
            await s.flush()
            now = utcnow()
            for i, title in enumerate(["NATO summit", "NATO communique", "Harvest festival"]):
                event = Event(title=title, occurred_at=now - timedelta(days=i))
                s.add(event)
                await s.flush()
                s.add(
                    Entry(
                        feed_id=feed.id,
                        event_id=event.id,
                        key=str(i),
                        title=title,
                        published_at=event.occurred_at,
                    )
                )
                if "NATO" in title:
                    s.add(Alert(watch_id=watch.id, event_id=event.id, channel_id=1, status="sent"))
    finally:
        await db.dispose()


async def run(cfg: Path, *argv: str) -> int:
    """Run the CLI in a thread: it runs its own event loop, as it does from a shell."""
    return await asyncio.to_thread(main, ["--config", str(cfg), *argv])


@pytest.fixture
async def cfg(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 't.db'}"
    await _seed(url)
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')
    return path


async def test_chart_writes_a_png_of_the_matching_events(
    cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "chart.png"
    code = await run(cfg, "chart", "NATO", "--since", "7d", "--bucket", "week", "-o", str(out))
    assert code == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    err = capsys.readouterr().err
    assert f"to {out}: 2 events in 1 series, per week" in err


async def test_chart_reports_bad_input_with_exit_codes(
    cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "chart.png"
    assert await run(cfg, "chart", "NATO (", "-o", str(out)) == 1
    assert "column" in capsys.readouterr().err
    assert await run(cfg, "chart", "--since", "1800-01-01", "-o", str(out)) == 1
    assert "year must be between" in capsys.readouterr().err
    assert await run(cfg, "chart", "-o", str(tmp_path / "missing" / "x.png")) == 1
    assert "cannot write" in capsys.readouterr().err
    assert not out.exists()


async def test_without_a_period_the_window_fits_the_data_and_a_given_one_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    await upgrade_async(url)
    db = Database(url)
    now = utcnow()
    try:
        async with db.session() as s:
            feed = Feed(name="Reuters", url="https://reuters.example/rss")
            s.add(feed)
            await s.flush()
            # Nothing in the last ten days: a window ending now would be mostly empty.
            for days in (12, 10):
                event = Event(title=f"{days} days ago", occurred_at=now - timedelta(days=days))
                s.add(event)
                await s.flush()
                s.add(
                    Entry(
                        feed_id=feed.id,
                        event_id=event.id,
                        key=str(days),
                        title=event.title,
                        published_at=event.occurred_at,
                    )
                )
    finally:
        await db.dispose()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n')
    out = tmp_path / "chart.png"
    first, last = (f"{now - timedelta(days=d):%Y-%m-%d}" for d in (12, 10))
    assert await run(cfg, "chart", "-o", str(out)) == 0
    assert capsys.readouterr().err.endswith(f"2 events in 1 series, per day, {first} to {last}\n")
    assert await run(cfg, "chart", "--since", "30d", "-o", str(out)) == 0
    given = f"{now - timedelta(days=30):%Y-%m-%d} to {now:%Y-%m-%d}"
    assert capsys.readouterr().err.endswith(f"per day, {given}\n")


async def test_a_period_too_long_for_days_is_counted_per_week(
    cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "chart.png"
    assert await run(cfg, "chart", "--since", "2019-01-01", "-o", str(out)) == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert ": 3 events in 2 series, per week, 2019-01-01 to " in capsys.readouterr().err
