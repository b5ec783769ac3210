"""The Discord emulator: REST v10 and a websocket gateway on 127.0.0.1, plus test drivers."""

# The waits take ``timeout=`` on purpose: on expiry they fail with a description of the
# emulator's state (messages in the channel, the interaction record), which a bare
# ``asyncio.timeout`` around the call could not give.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from tests.discord_emulator import validate
from tests.discord_emulator.drivers import DriverError, build_command_data, find_command
from tests.discord_emulator.gateway import (
    INTENT_GUILD_MESSAGES,
    INTENT_MESSAGE_CONTENT,
    Gateway,
    GatewaySession,
    ResumeRecord,
)
from tests.discord_emulator.records import (
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    Fault,
    FaultRule,
    InteractionRecord,
    RecordedRequest,
    StoredAttachment,
    StoredMessage,
    Violation,
)
from tests.discord_emulator.specs import (
    BASE_TIME,
    AttachmentSpec,
    ChannelSpec,
    GuildSpec,
    MemberSpec,
    Perm,
    RoleSpec,
    SnowflakeFactory,
    default_guild,
    iso,
    snowflake_time,
)

if TYPE_CHECKING:
    import discord

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
REQUEST_SIZE_LIMIT = 25 * 1024 * 1024


@dataclass
class ChannelWebhookRecord:
    """A channel webhook (type 1) the bot created, and the messages posted through it."""

    id: int
    token: str
    channel_id: int
    guild_id: int
    name: str
    messages: list[StoredMessage]
    deleted: bool = False

    def payload(self, user: dict[str, Any], *, with_token: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(self.id),
            "type": 1,
            "guild_id": str(self.guild_id),
            "channel_id": str(self.channel_id),
            "user": user,
            "name": self.name,
            "avatar": None,
            "application_id": None,
        }
        if with_token:
            out["token"] = self.token
        return out


class CommandNotPermitted(DriverError):
    """The member lacks the command's ``default_member_permissions``; Discord hides it."""


class ApiError(Exception):
    """An error answer from a REST handler (Discord's JSON error shape)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class UploadedFile:
    """A ``files[n]`` part of a multipart request."""

    field: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class _Call:
    method: str
    path: str
    template: str
    params: dict[str, str]
    query: Mapping[str, str]
    body: Any
    files: list[UploadedFile]


Handler = Callable[[_Call], Awaitable[tuple[int, Any]]]


class _Waiters:
    """Wake every waiter whenever the emulator's state changes."""

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[None]] = []
        # Raises when waiting is pointless (the bot under test has died).
        self.guard: Callable[[], None] = lambda: None

    def notify(self) -> None:
        for fut in self._futures:
            if not fut.done():
                fut.set_result(None)
        self._futures.clear()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                self.guard()
                result = predicate()
                if result:
                    return result
                fut = asyncio.get_running_loop().create_future()
                self._futures.append(fut)
                await fut


class MessageHold:
    """Hold message creation: `after` creates are answered, every later one is held.

    With ``store=True`` a held request creates its message first and only the answer is held
    (the POST went through but the bot never hears of it, as when it dies mid-request);
    with ``store=False`` nothing is created until `release()`. ``held`` lists the held
    requests' channel and message (None while not stored); ``holding`` is set at the first.
    """

    def __init__(self, emulator: DiscordEmulator, after: int, store: bool) -> None:
        self.after = after
        self.store = store
        self.passed = 0
        self.held: list[tuple[int, StoredMessage | None]] = []
        self.holding = asyncio.Event()
        self.released = False
        self._emulator = emulator
        self._release = asyncio.Event()

    def should_hold(self) -> bool:
        """Count one create request; tell whether it is to be held."""
        if self.released or self.passed < self.after:
            self.passed += 1
            return False
        return True

    async def hold(self, channel_id: int, message: StoredMessage | None) -> None:
        """Keep the request waiting until `release()`."""
        self.held.append((channel_id, message))
        self.holding.set()
        self._emulator._notify()
        await self._release.wait()

    async def wait_held(self, count: int = 1, *, timeout: float = 10.0) -> None:
        """Wait until `count` requests are held."""
        await self._emulator.wait_for(
            lambda: len(self.held) >= count,
            timeout=timeout,
            what=f"{count} held message creates (passed {self.passed}, held {len(self.held)})",
        )

    def release(self) -> None:
        """Answer the held requests and stop holding."""
        self.released = True
        self._release.set()
        if self._emulator._message_hold is self:
            self._emulator._message_hold = None


def _template_regex(template: str) -> re.Pattern[str]:
    parts = []
    for segment in template.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$")


def _int(value: str, code: int, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ApiError(404, code, f"Unknown {what}") from None


class DiscordEmulator:
    """Emulate enough of Discord for a real discord.py bot; see the package docstring."""

    def __init__(
        self,
        guilds: Sequence[GuildSpec] | None = None,
        *,
        bot_id: int = 800_000_000_000_000_001,
        bot_name: str = "Emulated Bot",
        token: str = "emulator-token",
        bot_permissions: int = Perm.DEFAULT_BOT,
        strict: bool = True,
        nonce_window: float = 300.0,
    ) -> None:
        self.guilds: list[GuildSpec] = list(guilds) if guilds is not None else [default_guild()]
        self.bot_id = bot_id
        self.application_id = bot_id
        self.bot_name = bot_name
        self.token = token
        self.bot_permissions = bot_permissions
        self.strict = strict
        self.nonce_window = nonce_window

        self.requests: list[RecordedRequest] = []
        self.violations: list[Violation] = []
        self.unknown_routes: list[str] = []
        self.faults: list[FaultRule] = []
        self.interactions: dict[int, InteractionRecord] = {}
        self.nonce_hits = 0
        # Channel webhooks (id -> record); interaction follow-ups use the application id.
        self.webhooks: dict[int, ChannelWebhookRecord] = {}
        # Threads started from a message (type 11, id = the starter message's id).
        self.threads: dict[int, ChannelSpec] = {}

        self._ids = SnowflakeFactory()
        self._messages: dict[int, StoredMessage] = {}
        self._channel_log: dict[int, list[StoredMessage]] = {}
        self._nonces: dict[tuple[int, str], tuple[float, StoredMessage]] = {}
        self._attachments: dict[int, StoredAttachment] = {}
        self._commands: dict[int | None, list[dict[str, Any]]] = {}
        self._command_ids: dict[tuple[int | None, int, str], int] = {}
        self._waiters = _Waiters()
        self._message_hold: MessageHold | None = None
        self._bot: Any = None
        self._gateway = Gateway(self)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._routes: list[tuple[str, str, re.Pattern[str], Handler]] = []
        self._build_routes()
        names = [c.id for g in self.guilds for c in g.channels]
        if len(names) != len(set(names)):
            raise ValueError("channel ids must be unique across guilds")

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> DiscordEmulator:
        """Start serving on 127.0.0.1 (a free port)."""
        app = web.Application(client_max_size=REQUEST_SIZE_LIMIT)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        app.router.add_get("/gateway", self._gateway.handle)
        app.router.add_get("/resume-gateway", self._gateway.handle)
        app.router.add_get("/cdn/attachments/{attachment_id}/{filename}", self._cdn)
        app.router.add_route("*", "/{tail:.*}", self._not_api)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        log.debug("discord emulator listening on %s", self.base_url)
        return self

    async def stop(self) -> None:
        """Close gateway connections and the HTTP server."""
        if self._message_hold is not None:
            self._message_hold.release()
        await self._gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordEmulator:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        await self.stop()
        if self.strict and exc_type is None:
            self.assert_clean()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """The REST base, ``http://127.0.0.1:PORT/api/v10`` (what ``Route.BASE`` becomes)."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """The websocket URL a bot IDENTIFYs on."""
        return f"ws://127.0.0.1:{self._port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """The websocket URL READY tells the bot to RESUME on."""
        return f"ws://127.0.0.1:{self._port}/resume-gateway"

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[DiscordEmulator]:
        """Point discord.py's REST base and default gateway at the emulator, then restore them."""
        import discord.gateway  # noqa: PLC0415 (discord.py: only when the bot is pointed here)
        import discord.http  # noqa: PLC0415 (discord.py: only when the bot is pointed here)
        import yarl  # noqa: PLC0415 (discord.py: only when the bot is pointed here)

        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield self
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    @contextlib.asynccontextmanager
    async def run_bot(self, bot: discord.Client, *, timeout: float = 10.0) -> AsyncIterator[Any]:
        """Start ``bot`` against the emulator, wait for ``on_ready``, and close it cleanly after."""
        with self.patch_discord():
            async with bot:
                self.attach_bot(bot)
                task = asyncio.create_task(bot.start(self.token), name="emulated-bot")
                task.add_done_callback(lambda _: self._notify())
                self._waiters.guard = lambda: self._check_bot_task(task)
                ready = asyncio.create_task(bot.wait_until_ready())
                try:
                    done, _ = await asyncio.wait(
                        {task, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                    if ready not in done:
                        if task in done:
                            task.result()
                            raise AssertionError("bot.start() returned before the bot was ready")
                        raise AssertionError(f"bot was not ready within {timeout} s")
                    yield bot
                finally:
                    ready.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await ready
                    self._waiters.guard = lambda: None
                    await bot.close()
                    self._bot = None
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    @staticmethod
    def _check_bot_task(task: asyncio.Task[None]) -> None:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise AssertionError(f"the bot stopped with {task.exception()!r}") from task.exception()

    def attach_bot(self, bot: discord.Client) -> None:
        """Let component drivers wait until ``bot`` listens for a component (``run_bot`` does it).

        discord.py registers a view only after it has read the HTTP response that created the
        message, so a click sent right after the message appeared could beat it. The emulator
        wraps the bot's ``store_view`` to be told when views arrive.
        """
        state = bot._connection
        original = state.store_view

        def store_view(view: Any, message_id: int | None = None) -> None:
            original(view, message_id)
            self._notify()

        state.store_view = store_view  # type: ignore[method-assign]
        self._bot = bot

    def _bot_listens(self, component_type: int, custom_id: str, message_id: int | None) -> bool:
        if self._bot is None:
            return True
        store = self._bot._connection._view_store
        if message_id is None:
            return custom_id in store._modals
        for key in (message_id, None):
            if (component_type, custom_id) in store._views.get(key, {}):
                return True
        return any(pattern.fullmatch(custom_id) for pattern in store._dynamic_items)

    async def _wait_listener(
        self, component_type: int, custom_id: str, message_id: int | None, timeout: float
    ) -> None:
        try:
            await self._waiters.wait_for(
                lambda: self._bot_listens(component_type, custom_id, message_id), timeout
            )
        except TimeoutError:
            where = f"message {message_id}" if message_id else "a modal"
            raise DriverError(
                f"the bot has no view listening for {custom_id!r} on {where} after {timeout} s; "
                "Discord would answer 'This interaction failed'. Pass require_listener=False "
                "to send the interaction anyway."
            ) from None

    def assert_clean(self) -> None:
        """Fail if any request broke Discord's rules or hit a route the emulator does not know."""
        lines = [f"violation: {v}" for v in self.violations]
        lines += [f"unknown route: {r}" for r in self.unknown_routes]
        if lines:
            raise AssertionError("Discord emulator saw problems:\n  " + "\n  ".join(lines))

    # -- waiting ---------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._waiters.notify()

    async def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float = 5.0, what: str = "condition"
    ) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every emulator event); return it."""
        try:
            return await self._waiters.wait_for(predicate, timeout)
        except TimeoutError:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}" + self._recent_problems()
            ) from None

    def _recent_problems(self) -> str:
        problems = [str(v) for v in self.violations[-5:]] + self.unknown_routes[-5:]
        return ("; emulator problems: " + "; ".join(problems)) if problems else ""

    async def wait_until_ready(self, *, timeout: float = 5.0) -> None:
        """Wait until the emulator has sent READY and every GUILD_CREATE."""
        await self.wait_for(lambda: self._gateway.ready_count > 0, timeout=timeout, what="READY")

    async def wait_for_message(
        self,
        channel: int | str | ChannelSpec,
        predicate: Callable[[StoredMessage], bool] | None = None,
        *,
        timeout: float = 5.0,
    ) -> StoredMessage:
        """Return the newest visible message in ``channel`` matching ``predicate``, waiting for it.

        The predicate is re-checked on every change, so it also waits for edits.
        """
        channel_id = self._channel_arg(channel).id

        def find() -> StoredMessage | None:
            for msg in reversed(self.channel_messages(channel_id)):
                if predicate is None or predicate(msg):
                    return msg
            return None

        try:
            found: StoredMessage = await self._waiters.wait_for(find, timeout)
        except TimeoutError:
            have = "\n    ".join(repr(m) for m in self.channel_messages(channel_id)) or "(none)"
            raise AssertionError(
                f"no matching message in channel {channel_id} after {timeout} s; messages:\n    {have}"
                + self._recent_problems()
            ) from None
        return found

    async def wait_for_interaction_response(
        self, interaction: int | InteractionRecord, *, timeout: float = 5.0
    ) -> InteractionRecord:
        """Wait until the bot answered the interaction callback; return the record."""
        record = self._interaction_arg(interaction)
        await self.wait_for(
            lambda: record.acknowledged,
            timeout=timeout,
            what=f"a response to interaction {record.id} ({self._describe(record)})",
        )
        return record

    async def wait_for_interaction(
        self,
        interaction: int | InteractionRecord,
        predicate: Callable[[InteractionRecord], bool],
        *,
        timeout: float = 5.0,
    ) -> InteractionRecord:
        """Wait until ``predicate(record)`` holds (e.g. the deferred response was edited)."""
        record = self._interaction_arg(interaction)
        await self.wait_for(
            lambda: predicate(record), timeout=timeout, what=f"interaction state {record!r}"
        )
        return record

    # -- reading state ---------------------------------------------------------------------------

    def channel_messages(self, channel: int | str | ChannelSpec) -> list[StoredMessage]:
        """Return the channel's visible messages, oldest first (no ephemeral, no deleted)."""
        if isinstance(channel, int) and channel in self.threads:
            channel_id = channel
        else:
            channel_id = self._channel_arg(channel).id
        return [
            m for m in self._channel_log.get(channel_id, []) if not m.deleted and not m.ephemeral
        ]

    def message(self, message_id: int) -> StoredMessage:
        """Return any stored message by id (ephemeral and deleted ones included)."""
        return self._messages[message_id]

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """Return the synced commands of a scope (``None`` = global) as Discord returned them."""
        return [dict(c) for c in self._commands.get(guild_id, [])]

    def command_id(self, name: str, guild_id: int | None = None) -> int:
        """Return the id of the synced command ``name`` in the scope."""
        for cmd in self._commands.get(guild_id, []):
            if cmd["name"] == name:
                return int(cmd["id"])
        raise KeyError(f"no command {name!r} synced for scope {guild_id}")

    def requests_to(self, pattern: str) -> list[RecordedRequest]:
        """Return the recorded requests matching ``"METHOD /path/{param}"`` (``*`` wildcards)."""
        rule = FaultRule(pattern, Fault(0, None), 1)
        return [r for r in self.requests if rule.matches(r.method, r.path)]

    @property
    def gateway(self) -> Gateway:
        """The gateway (sessions, ``resumes``, ``connections``, ``received`` frames)."""
        return self._gateway

    # -- faults ----------------------------------------------------------------------------------

    def hold_message_creates(self, after: int = 0, *, store: bool = True) -> MessageHold:
        """Answer the next `after` ``POST /channels/{id}/messages``, then hold every later one.

        A test hook for "the bot is mid-delivery": ``await hold.wait_held()`` returns once a
        request is held, so the test knows where the bot is without sleeping; then, e.g., it
        kills the bot and calls ``hold.release()``. See :class:`MessageHold`.
        """
        if self._message_hold is not None:
            self._message_hold.release()
        self._message_hold = MessageHold(self, after, store)
        return self._message_hold

    def inject_fault(self, pattern: str, fault: Fault, *, times: int = 1) -> FaultRule:
        """Answer the next ``times`` requests matching ``pattern`` with ``fault``.

        ``pattern`` is ``"POST /channels/{channel_id}/messages"``-like: an optional method,
        then a path relative to ``/api/v10`` where ``{name}`` or ``*`` matches one segment.
        """
        rule = FaultRule(pattern, fault, times)
        self.faults.append(rule)
        return rule

    # -- gateway drivers -------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway DISPATCH to the bot (kept for replay while it is disconnected)."""
        await self._gateway.dispatch(event, data)

    async def drop_gateway(self, *, code: int = 4000) -> int:
        """Close the bot's websocket from the server side; return the resume count before it."""
        before = len(self._gateway.resumes)
        await self._gateway.drop(code)
        return before

    @contextlib.asynccontextmanager
    async def gateway_outage(self, *, code: int = 4000) -> AsyncIterator[None]:
        """Drop the websocket and hold reconnects for the block; events sent inside are replayed.

        After the block, ``await emu.wait_for_resume()`` waits for the RESUMED dispatch.
        """
        self._gateway.hold()
        try:
            await self._gateway.drop(code)
            yield
        finally:
            self._gateway.release()

    async def wait_for_resume(self, count: int = 1, *, timeout: float = 5.0) -> ResumeRecord:
        """Wait until ``count`` RESUMEs in total have succeeded; return the latest."""
        await self.wait_for(
            lambda: len(self._gateway.resumes) >= count, timeout=timeout, what="a gateway RESUME"
        )
        return self._gateway.resumes[-1]

    # -- interaction drivers ---------------------------------------------------------------------

    async def invoke(
        self,
        command: str,
        options: Mapping[str, object] | None = None,
        *,
        guild: int | GuildSpec | None = None,
        channel: int | str | ChannelSpec | None = None,
        member: int | str | MemberSpec | None = None,
        locale: str = "en-US",
        bypass_permissions: bool = False,
        wait: bool = True,
        timeout: float = 5.0,
    ) -> InteractionRecord:
        """Run ``/command [group] [sub]`` with ``options`` as a member; wait for the acknowledgement.

        Raises :class:`CommandNotPermitted` if the member lacks the command's
        ``default_member_permissions`` (Discord would hide the command) unless
        ``bypass_permissions``; raises :class:`DriverError` for options a user could not enter.
        """
        g = self._guild_arg(guild)
        words = command.strip().lstrip("/").split()
        if not words:
            raise DriverError("empty command")
        cmd = find_command(self._commands, g.id, words[0])
        m = self._member_arg(g, member)
        self._check_command_permission(g, m, cmd, bypass_permissions)
        data = build_command_data(cmd, words[1:], options or {}, guild_id=g.id, resolver=self)
        record = await self._create_interaction(
            2, g, self._channel_arg(channel, g), m, data, locale
        )
        if wait:
            await self.wait_for_interaction_response(record, timeout=timeout)
        return record

    async def autocomplete(
        self,
        command: str,
        focused: str,
        value: str = "",
        options: Mapping[str, object] | None = None,
        *,
        guild: int | GuildSpec | None = None,
        channel: int | str | ChannelSpec | None = None,
        member: int | str | MemberSpec | None = None,
        locale: str = "en-US",
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Type ``value`` into option ``focused``; return the choices the bot suggested."""
        g = self._guild_arg(guild)
        words = command.strip().lstrip("/").split()
        cmd = find_command(self._commands, g.id, words[0])
        m = self._member_arg(g, member)
        data = build_command_data(
            cmd,
            words[1:],
            {**(options or {}), focused: value},
            guild_id=g.id,
            resolver=self,
            focused=focused,
        )
        record = await self._create_interaction(
            4, g, self._channel_arg(channel, g), m, data, locale
        )
        await self.wait_for_interaction_response(record, timeout=timeout)
        if record.callback_type != 8:
            raise AssertionError(f"autocomplete answered with callback type {record.callback_type}")
        return list(record.autocomplete_choices or [])

    async def click(
        self,
        message: int | StoredMessage,
        custom_id: str,
        *,
        member: int | str | MemberSpec | None = None,
        wait: bool = True,
        require_listener: bool = True,
        timeout: float = 5.0,
    ) -> InteractionRecord:
        """Click the button ``custom_id`` on a stored message as a member."""
        msg = self._message_arg(message)
        comp = msg.component(custom_id)
        if comp is None or comp.get("type") != 2:
            ids = [b.get("custom_id") for b in msg.buttons()]
            raise DriverError(f"message {msg.id} has no button {custom_id!r}; buttons: {ids}")
        if comp.get("disabled"):
            raise DriverError(f"button {custom_id!r} on message {msg.id} is disabled")
        if require_listener:
            await self._wait_listener(2, custom_id, msg.id, timeout)
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._component_interaction(msg, member, data, wait, timeout)

    async def select(
        self,
        message: int | StoredMessage,
        custom_id: str,
        values: Sequence[str],
        *,
        member: int | str | MemberSpec | None = None,
        wait: bool = True,
        require_listener: bool = True,
        timeout: float = 5.0,
    ) -> InteractionRecord:
        """Choose ``values`` in the string select ``custom_id`` on a stored message."""
        msg = self._message_arg(message)
        comp = msg.component(custom_id)
        if comp is None or comp.get("type") != 3:
            raise DriverError(f"message {msg.id} has no string select {custom_id!r}")
        allowed = [o.get("value") for o in comp.get("options") or []]
        bad = [v for v in values if v not in allowed]
        low, high = comp.get("min_values", 1), comp.get("max_values", 1)
        if bad or not low <= len(values) <= high:
            raise DriverError(
                f"select {custom_id!r}: {list(values)} not allowed ({allowed}, {low}-{high})"
            )
        if require_listener:
            await self._wait_listener(3, custom_id, msg.id, timeout)
        data = {"custom_id": custom_id, "component_type": 3, "values": list(values)}
        return await self._component_interaction(msg, member, data, wait, timeout)

    async def submit_modal(
        self,
        interaction: int | InteractionRecord,
        values: Mapping[str, str],
        *,
        wait: bool = True,
        require_listener: bool = True,
        timeout: float = 5.0,
    ) -> InteractionRecord:
        """Submit the modal the bot opened in answer to ``interaction`` with text ``values``."""
        parent = self._interaction_arg(interaction)
        if parent.modal is None:
            raise DriverError(f"interaction {parent.id} did not open a modal")
        if require_listener:
            await self._wait_listener(5, str(parent.modal.get("custom_id")), None, timeout)
        rows: list[dict[str, Any]] = []
        for comp in parent.modal.get("components") or []:
            if comp.get("type") == 1:
                inner = [self._modal_value(c, values) for c in comp.get("components") or []]
                rows.append({"type": 1, "components": inner})
            elif comp.get("type") == 18 and isinstance(comp.get("component"), dict):
                rows.append({"type": 18, "component": self._modal_value(comp["component"], values)})
        data = {"custom_id": parent.modal.get("custom_id"), "components": rows}
        g = self.guild(parent.guild_id or 0)
        member = self._member_arg(g, int(parent.payload["member"]["user"]["id"]))
        channel = self._channel_arg(parent.channel_id or 0, g)
        record = await self._create_interaction(
            5, g, channel, member, data, parent.payload["locale"], source=parent.source_message
        )
        if wait:
            await self.wait_for_interaction_response(record, timeout=timeout)
        return record

    @staticmethod
    def _modal_value(comp: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
        custom_id = comp.get("custom_id")
        value = values.get(str(custom_id), comp.get("value") or "")
        if comp.get("required", True) and not value and comp.get("type") == 4:
            raise DriverError(f"modal field {custom_id!r} is required")
        return {"type": comp.get("type"), "custom_id": custom_id, "value": value}

    async def user_message(
        self,
        channel: int | str | ChannelSpec,
        content: str,
        *,
        member: int | str | MemberSpec | None = None,
    ) -> StoredMessage:
        """Post a message as a member and dispatch MESSAGE_CREATE (for prefix commands)."""
        ch = self._channel_arg(channel)
        g = self._guild_of_channel(ch.id)
        m = self._member_arg(g, member)
        msg = self._new_message(ch.id, {"content": content}, [], author=m.user_payload())
        data = dict(msg.payload, guild_id=str(g.id), member=self._member_payload(g, m))
        session = self._gateway.current
        if session is not None and session.intents & INTENT_MESSAGE_CONTENT == 0:
            if f"<@{self.bot_id}>" not in content:
                data["content"] = ""
        await self.dispatch("MESSAGE_CREATE", data)
        return msg

    # -- driver helpers --------------------------------------------------------------------------

    def guild(self, guild_id: int) -> GuildSpec:
        """Return the guild spec with this id."""
        for g in self.guilds:
            if g.id == guild_id:
                return g
        raise KeyError(f"no guild {guild_id}")

    def _guild_arg(self, guild: int | GuildSpec | None) -> GuildSpec:
        if guild is None:
            return self.guilds[0]
        return self.guild(guild.id if isinstance(guild, GuildSpec) else guild)

    def _channel_arg(
        self, channel: int | str | ChannelSpec | None, guild: GuildSpec | None = None
    ) -> ChannelSpec:
        guilds = [guild] if guild is not None else self.guilds
        if channel is None:
            return next(c for c in guilds[0].channels if c.type in (0, 5))
        key = channel.id if isinstance(channel, ChannelSpec) else channel
        for g in guilds:
            for c in g.channels:
                if key in (c.id, c.name):
                    return c
        raise DriverError(f"no channel {channel!r}")

    def _guild_of_channel(self, channel_id: int) -> GuildSpec:
        thread = self.threads.get(channel_id)
        if thread is not None and thread.parent_id is not None:
            channel_id = thread.parent_id
        for g in self.guilds:
            if any(c.id == channel_id for c in g.channels):
                return g
        raise KeyError(channel_id)

    def _member_arg(self, guild: GuildSpec, member: int | str | MemberSpec | None) -> MemberSpec:
        if isinstance(member, MemberSpec):
            return member
        if member is None:
            if not guild.members:
                raise DriverError(f"guild {guild.id} has no members to act as")
            return guild.members[0]
        try:
            return guild.member(member)
        except KeyError as exc:
            raise DriverError(str(exc)) from None

    def _message_arg(self, message: int | StoredMessage) -> StoredMessage:
        msg_id = message.id if isinstance(message, StoredMessage) else message
        msg = self._messages.get(msg_id)
        if msg is None or msg.deleted:
            raise DriverError(f"no message {msg_id}")
        return msg

    def _interaction_arg(self, interaction: int | InteractionRecord) -> InteractionRecord:
        if isinstance(interaction, InteractionRecord):
            return interaction
        return self.interactions[interaction]

    def _describe(self, record: InteractionRecord) -> str:
        data = record.payload.get("data") or {}
        return str(data.get("name") or data.get("custom_id") or record.type)

    def _check_command_permission(
        self, guild: GuildSpec, member: MemberSpec, cmd: Mapping[str, Any], bypass: bool
    ) -> None:
        required = cmd.get("default_member_permissions")
        if required is None or bypass:
            return
        needed = int(required)
        have = guild.permissions_of(member)
        if have & needed != needed:
            raise CommandNotPermitted(
                f"member {member.name!r} lacks permissions {needed:#x} that /{cmd['name']} requires "
                "(default_member_permissions); Discord would not offer the command. "
                "Pass bypass_permissions=True to send it anyway."
            )

    # Resolver protocol used by drivers.build_command_data.
    def resolve_user(
        self, guild_id: int | None, value: object
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Return (user, member-without-user) payloads for a member spec, id or name."""
        g = self.guild(guild_id) if guild_id is not None else self.guilds[0]
        spec = value if isinstance(value, MemberSpec) else g.member(value)  # type: ignore[arg-type]
        member = self._member_payload(g, spec)
        member.pop("user")
        member["permissions"] = str(g.permissions_of(spec))
        return spec.user_payload(), member

    def resolve_channel(self, value: object) -> dict[str, Any]:
        """Return the resolved-channel payload for a channel spec, id or name."""
        key = value.id if isinstance(value, ChannelSpec) else value
        for g in self.guilds:
            for c in g.channels:
                if key in (c.id, c.name):
                    return {**c.payload(g.id), "permissions": str(Perm.ALL)}
        raise KeyError(f"no channel {value!r}")

    def resolve_role(self, guild_id: int | None, value: object) -> dict[str, Any]:
        """Return the role payload for a role spec, id or name."""
        g = self.guild(guild_id) if guild_id is not None else self.guilds[0]
        key = value.id if isinstance(value, RoleSpec) else value
        return g.role(key).payload()  # type: ignore[arg-type]

    def resolve_attachment(self, value: AttachmentSpec) -> dict[str, Any]:
        """Store a member's attachment and return its payload (served under /cdn)."""
        att = self._store_attachment(value.filename, value.data, value.content_type, None)
        return att.payload()

    async def _component_interaction(
        self,
        msg: StoredMessage,
        member: int | str | MemberSpec | None,
        data: dict[str, Any],
        wait: bool,
        timeout: float,
    ) -> InteractionRecord:
        g = self._guild_of_channel(msg.channel_id)
        m = self._member_arg(g, member)
        channel = self._channel_arg(msg.channel_id, g)
        extra = {"message": dict(msg.payload, guild_id=str(g.id))}
        record = await self._create_interaction(3, g, channel, m, data, "en-US", extra, msg)
        if wait:
            await self.wait_for_interaction_response(record, timeout=timeout)
        return record

    async def _create_interaction(
        self,
        itype: int,
        guild: GuildSpec,
        channel: ChannelSpec,
        member: MemberSpec,
        data: dict[str, Any],
        locale: str,
        extra: Mapping[str, Any] | None = None,
        source: StoredMessage | None = None,
    ) -> InteractionRecord:
        iid = self._ids.next()
        token = f"emulated-interaction-token-{iid}"
        perms = guild.permissions_of(member)
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": itype,
            "token": token,
            "version": 1,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": guild.locale, "features": []},
            "guild_locale": guild.locale,
            "locale": locale,
            "channel_id": str(channel.id),
            "channel": {**channel.payload(guild.id), "permissions": str(perms)},
            "member": {**self._member_payload(guild, member), "permissions": str(perms)},
            "app_permissions": str(self.bot_permissions),
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "data": data,
            **(extra or {}),
        }
        record = InteractionRecord(iid, token, itype, payload, channel.id, guild.id)
        record.source_message = source
        self.interactions[iid] = record
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    # -- payloads --------------------------------------------------------------------------------

    def bot_user_payload(self) -> dict[str, Any]:
        """Return the bot's user object."""
        return {
            "id": str(self.bot_id),
            "username": self.bot_name,
            "global_name": None,
            "discriminator": "0",
            "avatar": None,
            "bot": True,
            "public_flags": 0,
        }

    def _member_payload(self, guild: GuildSpec, member: MemberSpec) -> dict[str, Any]:
        return {
            "user": member.user_payload(),
            "roles": [str(r) for r in member.roles if r != guild.id],
            "nick": member.nick,
            "avatar": None,
            "joined_at": iso(BASE_TIME),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }

    def _member_payloads(self, guild: GuildSpec) -> list[dict[str, Any]]:
        bot = MemberSpec(self.bot_id, self.bot_name, bot=True)
        members = [self._member_payload(guild, m) for m in guild.members]
        members.append(self._member_payload(guild, bot))
        members[-1]["user"] = self.bot_user_payload()
        return members

    def _guild_payload(self, guild: GuildSpec) -> dict[str, Any]:
        members = self._member_payloads(guild)
        owner = next((m for m in guild.members if m.owner), None)
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(owner.id if owner else 1),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": guild.locale,
            "features": [],
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500_000,
            "joined_at": iso(BASE_TIME),
            "large": False,
            "unavailable": False,
            "member_count": len(members),
            "roles": [r.payload() for r in guild.all_roles()],
            "emojis": [],
            "stickers": [],
            "channels": [c.payload() for c in guild.channels],
            "threads": [],
            "members": members,
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _ready_payload(self, session: GatewaySession) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": 10,
            "user": {**self.bot_user_payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in self.guilds],
            "session_id": session.session_id,
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": [],
            "session_type": "normal",
            "auth": {},
            "_trace": ["discord-emulator"],
        }
        if "shard" in session.identify:
            data["shard"] = session.identify["shard"]
        return data

    def _token_ok(self, token: object) -> bool:
        return isinstance(token, str) and token.removeprefix("Bot ") == self.token

    def _gateway_violation(self, message: str) -> None:
        self.violations.append(Violation("WS", "/gateway", None, "", message))
        self._notify()

    # -- HTTP plumbing ---------------------------------------------------------------------------

    @staticmethod
    def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
        if status == 204 or payload is None:
            return web.Response(status=204, headers=dict(headers or {}))
        # Exactly "application/json": discord.py only decodes JSON for that content type.
        return web.Response(
            status=status,
            body=json.dumps(payload).encode(),
            headers={**(headers or {}), "Content-Type": "application/json"},
        )

    async def _not_api(self, request: web.Request) -> web.Response:
        self.unknown_routes.append(f"{request.method} {request.path}")
        self._notify()
        return self._json(404, {"message": "404: Not Found", "code": 0})

    async def _cdn(self, request: web.Request) -> web.Response:
        try:
            att = self._attachments[int(request.match_info["attachment_id"])]
        except (KeyError, ValueError):
            return web.Response(status=404, text="not found")
        return web.Response(
            body=att.data, content_type=att.content_type or "application/octet-stream"
        )

    def _match(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
        for route_method, template, regex, handler in self._routes:
            if route_method != method:
                continue
            found = regex.match(path)
            if found:
                return template, handler, found.groupdict()
        return None

    async def _read_body(
        self, request: web.Request
    ) -> tuple[Any, list[UploadedFile], list[validate.Problem]]:
        ctype = request.content_type
        files: list[UploadedFile] = []
        problems: list[validate.Problem] = []
        body: Any = None
        if ctype == "multipart/form-data":
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    problems.append(validate.Problem("", "nested multipart is not supported"))
                    continue
                name = part.name or ""
                raw = bytes(await part.read())
                if name == "payload_json":
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        problems.append(validate.Problem("payload_json", "invalid JSON", "50109"))
                elif re.fullmatch(r"files\[\d+\]", name):
                    ptype = part.headers.get("Content-Type")
                    files.append(UploadedFile(name, part.filename or "unknown", ptype, raw))
                else:
                    problems.append(validate.Problem(name, "unexpected multipart field"))
            return body, files, problems
        raw = await request.read()
        if not raw:
            return None, files, problems
        if ctype != "application/json":
            problems.append(validate.Problem("", f"unsupported Content-Type {ctype!r}"))
        try:
            body = json.loads(raw)
        except ValueError:
            problems.append(
                validate.Problem("", "The request body contains invalid JSON.", "50109")
            )
        return body, files, problems

    def _problems(
        self, method: str, template: str, body: Any, files: list[UploadedFile]
    ) -> list[validate.Problem]:
        schema = validate.request_schema(template, method)
        if body is None:
            if (
                schema is not None
                and method in ("POST", "PUT", "PATCH")
                and template != ("/channels/{channel_id}/typing")
            ):
                return [validate.Problem("", "request body is required", "50109")]
            return []
        problems = validate.schema_problems(template, method, body)
        n = len(files)
        if template == "/channels/{channel_id}/messages" and method == "POST":
            problems += validate.message_problems(body, require_content=True, file_count=n)
        elif template == "/webhooks/{webhook_id}/{webhook_token}" and method == "POST":
            problems += validate.message_problems(body, require_content=True, file_count=n)
        elif method == "PATCH" and "/messages/" in template:
            problems += validate.message_problems(body)
        elif template.endswith("/callback") and isinstance(body, dict):
            data = body.get("data")
            if body.get("type") == 4:
                problems += validate.message_problems(
                    data, prefix="data", require_content=True, file_count=n
                )
            elif body.get("type") == 7:
                problems += validate.message_problems(data, prefix="data")
            elif body.get("type") == 8:
                problems += validate.autocomplete_problems(data)
        elif template.endswith("/commands") and method == "PUT":
            problems += validate.command_problems(body)
        problems += self._attachment_ref_problems(body, files, template)
        return problems

    @staticmethod
    def _attachment_ref_problems(
        body: Any, files: list[UploadedFile], template: str
    ) -> list[validate.Problem]:
        container = body.get("data") if template.endswith("/callback") else body
        if not isinstance(container, dict):
            return []
        prefix = "data." if template.endswith("/callback") else ""
        uploaded = {int(f.field[6:-1]) for f in files}
        problems = []
        for i, att in enumerate(container.get("attachments") or []):
            if not isinstance(att, dict):
                continue
            try:
                att_id = int(att.get("id"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            # Small ids refer to files[n] parts of this request; snowflakes to kept attachments.
            if att_id < 1_000_000 and att_id not in uploaded:
                problems.append(
                    validate.Problem(f"{prefix}attachments[{i}].id", f"no files[{att_id}] part")
                )
        return problems

    async def _rest(self, request: web.Request) -> web.Response:
        method = request.method
        path = "/" + request.match_info["tail"].rstrip("/")
        query = dict(request.query)
        try:
            body, files, problems = await self._read_body(request)
        except ValueError as exc:  # a malformed multipart body
            body, files, problems = None, [], [validate.Problem("", f"unreadable body: {exc}")]
        matched = self._match(method, path)
        if matched is None:
            self.unknown_routes.append(f"{method} {path}")
            self.requests.append(RecordedRequest(method, path, None, query, body, (), 404))
            self._notify()
            return self._json(404, {"message": "404: Not Found", "code": 0})
        template, handler, params = matched
        file_names = tuple(f.filename for f in files)

        def finish(
            status: int, payload: Any, headers: Mapping[str, str] | None = None
        ) -> web.Response:
            self.requests.append(
                RecordedRequest(method, path, template, query, body, file_names, status)
            )
            self._notify()
            return self._json(status, payload, headers)

        if not path.startswith(("/interactions/", "/webhooks/")):
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bot ") or not self._token_ok(auth):
                self.violations.append(
                    Violation(method, path, template, "Authorization", "missing or wrong bot token")
                )
                return finish(401, {"message": "401: Unauthorized", "code": 0})

        problems += self._problems(method, template, body, files)
        for problem in problems:
            self.violations.append(Violation(method, path, template, problem.path, problem.message))

        rule = next((r for r in self.faults if r.matches(method, path)), None)
        if rule is not None:
            fault = rule.consume(method, path)
            return finish(fault.status, fault.body, fault.headers)
        if problems:
            if any(p.code == "50006" for p in problems):
                return finish(400, {"message": "Cannot send an empty message", "code": 50006})
            return finish(400, validate.errors_body(problems))
        call = _Call(method, path, template, params, query, body, files)
        try:
            status, payload = await handler(call)
        except ApiError as exc:
            return finish(exc.status, {"message": exc.message, "code": exc.code})
        except Exception as exc:
            # A bug in the emulator must fail the test loudly, not make discord.py retry a 500.
            log.exception("discord emulator failed on %s %s", method, path)
            self.violations.append(
                Violation(method, path, template, "", f"emulator error: {exc!r}")
            )
            return finish(400, {"message": f"emulator error: {exc!r}", "code": 0})
        return finish(status, payload)

    def _build_routes(self) -> None:
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/users/@me", self._get_me),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/@me", self._get_application),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/applications/{application_id}/commands", self._get_commands),
            ("PUT", "/applications/{application_id}/commands", self._put_commands),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._get_commands,
            ),
            (
                "PUT",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._put_commands,
            ),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/channels", self._get_guild_channels),
            ("GET", "/guilds/{guild_id}/roles", self._get_guild_roles),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_guild_member),
            ("GET", "/guilds/{guild_id}/threads/active", self._active_threads),
            ("POST", "/channels/{channel_id}/threads", self._start_forum_post),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("POST", "/channels/{channel_id}/typing", self._post_typing),
            ("GET", "/channels/{channel_id}/messages", self._list_messages),
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message),
            (
                "POST",
                "/interactions/{interaction_id}/{interaction_token}/callback",
                self._interaction_callback,
            ),
            (
                "POST",
                "/channels/{channel_id}/messages/{message_id}/threads",
                self._start_thread,
            ),
            ("GET", "/channels/{channel_id}/webhooks", self._list_channel_webhooks),
            ("POST", "/channels/{channel_id}/webhooks", self._create_channel_webhook),
            ("POST", "/webhooks/{webhook_id}/{webhook_token}", self._execute_webhook),
            (
                "GET",
                "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
                self._get_webhook_message,
            ),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
                self._edit_webhook_message,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
                self._delete_webhook_message,
            ),
            (
                "GET",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._get_any_webhook_message,
            ),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._edit_any_webhook_message,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._delete_any_webhook_message,
            ),
        ]
        self._routes = [(m, t, _template_regex(t), h) for m, t, h in table]

    # -- REST handlers: identity -----------------------------------------------------------------

    async def _get_me(self, call: _Call) -> tuple[int, Any]:
        return 200, {**self.bot_user_payload(), "verified": True, "mfa_enabled": False, "flags": 0}

    async def _get_application(self, call: _Call) -> tuple[int, Any]:
        return 200, {
            "id": str(self.application_id),
            "name": self.bot_name,
            "icon": None,
            "description": "Discord emulator application",
            "summary": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "owner": {**MemberSpec(1, "owner").user_payload()},
            "team": None,
            "bot": self.bot_user_payload(),
            "redirect_uris": [],
            "tags": [],
        }

    async def _get_gateway(self, call: _Call) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url.removesuffix("/gateway") + "/gateway"}

    async def _get_gateway_bot(self, call: _Call) -> tuple[int, Any]:
        return 200, {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 86_400_000,
                "max_concurrency": 1,
            },
        }

    # -- REST handlers: commands -----------------------------------------------------------------

    def _scope(self, call: _Call) -> int | None:
        if call.params["application_id"] != str(self.application_id):
            raise ApiError(403, 50001, "Missing Access")
        if "guild_id" not in call.params:
            return None
        guild_id = _int(call.params["guild_id"], 10004, "Guild")
        try:
            self.guild(guild_id)
        except KeyError:
            raise ApiError(403, 50001, "Missing Access") from None
        return guild_id

    async def _get_commands(self, call: _Call) -> tuple[int, Any]:
        return 200, self.commands(self._scope(call))

    async def _put_commands(self, call: _Call) -> tuple[int, Any]:
        scope = self._scope(call)
        stored: list[dict[str, Any]] = []
        for raw in call.body or []:
            ctype = raw.get("type") or 1
            key = (scope, ctype, raw["name"])
            cmd_id = self._command_ids.setdefault(key, self._ids.next())
            perms = raw.get("default_member_permissions")
            cmd: dict[str, Any] = {
                "id": str(cmd_id),
                "application_id": str(self.application_id),
                "version": str(self._ids.next()),
                "type": ctype,
                "name": raw["name"],
                "description": raw.get("description") or "",
                "options": raw.get("options") or [],
                "default_member_permissions": None if perms is None else str(perms),
                "dm_permission": raw.get("dm_permission", True),
                "contexts": raw.get("contexts"),
                "integration_types": raw.get("integration_types") or [0],
                "nsfw": bool(raw.get("nsfw", False)),
            }
            for extra in ("name_localizations", "description_localizations"):
                if raw.get(extra):
                    cmd[extra] = raw[extra]
            if scope is not None:
                cmd["guild_id"] = str(scope)
            stored.append(cmd)
        self._commands[scope] = stored
        return 200, self.commands(scope)

    # -- REST handlers: guilds and channels ------------------------------------------------------

    def _guild_param(self, call: _Call) -> GuildSpec:
        try:
            return self.guild(_int(call.params["guild_id"], 10004, "Guild"))
        except KeyError:
            raise ApiError(404, 10004, "Unknown Guild") from None

    async def _get_guild(self, call: _Call) -> tuple[int, Any]:
        g = self._guild_param(call)
        payload = self._guild_payload(g)
        for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at"):
            payload.pop(key)
        return 200, payload

    async def _get_guild_channels(self, call: _Call) -> tuple[int, Any]:
        g = self._guild_param(call)
        return 200, [c.payload(g.id) for c in g.channels]

    async def _get_guild_roles(self, call: _Call) -> tuple[int, Any]:
        return 200, [r.payload() for r in self._guild_param(call).all_roles()]

    async def _get_guild_member(self, call: _Call) -> tuple[int, Any]:
        g = self._guild_param(call)
        user_id = _int(call.params["user_id"], 10013, "User")
        for member in self._member_payloads(g):
            if member["user"]["id"] == str(user_id):
                return 200, member
        raise ApiError(404, 10007, "Unknown Member")

    def _channel_param(self, call: _Call) -> ChannelSpec:
        channel_id = _int(call.params["channel_id"], 10003, "Channel")
        for g in self.guilds:
            for c in g.channels:
                if c.id == channel_id:
                    return c
        thread = self.threads.get(channel_id)
        if thread is not None:
            if not self.bot_permissions & Perm.SEND_MESSAGES_IN_THREADS and call.method == "POST":
                raise ApiError(403, 50013, "Missing Permissions")
            return thread
        raise ApiError(404, 10003, "Unknown Channel")

    async def _get_channel(self, call: _Call) -> tuple[int, Any]:
        ch = self._channel_param(call)
        return 200, ch.payload(self._guild_of_channel(ch.id).id)

    async def _post_typing(self, call: _Call) -> tuple[int, Any]:
        self._channel_param(call)
        return 204, None

    # -- REST handlers: channel messages ---------------------------------------------------------

    def _message_param(self, call: _Call) -> StoredMessage:
        ch = self._channel_param(call)
        msg_id = _int(call.params["message_id"], 10008, "Message")
        msg = self._messages.get(msg_id)
        if msg is None or msg.deleted or msg.channel_id != ch.id or msg.ephemeral:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    async def _list_messages(self, call: _Call) -> tuple[int, Any]:
        ch = self._channel_param(call)
        try:
            limit = int(call.query.get("limit", "50"))
            before = int(call.query["before"]) if "before" in call.query else None
            after = int(call.query["after"]) if "after" in call.query else None
        except ValueError:
            raise ApiError(400, 50035, "Invalid Form Body") from None
        if not 1 <= limit <= 100:
            raise ApiError(400, 50035, "Invalid Form Body")
        msgs = self.channel_messages(ch.id)
        if before is not None:
            msgs = [m for m in msgs if m.id < before]
        if after is not None:
            msgs = [m for m in msgs if m.id > after]
            msgs = msgs[:limit]
        else:
            msgs = msgs[-limit:]
        return 200, [m.snapshot() for m in reversed(msgs)]

    async def _create_message(self, call: _Call) -> tuple[int, Any]:
        ch = self._channel_param(call)
        hold = self._message_hold
        if hold is not None and hold.should_hold():
            if not hold.store:
                await hold.hold(ch.id, None)
                return await self._store_message(ch, call)
            status, payload = await self._store_message(ch, call)
            await hold.hold(ch.id, self._messages[int(payload["id"])])
            return status, payload
        return await self._store_message(ch, call)

    async def _store_message(self, ch: ChannelSpec, call: _Call) -> tuple[int, Any]:
        body = call.body
        nonce = body.get("nonce")
        key = (ch.id, str(nonce))
        if nonce is not None and body.get("enforce_nonce"):
            seen = self._nonces.get(key)
            if seen and time.monotonic() - seen[0] < self.nonce_window and not seen[1].deleted:
                # Discord returns the message created earlier with this nonce, not a new one.
                self.nonce_hits += 1
                return 200, seen[1].snapshot()
        msg = self._new_message(ch.id, body, call.files)
        if nonce is not None:
            self._nonces[key] = (time.monotonic(), msg)
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return 200, msg.snapshot()

    def expire_nonces(self) -> None:
        """Forget every nonce, as if the deduplication window had passed."""
        self._nonces.clear()

    async def _get_message(self, call: _Call) -> tuple[int, Any]:
        return 200, self._message_param(call).snapshot()

    async def _edit_message(self, call: _Call) -> tuple[int, Any]:
        msg = self._message_param(call)
        self._apply_edit(msg, call.body, call.files)
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        return 200, msg.snapshot()

    async def _delete_message(self, call: _Call) -> tuple[int, Any]:
        msg = self._message_param(call)
        msg.deleted = True
        return 204, None

    # -- REST handlers: interactions and webhooks ------------------------------------------------

    def _interaction_param(self, call: _Call) -> InteractionRecord:
        iid = _int(call.params["interaction_id"], 10062, "interaction")
        record = self.interactions.get(iid)
        if record is None or record.token != call.params["interaction_token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        return record

    async def _interaction_callback(self, call: _Call) -> tuple[int, Any]:  # noqa: C901 (one branch per interaction callback type)
        record = self._interaction_param(call)
        if record.acknowledged:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        ctype = call.body["type"]
        data = call.body.get("data") or {}
        allowed = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}.get(
            record.type, set()
        )
        if ctype not in allowed:
            reason = f"callback type {ctype} is not valid for interaction type {record.type}"
            self.violations.append(Violation(call.method, call.path, call.template, "type", reason))
            raise ApiError(400, 50035, f"Invalid Form Body: {reason}")
        source = record.source_message
        message: StoredMessage | None = None
        if ctype == 4:
            message = self._new_message(record.channel_id or 0, data, call.files, record=record)
            record.original = message
        elif ctype == 5:
            flags = FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            message = self._new_message(record.channel_id or 0, {"flags": flags}, [], record=record)
            record.original = message
        elif ctype in (6, 7):
            message = source
            if message is None:
                raise ApiError(400, 40060, "no message to update")
            if ctype == 7:
                self._apply_edit(message, data, call.files)
            record.original = message
        elif ctype == 8:
            record.autocomplete_choices = list(data.get("choices") or [])
        elif ctype == 9:
            record.modal = dict(data)
        record.callback_type = ctype
        record.callback_data = dict(data)
        if message is not None and ctype in (4, 5, 7):
            await self._dispatch_message(
                "MESSAGE_CREATE" if ctype != 7 else "MESSAGE_UPDATE", message
            )
        self._notify()
        if call.query.get("with_response", "").lower() not in ("1", "true"):
            return 204, None
        response: dict[str, Any] = {
            "interaction": {
                "id": str(record.id),
                "type": record.type,
                "response_message_id": str(message.id) if message else None,
                "response_message_loading": ctype == 5,
                "response_message_ephemeral": bool(message and message.ephemeral),
            }
        }
        resource: dict[str, Any] = {"type": ctype}
        if message is not None:
            resource["message"] = message.snapshot()
        response["resource"] = resource
        return 200, response

    def _webhook_record(self, call: _Call) -> InteractionRecord:
        if call.params["webhook_id"] != str(self.application_id):
            raise ApiError(404, 10015, "Unknown Webhook")
        token = call.params["webhook_token"]
        for record in self.interactions.values():
            if record.token == token:
                return record
        raise ApiError(404, 10015, "Unknown Webhook")

    def _webhook_message(self, call: _Call, record: InteractionRecord) -> StoredMessage:
        if "message_id" not in call.params:
            if record.original is None or record.original.deleted:
                raise ApiError(404, 10008, "Unknown Message")
            return record.original
        msg_id = _int(call.params["message_id"], 10008, "Message")
        for msg in record.messages():
            if msg.id == msg_id and not msg.deleted:
                return msg
        raise ApiError(404, 10008, "Unknown Message")

    async def _create_followup(self, call: _Call) -> tuple[int, Any]:
        record = self._webhook_record(call)
        if not record.acknowledged:
            message = "followup sent before the interaction was acknowledged"
            self.violations.append(Violation(call.method, call.path, call.template, "", message))
            raise ApiError(404, 10015, "Unknown Webhook")
        original = record.original
        if record.callback_type == 5 and original is not None and original.loading:
            # The first followup after a deferral replaces the "thinking" message (Discord docs).
            self._apply_edit(original, call.body, call.files, finish_loading=True)
            msg = original
            await self._dispatch_message("MESSAGE_UPDATE", msg)
        else:
            msg = self._new_message(record.channel_id or 0, call.body, call.files, record=record)
            record.followups.append(msg)
            await self._dispatch_message("MESSAGE_CREATE", msg)
        self._notify()
        if call.query.get("wait", "").lower() in ("1", "true"):
            return 200, msg.snapshot()
        return 204, None

    async def _get_webhook_message(self, call: _Call) -> tuple[int, Any]:
        record = self._webhook_record(call)
        return 200, self._webhook_message(call, record).snapshot()

    async def _edit_webhook_message(self, call: _Call) -> tuple[int, Any]:
        record = self._webhook_record(call)
        msg = self._webhook_message(call, record)
        self._apply_edit(msg, call.body, call.files, finish_loading=True)
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        return 200, msg.snapshot()

    async def _delete_webhook_message(self, call: _Call) -> tuple[int, Any]:
        record = self._webhook_record(call)
        self._webhook_message(call, record).deleted = True
        self._notify()
        return 204, None

    # -- REST handlers: threads -----------------------------------------------------------------

    def thread_messages(self, thread_id: int) -> list[StoredMessage]:
        """The messages posted in a thread (its starter stays in the parent channel)."""
        return self.channel_messages(thread_id) if thread_id in self.threads else []

    def _thread_payload(self, thread: ChannelSpec, archive_duration: int = 1440) -> dict[str, Any]:
        guild = self._guild_of_channel(thread.id)
        return {
            **thread.payload(guild.id),
            "owner_id": str(self.bot_id),
            "message_count": len(self.thread_messages(thread.id)),
            "member_count": 1,
            "rate_limit_per_user": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": archive_duration,
                "archive_timestamp": iso(snowflake_time(thread.id)),
                "locked": False,
            },
        }

    async def _active_threads(self, call: _Call) -> tuple[int, Any]:
        guild = self._guild_param(call)
        threads = [t for t in self.threads.values() if self._guild_of_channel(t.id) is guild]
        return 200, {"threads": [self._thread_payload(t) for t in threads], "members": []}

    async def _start_forum_post(self, call: _Call) -> tuple[int, Any]:
        forum = self._channel_param(call)
        if forum.type != 15:
            # Threads without a starter message in text channels: not emulated.
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        name = str(call.body.get("name") or "")
        message = call.body.get("message")
        if not 1 <= len(name) <= 100 or not isinstance(message, dict):
            raise ApiError(400, 50035, "Invalid Form Body")
        if not (message.get("content") or message.get("embeds")):
            raise ApiError(400, 50006, "Cannot send an empty message")
        # A forum post is a thread whose starter message has the thread's id.
        thread_id = self._ids.next()
        thread = ChannelSpec(thread_id, name, type=11, parent_id=forum.id)
        self.threads[thread_id] = thread
        msg = self._new_message(thread_id, message, call.files, msg_id=thread_id)
        await self._dispatch_message("MESSAGE_CREATE", msg)
        duration = int(call.body.get("auto_archive_duration") or 1440)
        return 201, {**self._thread_payload(thread, duration), "message": msg.snapshot()}

    async def _start_thread(self, call: _Call) -> tuple[int, Any]:
        msg = self._message_param(call)
        parent = self._channel_param(call)
        if not self.bot_permissions & Perm.CREATE_PUBLIC_THREADS:
            raise ApiError(403, 50013, "Missing Permissions")
        if parent.type not in (0, 5):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        if msg.id in self.threads:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        name = str(call.body.get("name") or "")
        if not 1 <= len(name) <= 100:
            raise ApiError(400, 50035, "Invalid Form Body")
        thread = ChannelSpec(msg.id, name, type=11, parent_id=parent.id)
        self.threads[msg.id] = thread
        guild = self._guild_of_channel(parent.id)
        self._notify()
        payload = {
            **thread.payload(guild.id),
            "owner_id": str(self.bot_id),
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": int(call.body.get("auto_archive_duration") or 1440),
                "archive_timestamp": iso(snowflake_time(msg.id)),
                "locked": False,
            },
        }
        return 201, payload

    # -- REST handlers: channel webhooks ---------------------------------------------------------

    def delete_webhook(self, webhook_id: int) -> None:
        """Delete a channel webhook, as a member with Manage Webhooks would."""
        self.webhooks[webhook_id].deleted = True

    def channel_webhooks(self, channel: int | str | ChannelSpec) -> list[ChannelWebhookRecord]:
        """The live webhooks of a channel."""
        ch = self._channel_arg(channel)
        return [w for w in self.webhooks.values() if w.channel_id == ch.id and not w.deleted]

    def _require_manage_webhooks(self) -> None:
        if not self.bot_permissions & Perm.MANAGE_WEBHOOKS:
            raise ApiError(403, 50013, "Missing Permissions")

    async def _list_channel_webhooks(self, call: _Call) -> tuple[int, Any]:
        ch = self._channel_param(call)
        self._require_manage_webhooks()
        user = self.bot_user_payload()
        return 200, [w.payload(user) for w in self.channel_webhooks(ch.id)]

    async def _create_channel_webhook(self, call: _Call) -> tuple[int, Any]:
        ch = self._channel_param(call)
        self._require_manage_webhooks()
        if ch.type not in (0, 5):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        name = str(call.body.get("name") or "")
        if not 1 <= len(name) <= 80 or "clyde" in name.lower() or "discord" in name.lower():
            raise ApiError(400, 50035, "Invalid Form Body")
        webhook_id = self._ids.next()
        token = f"wh-{webhook_id}-{self._ids.next():x}"
        guild = self._guild_of_channel(ch.id)
        record = ChannelWebhookRecord(webhook_id, token, ch.id, guild.id, name, [])
        self.webhooks[webhook_id] = record
        self._notify()
        return 200, record.payload(self.bot_user_payload())

    def _channel_webhook(self, call: _Call) -> ChannelWebhookRecord:
        webhook_id = _int(call.params["webhook_id"], 10015, "Webhook")
        record = self.webhooks.get(webhook_id)
        if record is None or record.deleted or record.token != call.params["webhook_token"]:
            raise ApiError(404, 10015, "Unknown Webhook")
        return record

    def _is_followup(self, call: _Call) -> bool:
        return call.params["webhook_id"] == str(self.application_id)

    async def _execute_webhook(self, call: _Call) -> tuple[int, Any]:
        if self._is_followup(call):
            return await self._create_followup(call)
        record = self._channel_webhook(call)
        username = call.body.get("username")
        if username is not None and not 1 <= len(str(username)) <= 80:
            raise ApiError(400, 50035, "Invalid Form Body")
        author = {
            "id": str(record.id),
            "username": str(username or record.name),
            "discriminator": "0000",
            "avatar": None,
            "bot": True,
        }
        msg = self._new_message(record.channel_id, call.body, call.files, author=author)
        msg.payload["webhook_id"] = str(record.id)
        if call.body.get("avatar_url") is not None:
            # Not part of Discord's message object; kept so tests can see what was asked for.
            msg.avatar_url = str(call.body["avatar_url"])
        record.messages.append(msg)
        await self._dispatch_message("MESSAGE_CREATE", msg)
        if call.query.get("wait", "").lower() in ("1", "true"):
            return 200, msg.snapshot()
        return 204, None

    def _channel_webhook_message(self, call: _Call) -> StoredMessage:
        record = self._channel_webhook(call)
        msg_id = _int(call.params["message_id"], 10008, "Message")
        for msg in record.messages:
            if msg.id == msg_id and not msg.deleted:
                return msg
        raise ApiError(404, 10008, "Unknown Message")

    async def _get_any_webhook_message(self, call: _Call) -> tuple[int, Any]:
        if self._is_followup(call):
            return await self._get_webhook_message(call)
        return 200, self._channel_webhook_message(call).snapshot()

    async def _edit_any_webhook_message(self, call: _Call) -> tuple[int, Any]:
        if self._is_followup(call):
            return await self._edit_webhook_message(call)
        msg = self._channel_webhook_message(call)
        self._apply_edit(msg, call.body, call.files)
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        return 200, msg.snapshot()

    async def _delete_any_webhook_message(self, call: _Call) -> tuple[int, Any]:
        if self._is_followup(call):
            return await self._delete_webhook_message(call)
        self._channel_webhook_message(call).deleted = True
        self._notify()
        return 204, None

    # -- message store ---------------------------------------------------------------------------

    def _store_attachment(
        self, filename: str, data: bytes, content_type: str | None, description: str | None
    ) -> StoredAttachment:
        att_id = self._ids.next()
        url = f"{self.base_url}/cdn/attachments/{att_id}/{filename}"
        att = StoredAttachment(att_id, filename, data, content_type, url, description)
        self._attachments[att_id] = att
        return att

    def _new_attachments(
        self, body: Mapping[str, Any], files: list[UploadedFile], keep: list[StoredAttachment]
    ) -> list[StoredAttachment]:
        by_index = {int(f.field[6:-1]): f for f in files}
        listed = body.get("attachments")
        out: list[StoredAttachment] = []
        if listed is None:
            for f in files:
                out.append(self._store_attachment(f.filename, f.data, f.content_type, None))
            return [*keep, *out]
        existing = {a.id: a for a in keep}
        for item in listed:
            att_id = int(item.get("id"))
            if att_id in existing:
                out.append(existing[att_id])
            elif att_id in by_index:
                f = by_index[att_id]
                name = item.get("filename") or f.filename
                out.append(
                    self._store_attachment(name, f.data, f.content_type, item.get("description"))
                )
        return out

    def _mentions(
        self, channel_id: int, content: str, allowed: Mapping[str, Any] | None
    ) -> tuple[list[dict[str, Any]], list[str], bool]:
        try:
            guild = self._guild_of_channel(channel_id)
        except KeyError:
            return [], [], False
        if allowed is None:
            parse: list[str] = ["users", "roles", "everyone"]
            users: set[str] = set()
            roles: set[str] = set()
        else:
            parse = list(allowed.get("parse") or [])
            users = {str(u) for u in allowed.get("users") or []}
            roles = {str(r) for r in allowed.get("roles") or []}
        mentioned = []
        for uid in dict.fromkeys(re.findall(r"<@!?(\d+)>", content)):
            if "users" in parse or uid in users:
                member = next((m for m in guild.members if str(m.id) == uid), None)
                if member is not None:
                    mentioned.append(member.user_payload())
        role_ids = [
            rid
            for rid in dict.fromkeys(re.findall(r"<@&(\d+)>", content))
            if "roles" in parse or rid in roles
        ]
        everyone = "everyone" in parse and ("@everyone" in content or "@here" in content)
        return mentioned, role_ids, everyone

    def _new_message(
        self,
        channel_id: int,
        body: Mapping[str, Any],
        files: list[UploadedFile],
        *,
        record: InteractionRecord | None = None,
        author: dict[str, Any] | None = None,
        msg_id: int | None = None,
    ) -> StoredMessage:
        msg_id = msg_id if msg_id is not None else self._ids.next()
        content = body.get("content") or ""
        allowed = body.get("allowed_mentions")
        mentions, role_ids, everyone = self._mentions(channel_id, content, allowed)
        payload: dict[str, Any] = {
            "id": str(msg_id),
            "channel_id": str(channel_id),
            "type": 0,
            "author": author or self.bot_user_payload(),
            "content": content,
            "timestamp": iso(snowflake_time(msg_id)),
            "edited_timestamp": None,
            "tts": bool(body.get("tts", False)),
            "mention_everyone": everyone,
            "mentions": mentions,
            "mention_roles": role_ids,
            "attachments": [],
            "embeds": [self._embed(e) for e in body.get("embeds") or []],
            "components": list(body.get("components") or []),
            "pinned": False,
            "flags": int(body.get("flags") or 0),
        }
        if body.get("nonce") is not None:
            payload["nonce"] = body["nonce"]
        if record is not None:
            payload["webhook_id"] = str(self.application_id)
            payload["application_id"] = str(self.application_id)
            payload["type"] = 20 if record.type == 2 else 0
        msg = StoredMessage(
            payload, allowed_mentions=allowed, interaction_id=record.id if record else None
        )
        msg.attachments = self._new_attachments(body, files, [])
        payload["attachments"] = [a.payload() for a in msg.attachments]
        self._messages[msg_id] = msg
        self._channel_log.setdefault(channel_id, []).append(msg)
        self._notify()
        return msg

    @staticmethod
    def _embed(embed: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in embed.items() if v is not None}
        out.setdefault("type", "rich")
        return out

    def _apply_edit(
        self,
        msg: StoredMessage,
        body: Mapping[str, Any],
        files: list[UploadedFile],
        *,
        finish_loading: bool = False,
    ) -> None:
        msg.history.append(msg.snapshot())
        payload = msg.payload
        if "content" in body:
            payload["content"] = body["content"] or ""
        if "embeds" in body:
            payload["embeds"] = [self._embed(e) for e in body["embeds"] or []]
        if "components" in body:
            payload["components"] = list(body["components"] or [])
        if "allowed_mentions" in body:
            msg.allowed_mentions = body["allowed_mentions"]
        if "attachments" in body or files:
            msg.attachments = self._new_attachments(body, files, msg.attachments)
            payload["attachments"] = [a.payload() for a in msg.attachments]
        flags = payload.get("flags") or 0
        if finish_loading:
            flags &= ~FLAG_LOADING
        if body.get("flags") is not None:
            # Only SUPPRESS_EMBEDS can be changed by an edit; ephemeral stays as it was.
            flags = (flags & ~(1 << 2)) | (int(body["flags"]) & (1 << 2))
        payload["flags"] = flags
        mentions, role_ids, everyone = self._mentions(
            msg.channel_id, payload["content"], msg.allowed_mentions
        )
        payload.update(mentions=mentions, mention_roles=role_ids, mention_everyone=everyone)
        payload["edited_timestamp"] = iso(snowflake_time(self._ids.next()))
        self._notify()

    async def _dispatch_message(self, event: str, msg: StoredMessage) -> None:
        session = self._gateway.current
        if session is None or msg.ephemeral or not session.intents & INTENT_GUILD_MESSAGES:
            return
        try:
            guild = self._guild_of_channel(msg.channel_id)
        except KeyError:
            return
        await self._gateway.dispatch(event, dict(msg.snapshot(), guild_id=str(guild.id)))
