"""Issue 18: alert messages the team shapes. Templates are validated where they are written,
rendered with escaped values (the template's own Markdown kept), previewed before saving,
and delivered through the real client to the emulator.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from discordbot import render
from tests.discordbot.admin_harness import admin_bot, answered
from tests.discordbot.harness import ALERTS_CHANNEL, GUILD, harness
from tests.discordbot.outbox_seed import alert, event, watch
from tests.discordbot.test_markdown_escape import _ESCAPED
from tests.discordbot.test_render import make_alert
from timeline.cli.main import main
from timeline.render.templates import PLACEHOLDERS, render_template, template_problem
from timeline.storage.models import Watch

TEMPLATE = "**{title}** — {sources}\n{snippet}\n-# {published} · {watch} · `/event show {event_id}`"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{titel}", "unknown placeholder {titel}"),
        ("{title!r}", "takes no format"),
        ("{title:>20}", "takes no format"),
        ("{title.upper}", "unknown placeholder"),
        ("{title", "write {{ or }} for a literal brace"),
        ("}", "write {{ or }}"),
        ("@everyone {title}", "must not mention anyone"),
        ("<@&123> {title}", "must not mention anyone"),
        ("   ", "must not be empty"),
        ("x" * 2001, "too long"),
    ],
)
def test_bad_templates_are_refused_with_the_reason(template: str, reason: str) -> None:
    problem = template_problem(template)
    assert problem is not None and reason in problem


def test_every_placeholder_is_accepted_and_filled() -> None:
    text = " ".join("{" + name + "}" for name in PLACEHOLDERS)
    assert template_problem(text) is None
    values = {name: f"<{name}>" for name in PLACEHOLDERS}
    assert render_template(text, values) == " ".join(f"<{n}>" for n in PLACEHOLDERS)
    assert render_template("{{literal}} {title}", {"title": "T"}) == "{literal} T"


def test_values_are_escaped_and_the_templates_markdown_is_kept() -> None:
    hostile = "[click](https://evil.example) @everyone <@&99> **x**"
    a = make_alert(
        event_title=hostile, template=TEMPLATE, colour=0x1F8B4C, role_id=4242, watch_name="w"
    )
    data = render.alert_embed(a).to_dict()
    description = data["description"]
    assert description.startswith("**")  # the template's bold
    assert "\n-# <t:" in description  # its subtext line and a Discord timestamp
    masked = _ESCAPED.sub("\x00", description)
    assert "](https://evil" not in masked and "**x**" not in masked
    assert "@everyone" not in description and "<@&99>" not in description
    assert data["color"] == 0x1F8B4C
    assert data["author"]["name"] == "Bloomberg"
    message = render.alert_message(a)
    assert message.content == "<@&4242>"  # the only ping: the watch's role


def test_role_placeholder_is_the_only_mention_a_template_can_show() -> None:
    a = make_alert(template="{role} {title}", role_id=4242, event_title="<@&1> hi")
    description = render.alert_embed(a).to_dict()["description"]
    assert description.startswith("<@&4242> ")
    assert "<@&1>" not in description


def test_a_bad_template_in_the_config_stops_the_start_with_exit_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n'
        '[[watches]]\nname = "w"\nquery = "NATO"\nchannel_id = 1001\n'
        'template = "{title} {headline}"\ncolour = "green"\n'
    )
    assert main(["--config", str(cfg), "config", "check"]) == 78
    err = capsys.readouterr().err
    assert "watches[0].template: unknown placeholder {headline}" in err
    assert 'watches[0].colour: must be a colour like "#1f8b4c"' in err
    assert main(["--config", str(cfg), "db", "upgrade"]) == 78


async def test_template_preview_then_save_then_the_alert_is_posted_with_it(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h, admin_bot(h) as bot:
        w = await watch(h.db, h.seed, "NATO communique", ALERTS_CHANNEL)
        async with h.db.session() as session:
            await session.execute(update(Watch).values(guild_id=GUILD.id, origin="discord"))
        ev = await event(h.db, h.seed, "Draft communique [names](https://evil.example) China")
        await alert(h.db, w, ev, ALERTS_CHANNEL)

        bad = await h.emu.invoke("watch template", {"name": "NATO communique", "template": "{x}"})
        assert "unknown placeholder {x}" in await answered(h, bad)

        preview = await h.emu.invoke(
            "watch preview", {"name": "NATO communique", "template": TEMPLATE}
        )
        assert (await answered(h, preview)).startswith("Preview (not posted")
        assert preview.original is not None
        shown = preview.original.embeds[0]
        assert shown["description"].startswith("**Draft communique \\[names\\]")
        assert h.emu.channel_messages(ALERTS_CHANNEL) == []  # nothing posted

        saved = await h.emu.invoke(
            "watch template",
            {"name": "NATO communique", "template": TEMPLATE, "colour": "#1f8b4c"},
        )
        assert "now alerts with its template" in await answered(h, saved)
        await bot.delivery.drain()
        (posted,) = h.emu.channel_messages(ALERTS_CHANNEL)
        embed = posted.payload["embeds"][0]
        assert embed["description"] == shown["description"]
        assert embed["color"] == 0x1F8B4C

        cleared = await h.emu.invoke("watch template", {"name": "NATO communique", "clear": True})
        assert "the default message" in await answered(h, cleared)


def test_cli_twins_preview_and_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n')
    assert main(["--config", str(cfg), "db", "upgrade"]) == 0
    assert main(["--config", str(cfg), "watch", "add", "w", "NATO", "--channel", "1001"]) == 0
    capsys.readouterr()
    assert main(["--config", str(cfg), "watch", "template", "w", "--template", "{nope}"]) == 1
    assert "unknown placeholder {nope}" in capsys.readouterr().err
    assert main(["--config", str(cfg), "watch", "template", "w", "--template", TEMPLATE]) == 0
    assert "now alerts with its template" in capsys.readouterr().out
    assert main(["--config", str(cfg), "watch", "preview", "w"]) == 1
    assert "has not matched any story yet" in capsys.readouterr().err
