"""Query aliases (`@china` = `China OR Chinese OR Beijing`), per guild over the config file's."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from timeline.domain.errors import BadQuery, Conflict, NotFound
from timeline.storage.models import GLOBAL_SCOPE, Alias, Watch
from timeline.usecases import _query
from timeline.usecases._common import (
    ALIAS_NAME_RE,
    MAX_QUERY,
    aliases_for,
    check_origin,
    clean_text,
    scope,
)

log = logging.getLogger(__name__)

_REFERENCE = re.compile(r"@([A-Za-z0-9_\-]+)")


@dataclass(frozen=True, slots=True)
class AliasView:
    """An alias as the commands show it."""

    name: str
    query: str
    origin: str
    guild_id: int


def _check_alias_name(name: str) -> str:
    value = name.strip().removeprefix("@")
    if not ALIAS_NAME_RE.match(value):
        raise BadQuery(f"alias name {value!r} must be 1-50 letters, digits, '_' or '-'")
    return value


def references(query: str) -> set[str]:
    """Return the alias names a query refers to with `@name`."""
    return set(_REFERENCE.findall(query))


def find_cycle(aliases: dict[str, str], start: str) -> list[str] | None:
    """Return an alias cycle through `start` (as a path of names), or None."""
    path: list[str] = []

    def visit(name: str, seen: frozenset[str]) -> bool:
        path.append(name)
        for ref in sorted(references(aliases.get(name, ""))):
            if ref == start:
                path.append(ref)
                return True
            if ref in aliases and ref not in seen and visit(ref, seen | {ref}):
                return True
        path.pop()
        return False

    return path if visit(start, frozenset({start})) else None


async def set_alias(
    session: AsyncSession,
    guild_id: int,
    name: str,
    query: str,
    actor: str,
    *,
    origin: str = "discord",
) -> AliasView:
    """Create or change an alias after checking it parses and makes no cycle."""
    clean_name = _check_alias_name(name)
    text = clean_text(query, "alias query", MAX_QUERY)
    rows = (await session.scalars(select(Alias).where(Alias.guild_id.in_(scope(guild_id))))).all()
    own = next((a for a in rows if a.guild_id == guild_id and a.name == clean_name), None)
    if own is not None and own.origin == "config" and guild_id != GLOBAL_SCOPE:
        raise Conflict(f"alias @{clean_name} comes from the config file: change it there")
    merged = await aliases_for(session, guild_id)
    merged[clean_name] = text
    cycle = find_cycle(merged, clean_name)
    if cycle:
        raise BadQuery("alias cycle: " + " -> ".join("@" + n for n in cycle))
    _query.parse(text, merged)
    # Every watch that uses aliases must still parse with the new value.
    for watch in (
        await session.scalars(
            select(Watch).where(Watch.guild_id.in_(scope(guild_id)), Watch.retired_at.is_(None))
        )
    ).all():
        if clean_name in references(watch.query):
            try:
                _query.parse(watch.query, merged)
            except BadQuery as exc:
                raise BadQuery(f"watch {watch.name!r} would break: {exc}") from None
    if own is None:
        own = Alias(
            guild_id=guild_id,
            name=clean_name,
            query=text,
            origin=check_origin(origin),
            created_by=actor[:100],
        )
        session.add(own)
    else:
        own.query = text
    await session.flush()
    log.info("alias @%s set by %s", clean_name, actor, extra={"guild_id": guild_id, "actor": actor})
    return AliasView(own.name, own.query, own.origin, own.guild_id)


async def remove_alias(session: AsyncSession, guild_id: int, name: str, actor: str) -> AliasView:
    """Delete an alias no watch or other alias still uses."""
    clean_name = _check_alias_name(name)
    own = await session.scalar(
        select(Alias).where(Alias.guild_id == guild_id, Alias.name == clean_name)
    )
    if own is None:
        shared = await session.scalar(
            select(Alias).where(Alias.guild_id == GLOBAL_SCOPE, Alias.name == clean_name)
        )
        if shared is not None:
            raise Conflict(f"alias @{clean_name} comes from the config file: remove it there")
        raise NotFound(f"no alias @{clean_name} on this server (see the alias list)")
    if own.origin == "config" and guild_id != GLOBAL_SCOPE:
        raise Conflict(f"alias @{clean_name} comes from the config file: remove it there")
    # A guild alias may shadow a config one of the same name; then users fall back to it.
    fallback = (
        await session.scalar(
            select(Alias.query).where(Alias.guild_id == GLOBAL_SCOPE, Alias.name == clean_name)
        )
        if guild_id != GLOBAL_SCOPE
        else None
    )
    if fallback is None:
        users = [
            f"watch {w.name!r}"
            for w in (
                await session.scalars(
                    select(Watch).where(
                        _users(Watch.guild_id, guild_id), Watch.retired_at.is_(None)
                    )
                )
            ).all()
            if clean_name in references(w.query)
        ]
        users += [
            f"alias @{a.name}"
            for a in (
                await session.scalars(select(Alias).where(_users(Alias.guild_id, guild_id)))
            ).all()
            if a.name != clean_name and clean_name in references(a.query)
        ]
        if users:
            raise Conflict(f"alias @{clean_name} is still used by " + ", ".join(sorted(users)))
    view = AliasView(own.name, own.query, own.origin, own.guild_id)
    await session.delete(own)
    await session.flush()
    log.info(
        "alias @%s removed by %s", clean_name, actor, extra={"guild_id": guild_id, "actor": actor}
    )
    return view


def _users(column: QueryableAttribute[int], guild_id: int) -> ColumnElement[bool]:
    # A config-file alias (guild 0) can be used by any guild's watches; a guild's alias only by
    # that guild's own watches and aliases (config watches never see guild aliases).
    if guild_id == GLOBAL_SCOPE:
        return true()
    return column == guild_id


async def list_aliases(session: AsyncSession, guild_id: int) -> list[AliasView]:
    """Return the aliases the guild sees (its own shadow config ones of the same name)."""
    rows = (
        await session.scalars(
            select(Alias).where(Alias.guild_id.in_(scope(guild_id))).order_by(Alias.name)
        )
    ).all()
    chosen: dict[str, Alias] = {}
    for row in sorted(rows, key=lambda a: a.guild_id != GLOBAL_SCOPE):
        chosen[row.name] = row
    return [
        AliasView(a.name, a.query, a.origin, a.guild_id)
        for a in sorted(chosen.values(), key=lambda a: a.name)
    ]


async def alias_names(session: AsyncSession, guild_id: int, prefix: str = "") -> list[str]:
    """Return alias names for autocomplete."""
    wanted = prefix.strip().removeprefix("@").casefold()
    names = [a.name for a in await list_aliases(session, guild_id)]
    return [n for n in names if n.casefold().startswith(wanted)][:25]
