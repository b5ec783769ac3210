"""The rooms of `timeline/` import one way: each room only from the rooms its job builds on.

domain (pure) <- render <- storage <- usecases <- app (wiring) <- cli, and the doors
(discordbot, webui, cli) are never imported by the core. `app.config` and `app.metrics` are
leaves every room may use (settings types; counters incremented where the work is recorded).
The core (domain, render, storage, usecases) imports no aiohttp and no discord: use cases that
need the fetcher get it injected.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LEAVES = {"timeline.app.config", "timeline.app.metrics"}
ALLOWED = {
    "domain": {"domain"},
    "render": {"domain", "render"},
    "storage": {"domain", "render", "storage"},
    "usecases": {"domain", "render", "storage", "usecases"},
    "app": {"domain", "render", "storage", "usecases", "app"},
    "cli": {"domain", "render", "storage", "usecases", "app", "cli"},
}
CORE = ("domain", "render", "storage", "usecases")
DOORS = ("discordbot", "webui")
NETWORK = ("aiohttp", "discord")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports (at any depth: a deferred import counts too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            # `from timeline.app import metrics` imports timeline.app.metrics
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def is_leaf(module: str) -> bool:
    return any(module == leaf or module.startswith(leaf + ".") for leaf in LEAVES)


def modules(room: str) -> list[Path]:
    return sorted((ROOT / "timeline" / room).rglob("*.py"))


@pytest.mark.parametrize("room", list(ALLOWED))
def test_a_room_imports_only_the_rooms_it_builds_on(room: str) -> None:
    wrong = []
    for path in modules(room):
        for line, module in imports_of(path):
            parts = module.split(".")
            if parts[0] == "timeline" and len(parts) > 1 and parts[1] in ALLOWED:
                if parts[1] not in ALLOWED[room] and not is_leaf(module):
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
            if room in CORE and parts[0] in DOORS:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports the door {module}")
    assert wrong == []


@pytest.mark.parametrize("room", CORE)
def test_the_core_imports_no_network_library(room: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in modules(room)
        for line, module in imports_of(path)
        if module.split(".")[0] in NETWORK
    ]
    assert wrong == []


def test_every_module_of_timeline_is_in_a_room() -> None:
    loose = sorted(
        p.name
        for p in (ROOT / "timeline").glob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    )
    assert loose == []
    assert sorted(
        p.name for p in (ROOT / "timeline").iterdir() if p.is_dir() and p.name != "__pycache__"
    ) == sorted(ALLOWED)


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from timeline.usecases import feeds\n    import aiohttp\n")
    assert [m for _, m in imports_of(bad)] == ["timeline.usecases.feeds", "aiohttp"]
