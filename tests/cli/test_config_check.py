"""Issue 14.1: `config check` refuses what the sync would refuse, every problem on its own line.

Each bad file goes through `config check`, `db upgrade` and `poll --once`: all three exit 78
(EX_CONFIG) with the same `FILE: KEY: REASON` lines on stderr, and nothing reaches the database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from timeline.cli.main import main
from timeline.storage.engine import Database
from timeline.usecases.watches import add_watch


def watch(query: str, channel: str = "123", extra: str = "") -> str:
    return f"[[watches]]\nname = 'w'\nquery = {query}\nchannel_id = {channel}\n{extra}"


def feeds(*pairs: tuple[str, str]) -> str:
    return "".join(f"[[feeds]]\nname = {n!r}\nurl = {u!r}\n" for n, u in pairs)


def cron(key: str, expression: str) -> str:
    return f"[alerts.digest_cron]\n{key!r} = {expression!r}\n"


# (file body after [database], the key the message must name, a piece of the reason)
BAD_CONFIGS = [
    pytest.param(
        watch("'(NATO'"), "watches[0].query", "unbalanced parenthesis at column 1", id="paren"
    ),
    pytest.param(
        watch("'NATO @nope'"), "watches[0].query", "unknown alias '@nope' at column 6", id="alias"
    ),
    pytest.param(
        "[aliases]\na = '@b x'\nb = '@a y'\n", "aliases.a", "alias cycle", id="alias-cycle"
    ),
    pytest.param(
        watch("'@a'") + "[aliases]\na = 'NATO OR @a'\n", "aliases.a", "cycle", id="self-cycle"
    ),
    pytest.param(
        "[aliases]\na = '@ghost'\n", "aliases.a", "unknown alias '@ghost'", id="alias-unknown"
    ),
    pytest.param(
        "[aliases]\nChina = 'x'\nchina = 'y'\n", "aliases.china", "used twice", id="alias-case"
    ),
    pytest.param(
        watch("'-fireworks'"), "watches[0].query", "without any of its words", id="only-not"
    ),
    pytest.param(watch("'   '"), "watches[0].query", "must not be empty", id="empty-query"),
    pytest.param(
        cron("123", "61 * * * *"),
        "alerts.digest_cron.123",
        "the last value (61) is higher than the maximum value (59)",
        id="cron-minute",
    ),
    pytest.param(
        cron("123", "0 25 * * *"), "alerts.digest_cron.123", "maximum value (23)", id="cron-hour"
    ),
    pytest.param(cron("123", "*/0 * * * *"), "alerts.digest_cron.123", "Increment", id="cron-step"),
    pytest.param(
        cron("123", "0 8 * * * *"),
        "alerts.digest_cron.123",
        "Wrong number of fields; got 6, expected 5",
        id="cron-6-fields",
    ),
    pytest.param(cron("123", "0 8 * *"), "alerts.digest_cron.123", "got 4", id="cron-4-fields"),
    pytest.param(
        cron("123", "0 0 31 2 *"), "alerts.digest_cron.123", "never fires", id="cron-31-feb"
    ),
    pytest.param(
        cron("general", "0 8 * * *"), "alerts.digest_cron.general", "Discord id", id="cron-key"
    ),
    pytest.param(watch("'x'", "-1"), "watches[0].channel_id", "Discord id", id="channel--1"),
    pytest.param(watch("'x'", "'abc'"), "watches[0].channel_id", "Discord id", id="channel-abc"),
    pytest.param(
        watch("'x'", str(2**64)), "watches[0].channel_id", "Discord id", id="channel-2**64"
    ),
    pytest.param(
        watch("'x'", str(2**63)), "watches[0].channel_id", "Discord id", id="channel-2**63"
    ),
    pytest.param(watch("'x'", "0"), "watches[0].channel_id", "Discord id", id="channel-0"),
    pytest.param(
        # str.isdigit() says yes to a superscript two; int() then raised ValueError.
        watch("'x'", "'\u00b2'"),
        "watches[0].channel_id",
        "Discord id",
        id="channel-superscript",
    ),
    pytest.param(
        watch("'x'", extra="role_id = -1\n"), "watches[0].role_id", "Discord id", id="role--1"
    ),
    pytest.param(
        "[discord]\nguild_ids = [1, -5]\n", "discord.guild_ids[1]", "Discord id", id="guild--5"
    ),
    pytest.param(
        f"[discord]\nguild_ids = [{2**64}]\n",
        "discord.guild_ids[0]",
        "Discord id",
        id="guild-2**64",
    ),
    pytest.param(
        "[discord]\nadmin_role_id = 'abc'\n", "discord.admin_role_id", "Discord id", id="admin"
    ),
    pytest.param(
        '[polling]\nuser_agent = "TimelineBot\\r\\nX-Evil: 1"\n',
        "polling.user_agent",
        "line break (CR or LF)",
        id="user-agent-crlf",
    ),
    pytest.param(
        '[polling]\nuser_agent = "TimelineBot\\nCookie: a=b"\n',
        "polling.user_agent",
        "line break (CR or LF)",
        id="header-lf",
    ),
    pytest.param(
        '[polling]\nuser_agent = "TimelineBot\\u0000"\n',
        "polling.user_agent",
        "control characters",
        id="header-nul",
    ),
    pytest.param(
        feeds(("Reuters", "https://a.example/rss"), ("reuters", "https://b.example/rss")),
        "feeds[1].name",
        "used twice",
        id="feed-name-twice",
    ),
    pytest.param(
        feeds(("A", "https://a.example/rss"), ("B", "https://a.example/rss")),
        "feeds[1].url",
        "listed twice",
        id="feed-url-twice",
    ),
    pytest.param(
        watch("'x'") + watch("'y'", "124"), "watches[1].name", "used twice", id="watch-twice"
    ),
    pytest.param(feeds(("A", "ftp://a.example/rss")), "feeds[0].url", "http", id="ftp"),
    pytest.param(feeds(("A", "file:///etc/passwd")), "feeds[0].url", "http", id="file"),
    pytest.param(feeds(("A", "javascript:alert(1)")), "feeds[0].url", "http", id="javascript"),
    pytest.param(feeds(("A", "https://")), "feeds[0].url", "http", id="no-host"),
    pytest.param(feeds(("A", "https://a.example/r ss")), "feeds[0].url", "spaces", id="url-space"),
    pytest.param(
        # `$` in re.match also matches before a final newline: the variable would never be found.
        '[discord]\ntoken_env = "DISCORD_TOKEN\\n"\n',
        "discord.token_env",
        "environment variable name",
        id="token-env-newline",
    ),
]


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"[database]\nurl = 'sqlite:///{tmp_path / 'timeline.db'}'\n{body}")
    return path


def problem_lines(path: Path, err: str) -> list[str]:
    """The `FILE: KEY: REASON` lines of stderr (log lines start with a date)."""
    return [line for line in err.splitlines() if line.startswith(f"{path}: ")]


def run_cli(path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(["--config", str(path), *argv])
    return code, problem_lines(path, capsys.readouterr().err)


@pytest.mark.parametrize(("body", "key", "reason"), BAD_CONFIGS)
def test_bad_config_is_refused_alike_by_check_upgrade_and_poll(
    body: str, key: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, body)
    code, lines = run_cli(path, capsys, "config", "check")
    assert code == 78
    named = [line for line in lines if line.startswith(f"{path}: {key}: ")]
    assert len(named) == 1 and reason in named[0], lines
    for argv in (["db", "upgrade"], ["poll", "--once"]):
        assert run_cli(path, capsys, *argv) == (78, lines), argv
    # Refused before the database is touched.
    assert not (tmp_path / "timeline.db").exists()


def test_every_problem_is_reported_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        tmp_path,
        '[polling]\nuser_agent = "x\\r\\ny"\nconcurency = 3\n'
        + feeds(("A", "ftp://a/"), ("a", "https://b/"))
        + watch("'(NATO'", "-1")
        + "[[watches]]\nname = 'v'\nquery = '@nope'\n"
        + "[aliases]\nloop = '@loop x'\n"
        + cron("123", "61 * * * *"),
    )
    code, lines = run_cli(path, capsys, "config", "check")
    assert code == 78
    assert [line.split(": ")[1] for line in lines] == [
        "polling.concurency",
        "polling.user_agent",
        "feeds[0].url",
        "feeds[1].name",
        "watches[0].channel_id",
        "watches[0].query",
        "watches[1].channel_id",
        "watches[1].query",
        "aliases.loop",
        "alerts.digest_cron.123",
    ]
    assert "watches[1].channel_id: is required" in lines[6]


def test_hostile_key_names_stay_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        tmp_path, '[aliases]\n"x\\nFAKE: line" = "a"\n[polling]\n"evil\\r\\nkey" = 1\n'
    )
    code, lines = run_cli(path, capsys, "config", "check")
    assert code == 78
    assert len(lines) == 2
    assert lines[0].startswith(f'{path}: polling."evil\\r\\nkey": unknown key')
    assert lines[1].startswith(f'{path}: aliases."x\\nFAKE: line": alias names are')


def test_check_says_what_it_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(
        tmp_path,
        feeds(("A", "https://a.example/rss"), ("B", "https://b.example/rss"))
        + watch("'NATO @china'")
        + "[aliases]\nchina = 'China OR Beijing'\nrussia = 'Russia OR Moscow'\n"
        + "[discord]\nguild_ids = [345678901234567890]\n"
        + cron("123", "0 18 * * *"),
    )
    assert main(["--config", str(path), "config", "check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: OK: ")
    for part in ("2 feeds", "1 watch (queries", "2 aliases", "1 digest (cron", "1 guild"):
        assert part in out, out


def test_db_upgrade_exits_78_when_the_sync_refuses_an_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config watch whose name a Discord-made watch holds: kept out, and the exit says so."""
    path = write_config(tmp_path, "")
    assert main(["--config", str(path), "db", "upgrade"]) == 0

    async def discord_watch() -> None:
        db = Database(f"sqlite:///{tmp_path / 'timeline.db'}")
        try:
            async with db.session() as s:
                await add_watch(s, 0, "w", "drone", 555, "alice")
        finally:
            await db.dispose()

    asyncio.run(discord_watch())
    path = write_config(tmp_path, feeds(("A", "https://a.example/rss")) + watch("'NATO'"))
    capsys.readouterr()
    code = main(["--config", str(path), "db", "upgrade"])
    captured = capsys.readouterr()
    assert code == 78
    assert "config synced: 1 added" in captured.out  # the feed: the rest of the file is synced
    lines = problem_lines(path, captured.err)
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: watches[0].name: a Discord-made watch has that name")
