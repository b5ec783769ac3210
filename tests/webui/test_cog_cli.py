"""`/web` through discord.py and the emulator, its CLI twin, and the page served by `run` and `discord`."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.discord_emulator import DiscordEmulator
from tests.discordbot.harness import GUILD, harness
from tests.discordbot.member_harness import MemberBot
from timeline.app.config import DatabaseSettings, DiscordSettings, Settings, WebSettings
from timeline.cli.core import run_all_in_one
from timeline.cli.main import main
from timeline.cli.ops import run_discord
from timeline.domain.signed_links import verify_token

SECRET_ENV = "TLBOT_TEST_WEB_SECRET"
SECRET = "a-test-secret-that-is-long-enough-0123"
LINK_RE = re.compile(r"<(http://[^>]+/\?token=([A-Za-z0-9_.\-]+))>")


def web_settings(base: Settings, **kw: object) -> Settings:
    web = WebSettings(enabled=True, port=8123, secret_env=SECRET_ENV, base_url="https://tl.example")
    return replace(base, web=replace(web, **kw))  # type: ignore[arg-type]


async def test_web_replies_privately_with_a_signed_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    caplog.set_level(logging.INFO, logger="discordbot.cogs.web")
    async with harness(tmp_path) as h:
        settings = web_settings(h.settings(), base_url="http://tl.example:8123")
        bot = MemberBot(settings, h.db, ("discordbot.cogs.web",), guild_ready_timeout=0.05)
        async with h.emu.run_bot(bot):
            ix = await h.emu.invoke("web", member="user")
    assert ix.ephemeral
    match = LINK_RE.search(ix.text())
    assert match, ix.text()
    assert match.group(1).startswith("http://tl.example:8123/?token=")
    claims = verify_token(SECRET.encode(), match.group(2))
    assert claims.guild_id == GUILD.id and "user" in claims.member
    assert "valid until" in ix.text()
    assert SECRET not in caplog.text and match.group(2) not in caplog.text


async def test_web_off_or_without_secret_says_so_privately(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    async with harness(tmp_path) as h:
        off = MemberBot(h.settings(), h.db, ("discordbot.cogs.web",), guild_ready_timeout=0.05)
        async with h.emu.run_bot(off):
            refused = await h.emu.invoke("web", member="user")
        unset = MemberBot(
            web_settings(h.settings()), h.db, ("discordbot.cogs.web",), guild_ready_timeout=0.05
        )
        with caplog.at_level(logging.ERROR, logger="discordbot.cogs.web"):
            async with h.emu.run_bot(unset):
                broken = await h.emu.invoke("web", member="user")
    assert refused.ephemeral and "not switched on" in refused.text()
    assert broken.ephemeral and "ask an operator" in broken.text()
    assert SECRET_ENV not in broken.text()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and SECRET_ENV in errors[0]


def _config(tmp_path: Path, enabled: bool = True) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"[web]\nenabled = {'true' if enabled else 'false'}\nsecret_env = '{SECRET_ENV}'\n"
        "base_url = 'https://tl.example/'\ntoken_lifetime_seconds = 600\n"
    )
    return path


def test_cli_web_link_prints_a_signed_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    path = _config(tmp_path)
    assert main(["--config", str(path), "web", "link", "--guild", "42", "--member", "ops"]) == 0
    out, err = capsys.readouterr()
    url = out.strip()
    assert url.startswith("https://tl.example/?token=")
    claims = verify_token(SECRET.encode(), url.split("token=", 1)[1])
    assert (claims.guild_id, claims.member) == (42, "ops")
    assert "valid until" in err and "guild 42" in err


def test_cli_web_link_refuses_without_secret_or_when_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    path = _config(tmp_path)
    assert main(["--config", str(path), "web", "link", "--guild", "42", "--member", "x"]) == 78
    assert SECRET_ENV in capsys.readouterr().err
    monkeypatch.setenv(SECRET_ENV, SECRET)
    assert main(["--config", str(path), "web", "link", "--guild", "0", "--member", "x"]) == 2
    assert "--guild" in capsys.readouterr().err
    off = _config(tmp_path, enabled=False)
    assert main(["--config", str(off), "web", "link", "--guild", "42", "--member", "x"]) == 78
    assert "web.enabled" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("runner", [run_all_in_one, run_discord], ids=["run", "discord"])
async def test_run_and_discord_serve_the_web_timeline_in_the_same_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: Any
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    port = _free_port()
    config = Settings(
        path="<test>",
        database=DatabaseSettings(f"sqlite:///{tmp_path / 'run.db'}"),
        discord=DiscordSettings(guild_ids=(GUILD.id,)),
        web=WebSettings(enabled=True, host="127.0.0.1", port=port, secret_env=SECRET_ENV),
    )
    stop = asyncio.Event()
    async with DiscordEmulator([GUILD]) as emu:
        with emu.patch_discord():
            task = asyncio.create_task(
                runner(config, emu.token, stop=stop, bot_options={"guild_ready_timeout": 0.05})
            )
            try:
                await emu.wait_for(
                    lambda: any(c["name"] == "web" for c in emu.commands(GUILD.id)),
                    timeout=10,
                    what="/web synced",
                )
                await emu.wait_until_ready(timeout=10)
                ix = await emu.invoke("web", member="user")
                match = LINK_RE.search(ix.text())
                assert match, ix.text()
                assert match.group(1).startswith(f"http://127.0.0.1:{port}/?token=")
                jar = aiohttp.CookieJar(unsafe=True)
                async with aiohttp.ClientSession(cookie_jar=jar) as session:
                    async with session.get(match.group(1)) as response:
                        assert response.status == 200
                        assert str(response.url) == f"http://127.0.0.1:{port}/"
                        assert "No events match" in await response.text()
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
