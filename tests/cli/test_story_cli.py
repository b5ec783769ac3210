"""`timeline-bot story …`: the terminal twin of /story over the same use cases."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.cli.test_admin import run
from timeline.app.config import load_settings
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade
from timeline.storage.models import Entry, Event, Feed, Storyline
from timeline.usecases import storylines as story_svc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    upgrade(f"sqlite:///{tmp_path / 't.db'}")
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n')
    return path


async def seed(cfg: Path) -> tuple[int, list[int]]:
    database = Database(load_settings(cfg).database.url)
    now = datetime.now(UTC)
    try:
        async with database.session() as s:
            feed = Feed(guild_id=0, name="Reuters", url="https://reuters.example/rss")
            s.add(feed)
            story = Storyline(guild_id=0, title="China support for Russia's war")
            s.add(story)
            await s.flush()
            ids = []
            for i, title in enumerate(("Blinken warns Beijing", "Draft communique", "Reply")):
                event = Event(
                    guild_id=0,
                    title=title,
                    occurred_at=now - timedelta(days=10 - i),
                    storyline_id=story.id,
                )
                s.add(event)
                await s.flush()
                s.add(
                    Entry(
                        feed_id=feed.id,
                        event_id=event.id,
                        key=f"k{i}",
                        title=title,
                        published_at=event.occurred_at,
                        brief="at least 40 billion euros" if i == 1 else None,
                    )
                )
                ids.append(event.id)
            return story.id, ids
    finally:
        await database.dispose()


async def test_story_list_show_export_chart(
    cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid, ids = await seed(cfg)
    assert await run(cfg, "story", "list", "--json") == 0
    (line,) = capsys.readouterr().out.splitlines()
    doc = json.loads(line)
    assert doc["id"] == sid and doc["events"] == 3 and doc["title"].startswith("China")
    assert await run(cfg, "story", "show", str(sid), "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in doc["events"]] == ids
    assert doc["events"][1]["sources"][0]["adds"] == "at least 40 billion euros"
    assert await run(cfg, "story", "show", str(sid)) == 0
    out = capsys.readouterr().out
    assert "Reuters adds: at least 40 billion euros" in out
    assert await run(cfg, "story", "export", str(sid), "--format", "md") == 0
    assert f"# Storyline #{sid}: China support" in capsys.readouterr().out
    png = tmp_path / "s.png"
    assert await run(cfg, "story", "chart", str(sid), "-o", str(png)) == 0
    assert png.read_bytes().startswith(PNG_MAGIC)


async def test_story_admin_twins_and_their_refusals(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid, ids = await seed(cfg)
    assert await run(cfg, "story", "rename", str(sid), "Beijing and Moscow", "--json") == 0
    assert json.loads(capsys.readouterr().out)["title_edited"] is True
    assert await run(cfg, "story", "merge", str(sid), str(sid)) == 1
    assert "into itself" in capsys.readouterr().err
    assert await run(cfg, "story", "show", "999") == 1
    assert "no storyline #999" in capsys.readouterr().err
    assert await run(cfg, "story", "split", str(sid), str(ids[1])) == 0
    assert "with 2 events" in capsys.readouterr().out
    assert await run(cfg, "story", "detach", str(ids[0]), "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"event": ids[0], "left_storyline": sid}
    assert await run(cfg, "story", "detach", str(ids[0])) == 1
    assert "not part of a storyline" in capsys.readouterr().err
    # The storyline it left had no other event: it is gone; the split-off one remains.
    assert await run(cfg, "story", "list", "--json") == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["events"] == 2 and json.loads(line)["id"] != sid


@pytest.fixture
def paris_cfg(cfg: Path) -> Path:
    cfg.write_text(cfg.read_text() + '[discord]\ntimezone = "Europe/Paris"\n')
    return cfg


async def test_story_chart_and_export_use_the_guild_zone(
    paris_cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = paris_cfg

    database = Database(load_settings(cfg).database.url)
    times = [
        datetime(2024, 7, 9, 12, 0, tzinfo=UTC),  # 14:00 on the 9th in Paris
        datetime(2024, 7, 9, 23, 30, tzinfo=UTC),  # 01:30 on the 10th in Paris
        datetime(2024, 7, 10, 21, 0, tzinfo=UTC),  # 23:00 on the 10th in Paris
    ]
    try:
        async with database.session() as s:
            story = Storyline(guild_id=0, title="Summit week")
            s.add(story)
            await s.flush()
            for i, at in enumerate(times):
                s.add(Event(guild_id=0, title=f"Step {i}", occurred_at=at, storyline_id=story.id))
            await s.flush()
            sid = story.id
    finally:
        await database.dispose()
    assert await run(cfg, "story", "export", str(sid), "--format", "md") == 0
    md = capsys.readouterr().out
    assert md.count("## 2024-07-09") == 1 and md.count("## 2024-07-10") == 1
    assert md.index("## 2024-07-09") < md.index("Step 0") < md.index("## 2024-07-10")
    assert md.index("## 2024-07-10") < md.index("01:30 CEST")
    assert md.index("01:30 CEST") < md.index("Step 1") < md.index("23:00 CEST")
    assert await run(cfg, "story", "export", str(sid), "--format", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["timezone"] == "Europe/Paris"
    assert doc["events"][1]["occurred_local"] == "2024-07-10T01:30:00+02:00"
    database = Database(load_settings(cfg).database.url)
    try:
        async with database.session() as s:
            data = await story_svc.storyline_chart(s, 0, sid, zone=ZoneInfo("Europe/Paris"))
    finally:
        await database.dispose()
    assert data.series == {"no watch": [(date(2024, 7, 9), 1), (date(2024, 7, 10), 2)]}
    assert [label.day for label in data.labels] == [
        date(2024, 7, 9),
        date(2024, 7, 10),
        date(2024, 7, 10),
    ]
    assert data.since == datetime(2024, 7, 8, 22, 0, tzinfo=UTC)  # midnight in Paris
    assert data.title() == "Timeline (2024-07-09 to 2024-07-10, per day)"
    png = tmp_path / "s.png"
    assert await run(cfg, "story", "chart", str(sid), "-o", str(png)) == 0
    assert png.read_bytes().startswith(PNG_MAGIC)
