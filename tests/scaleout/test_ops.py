"""Operations: the /healthz and /metrics endpoint, the test-only Discord endpoint override and
the AutoShardedBot when `discord.shard_count` is set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import discord.gateway
import discord.http
import pytest

from discordbot.bot import ShardedTimelineBot, TimelineBot, make_bot
from feeds.types import FetchResult, FetchState
from tests.discord_emulator import DiscordEmulator
from tests.discord_emulator.specs import default_guild
from timeline.app import metrics
from timeline.app.config import DiscordSettings, MetricsSettings, PollingSettings, Settings
from timeline.app.ops_http import OpsServer
from timeline.cli.main import main
from timeline.cli.ops import API_ENV, GATEWAY_ENV, patch_discord_endpoints
from timeline.storage.engine import Database
from timeline.storage.models import Feed
from timeline.usecases.polling import PollStore


@pytest.fixture
async def ops(db: Database) -> AsyncIterator[OpsServer]:
    server = OpsServer(MetricsSettings(port=0), db, role="poller", checks={"extra": lambda: True})
    async with server:
        yield server


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.text()


async def test_metrics_count_polls_failures_and_serve_the_outbox_depth(
    db: Database, ops: OpsServer
) -> None:
    async with db.session() as session:
        feed = Feed(name="f", url="https://f.example/rss")
        session.add(feed)
    store = PollStore(db, PollingSettings(), owner="t")
    (due,) = await store.claim_due()
    polls = metrics.value("timeline_polls_total", {"outcome": "error"})
    timeouts = metrics.value("timeline_fetch_failures_total", {"kind": "timeout"})
    failed = FetchResult(
        url=feed.url,
        outcome="error",
        state=FetchState(feed.url),
        error="slow",
        error_kind="timeout",
    )
    await store.record(due, failed)
    assert metrics.value("timeline_polls_total", {"outcome": "error"}) == polls + 1
    assert metrics.value("timeline_fetch_failures_total", {"kind": "timeout"}) == timeouts + 1

    status, content_type, text = await get(f"{ops.url}/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    assert 'timeline_polls_total{outcome="error"}' in text
    assert 'timeline_outbox_depth{state="pending"} 0.0' in text
    assert "timeline_alert_latency_seconds_bucket" in text


async def test_healthz_is_ok_then_names_the_failing_check(db: Database, ops: OpsServer) -> None:
    status, _, body = await get(f"{ops.url}/healthz")
    assert status == 200 and '"status": "ok"' in body and '"role": "poller"' in body

    def broken() -> bool:
        raise RuntimeError("gateway gone")

    ops.checks["discord"] = broken
    status, _, body = await get(f"{ops.url}/healthz")
    assert status == 503
    assert '"discord": "failing: RuntimeError"' in body and '"database": "ok"' in body


async def test_no_port_serves_nothing(db: Database) -> None:
    async with OpsServer(MetricsSettings(), db, role="discord") as server:
        assert server.url is None


def test_discord_endpoint_override_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    assert patch_discord_endpoints({}) is False
    with pytest.raises(ValueError, match=API_ENV):
        patch_discord_endpoints({API_ENV: "file:///etc/passwd"})
    with pytest.raises(ValueError, match=GATEWAY_ENV):
        patch_discord_endpoints({GATEWAY_ENV: "http://127.0.0.1:1/gw"})
    assert patch_discord_endpoints({API_ENV: "http://127.0.0.1:9/api/v10/"})
    assert discord.http.Route.BASE == "http://127.0.0.1:9/api/v10"


def test_discord_command_names_the_missing_token_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TB_NO_SUCH_TOKEN", raising=False)
    config = tmp_path / "config.toml"
    config.write_text('[discord]\ntoken_env = "TB_NO_SUCH_TOKEN"\n')
    assert main(["--config", str(config), "discord"]) == 78
    assert "TB_NO_SUCH_TOKEN" in capsys.readouterr().err


async def test_shard_count_makes_an_auto_sharded_bot(db: Database) -> None:
    guild = default_guild()
    plain = Settings(discord=DiscordSettings(guild_ids=(guild.id,)))
    assert type(make_bot(plain, db)) is TimelineBot
    sharded = replace(plain, discord=replace(plain.discord, shard_count=2))
    bot = make_bot(sharded, db, guild_ready_timeout=0.05, sync_commands=False)
    assert isinstance(bot, ShardedTimelineBot) and isinstance(bot, discord.AutoShardedClient)
    async with DiscordEmulator([guild]) as emu, emu.run_bot(bot):
        assert bot.shard_count == 2
        assert sorted(bot.shards) == [0, 1]
        assert bot.delivery.running
    shards = sorted(f["d"]["shard"] for f in emu.gateway.received if f.get("op") == 2)
    assert shards == [[0, 2], [1, 2]]
