"""Issue 13: every slash command has a CLI twin over the same use case.

The slash commands are read from the bot's real command tree (every cog loaded, nothing
connected); the CLI commands from `timeline-bot`'s real parser. For each pair the test reads
which use-case functions (`timeline.usecases.*`) the cog's callback and the CLI handler call,
following the closures and helpers they define, and requires a common one. A new slash
command without a twin, a twin that goes around the use case, or a CLI command that lost
its slash twin fails here.
"""

from __future__ import annotations

import argparse
import inspect
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import discord
import pytest

from discordbot.bot import TimelineBot, cog_modules
from timeline.app.config import parse_settings
from timeline.cli.main import build_parser
from timeline.domain.query.parser import parse_query
from timeline.storage import search as query_search
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async

# slash command -> its CLI twin (the same name where nothing else is said).
CLI_NAME = {
    "timeline show": "timeline",
    "timeline add": "add-event",
    "web": "web link",
}
# CLI commands that are the operator's own, with no chat twin, and why.
CLI_ONLY = {
    "run": "starts the bot",
    "poller": "a process role",
    "discord": "a process role",
    "health": "the container's health check",
    "demo": "the offline demo",
    "poll": "an operator's poll now (chat has /status)",
    "db upgrade": "schema migrations",
    "db copy": "moving a database",
    "config check": "validates the file before a start",
    "config init": "writes a config file",
    "match": "tries a query on a text, offline (chat has /watch test over stored stories)",
}


async def slash_commands(tmp_path: Path) -> dict[str, Callable[..., Any]]:
    settings = parse_settings({"database": {"url": f"sqlite:///{tmp_path / 'twins.db'}"}})
    await upgrade_async(settings.database.url)  # closing the bot hands back outbox claims
    db = Database(settings.database.url)
    bot = TimelineBot(settings, db, sync_commands=False, deliver_alerts=False)
    try:
        for module in cog_modules():
            await bot.load_extension(module)
        return {
            c.qualified_name: c.callback
            for c in bot.tree.walk_commands()
            if isinstance(c, discord.app_commands.Command)
        }
    finally:
        await bot.close()
        await db.dispose()


def cli_commands() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[" ".join(path)] = parser.get_default("func")
        for action in subs:
            for name, child in action.choices.items():
                walk(child, [*path, name])

    walk(build_parser(), [])
    return found


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def use_cases(fn: Callable[..., Any], depth: int = 3) -> set[str]:
    """The `timeline.usecases` functions `fn` calls, directly or through closures, wrappers
    (`_run(cmd)`) and helpers of its own module, `depth` levels deep."""
    fn = inspect.unwrap(fn)
    found: set[str] = set()
    if depth < 0 or not hasattr(fn, "__code__"):
        return found
    module = fn.__module__
    env = dict(fn.__globals__)
    if fn.__closure__:
        env.update(inspect.getclosurevars(fn).nonlocals)
    for code in _codes(fn.__code__):
        names = set(code.co_names) | set(code.co_freevars)
        for name in names:
            obj = env.get(name)
            if isinstance(obj, types.ModuleType) and obj.__name__.startswith("timeline.usecases"):
                for attr in names:
                    target = getattr(obj, attr, None)
                    if inspect.isfunction(target):
                        found.add(f"{obj.__name__}.{attr}")
            elif inspect.isfunction(obj):
                if obj.__module__.startswith("timeline.usecases"):
                    found.add(f"{obj.__module__}.{obj.__name__}")
                elif obj.__module__ in (module, "timeline.cli.admin", "timeline.cli.common") or (
                    obj.__module__.startswith(("timeline.cli.", "discordbot.cogs."))
                ):
                    found |= use_cases(obj, depth - 1)
    return found


@pytest.fixture
async def slash(tmp_path: Path) -> dict[str, Callable[..., Any]]:
    return await slash_commands(tmp_path)


async def test_every_slash_command_has_a_cli_twin_over_the_same_use_case(
    slash: dict[str, Callable[..., Any]],
) -> None:
    cli = cli_commands()
    assert len(slash) >= 30, sorted(slash)
    problems = []
    for name, callback in sorted(slash.items()):
        twin = CLI_NAME.get(name, name)
        if twin not in cli:
            problems.append(f"/{name}: no CLI command {twin!r}")
            continue
        chat, term = use_cases(callback), use_cases(cli[twin])
        if not chat & term:
            problems.append(f"/{name} and {twin!r} share no use case: {chat} vs {term}")
    assert problems == []


async def test_every_cli_command_has_a_slash_twin_or_is_the_operators_own(
    slash: dict[str, Callable[..., Any]],
) -> None:
    twins = {CLI_NAME.get(name, name) for name in slash}
    lonely = sorted(set(cli_commands()) - twins - set(CLI_ONLY))
    assert lonely == [], "CLI commands without a slash twin (add one, or say why in CLI_ONLY)"


async def _bypass(session: Any, text: str) -> Any:
    """A search that goes around the use case, straight to the query module."""

    return await query_search.search_entries(session, parse_query(text), guild_ids=None)


def test_the_use_case_reader_sees_through_wrappers_and_closures() -> None:
    """The checker itself: it finds the use case behind `_run(cmd)` and in a closure, and
    a command that bypasses the use case shares nothing with its twin."""
    cli = cli_commands()
    assert "timeline.usecases.feeds.add_feed" in use_cases(cli["feed add"])
    assert "timeline.usecases.watches.remove_watch" in use_cases(cli["watch remove"])
    assert use_cases(cli["search"])
    assert use_cases(_bypass) & use_cases(cli["search"]) == set()
