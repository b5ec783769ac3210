"""Run one benchmark phase in a fresh process, so its CPU and peak RSS are its own.

    python -m bench.phase NAME CONFIG_JSON OUT_JSON

The harness (`bench.__main__`) starts this; the phase writes its figures to OUT_JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.alerts import AlertConfig, run_alerts
from bench.baseline import BaselineConfig, run_baseline
from bench.fair import FairConfig, run_fair
from bench.poll import PollConfig, run_poll

ROOT = Path(__file__).resolve().parent.parent


class PhaseFailed(RuntimeError):
    """A phase process exited with an error."""


def _run(name: str, config: dict[str, Any]) -> dict[str, Any]:
    if name == "poll":
        return asyncio.run(run_poll(PollConfig(**config)))
    if name == "baseline":
        return run_baseline(BaselineConfig(**config))
    if name == "fair":
        return run_fair(FairConfig(**config))
    if name == "alerts":
        return asyncio.run(run_alerts(AlertConfig(**config)))
    raise SystemExit(f"unknown phase {name!r}")


def run_phase(name: str, config: dict[str, Any], *, verbose: bool = False) -> dict[str, Any]:
    """Run phase `name` in a child process and return the figures it wrote."""
    with tempfile.TemporaryDirectory(prefix="bench-phase-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", "bench.phase", name, json.dumps(config), str(out)]
        if verbose:
            cmd.append("-v")
        proc = subprocess.run(cmd, cwd=ROOT, check=False)
        if proc.returncode != 0 or not out.exists():
            raise PhaseFailed(f"phase {name!r} failed with exit code {proc.returncode}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def main(argv: list[str] | None = None) -> int:
    """Run the phase named on the command line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, config, out = args[:3]
    level = logging.INFO if "-v" in args[3:] else logging.ERROR
    # The farm's failing feeds are logged as warnings by the fetcher; expected here.
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    result = _run(name, json.loads(config))
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
