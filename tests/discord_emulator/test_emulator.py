"""Drive a real discord.py 2.7 bot against the emulator and check what Discord would see."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.discord_emulator import (
    AttachmentSpec,
    ChannelSpec,
    CommandNotPermitted,
    DiscordEmulator,
    DriverError,
    GuildSpec,
    MemberSpec,
    Perm,
    RoleSpec,
    missing_access,
    rate_limited,
    server_error,
    unknown_channel,
)
from tests.discord_emulator.fixtures import discord_emulator, make_discord_emulator

__all__ = ["discord_emulator", "make_discord_emulator"]

GUILD = 500_000_000_000_000_001
GENERAL = 500_000_000_000_000_101
ALERTS = 500_000_000_000_000_102
ADMIN_ROLE = 500_000_000_000_000_201
ADMIN = 500_000_000_000_001_001
USER = 500_000_000_000_001_002

COMMAND_NAMES = {"watch", "options", "post", "feedback", "export", "broken"}

WORLD = GuildSpec(
    GUILD,
    "Newsroom",
    channels=[ChannelSpec(GENERAL, "general"), ChannelSpec(ALERTS, "alerts")],
    roles=[RoleSpec(ADMIN_ROLE, "Editors", Perm.MANAGE_GUILD)],
    members=[MemberSpec(ADMIN, "ada", roles=[ADMIN_ROLE]), MemberSpec(USER, "bob")],
)


class ConfirmView(discord.ui.View):
    """Two buttons; "confirm" edits the message it is on."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.success, custom_id="confirm")
    async def confirm(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        button.disabled = True
        await interaction.response.edit_message(content="Confirmed", view=self)

    @discord.ui.button(label="Details", style=discord.ButtonStyle.secondary, custom_id="details")
    async def details(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        await interaction.response.send_message("Only you see this", ephemeral=True)


class PickView(discord.ui.View):
    """A string select that answers with the picked values."""

    @discord.ui.select(
        custom_id="pick",
        options=[discord.SelectOption(label="Reuters"), discord.SelectOption(label="Bloomberg")],
        max_values=2,
    )
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select[Any]) -> None:
        await interaction.response.send_message("Picked " + ", ".join(select.values))


class Feedback(discord.ui.Modal, title="Feedback"):
    text: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Text", custom_id="feedback-text")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"Thanks: {self.text.value}", ephemeral=True)


def make_bot(  # noqa: C901 (a bot with one command of each kind)
    *, sync_guild: bool = True, intents: discord.Intents | None = None, **kwargs: Any
) -> commands.Bot:
    """Return a small bot: a command group, every option type, a view, send/edit, a modal."""
    bot = commands.Bot(
        command_prefix="!",
        intents=intents or discord.Intents.default(),
        guild_ready_timeout=0.01,
        **kwargs,
    )
    events: list[str] = []
    bot.test_events = events  # type: ignore[attr-defined]
    watch = app_commands.Group(
        name="watch",
        description="Manage watches",
        default_permissions=discord.Permissions(manage_guild=True),
    )

    @watch.command(name="add", description="Add a watch")
    @app_commands.describe(query="What to look for", channel="Where alerts go")
    async def watch_add(
        interaction: discord.Interaction, query: str, channel: discord.TextChannel, limit: int = 5
    ) -> None:
        await interaction.response.send_message(
            f"Watching {query!r} in {channel.mention} (limit {limit})",
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def complete_name(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = ["nato communique", "dual-use", "china russia drone"]
        return [app_commands.Choice(name=n, value=n) for n in names if current in n]

    @watch.command(name="remove", description="Remove a watch")
    @app_commands.autocomplete(name=complete_name)
    async def watch_remove(interaction: discord.Interaction, name: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send(f"Removed {name}", ephemeral=True)

    bot.tree.add_command(watch)

    @bot.tree.command(name="options", description="Echo every option type")
    async def options(
        interaction: discord.Interaction,
        text: str,
        number: int,
        ratio: float,
        flag: bool,
        who: discord.Member,
        where: discord.TextChannel,
        role: discord.Role,
        file: discord.Attachment,
        pick: app_commands.Range[int, 1, 3] = 1,
    ) -> None:
        data = await file.read()
        await interaction.response.send_message(
            f"{text}|{number}|{ratio}|{flag}|{who.id}|{where.id}|{role.name}|{data.decode()}|{pick}"
        )

    @bot.tree.command(name="post", description="Post, then edit, an alert with a file")
    async def post(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        channel = bot.get_channel(ALERTS)
        assert isinstance(channel, discord.TextChannel)
        embed = discord.Embed(title="NATO communique", description="Bloomberg")
        msg = await channel.send(
            embed=embed,
            view=ConfirmView(),
            file=discord.File(io.BytesIO(b"csv,data"), filename="sources.csv"),
            nonce="alert-1",
        )
        embed.description = "Bloomberg\n+1 source: Reuters"
        await msg.edit(embed=embed)
        await interaction.edit_original_response(content=f"Posted {msg.id}")

    @bot.tree.command(name="feedback", description="Open a modal")
    async def feedback(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(Feedback())

    @bot.tree.command(name="export", description="Deferred answer with a file, then a followup")
    async def export(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        data = io.BytesIO(b"id,title\n1,NATO")
        await interaction.followup.send("Export ready", file=discord.File(data, "timeline.csv"))
        await interaction.followup.send("Anything else?", view=PickView())

    @bot.tree.command(name="broken", description="Sends an oversized embed")
    async def broken(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(embed=discord.Embed(title="x" * 300))

    @bot.event
    async def on_message(message: discord.Message) -> None:
        if message.content == "!ping":
            await message.channel.send("pong")

    @bot.event
    async def on_resumed() -> None:
        bot.test_events.append("resumed")  # type: ignore[attr-defined]

    async def setup_hook() -> None:
        bot.add_view(ConfirmView())
        if sync_guild:
            guild = discord.Object(GUILD)
            bot.tree.copy_global_to(guild=guild)
            await bot.tree.sync(guild=guild)
        else:
            await bot.tree.sync()

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


@pytest.fixture
async def emu() -> Any:
    async with DiscordEmulator(guilds=[WORLD]) as emulator:
        yield emulator


async def test_bot_starts_syncs_commands_and_sees_guild(emu: DiscordEmulator) -> None:
    bot = make_bot()
    async with emu.run_bot(bot):
        guild = bot.get_guild(GUILD)
        assert guild is not None and guild.name == "Newsroom"
        assert {c.name for c in guild.text_channels} == {"general", "alerts"}
        assert guild.get_role(ADMIN_ROLE) is not None
        assert {c["name"] for c in emu.commands(GUILD)} == COMMAND_NAMES
        assert emu.command_id("watch", GUILD) > 0
        assert emu.commands() == []
    assert [r.route for r in emu.requests[:3]] == [
        "/users/@me",
        "/oauth2/applications/@me",
        "/applications/{application_id}/guilds/{guild_id}/commands",
    ]


async def test_subcommand_with_options_and_permissions(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()):
        ix = await emu.invoke("watch add", {"query": "nato", "channel": "alerts"}, member="ada")
        assert ix.callback_type == 4 and not ix.ephemeral
        assert ix.original is not None
        assert ix.original.content == f"Watching 'nato' in <#{ALERTS}> (limit 5)"
        assert ix.original.allowed_mentions == {"parse": []}
        assert emu.channel_messages("general")[-1].id == ix.original.id

        with pytest.raises(CommandNotPermitted):
            await emu.invoke("watch add", {"query": "x", "channel": "alerts"}, member="bob")
        with pytest.raises(DriverError, match="missing required"):
            await emu.invoke("watch add", {"query": "x"}, member="ada")
        with pytest.raises(DriverError, match="no option"):
            await emu.invoke(
                "watch add", {"query": "x", "channel": ALERTS, "typo": 1}, member="ada"
            )


async def test_every_option_type_and_attachment_download(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()):
        ix = await emu.invoke(
            "options",
            {
                "text": "hi",
                "number": 7,
                "ratio": 0.5,
                "flag": True,
                "who": "bob",
                "where": GENERAL,
                "role": "Editors",
                "file": AttachmentSpec("a.txt", b"file-bytes", "text/plain"),
                "pick": 3,
            },
        )
        assert ix.original is not None
        assert ix.original.content == f"hi|7|0.5|True|{USER}|{GENERAL}|Editors|file-bytes|3"
        with pytest.raises(DriverError, match="above max_value"):
            await emu.invoke(
                "options",
                {
                    "text": "",
                    "number": 1,
                    "ratio": 1.0,
                    "flag": False,
                    "who": "bob",
                    "where": GENERAL,
                    "role": "Editors",
                    "file": AttachmentSpec("a", b""),
                    "pick": 4,
                },
            )


async def test_autocomplete_and_deferred_ephemeral_followup(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()):
        choices = await emu.autocomplete("watch remove", "name", "drone", member="ada")
        assert choices == [{"name": "china russia drone", "value": "china russia drone"}]

        ix = await emu.invoke("watch remove", {"name": "dual-use"}, member="ada")
        assert ix.deferred
        done = await emu.wait_for_interaction(
            ix, lambda r: bool(r.original and not r.original.loading)
        )
        assert done.original is not None and done.original.content == "Removed dual-use"
        assert done.ephemeral
        assert emu.channel_messages(GENERAL) == []


async def test_channel_send_edit_file_button_click(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()):
        ix = await emu.invoke("post", member="ada")
        alert = await emu.wait_for_message(ALERTS, lambda m: "+1 source: Reuters" in m.text())
        assert alert.edit_count == 1
        assert alert.history[0]["embeds"][0]["description"] == "Bloomberg"
        assert [a.filename for a in alert.attachments] == ["sources.csv"]
        assert alert.attachments[0].data == b"csv,data"
        assert alert.nonce == "alert-1"
        await emu.wait_for_interaction(
            ix, lambda r: bool(r.original and "Posted" in r.original.content)
        )

        click = await emu.click(alert, "confirm", member="bob")
        assert click.callback_type == 7
        assert alert.content == "Confirmed"
        assert (alert.component("confirm") or {}).get("disabled") is True
        with pytest.raises(DriverError, match="disabled"):
            await emu.click(alert, "confirm")

        details = await emu.click(alert, "details", member="bob")
        assert details.ephemeral and details.original is not None
        assert details.original.content == "Only you see this"


async def test_modal_round_trip(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()):
        ix = await emu.invoke("feedback")
        assert ix.callback_type == 9 and ix.modal is not None
        submitted = await emu.submit_modal(ix, {"feedback-text": "great"})
        assert submitted.original is not None
        assert submitted.original.content == "Thanks: great"


async def test_oversized_embed_is_a_violation_with_field_path(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()):
        ix = await emu.invoke("broken", wait=False)
        await emu.wait_for(lambda: emu.violations)
        assert emu.violations[0].field == "data.embeds[0].title"
        assert "300 characters" in emu.violations[0].message
        assert not ix.acknowledged
    emu.violations.clear()


async def test_nonce_returns_original_message(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()) as bot:
        channel = bot.get_channel(ALERTS)
        first = await channel.send("alert", nonce="outbox-42")
        second = await channel.send("alert", nonce="outbox-42")
        third = await channel.send("alert", nonce="outbox-43")
        assert first.id == second.id != third.id
        assert emu.nonce_hits == 1
        assert [m.content for m in emu.channel_messages(ALERTS)] == ["alert", "alert"]
        emu.expire_nonces()
        fourth = await channel.send("alert", nonce="outbox-42")
        assert fourth.id != first.id


async def test_held_message_creates_are_stored_but_unanswered_until_released(
    emu: DiscordEmulator,
) -> None:
    async with emu.run_bot(make_bot()) as bot:
        channel = bot.get_channel(ALERTS)
        hold = emu.hold_message_creates(after=1)
        await channel.send("answered", nonce="n-1")
        pending = asyncio.create_task(channel.send("held", nonce="n-2"))
        await hold.wait_held()
        # The POST went through (the message exists) but the bot has no answer yet.
        assert [m.content for m in emu.channel_messages(ALERTS)] == ["answered", "held"]
        assert not pending.done()
        assert [(ch, m.content if m else None) for ch, m in hold.held] == [(ALERTS, "held")]
        hold.release()
        held = await pending
        assert held.id == emu.channel_messages(ALERTS)[1].id
        await channel.send("after", nonce="n-3")  # released: no longer held
        assert len(emu.channel_messages(ALERTS)) == 3


async def test_hold_without_store_creates_nothing_until_released(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()) as bot:
        channel = bot.get_channel(ALERTS)
        hold = emu.hold_message_creates(store=False)
        pending = asyncio.create_task(channel.send("later", nonce="n-1"))
        await hold.wait_held()
        assert emu.channel_messages(ALERTS) == [] and hold.held == [(ALERTS, None)]
        hold.release()
        assert (await pending).content == "later"
        assert [m.content for m in emu.channel_messages(ALERTS)] == ["later"]


async def test_faults_rate_limit_server_error_forbidden_unknown(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()) as bot:
        channel = bot.get_channel(ALERTS)
        limited = emu.inject_fault(
            "POST /channels/{channel_id}/messages", rate_limited(0.01), times=2
        )
        msg = await channel.send("after 429s")
        assert limited.exhausted and len(limited.hits) == 2
        assert emu.message(msg.id).content == "after 429s"

        broken = emu.inject_fault(f"POST /channels/{ALERTS}/messages", server_error())
        await channel.send("after 500")
        assert broken.exhausted

        emu.inject_fault("POST /channels/*/messages", missing_access())
        with pytest.raises(discord.Forbidden) as forbidden:
            await channel.send("nope")
        assert forbidden.value.code == 50001

        emu.inject_fault("PATCH /channels/{channel_id}/messages/{message_id}", unknown_channel())
        with pytest.raises(discord.NotFound) as gone:
            await msg.edit(content="x")
        assert gone.value.code == 10003

        with pytest.raises(discord.NotFound) as unknown:
            await bot.http.send_message(123, params=discord.http.handle_message_parameters("x"))
        assert unknown.value.code == 10003


async def test_gateway_drop_resumes_and_replays_missed_events(emu: DiscordEmulator) -> None:
    bot = make_bot()
    async with emu.run_bot(bot):
        async with emu.gateway_outage():
            ix = await emu.invoke(
                "watch add", {"query": "drone", "channel": ALERTS}, member="ada", wait=False
            )
        resume = await emu.wait_for_resume()
        assert resume.replayed == ["INTERACTION_CREATE"]
        assert resume.path == "/resume-gateway"
        await emu.wait_for_interaction_response(ix)
        assert ix.original is not None and "drone" in ix.original.content
        await emu.wait_for(lambda: "resumed" in bot.test_events)  # type: ignore[attr-defined]
        assert len(emu.gateway.sessions) == 1


async def test_members_intent_chunking_and_global_sync(make_discord_emulator: Any) -> None:
    emu = await make_discord_emulator(guilds=[WORLD])
    intents = discord.Intents.default()
    intents.members = True
    bot = make_bot(sync_guild=False, intents=intents)
    async with emu.run_bot(bot):
        guild = bot.get_guild(GUILD)
        assert guild is not None and guild.chunked
        assert {m.name for m in guild.members} == {"ada", "bob", "Emulated Bot"}
        assert {c["name"] for c in emu.commands()} == COMMAND_NAMES
        ix = await emu.invoke("watch add", {"query": "q", "channel": GENERAL}, member="ada")
        assert ix.original is not None and "q" in ix.original.content


async def test_unknown_route_fails_the_emulator(make_discord_emulator: Any) -> None:
    emu = await make_discord_emulator()
    async with emu.run_bot(make_bot(sync_guild=False)) as bot:
        with pytest.raises(discord.NotFound):
            await bot.http.request(discord.http.Route("GET", "/users/@me/connections"))
    assert emu.unknown_routes == ["GET /users/@me/connections"]
    with pytest.raises(AssertionError, match="unknown route"):
        emu.assert_clean()
    emu.unknown_routes.clear()


async def test_wait_for_message_times_out_with_description(
    discord_emulator: DiscordEmulator,
) -> None:
    with pytest.raises(AssertionError, match=r"no matching message in channel \d+ after 0.01 s"):
        await discord_emulator.wait_for_message("general", timeout=0.01)


async def test_rejected_body_reaches_discord_py_as_http_400_naming_the_field(
    emu: DiscordEmulator,
) -> None:
    async with emu.run_bot(make_bot()) as bot:
        channel = bot.get_channel(ALERTS)
        with pytest.raises(discord.HTTPException) as rejected:
            await channel.send("x" * 2001)
        assert rejected.value.status == 400 and rejected.value.code == 50035
        assert "In content: 2001 characters" in str(rejected.value)
        assert emu.channel_messages(ALERTS) == []
        assert [v.field for v in emu.violations] == ["content"]
    emu.violations.clear()


async def test_auto_sharded_bot_asks_gateway_bot_and_gets_shard_in_ready(
    emu: DiscordEmulator,
) -> None:
    bot = commands.AutoShardedBot(
        command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.01
    )
    async with emu.run_bot(bot):
        assert bot.shard_count == 1
        assert bot.get_guild(GUILD) is not None
    assert emu.requests_to("GET /gateway/bot")
    identify = next(f for f in emu.gateway.received if f.get("op") == 2)
    assert identify["d"]["shard"] == [0, 1]


async def test_deferred_followup_file_select_history_and_delete(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()) as bot:
        ix = await emu.invoke("export", member="bob")
        await emu.wait_for_interaction(ix, lambda r: len(r.followups) == 1)
        assert ix.original is not None and not ix.original.loading
        assert ix.original.content == "Export ready"
        assert ix.original.attachments[0].filename == "timeline.csv"
        assert ix.original.attachments[0].data == b"id,title\n1,NATO"
        menu = ix.followups[0]
        assert menu.component("pick") is not None

        picked = await emu.select(menu, "pick", ["Reuters", "Bloomberg"], member="ada")
        assert picked.original is not None
        assert picked.original.content == "Picked Reuters, Bloomberg"
        with pytest.raises(DriverError, match="not allowed"):
            await emu.select(menu, "pick", ["AP"])

        channel = bot.get_channel(GENERAL)
        history = [m.content async for m in channel.history(limit=10)]
        assert history == ["Picked Reuters, Bloomberg", "Anything else?", "Export ready"]
        newest = await channel.fetch_message(picked.original.id)
        await newest.delete()
        assert emu.message(newest.id).deleted
        assert [m.content for m in emu.channel_messages(GENERAL)][-1] == "Anything else?"


async def test_member_message_reaches_on_message(emu: DiscordEmulator) -> None:
    intents = discord.Intents.default()
    intents.message_content = True
    async with emu.run_bot(make_bot(intents=intents)):
        await emu.user_message("general", "!ping", member="bob")
        reply = await emu.wait_for_message("general", lambda m: m.content == "pong")
        assert reply.payload["author"]["id"] == str(emu.bot_id)


async def test_click_without_a_listening_view_is_refused(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()) as bot:
        channel = bot.get_channel(GENERAL)
        view = PickView()
        sent = await channel.send("menu", view=view)
        view.stop()
        with pytest.raises(DriverError, match="no view listening for 'pick'"):
            await emu.select(sent.id, "pick", ["Reuters"], timeout=0.05)
        ix = await emu.select(sent.id, "pick", ["Reuters"], require_listener=False, wait=False)
        assert not ix.acknowledged


async def test_second_acknowledgement_is_rejected_like_discord(emu: DiscordEmulator) -> None:
    async with emu.run_bot(make_bot()):
        ix = await emu.invoke("feedback")
        url = f"{emu.api_url}/interactions/{ix.id}/{ix.token}/callback"
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, json={"type": 4, "data": {"content": "again"}}) as resp,
        ):
            assert resp.status == 400
            assert (await resp.json())["code"] == 40060
        assert ix.callback_type == 9
