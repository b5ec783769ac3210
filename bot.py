"""Timeline Bot entry point: `python bot.py ...` is the same as the `timeline-bot` command.

A launcher for a checkout, not installed: the package's own entry is `timeline.cli.main`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from timeline.cli.main import main as cli_main


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, load the config, wire the pieces, run."""

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
