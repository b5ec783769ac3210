"""Build interaction payloads the way the Discord client would from a synced command tree.

These functions check what a member could actually type: unknown commands or options, missing
required options, values outside choices or min/max, wrong types. Such mistakes are bugs in the
*test*, so they raise :class:`DriverError` instead of being sent to the bot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tests.discord_emulator.specs import AttachmentSpec, ChannelSpec, MemberSpec, RoleSpec

OPTION_TYPE_NAMES = {
    1: "subcommand",
    2: "subcommand group",
    3: "string",
    4: "integer",
    5: "boolean",
    6: "user",
    7: "channel",
    8: "role",
    9: "mentionable",
    10: "number",
    11: "attachment",
}


class DriverError(AssertionError):
    """The test asked for something a Discord user could not do."""


class Resolver(Protocol):
    """What option conversion needs from the emulator."""

    def resolve_user(
        self, guild_id: int | None, value: object
    ) -> tuple[dict[str, Any], dict[str, Any] | None]: ...

    def resolve_channel(self, value: object) -> dict[str, Any]: ...

    def resolve_role(self, guild_id: int | None, value: object) -> dict[str, Any]: ...

    def resolve_attachment(self, value: AttachmentSpec) -> dict[str, Any]: ...


def find_command(
    scopes: Mapping[int | None, Sequence[dict[str, Any]]],
    guild_id: int | None,
    name: str,
    command_type: int = 1,
) -> dict[str, Any]:
    """Return the synced command a member in ``guild_id`` sees under ``name``."""
    search: list[int | None] = [guild_id, None] if guild_id is not None else [None]
    for scope in search:
        for cmd in scopes.get(scope, ()):
            if cmd["name"] == name and (cmd.get("type") or 1) == command_type:
                return cmd
    known = sorted({c["name"] for s in search for c in scopes.get(s, ())})
    raise DriverError(
        f"no command {name!r} synced for guild {guild_id} or globally; synced: {known}. "
        "Did the bot call tree.sync() (in setup_hook) for that scope?"
    )


def _check_number(opt: Mapping[str, Any], value: float, where: str) -> None:
    low, high = opt.get("min_value"), opt.get("max_value")
    if low is not None and value < low:
        raise DriverError(f"{where}: {value} is below min_value {low}")
    if high is not None and value > high:
        raise DriverError(f"{where}: {value} is above max_value {high}")


def _check_choices(opt: Mapping[str, Any], value: object, where: str) -> None:
    choices = opt.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        allowed = [c["value"] for c in choices]
        raise DriverError(f"{where}: {value!r} is not one of the choices {allowed}")


def _convert(  # noqa: C901 (one branch per Discord option type)
    opt: Mapping[str, Any],
    value: object,
    *,
    where: str,
    guild_id: int | None,
    resolver: Resolver,
    resolved: dict[str, dict[str, Any]],
) -> object:
    otype = opt["type"]
    kind = OPTION_TYPE_NAMES.get(otype, str(otype))
    if otype == 3:
        if not isinstance(value, str):
            raise DriverError(f"{where}: a string option needs a str, got {value!r}")
        min_len, max_len = opt.get("min_length"), opt.get("max_length")
        if min_len is not None and len(value) < min_len:
            raise DriverError(f"{where}: shorter than min_length {min_len}")
        if max_len is not None and len(value) > max_len:
            raise DriverError(f"{where}: longer than max_length {max_len}")
        if len(value) > 6000:
            raise DriverError(f"{where}: a string option holds at most 6000 characters")
        _check_choices(opt, value, where)
        return value
    if otype == 4:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DriverError(f"{where}: an integer option needs an int, got {value!r}")
        _check_number(opt, value, where)
        _check_choices(opt, value, where)
        return value
    if otype == 10:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DriverError(f"{where}: a number option needs a float, got {value!r}")
        _check_number(opt, value, where)
        _check_choices(opt, value, where)
        return value
    if otype == 5:
        if not isinstance(value, bool):
            raise DriverError(f"{where}: a boolean option needs a bool, got {value!r}")
        return value
    if otype == 6 or (otype == 9 and not isinstance(value, RoleSpec)):
        try:
            user, member = resolver.resolve_user(guild_id, value)
        except KeyError as exc:
            if otype == 9:
                role = resolver.resolve_role(guild_id, value)
                resolved.setdefault("roles", {})[role["id"]] = role
                return role["id"]
            raise DriverError(f"{where}: {exc}") from None
        resolved.setdefault("users", {})[user["id"]] = user
        if member is not None:
            resolved.setdefault("members", {})[user["id"]] = member
        return user["id"]
    if otype in (8, 9):
        try:
            role = resolver.resolve_role(guild_id, value)
        except KeyError as exc:
            raise DriverError(f"{where}: {exc}") from None
        resolved.setdefault("roles", {})[role["id"]] = role
        return role["id"]
    if otype == 7:
        try:
            channel = resolver.resolve_channel(value)
        except KeyError as exc:
            raise DriverError(f"{where}: {exc}") from None
        allowed = opt.get("channel_types")
        if allowed and channel["type"] not in allowed:
            raise DriverError(f"{where}: channel type {channel['type']} not in {allowed}")
        resolved.setdefault("channels", {})[channel["id"]] = channel
        return channel["id"]
    if otype == 11:
        if not isinstance(value, AttachmentSpec):
            raise DriverError(f"{where}: an attachment option needs an AttachmentSpec")
        attachment = resolver.resolve_attachment(value)
        resolved.setdefault("attachments", {})[attachment["id"]] = attachment
        return attachment["id"]
    raise DriverError(f"{where}: option type {kind} cannot take a value")


def build_command_data(  # noqa: C901 (one branch per Discord option type)
    command: Mapping[str, Any],
    path: Sequence[str],
    options: Mapping[str, object],
    *,
    guild_id: int | None,
    resolver: Resolver,
    focused: str | None = None,
) -> dict[str, Any]:
    """Return the interaction ``data`` for ``/name sub... option:value`` on a synced command.

    ``path`` is the words after the command name (group and/or subcommand). With ``focused``
    (autocomplete), that option's value is sent as the raw text typed so far.
    """
    where = f"/{command['name']}"
    level: Sequence[Mapping[str, Any]] = command.get("options") or []
    chain: list[dict[str, Any]] = []
    for word in path:
        node = next(
            (o for o in level if o["name"] == word and o["type"] in (1, 2)),
            None,
        )
        if node is None:
            subs = [o["name"] for o in level if o["type"] in (1, 2)]
            raise DriverError(f"{where}: no subcommand or group {word!r}; have {subs}")
        where += f" {word}"
        chain.append({"type": node["type"], "name": word})
        level = node.get("options") or []
    if any(o["type"] in (1, 2) for o in level):
        subs = [o["name"] for o in level if o["type"] in (1, 2)]
        raise DriverError(f"{where}: is a group; pick one of {subs}")

    by_name = {o["name"]: o for o in level}
    resolved: dict[str, dict[str, Any]] = {}
    leaf_options: list[dict[str, Any]] = []
    for name, value in options.items():
        opt = by_name.get(name)
        if opt is None:
            raise DriverError(f"{where}: no option {name!r}; have {sorted(by_name)}")
        if name == focused:
            if not opt.get("autocomplete"):
                raise DriverError(f"{where}: option {name!r} has no autocomplete")
            leaf_options.append(
                {"type": opt["type"], "name": name, "value": str(value), "focused": True}
            )
            continue
        converted = _convert(
            opt,
            value,
            where=f"{where} {name}",
            guild_id=guild_id,
            resolver=resolver,
            resolved=resolved,
        )
        leaf_options.append({"type": opt["type"], "name": name, "value": converted})
    if focused is not None and focused not in options:
        opt = by_name.get(focused)
        if opt is None or not opt.get("autocomplete"):
            raise DriverError(f"{where}: no autocomplete option {focused!r}")
        leaf_options.append({"type": opt["type"], "name": focused, "value": "", "focused": True})
    if focused is None:
        missing = [o["name"] for o in level if o.get("required") and o["name"] not in options]
        if missing:
            raise DriverError(f"{where}: missing required options {missing}")

    nested: list[dict[str, Any]] = leaf_options
    for node in reversed(chain):
        nested = [{**node, "options": nested}]
    data: dict[str, Any] = {
        "id": command["id"],
        "name": command["name"],
        "type": command.get("type") or 1,
        "options": nested,
    }
    if resolved:
        data["resolved"] = resolved
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    return data


def spec_id(value: object) -> int | None:
    """Return the id of a spec or int, or None for names."""
    if isinstance(value, ChannelSpec | MemberSpec | RoleSpec):
        return value.id
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None
