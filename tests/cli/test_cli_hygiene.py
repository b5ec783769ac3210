"""Issue 18: the command line as in any well-kept Python service.

Every argument has help text; the global options work before or after the command name;
read-only commands take no --actor; `config init` writes the shipped example config (in a
wheel too); `python -m timeline` is the same command.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from timeline.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
READ_ONLY = {
    "timeline",
    "export",
    "search",
    "chart",
    "status",
    "watch list",
    "watch test",
    "feed list",
    "feed status",
    "feed export",
    "alias list",
    "event show",
    "story list",
    "story show",
    "story chart",
    "story export",
    "config export",
    "config check",
}


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its full name ('watch add'), groups included."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found[" ".join([*path, name])] = child
                    walk(child, [*path, name])

    walk(build_parser(), [])
    return found


def test_every_argument_of_every_command_has_help_text() -> None:
    missing = [
        f"{name}: {action.dest}"
        for name, parser in {"": build_parser(), **commands()}.items()
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction)
        and action.dest != "help"
        and not (action.help or "").strip()
    ]
    assert missing == []


def test_read_only_commands_take_no_actor_and_changes_do() -> None:
    parsers = commands()
    assert READ_ONLY <= set(parsers)
    takes_actor = {
        name for name, p in parsers.items() if any(a.dest == "actor" for a in p._actions)
    }
    assert takes_actor & READ_ONLY == set()
    for change in ("watch add", "feed purge", "alias set", "event note", "story rename"):
        assert change in takes_actor


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "{cfg}", "--log-level", "WARNING", "watch", "list", "--json"],
        ["watch", "list", "--json", "--config", "{cfg}", "--log-level", "WARNING"],
        ["watch", "--config", "{cfg}", "list", "--json"],
        ["-c", "{cfg}", "watch", "list", "--json", "--log-format", "json"],
    ],
    ids=["before", "after", "between", "short-and-json-logs"],
)
def test_global_options_work_before_or_after_the_command(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n'
        '[[watches]]\nname = "drones"\nquery = "drone OR UAV"\nchannel_id = 1001\n'
    )
    assert main(["--config", str(cfg), "db", "upgrade"]) == 0
    capsys.readouterr()
    assert main([a.replace("{cfg}", str(cfg)) for a in argv]) == 0
    assert '"name": "drones"' in capsys.readouterr().out


def test_an_option_given_before_is_not_reset_by_the_command(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--config", "x.toml", "--accept-config", "status"])
    assert args.config == "x.toml" and args.accept_config is True
    args = build_parser().parse_args(["status", "--config", "y.toml"])
    assert args.config == "y.toml" and args.log_level == "INFO"


def test_config_init_writes_the_example_and_never_overwrites_unasked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "conf" / "config.toml"
    assert main(["config", "init", str(target)]) == 0
    assert target.read_text() == (ROOT / "config.example.toml").read_text()
    assert "config check" in capsys.readouterr().out
    target.write_text("# mine\n")
    assert main(["config", "init", str(target)]) == 1
    assert "--force" in capsys.readouterr().err
    assert target.read_text() == "# mine\n"
    assert main(["--config", str(target), "config", "init", "--force"]) == 0
    assert main(["--config", str(target), "config", "check"]) == 0


def test_python_m_timeline_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "timeline", "--version"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("timeline-bot ")


SOURCE = (
    "bot.py",
    "setup.py",
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "config.example.toml",
    "timeline",
    "feeds",
    "discordbot",
    "webui",
    "migrations",
)


def test_the_wheel_ships_the_example_config(tmp_path: Path) -> None:
    """Built as pip would, without the network, from a copy of the sources (a build leaves
    a build/ folder beside them)."""
    src = tmp_path / "src"
    for name in SOURCE:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so")
            )
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(src),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("timeline_bot-*.whl")
    with zipfile.ZipFile(wheel) as z:
        shipped = z.read("timeline/cli/config.example.toml").decode()
        top_level = {name.split("/")[0] for name in z.namelist()}
    assert shipped == (ROOT / "config.example.toml").read_text()
    # No generic top-level names in site-packages: the command line lives in timeline.cli,
    # and bot.py is a checkout's launcher, not an installed module.
    assert not top_level & {"cli", "bot.py", "bot"}, sorted(top_level)
