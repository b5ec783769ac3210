"""End to end: /story through discord.py and the emulator; storyline lines in alerts."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from discordbot.render import alert_embed
from tests.discordbot.harness import harness
from tests.discordbot.member_harness import make_watch, member_bot, story
from tests.discordbot.outbox_seed import T0
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Entry, Event, Storyline
from timeline.storage.outbox import _load_views

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OTHER_GUILD = 900_000_000_000_009_999
COG = ("discordbot.cogs.storylines", "discordbot.cogs.events")


async def storyline(db: Database, title: str, events: list[int], guild_id: int = 0) -> int:
    async with db.session() as s:
        row = Storyline(guild_id=guild_id, title=title, created_at=T0, updated_at=T0)
        s.add(row)
        await s.flush()
        for event_id in events:
            (await s.get(Event, event_id)).storyline_id = row.id  # type: ignore[union-attr]
        return row.id


async def china_story(db: Database, watch: int) -> tuple[int, list[int]]:
    """Five events over three months, one storyline (the summit coverage)."""
    titles = [
        "Blinken says China is top supplier of machine tools to Russia",
        "Chinese and Russian firms build attack drone, report says",
        "Draft NATO communique calls China decisive enabler of Russia's war",
        "NATO publishes final Washington summit communique",
        "China rejects NATO accusations over Russia",
    ]
    days = [-74, -7, 0, 1, 2]
    ids = []
    for title, day in zip(titles, days, strict=True):
        ids.append(
            await story(
                db,
                title,
                sources=("Bloomberg", "Reuters") if day == 0 else ("Bloomberg",),
                at=T0 + timedelta(days=day),
                watches=[watch],
            )
        )
    sid = await storyline(db, "China support for Russia's war", ids)
    return sid, ids


async def test_story_list_show_chart_and_export(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        watch = await make_watch(h.db, "NATO communique", "NATO communique")
        sid, ids = await china_story(h.db, watch)
        other = await story(h.db, "Elsewhere", guild_id=OTHER_GUILD, at=T0)
        await storyline(h.db, "Another guild's storyline", [other], guild_id=OTHER_GUILD)
        async with member_bot(h, COG):
            listed = await h.emu.invoke("story list", {"all": True}, member="user")
            shown = await h.emu.invoke("story show", {"story": sid}, member="user")
            chart = await h.emu.invoke("story chart", {"story": sid}, member="user")
            await h.emu.wait_for_interaction(
                chart, lambda r: bool(r.original and r.original.attachments), timeout=20
            )
            export = await h.emu.invoke("story export", {"story": sid, "format": "json"})
            choices = await h.emu.autocomplete("story show", "story", "russia", member="user")
            event = await h.emu.invoke("event show", {"id": ids[2]}, member="user")
    (embed,) = listed.original.embeds if listed.original else [{}]
    assert f"`#{sid}` **China support for Russia's war** — 5 events" in embed["description"]
    assert "Another guild" not in embed["description"]
    (embed,) = shown.original.embeds if shown.original else [{}]
    lines = embed["description"].splitlines()
    assert len(lines) == 5 and "Blinken" in lines[0] and "rejects" in lines[-1]  # oldest first
    assert "2 sources" in lines[2]
    assert chart.original is not None and export.original is not None
    (png,) = chart.original.attachments
    assert png.filename == f"storyline-{sid}.png" and png.data.startswith(PNG_MAGIC)
    (attachment,) = export.original.attachments
    doc = json.loads(attachment.data)
    assert [e["id"] for e in doc["events"]] == ids
    assert [c["value"] for c in choices] == [sid]
    (embed,) = event.original.embeds if event.original else [{}]
    assert (
        f"Part of *China support for Russia's war* — 2 earlier events since 26 Apr · "
        f"story #{sid}" in embed["description"]
    )


async def test_story_commands_refuse_bad_input_and_change_nothing(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        watch = await make_watch(h.db, "NATO communique", "NATO communique")
        sid, ids = await china_story(h.db, watch)
        loose = await story(h.db, "Unrelated", at=T0)
        other = await story(h.db, "Elsewhere", guild_id=OTHER_GUILD, at=T0)
        foreign = await storyline(h.db, "Another guild's storyline", [other], OTHER_GUILD)
        async with member_bot(h, COG):
            answers = [
                await h.emu.invoke("story show", {"story": 999}, member="user"),
                await h.emu.invoke("story show", {"story": foreign}, member="user"),
                await h.emu.invoke("story merge", {"keep": sid, "other": sid}, member="admin"),
                await h.emu.invoke("story merge", {"keep": sid, "other": foreign}),
                await h.emu.invoke("story split", {"story": sid, "event": loose}),
                await h.emu.invoke("story split", {"story": sid, "event": ids[0]}),
                await h.emu.invoke("story detach", {"event": loose}, member="admin"),
                await h.emu.invoke("story rename", {"story": sid, "title": "x"}, member="user"),
            ]
        texts = [a.text() for a in answers]
        assert all(a.ephemeral for a in answers), texts
        assert "no storyline #999" in texts[0] and f"no storyline #{foreign}" in texts[1]
        assert "into itself" in texts[2] and f"no storyline #{foreign}" in texts[3]
        assert f"event #{loose} is not part of storyline #{sid}" in texts[4]
        assert "first event" in texts[5] and "not part of a storyline" in texts[6]
        assert "Only server admins" in texts[7]
        # Inside the harness: it disposes h.db, and a session after that would open a
        # connection nothing closes.
        async with h.db.session() as s:
            members = (
                await s.scalars(
                    select(Event.id).where(Event.storyline_id == sid).order_by(Event.id)
                )
            ).all()
            assert list(members) == ids
            assert await s.scalar(select(Storyline.title).where(Storyline.id == sid)) == (
                "China support for Russia's war"
            )
            assert await s.scalar(select(func.count()).select_from(Storyline)) == 2


async def test_admins_rename_split_merge_and_detach(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="timeline.usecases.storylines")
    async with harness(tmp_path) as h:
        watch = await make_watch(h.db, "NATO communique", "NATO communique")
        sid, ids = await china_story(h.db, watch)
        async with member_bot(h, COG):
            renamed = await h.emu.invoke(
                "story rename", {"story": sid, "title": "China and Russia's war"}, member="admin"
            )
            split = await h.emu.invoke("story split", {"story": sid, "event": ids[3]})
            async with h.db.session() as s:
                new = await s.scalar(select(Event.storyline_id).where(Event.id == ids[3]))
            merged = await h.emu.invoke("story merge", {"keep": sid, "other": new})
            detached = await h.emu.invoke("story detach", {"event": ids[1]})
        assert "is now *China and Russia's war*" in renamed.text()
        assert f"Moved event `#{ids[3]}` and the 1 after it" in split.text()
        assert f"Merged storyline `#{new}` into `#{sid}`" in merged.text() and "5 events" in (
            merged.text()
        )
        assert f"Event `#{ids[1]}` is no longer part of storyline `#{sid}`" in detached.text()
        # Inside the harness: it disposes h.db, and a session after that would open a
        # connection nothing closes.
        async with h.db.session() as s:
            rows = dict((await s.execute(select(Event.id, Event.storyline_id))).tuples().all())
            assert [rows[i] for i in ids] == [sid, None, sid, sid, sid]
            row = await s.get(Storyline, sid)
            assert row is not None and row.title_edited
            assert (await s.get(Event, ids[1])).storyline_detached  # type: ignore[union-attr]
    logged = [r.getMessage() for r in caplog.records]
    assert any("renamed" in m and "admin" in m for m in logged), logged
    assert any(f"storyline {new} merged into {sid}" in m for m in logged), logged


async def test_an_alert_says_which_storyline_and_what_the_new_source_adds(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        watch = await make_watch(h.db, "NATO communique", "NATO communique")
        sid, ids = await china_story(h.db, watch)
        async with h.db.session() as s:
            reuters = (
                await s.scalars(select(Entry).where(Entry.event_id == ids[2]).order_by(Entry.id))
            ).all()[-1]
            reuters.brief = "Allies pledge [at least 40 billion euros](https://evil.example) *now*"
            alert = await s.scalar(select(Alert.id).where(Alert.event_id == ids[2]))
            (view,) = await _load_views(s, [alert])  # type: ignore[list-item]
    embed = alert_embed(view).to_dict()
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Storyline"] == (
        f"Part of *China support for Russia's war* — 2 earlier events since 26 Apr · story #{sid}"
    )
    added = fields["+1 source"]
    assert added.startswith("Reuters — adds: ‘Allies pledge")
    assert not re.search(r"(?<!\\)\[[^\]]*\]\(", added), added  # no live masked link
    assert "\\*now\\*" in added
