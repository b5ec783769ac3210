"""The CLI's polling commands: `poll --once [--json]`, `timeline`, and the offline demo."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.helpers import FeedServer, rss
from timeline.cli.demo import run_demo
from timeline.cli.main import main

NATO_TITLE = "NATO Summit Draft Communique Calls Out China for Supporting Russian War Machine"


def write_config(tmp_path: Path, feeds: list[tuple[str, str]], extra: str = "") -> Path:
    lines = [
        "[database]",
        f'url = "sqlite:///{tmp_path / "t.db"}"',
        "[polling]",
        'allow_private = ["127.0.0.1"]',
        "timeout_seconds = 2.0",
        extra,
    ]
    for name, url in feeds:
        lines += ["[[feeds]]", f'name = "{name}"', f'url = "{url}"']
    lines += [
        "[[watches]]",
        'name = "nato"',
        'query = "NATO communique"',
        "channel_id = 111",
    ]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_poll_once_json_prints_alerts_and_feed_errors(
    tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.bodies["/a.xml"] = rss(("n1", NATO_TITLE, "dual-use materials"))
    cfg = write_config(
        tmp_path,
        [("Bloomberg", feed_server.url("/a.xml")), ("Broken", feed_server.url("/missing.xml"))],
        extra="alert_on_first_poll = true",
    )
    # The command runs its own event loop: run it in a thread from this async test.

    code = await asyncio.to_thread(main, ["--config", str(cfg), "poll", "--once", "--json"])
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    alerts = [r for r in records if r["type"] == "alert"]
    errors = [r for r in records if r["type"] == "feed_error"]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["watch"] == "nato" and alert["channel"] == 111
    assert alert["title"] == NATO_TITLE and alert["sources"] == ["Bloomberg"]
    assert alert["link"] == "https://news.example/n1" and alert["published"].endswith("Z")
    assert isinstance(alert["event_id"], int)
    assert errors == [
        {
            "type": "feed_error",
            "feed": "Broken",
            "url": feed_server.url("/missing.xml"),
            "error": errors[0]["error"],
            "kind": "http",
        }
    ]
    assert "404" in errors[0]["error"]

    # Nothing new on a second run: no alert printed twice.
    code = await asyncio.to_thread(
        main, ["--config", str(cfg), "poll", "--once", "--all", "--json"]
    )
    out = capsys.readouterr().out
    assert code == 0 and '"alert"' not in out


async def test_demo_runs_offline_and_shows_one_event_for_two_outlets(tmp_path: Path) -> None:
    lines: list[str] = []
    assert await run_demo(tmp_path, lines) == 0
    text = "\n".join(lines)
    assert "Round 2" in text
    alerts = [line for line in lines if "ALERT" in line]
    # NATO story: one alert in the NATO channel; dual-use: the NATO story and the seizure story.
    assert sum("[nato-communique]" in line for line in alerts) == 1
    assert sum("[dual-use]" in line for line in alerts) == 2
    assert not any("Fireworks" in line for line in alerts)
    timeline = text.split("Timeline (newest first):")[1].splitlines()
    nato = [line for line in timeline if "NATO" in line]
    assert len(nato) == 1 and "Bloomberg" in nato[0] and "Reuters" in nato[0]
