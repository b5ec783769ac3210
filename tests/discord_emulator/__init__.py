"""A Discord API emulator for end-to-end tests with the real discord.py client.

It serves REST v10 and a websocket gateway on 127.0.0.1, validates every request body the bot
sends against Discord's own OpenAPI description (``spec/``) plus the limits the schema does not
carry, and gives tests drivers that act like members (slash commands, autocomplete, buttons,
selects, modals) and readers that see what Discord would store.

Starting a bot against it::

    import discord
    from discord.ext import commands
    from tests.discord_emulator import DiscordEmulator

    async def test_hello() -> None:
        bot = commands.Bot(
            command_prefix="!",
            intents=discord.Intents.default(),   # no members intent: no chunking needed
            guild_ready_timeout=0.05,            # on_ready waits this long after GUILD_CREATE
        )
        ...  # add commands; sync them in setup_hook: await bot.tree.sync(guild=...)
        async with DiscordEmulator() as emu, emu.run_bot(bot):
            ix = await emu.invoke("hello", {"name": "Ada"}, member="admin")
            assert ix.original.content == "Hello Ada"

``run_bot`` patches ``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY``
(``emu.patch_discord()`` does only that, for code that starts the bot itself), runs
``bot.start(emu.token)`` in a task, waits for ``on_ready``, and on exit awaits ``bot.close()``
and the task, so no session or socket is left for ``filterwarnings=error`` to find. Start your
own way with ``with emu.patch_discord(): task = asyncio.create_task(bot.start(emu.token))``,
then ``await bot.close()`` and ``await task`` before the emulator exits. With the members
intent, either pass ``chunk_guilds_at_startup=False`` or let the emulator answer op 8.

Leaving ``async with DiscordEmulator(...)`` stops the server and, with ``strict=True`` (the
default), raises ``AssertionError`` if any request broke Discord's rules (``emu.violations``:
method, path, JSON path of the field, message) or hit a route the emulator does not know
(``emu.unknown_routes``). Such requests are also answered like Discord would: 400 with an
``Invalid Form Body`` error tree naming the field (or 404 for unknown routes). The pytest
fixtures ``discord_emulator`` and ``make_discord_emulator`` in :mod:`.fixtures` do the same at
teardown; import them into your test module or conftest.

World: ``DiscordEmulator(guilds=[GuildSpec(id, name, channels=[ChannelSpec(id, "alerts")],
roles=[RoleSpec(id, "Admin", Perm.MANAGE_GUILD)], members=[MemberSpec(id, "ann",
roles=[role_id])])])``. Without ``guilds`` you get :func:`default_guild`: channels
``general`` and ``alerts``, members ``admin`` (Manage Server) and ``user``. Ids are yours;
ids the emulator makes (messages, commands, interactions) are deterministic snowflakes.

Drivers (all ``async``; guild, channel and member default to the first of each; channels and
members may be given as spec, id or name):

* ``emu.invoke("watch add", {"query": "nato", "channel": "alerts"}, member="user")`` - run a
  slash command (``"group sub"`` paths, every option type; users/channels/roles/attachments are
  sent with ``resolved`` data; ``AttachmentSpec`` for files). It waits until the bot
  acknowledged and returns an :class:`InteractionRecord`. A member without the command's
  ``default_member_permissions`` raises :class:`CommandNotPermitted` (Discord hides the
  command) unless ``bypass_permissions=True``; options a user could not enter raise
  :class:`DriverError`. ``wait=False`` returns right after dispatching.
* ``await emu.autocomplete("watch remove", "name", "na")`` - returns the suggested choices.
* ``await emu.click(message, "custom-id", member=...)``, ``await emu.select(message, id,
  ["v"])``, ``await emu.submit_modal(interaction, {"field-id": "text"})``. discord.py
  registers a view only after reading the response that created the message, so these first
  wait until the bot started by ``run_bot`` (or passed to ``emu.attach_bot(bot)``) listens for
  that custom_id, and raise :class:`DriverError` if it never does (``require_listener=False``
  sends anyway, e.g. to test an expired view).
* ``await emu.user_message("general", "!ping", member="user")`` - a member's message
  (MESSAGE_CREATE; content blanked without the message-content intent).
* ``await emu.dispatch("EVENT_NAME", data)`` - any raw gateway event.

Reading:

* ``emu.channel_messages(channel)`` - visible messages oldest first, as :class:`StoredMessage`
  (``content``, ``embeds``, ``components``, ``attachments`` with bytes, ``allowed_mentions``,
  ``flags``, ``nonce``, ``history`` of earlier versions, ``edit_count``, ``text()``);
  ``emu.message(id)`` for any message, ephemeral or deleted ones included.
* An :class:`InteractionRecord` has ``callback_type``, ``acknowledged``, ``deferred``,
  ``ephemeral``, ``original`` (the response message; a deferral's "thinking" message is
  replaced by the first followup or an edit of ``@original``, as on Discord), ``followups``,
  ``autocomplete_choices``, ``modal``, ``text()``.
* ``emu.commands(guild_id)`` / ``emu.commands()`` - the synced command tree (ids included);
  ``emu.command_id(name, guild_id)``.
* ``emu.requests`` / ``emu.requests_to("POST /channels/*/messages")`` - every request made.

Waiting (never sleep; every wait re-checks on each emulator event and fails with a
description of the current state after ``timeout`` seconds):

* ``await emu.wait_for_message(channel, predicate, timeout=5)`` - the newest visible message
  matching the predicate, including later edits of an existing message.
* ``await emu.wait_for_interaction_response(ix)``, ``await emu.wait_for_interaction(ix,
  lambda r: r.original and not r.original.loading)``.
* ``await emu.wait_until_ready()``, ``await emu.wait_for_resume()``, ``await emu.wait_for(fn)``.
* While ``run_bot`` runs, every wait fails at once if the bot's ``start()`` task died.

Faults: ``rule = emu.inject_fault("POST /channels/{channel_id}/messages", rate_limited(0.01),
times=2)`` answers the next two matching requests with 429 (``retry_after``, X-RateLimit-*
headers, ``Via``); also ``server_error()`` (500; discord.py sleeps 1 s before retrying),
``missing_access()`` (403, 50001), ``missing_permissions()`` (403, 50013),
``unknown_channel()`` (404, 10003), ``unknown_message()`` (404, 10008) or any ``Fault``.
``rule.hits`` lists the requests it answered. Gateway: ``async with emu.gateway_outage():``
drops the websocket and holds reconnects; events dispatched inside (e.g. ``invoke(...,
wait=False)``) are replayed when the bot RESUMEs on READY's ``resume_gateway_url``; then
``await emu.wait_for_resume()`` (``emu.gateway.resumes`` records what was replayed).
``emu.drop_gateway()`` drops without holding.

Holding messages: ``hold = emu.hold_message_creates(after=30)`` answers 30 more
``POST /channels/{id}/messages`` and holds every later one (its message is stored first unless
``store=False``: the POST went through, the answer never comes); ``await hold.wait_held()``
returns once one is held (the bot is known to be mid-delivery, e.g. to SIGKILL it), ``hold.held``
lists them and ``hold.release()`` answers them and stops holding.

Message nonces: ``POST /channels/{id}/messages`` with ``nonce`` and ``enforce_nonce: true``
(discord.py sends both for ``channel.send(nonce=...)``) returns the original message when the
same nonce was used in that channel within ``nonce_window`` seconds (default 300);
``emu.nonce_hits`` counts such deduplications and ``emu.expire_nonces()`` ends the window.

Channel webhooks: ``GET``/``POST /channels/{id}/webhooks`` (the bot needs Manage Webhooks in
``bot_permissions``, else 403 50013), ``POST /webhooks/{id}/{token}`` with ``username``,
``avatar_url`` and ``wait``, and ``GET``/``PATCH``/``DELETE`` of its messages; the webhook id
tells them from interaction followups (the application id). ``emu.webhooks`` holds them,
``emu.delete_webhook(id)`` deletes one as a member would (then 404 10015 Unknown Webhook).

Threads: ``POST /channels/{id}/messages/{message_id}/threads`` starts a public thread (type 11,
id = the message's; needs Create Public Threads, a second one answers 160004); messages are
posted and listed in it like in a channel (posting needs Send Messages in Threads);
``emu.threads`` and ``emu.thread_messages(id)`` show them. Forum channels (type 15, given in
a ``GuildSpec``): ``POST /channels/{forum}/threads`` with ``name`` and ``message`` opens a post
(a thread whose first message has the thread's id); ``GET /guilds/{id}/threads/active`` lists
every thread.

Not emulated: DMs, threads without a starter message in text channels, thread archiving,
reactions, voice, channel permission overwrites, rate-limit buckets (only injected 429s).
"""

from tests.discord_emulator.drivers import DriverError
from tests.discord_emulator.records import (
    Fault,
    FaultRule,
    InteractionRecord,
    RecordedRequest,
    StoredAttachment,
    StoredMessage,
    Violation,
    missing_access,
    missing_permissions,
    rate_limited,
    server_error,
    unknown_channel,
    unknown_message,
)
from tests.discord_emulator.server import CommandNotPermitted, DiscordEmulator, MessageHold
from tests.discord_emulator.specs import (
    AttachmentSpec,
    ChannelSpec,
    GuildSpec,
    MemberSpec,
    Perm,
    RoleSpec,
    default_guild,
)

__all__ = [
    "AttachmentSpec",
    "ChannelSpec",
    "CommandNotPermitted",
    "DiscordEmulator",
    "DriverError",
    "Fault",
    "FaultRule",
    "GuildSpec",
    "InteractionRecord",
    "MemberSpec",
    "MessageHold",
    "Perm",
    "RecordedRequest",
    "RoleSpec",
    "StoredAttachment",
    "StoredMessage",
    "Violation",
    "default_guild",
    "missing_access",
    "missing_permissions",
    "rate_limited",
    "server_error",
    "unknown_channel",
    "unknown_message",
]
