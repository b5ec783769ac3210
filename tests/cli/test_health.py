"""`timeline-bot health`: the container's and systemd's check of a running process's /healthz."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import pytest

from timeline.app.config import MetricsSettings
from timeline.app.ops_http import OpsServer
from timeline.cli.main import main
from timeline.storage.engine import Database

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, port: int | None, host: str = "0.0.0.0") -> str:
    path = tmp_path / "config.toml"
    metrics = f'[metrics]\nhost = "{host}"\n' + (f"port = {port}\n" if port else "")
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n\n{metrics}')
    return str(path)


def _dockerfile_healthcheck() -> list[str]:
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    (line,) = [ln for ln in lines if ln.startswith("HEALTHCHECK")]
    exec_form = line.split("CMD", 1)[1].strip()
    return [part.strip(' "') for part in exec_form.strip("[]").split(",")]


async def test_healthy_process_exits_0_with_the_port_from_the_config(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with OpsServer(MetricsSettings(host="127.0.0.1", port=0), db, role="run") as ops:
        assert ops.port is not None
        # The Dockerfile's own HEALTHCHECK command, with the container's config.
        argv = _dockerfile_healthcheck()
        assert argv[0] == "timeline-bot"
        config = _config(tmp_path, ops.port)
        code = await asyncio.to_thread(main, ["--config", config, *argv[1:]])
    assert code == 0
    assert '"database"' in capsys.readouterr().out


async def test_unhealthy_or_absent_process_exits_1(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def down() -> bool:
        return False

    checks = {"gateway": down}
    async with OpsServer(MetricsSettings(port=0), db, role="discord", checks=checks) as ops:
        code = await asyncio.to_thread(main, ["health", "--url", f"{ops.url}/"])
        assert code == 1
        assert "answered 503" in capsys.readouterr().err
        port = ops.port
    # Nothing listens there any more.
    code = await asyncio.to_thread(main, ["health", "--url", f"http://127.0.0.1:{port}"])
    assert code == 1
    assert "did not answer" in capsys.readouterr().err


def test_without_a_port_or_with_a_bad_url_it_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", _config(tmp_path, None), "health"]) == 78
    assert "no [metrics] port" in capsys.readouterr().err
    assert main(["health", "--url", "file:///etc/passwd"]) == 2
    assert "http(s) URL" in capsys.readouterr().err


def test_systemd_unit_runs_the_installed_command() -> None:
    unit = (ROOT / "deploy" / "timeline-bot.service").read_text()
    starts = [ln.split("=", 1)[1] for ln in unit.splitlines() if ln.startswith("ExecStart")]
    assert [shlex.split(cmd)[1:] for cmd in starts] == [["db", "upgrade"], ["run"]]
    assert "RestartPreventExitStatus=78" in unit
