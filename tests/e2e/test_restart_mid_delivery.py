"""`timeline-bot run` killed with SIGKILL while alerts are being posted, then started again.

Real OS processes (`python -m timeline.cli.main run`) on a SQLite file and on PostgreSQL, against the
in-repo Discord emulator in this process (reached through the test-only
TIMELINE_BOT_DISCORD_API/_GATEWAY variables). 80 alerts are due in two channels. The emulator
answers 30 message creates and then holds the next one after storing its message (the POST went
through; the answer never comes): the bot is known to be mid-delivery, with every other alert
still claimed. Meanwhile some events gain a second source, among them posted ones, unposted ones
and the held one. The bot is SIGKILLed, a second `run` starts, and the emulator's records must
show exactly one message per (channel, event), each showing its event's sources, and one edit
for each message created before its event grew (none for the others).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.discord_emulator import DiscordEmulator, StoredMessage
from tests.discord_emulator.specs import default_guild
from tests.discordbot.outbox_seed import T0, Seed, add_source, alert, event
from tests.helpers import FeedServer, rss, wait_until
from tests.scaleout.conftest import make_pg_database
from timeline.app.config import load_settings
from timeline.app.wiring import App
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Watch

ROOT = Path(__file__).resolve().parents[2]
GUILD = default_guild()
CHANNELS = {"wire": GUILD.channel("alerts").id, "desk": GUILD.channel("general").id}
EVENTS = 40  # each alerted in both channels: 80 alerts
ANSWERED = 30  # message creates answered before the hold
GROWN = set(range(0, EVENTS, 4))  # events that gain a second source while the bot is held
TOKEN_ENV = "TB_RESTART_TOKEN"
POST = "POST /channels/{channel_id}/messages"
PATCH = "PATCH /channels/{channel_id}/messages/{message_id}"
FOOTER = re.compile(r"^Event #(\d+) ")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'timeline.db'}"
    else:
        yield from make_pg_database(f"tb_restart_mid_delivery_{os.getpid()}", migrate=False)


def write_config(path: Path, db_url: str, feeds: FeedServer) -> Path:
    watches = "".join(
        f'[[watches]]\nname = "{name}"\nquery = "{name}"\nchannel_id = {channel}\n\n'
        for name, channel in CHANNELS.items()
    )
    path.write_text(
        f"""
[database]
url = "{db_url}"

[polling]
interval_seconds = 3600
jitter = 0.0
allow_private = ["127.0.0.1"]

[[feeds]]
name = "Bloomberg"
url = "{feeds.url("/bloomberg.xml")}"

[[feeds]]
name = "Reuters"
url = "{feeds.url("/reuters.xml")}"

{watches}
[discord]
token_env = "{TOKEN_ENV}"
guild_ids = [{GUILD.id}]

[alerts]
# No digests: one message per alert. A sweep longer than the test: delivery runs on its own.
burst_threshold = 100
delivery_interval_seconds = 600.0
"""
    )
    return path


async def seed(config: Path) -> dict[int, int]:
    """Migrate, sync the config, write 40 events alerted in both channels; event id by index."""
    settings = load_settings(config)
    async with App(settings) as app:
        await app.prepare()
        db = app.db
        s = Seed()
        async with db.session() as session:
            s.watches = dict((await session.execute(select(Watch.name, Watch.id))).tuples().all())
        events = {}
        for n in range(EVENTS):
            ev = await event(
                db,
                s,
                f"Story {n:02d} about the summit",
                link=f"https://bloomberg.example/{n}",
                summary=f"What Bloomberg reported in story {n}.",
                occurred_at=T0.replace(minute=n),
            )
            events[n] = ev
            for name, channel in CHANNELS.items():
                await alert(db, s.watches[name], ev, channel)
    return events


class Bot:
    """One `timeline-bot run` OS process with its log in a file."""

    def __init__(self, name: str, config: Path, env: dict[str, str], tmp: Path) -> None:
        self.name = name
        self.config = config
        self.env = env
        self.log = tmp / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "timeline.cli.main",
                "--config",
                str(self.config),
                "run",
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}\n{self.text()}")

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), 30)


@pytest.fixture
async def bots(tmp_path: Path) -> AsyncIterator[list[Bot]]:
    made: list[Bot] = []
    try:
        yield made
    finally:
        for bot in made:
            if bot.proc is not None and bot.proc.returncode is None:
                bot.proc.kill()
                await bot.proc.wait()
        for bot in made:
            print(f"--- {bot.name} ---\n{bot.text()[-8000:]}")  # shown when the test failed


def event_of(message: StoredMessage) -> int:
    (embed,) = message.payload["embeds"]
    found = FOOTER.match(embed["footer"]["text"])
    assert found, embed["footer"]
    return int(found.group(1))


def sources_field(message: StoredMessage) -> str:
    (embed,) = message.payload["embeds"]
    return str(embed["fields"][0]["value"])


async def outbox_settled(db: Database) -> bool:
    async with db.session() as session:
        rows = (await session.execute(select(Alert.status, Alert.dirty, Alert.claimed_by))).all()
    return len(rows) == 2 * EVENTS and all(
        status == "sent" and not dirty and claimed is None for status, dirty, claimed in rows
    )


async def test_sigkill_mid_delivery_then_restart_posts_each_alert_once_and_edits_once(
    tmp_path: Path, db_url: str, feed_server: FeedServer, bots: list[Bot]
) -> None:
    loop = asyncio.get_running_loop()
    feed_server.bodies["/bloomberg.xml"] = rss()
    feed_server.bodies["/reuters.xml"] = rss()
    config = write_config(tmp_path / "config.toml", db_url, feed_server)
    events = await seed(config)
    db = Database(db_url)
    try:
        async with DiscordEmulator([GUILD]) as emu:
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                TOKEN_ENV: emu.token,
                "TIMELINE_BOT_DISCORD_API": emu.api_url,
                "TIMELINE_BOT_DISCORD_GATEWAY": emu.gateway_url,
            }
            first = Bot("first", config, env, tmp_path)
            second = Bot("second", config, env, tmp_path)
            bots.extend([first, second])

            # 1. The first bot posts 30 alerts; the 31st is stored but never answered.
            hold = emu.hold_message_creates(after=ANSWERED)
            await first.start()
            await hold.wait_held(timeout=60)
            first.check_alive()
            ((_, held),) = hold.held
            assert held is not None
            before = {m.id: m for ch in CHANNELS.values() for m in emu.channel_messages(ch)}
            assert len(before) == ANSWERED + 1

            # 2. Events grow while it is stuck: posted ones, unposted ones and the held one.
            held_event = event_of(held)
            grown = {events[n] for n in GROWN} | {held_event}
            s = Seed()
            for ev in sorted(grown):
                await add_source(db, s, ev, "Reuters", link=f"https://reuters.example/{ev}", at=T0)

            # 3. SIGKILL, then the Discord request it was waiting for is answered to nobody.
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
            hold.release()

            # 4. The second bot delivers the rest and edits what grew.
            started = loop.time()
            await second.start()
            pairs = {(ch, ev) for ev in events.values() for ch in CHANNELS.values()}

            def done() -> bool:
                second.check_alive()
                shown = {
                    (ch, event_of(m)): m
                    for ch in CHANNELS.values()
                    for m in emu.channel_messages(ch)
                }
                return set(shown) == pairs and all(
                    ("Reuters" in sources_field(m)) == (ev in grown) for (_, ev), m in shown.items()
                )

            await emu.wait_for(done, timeout=60, what="every alert posted and every edit made")
            delivered_after = loop.time() - started
            await wait_until(lambda: outbox_settled(db), within=20, what="the outbox drained")
            assert await second.stop() == 0
    finally:
        await db.dispose()

    # Exactly one message per (channel, event), none lost.
    messages = [m for ch in CHANNELS.values() for m in emu.channel_messages(ch)]
    per_pair = Counter((m.channel_id, event_of(m)) for m in messages)
    assert set(per_pair) == pairs and set(per_pair.values()) == {1}, per_pair
    # One create per alert: the held one was sent again and Discord found it by its nonce.
    creates = emu.requests_to(POST)
    assert len(creates) == 2 * EVENTS + 1 and emu.nonce_hits == 1
    assert len({r.body["nonce"] for r in creates}) == 2 * EVENTS
    # Every edit applied once: each message created before its event grew is edited once.
    patches = Counter(r.path.rsplit("/", 1)[1] for r in emu.requests_to(PATCH))
    expected = {str(m.id): 1 for m in messages if m.id in before and event_of(m) in grown}
    assert dict(patches) == expected
    assert all(m.edit_count == expected.get(str(m.id), 0) for m in messages)
    for m in messages:
        assert ("Reuters" in sources_field(m)) == (event_of(m) in grown)
        assert "Bloomberg" in sources_field(m)

    log = second.text()
    handed = [int(n) for n in re.findall(r"handed back (\d+) outbox claims", log)]
    # The held alert plus the 49 the first bot had claimed but not posted.
    assert handed == [2 * EVENTS - ANSWERED], log
    drains = re.findall(r"outbox drain: (\d+) messages .*?, (\d+) edits", log)
    made = [sum(int(d[i]) for d in drains) for i in (0, 1)]
    print(
        f"restart figures ({db_url.split(':')[0]}): handed back {sum(handed)} claims; "
        f"{made[0]} messages and {made[1]} edits; all delivered {delivered_after:.1f} s "
        "after the second `run` started"
    )
