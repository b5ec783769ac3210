"""Past one machine, end to end: three `poller` processes and two `discord` processes on one
PostgreSQL database, a feed farm on 127.0.0.1 and the Discord emulator.

Everything runs as real OS processes (`python -m timeline.cli.main ... poller|discord`); the discord
processes reach the emulator through the test-only TIMELINE_BOT_DISCORD_API/_GATEWAY variables.
Rounds are started by making every feed due in the database (the feeds' own interval is an hour,
so nothing else makes them due). Per round the farm counts the requests of every feed and the
fetch_results table the recorded fetches: each feed is fetched exactly once per due time. One
round blocks a feed's request until the test has SIGKILLed the poller that made it; the other
pollers poll that feed once its lease (2 s here) runs out. Two discord processes run "by
mistake"; every alert is still posted exactly once. The outbox sweep interval is 60 s, longer
than this test: alerts arriving promptly show that LISTEN/NOTIFY woke delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.discord_emulator import DiscordEmulator
from tests.discord_emulator.specs import default_guild
from tests.helpers import wait_until

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
GUILD = default_guild()
ALERTS = GUILD.channel("alerts").id
FEEDS = 12
TOKEN_ENV = "TB_CLUSTER_TOKEN"
WORDS = (
    "harbour lantern meadow copper violet orchard glacier falcon tundra basalt cinder willow "
    "quartz juniper saffron marble thistle canyon ember lagoon prairie cobalt granite heron "
    "maple nectar obsidian pebble quiver russet sable topaz umber velvet walnut yarrow zephyr"
).split()


@dataclass
class Farm:
    """Feeds on 127.0.0.1 with per-round request counters and an optional blocking feed."""

    items: dict[int, list[tuple[str, str, str]]] = field(default_factory=dict)
    hits: Counter[int] = field(default_factory=Counter)
    block: int | None = None
    blocked: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    def url(self, feed: int) -> str:
        return f"http://127.0.0.1:{self.port}/f/{feed}.xml"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            feed = int(request.match_info["n"])
            items = self.items[feed]
        except (KeyError, ValueError):
            raise web.HTTPNotFound() from None
        self.hits[feed] += 1
        if feed == self.block and not self.blocked.is_set():
            # Hold the first request of this feed until its poller has been killed.
            self.blocked.set()
            await self.release.wait()
        return web.Response(body=rss(items), content_type="application/rss+xml")


def rss(items: list[tuple[str, str, str]]) -> bytes:
    """An RSS document; each story is published a week after the previous one.

    A week apart, no two stories fall in one clustering window, so each is its own event.
    """
    parts = []
    for guid, title, summary in items:
        published = email.utils.formatdate(PUBLISHED[guid], usegmt=True)
        parts.append(
            f"<item><guid isPermaLink='false'>{guid}</guid><title>{title}</title>"
            f"<link>https://news.example/{guid}</link><description>{summary}</description>"
            f"<pubDate>{published}</pubDate></item>"
        )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
        "<link>https://news.example/</link><description>d</description>"
        + "".join(parts)
        + "</channel></rss>"
    ).encode()


@contextlib.asynccontextmanager
async def serve_farm(farm: Farm) -> AsyncIterator[Farm]:
    app = web.Application()
    app.router.add_get("/f/{n}.xml", farm.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert isinstance(site._server, asyncio.Server)
    farm.port = site._server.sockets[0].getsockname()[1]
    try:
        yield farm
    finally:
        farm.release.set()
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, pg_url: str, farm: Farm, metrics_port: int | None = None) -> Path:
    feeds = "".join(
        f'[[feeds]]\nname = "Feed {i}"\nurl = "{farm.url(i)}"\n\n' for i in range(FEEDS)
    )
    metrics = f"[metrics]\nport = {metrics_port}\n" if metrics_port else ""
    path.write_text(
        f"""
[database]
url = "{pg_url}"

[polling]
interval_seconds = 3600
min_interval_seconds = 10
jitter = 0.0
tick_seconds = 0.1
lease_seconds = 2.0
concurrency = 3
timeout_seconds = 10.0
allow_private = ["127.0.0.1"]

{feeds}
[[watches]]
name = "nato"
query = "NATO communique"
channel_id = {ALERTS}

[discord]
token_env = "{TOKEN_ENV}"
guild_ids = [{GUILD.id}]

[alerts]
burst_threshold = 100
delivery_interval_seconds = 60.0

{metrics}"""
    )
    return path


class Processes:
    """The OS processes of the cluster, logs in files, stopped (or killed) at the end."""

    def __init__(self, tmp: Path, config: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.config = config
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: str, env: dict[str, str] | None = None) -> None:
        log = (self.tmp / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "timeline.cli.main", "--config", str(self.config), command],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def by_pid(self, pid: int) -> str:
        return next(name for name, p in self.procs.items() if p.pid == pid)

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{(self.tmp / f'{name}.log').read_text(errors='replace')[-6000:]}"
            for name in self.procs
        )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None and proc.returncode != -signal.SIGKILL:
                raise AssertionError(f"{name} exited with {proc.returncode}\n{self.logs()}")

    def stop_all(self) -> dict[str, int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        return codes


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = Processes(tmp_path, tmp_path / "config.toml", env)
    try:
        yield procs
    finally:
        procs.stop_all()
        print(procs.logs())  # shown by pytest when the test failed


PUBLISHED: dict[str, float] = {}


def story(rng: random.Random, nato: bool, tag: str) -> tuple[str, str, str]:
    # Made-up words: no two stories share enough to be clustered into one event.
    words = ["".join(rng.choices("bcdfghklmnprstvz", k=3)) + rng.choice(WORDS) for _ in range(8)]
    title = " ".join(words[:5]).capitalize() + f" {tag}"
    if nato:
        title = f"NATO communique {title}"
    PUBLISHED[tag] = 1_600_000_000 + len(PUBLISHED) * 7 * 86_400
    return (tag, title, " ".join(words) + ".")


async def test_three_pollers_and_two_discord_processes_poll_and_alert_exactly_once(
    tmp_path: Path, pg_url: str, processes: Processes
) -> None:
    rng = random.Random(42)
    farm = Farm(
        items={i: [story(rng, False, f"f{i}-old{n}") for n in range(3)] for i in range(FEEDS)}
    )
    conn = await asyncpg.connect(pg_url)
    try:
        codes, victim = await _scenario(conn, farm, rng, pg_url, tmp_path, processes)
    finally:
        await conn.close()
    # Graceful stop on SIGTERM: exit code 0 for everyone but the killed poller.
    assert {n: c for n, c in codes.items() if n != victim} == {
        n: 0 for n in codes if n != victim
    }, processes.logs()


async def _scenario(  # noqa: C901 (the scenario's steps in order)
    conn: asyncpg.Connection,
    farm: Farm,
    rng: random.Random,
    pg_url: str,
    tmp_path: Path,
    processes: Processes,
) -> tuple[dict[str, int], str]:
    metrics_ports = [free_port(), free_port()]
    async with serve_farm(farm), DiscordEmulator([GUILD]) as emu:
        write_config(processes.config, pg_url, farm)
        processes.env.update(
            {
                TOKEN_ENV: emu.token,
                "TIMELINE_BOT_DISCORD_API": emu.api_url,
                "TIMELINE_BOT_DISCORD_GATEWAY": emu.gateway_url,
            }
        )
        for n in range(3):
            processes.start(f"poller{n}", "poller")
        for n, port in enumerate(metrics_ports):
            config = write_config(tmp_path / f"discord{n}.toml", pg_url, farm, port)
            processes.procs[f"discord{n}"] = _start_discord(processes, n, config)

        async def fetches() -> dict[int, int]:
            rows = await conn.fetch(
                "SELECT f.name, count(r.id) FROM feeds f "
                "LEFT JOIN fetch_results r ON r.feed_id = f.id GROUP BY f.name"
            )
            return {int(name.split()[-1]): count for name, count in rows}

        async def round_done(expected: int) -> bool:
            processes.check_alive()
            counts = await fetches()
            return len(counts) == FEEDS and all(c == expected for c in counts.values())

        async def start_round() -> None:
            farm.hits.clear()
            await conn.execute("UPDATE feeds SET next_check_at = now()")

        # Round 1: the first poll of each feed stores its items without alerting (backfill).
        await wait_until(lambda: round_done(1), within=30, what="round 1")
        assert farm.hits == Counter(range(FEEDS))
        injected: list[str] = []

        # Rounds 2 and 3: new stories, three of them for the watch.
        for r in (2, 3):
            for i in range(FEEDS):
                nato = i % 4 == r % 4
                item = story(rng, nato, f"f{i}-r{r}")
                farm.items[i].insert(0, item)
                if nato:
                    injected.append(item[1])
            await start_round()
            await wait_until(functools.partial(round_done, r), within=20, what=f"round {r}")
            assert farm.hits == Counter(range(FEEDS)), f"round {r}: {farm.hits}"
            await _wait_for_alerts(emu, injected, processes)

        # Round 4: the poller fetching feed 5 is killed mid-round; feed 5 carries a story.
        victim_feed = 5
        farm.block = victim_feed
        item = story(rng, True, "f5-r4")
        farm.items[victim_feed].insert(0, item)
        injected.append(item[1])
        await start_round()
        await asyncio.wait_for(farm.blocked.wait(), 20)
        owner = await conn.fetchval(
            "SELECT lease_owner FROM feeds WHERE name = $1", f"Feed {victim_feed}"
        )
        victim = processes.by_pid(int(owner.rsplit(":", 1)[1]))
        assert victim.startswith("poller")
        held = {
            int(name.split()[-1])
            for (name,) in await conn.fetch("SELECT name FROM feeds WHERE lease_owner = $1", owner)
        }
        processes.procs[victim].kill()
        processes.procs[victim].wait()
        farm.release.set()
        await wait_until(lambda: round_done(4), within=20, what="round 4 after the kill")
        assert farm.hits[victim_feed] == 2  # the killed poller's request, then a survivor's
        for feed in range(FEEDS):
            # A feed the victim had not recorded is fetched again by a survivor; all others once.
            allowed = {1, 2} if feed in held else {1}
            assert farm.hits[feed] in allowed, (feed, farm.hits, held)
        fetched = await conn.fetchval(
            "SELECT count(*) FROM fetch_results r JOIN feeds f ON f.id = r.feed_id "
            "WHERE f.name = $1",
            f"Feed {victim_feed}",
        )
        assert fetched == 4
        await _wait_for_alerts(emu, injected, processes)

        # Every alert delivered exactly once: one message each, all rows sent, nonces unique.
        async def all_marked_sent() -> bool:
            return bool(await conn.fetchval("SELECT bool_and(status = 'sent') FROM alerts"))

        # Discord stores the message a moment before the process marks its row sent.
        await wait_until(all_marked_sent, within=10, what="every alert marked sent")
        messages = emu.channel_messages(ALERTS)
        assert len(messages) == len(injected)
        rows = await conn.fetch("SELECT status, message_id, nonce FROM alerts")
        assert len(rows) == len(injected)
        assert {r["status"] for r in rows} == {"sent"}
        assert len({r["message_id"] for r in rows}) == len(rows)
        assert {r["message_id"] for r in rows} == {m.id for m in messages}
        assert len({r["nonce"] for r in rows}) == len(rows)

        # The discord processes' metrics add up to the alerts delivered (counted just after
        # the row is marked sent, hence a bounded wait).
        for port in metrics_ports:
            health = await _get(port, "/healthz")
            assert json.loads(health)["status"] == "ok"

        async def metrics_add_up() -> bool:
            delivered = 0.0
            for port in metrics_ports:
                text = await _get(port, "/metrics")
                delivered += _sample(text, "timeline_alerts_delivered_total")
            return delivered == len(injected)

        await wait_until(metrics_add_up, within=10, what="the delivered counters")

        codes = processes.stop_all()
    return codes, victim


def _start_discord(processes: Processes, n: int, config: Path) -> subprocess.Popen[bytes]:
    log = (processes.tmp / f"discord{n}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "timeline.cli.main", "--config", str(config), "discord"],
        cwd=ROOT,
        env=processes.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return proc


async def _wait_for_alerts(emu: DiscordEmulator, titles: list[str], processes: Processes) -> None:
    async def posted() -> bool:
        processes.check_alive()
        texts = [m.text() for m in emu.channel_messages(ALERTS)]
        return all(sum(t in text for text in texts) == 1 for t in titles)

    await wait_until(posted, within=20, what=f"{len(titles)} alerts in the channel")


async def _get(port: int, path: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return await resp.text()


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
