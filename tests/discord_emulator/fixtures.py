"""Pytest fixtures: an emulator per test that fails the test on any Discord rule violation.

Use them from a test module or conftest::

    from tests.discord_emulator.fixtures import discord_emulator, make_discord_emulator  # noqa: F401
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio

from tests.discord_emulator.server import DiscordEmulator


@pytest_asyncio.fixture
async def discord_emulator() -> AsyncIterator[DiscordEmulator]:
    """Yield a started emulator with the default guild; assert it stayed clean at teardown."""
    emu = DiscordEmulator(strict=False)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()
    emu.assert_clean()


@pytest_asyncio.fixture
async def make_discord_emulator() -> AsyncIterator[Callable[..., Awaitable[DiscordEmulator]]]:
    """Yield ``await make(guilds=[...], **options)``; every emulator is checked at teardown."""
    made: list[DiscordEmulator] = []

    async def make(**options: Any) -> DiscordEmulator:
        emu = DiscordEmulator(**{**options, "strict": False})
        await emu.start()
        made.append(emu)
        return emu

    try:
        yield make
    finally:
        for emu in made:
            await emu.stop()
    for emu in made:
        emu.assert_clean()
