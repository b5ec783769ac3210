"""The README's invite URL asks for exactly the permissions the bot declares it needs."""

from __future__ import annotations

import re
from pathlib import Path

from discordbot.bot import REQUIRED_PERMISSIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_invite_url_carries_the_required_permissions() -> None:
    text = README.read_text(encoding="utf-8")
    (value,) = set(re.findall(r"scope=bot\+applications\.commands&permissions=(\d+)", text))
    assert int(value) == REQUIRED_PERMISSIONS.value == 309774765056
    without_mentions = REQUIRED_PERMISSIONS.value & ~(1 << 17)
    assert f"({without_mentions})" in text
