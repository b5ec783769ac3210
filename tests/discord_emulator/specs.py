"""Plain descriptions of the world the emulator serves: guilds, channels, roles, members."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DISCORD_EPOCH_MS = 1_420_070_400_000
# Every emulator starts its clock here so that ids and timestamps repeat from run to run.
BASE_TIME = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class Perm:
    """Permission bits used most often in tests (values from Discord's documentation)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    CREATE_PUBLIC_THREADS = 1 << 35
    SEND_MESSAGES_IN_THREADS = 1 << 38
    ALL = (1 << 53) - 1
    # What @everyone gets in a freshly created guild (close enough for permission checks).
    DEFAULT_EVERYONE = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | MENTION_EVERYONE
        | USE_APPLICATION_COMMANDS
    )
    # What the emulated bot may do in every channel unless a test says otherwise.
    DEFAULT_BOT = (
        DEFAULT_EVERYONE
        | MANAGE_MESSAGES
        | MANAGE_WEBHOOKS
        | CREATE_PUBLIC_THREADS
        | SEND_MESSAGES_IN_THREADS
    )


@dataclass(frozen=True)
class ChannelSpec:
    """A guild channel (type 0 = text, 2 = voice, 4 = category, 5 = announcement, 15 = forum)."""

    id: int
    name: str
    type: int = 0
    parent_id: int | None = None
    topic: str | None = None
    position: int = 0

    def payload(self, guild_id: int | None = None) -> dict[str, object]:
        """Return the channel as Discord serialises it."""
        data: dict[str, object] = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "nsfw": False,
        }
        if self.type in (0, 5):
            data.update(topic=self.topic, rate_limit_per_user=0, last_message_id=None)
        if self.type == 2:
            data.update(bitrate=64000, user_limit=0, rtc_region=None)
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return data


@dataclass(frozen=True)
class RoleSpec:
    """A guild role; ``permissions`` is the bit set (see :class:`Perm`)."""

    id: int
    name: str
    permissions: int = 0
    position: int = 1
    color: int = 0

    def payload(self) -> dict[str, object]:
        """Return the role as Discord serialises it."""
        return {
            "id": str(self.id),
            "name": self.name,
            "color": self.color,
            "colors": {
                "primary_color": self.color,
                "secondary_color": None,
                "tertiary_color": None,
            },
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }


@dataclass(frozen=True)
class MemberSpec:
    """A guild member; permissions come from @everyone plus ``roles`` (or ``owner``)."""

    id: int
    name: str
    roles: Sequence[int] = ()
    nick: str | None = None
    bot: bool = False
    owner: bool = False

    def user_payload(self) -> dict[str, object]:
        """Return the member's user object."""
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass(frozen=True)
class AttachmentSpec:
    """A file a member attaches to a slash command option of type attachment."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class GuildSpec:
    """A guild with its channels, roles and members.

    The @everyone role (id = guild id) is added automatically with ``everyone_permissions``.
    """

    id: int
    name: str = "Emulated Guild"
    channels: Sequence[ChannelSpec] = ()
    roles: Sequence[RoleSpec] = ()
    members: Sequence[MemberSpec] = ()
    everyone_permissions: int = Perm.DEFAULT_EVERYONE
    locale: str = "en-US"

    def channel(self, name_or_id: str | int) -> ChannelSpec:
        """Return the channel with this name or id."""
        for channel in self.channels:
            if name_or_id in (channel.name, channel.id):
                return channel
        raise KeyError(f"guild {self.id} has no channel {name_or_id!r}")

    def member(self, name_or_id: str | int) -> MemberSpec:
        """Return the member with this name or id."""
        for member in self.members:
            if name_or_id in (member.name, member.id):
                return member
        raise KeyError(f"guild {self.id} has no member {name_or_id!r}")

    def role(self, name_or_id: str | int) -> RoleSpec:
        """Return the role with this name or id (``"@everyone"`` included)."""
        for role in self.all_roles():
            if name_or_id in (role.name, role.id):
                return role
        raise KeyError(f"guild {self.id} has no role {name_or_id!r}")

    def all_roles(self) -> list[RoleSpec]:
        """Return the roles including @everyone."""
        everyone = RoleSpec(self.id, "@everyone", self.everyone_permissions, position=0)
        return [everyone, *(r for r in self.roles if r.id != self.id)]

    def permissions_of(self, member: MemberSpec, extra_roles: Iterable[int] = ()) -> int:
        """Compute the member's guild-level permissions the way Discord does."""
        if member.owner:
            return Perm.ALL
        wanted = {*member.roles, *extra_roles, self.id}
        bits = 0
        for role in self.all_roles():
            if role.id in wanted:
                bits |= role.permissions
        return Perm.ALL if bits & Perm.ADMINISTRATOR else bits


def default_guild() -> GuildSpec:
    """Return a small guild: #general and #alerts, an admin with Manage Server and a user."""
    gid = 900_000_000_000_000_001
    admin_role = RoleSpec(900_000_000_000_000_010, "Admin", Perm.MANAGE_GUILD)
    return GuildSpec(
        id=gid,
        name="Emulated Guild",
        channels=[
            ChannelSpec(900_000_000_000_000_101, "general"),
            ChannelSpec(900_000_000_000_000_102, "alerts"),
        ],
        roles=[admin_role],
        members=[
            MemberSpec(900_000_000_000_001_001, "admin", roles=[admin_role.id]),
            MemberSpec(900_000_000_000_001_002, "user"),
        ],
    )


class SnowflakeFactory:
    """Generate increasing snowflakes from a fixed clock (one millisecond per id)."""

    def __init__(self, start: dt.datetime = BASE_TIME) -> None:
        self._start_ms = int(start.timestamp() * 1000)
        self._counter = itertools.count(1)

    def next(self) -> int:
        """Return a new snowflake."""
        n = next(self._counter)
        return ((self._start_ms + n - DISCORD_EPOCH_MS) << 22) | (n & 0xFFF)


def snowflake_time(snowflake: int) -> dt.datetime:
    """Return the creation time encoded in a snowflake."""
    return dt.datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, tz=dt.UTC)


def iso(when: dt.datetime) -> str:
    """Format a timestamp the way Discord does."""
    return when.isoformat(timespec="microseconds")


__all__ = [
    "AttachmentSpec",
    "ChannelSpec",
    "GuildSpec",
    "MemberSpec",
    "Perm",
    "RoleSpec",
    "SnowflakeFactory",
    "default_guild",
]
