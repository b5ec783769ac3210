"""The `timeline-bot` command line: the terminal twin of the Discord bot."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError

from timeline.cli import common
from timeline.domain.errors import ConfigError, TimelineError

log = logging.getLogger(__name__)

# Each module exposes register(subparsers); missing optional ones are skipped so a partial
# install still gives a working CLI.
COMMAND_MODULES = (
    "timeline.cli.core",
    "timeline.cli.poll",
    "timeline.cli.demo",
    "timeline.cli.query",
    "timeline.cli.admin",
    "timeline.cli.chart",
    "timeline.cli.ops",
    "timeline.cli.story",
    "timeline.cli.web",
    "timeline.cli.settings",
)


def _version() -> str:
    try:
        return importlib.metadata.version("timeline-bot")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The options every command takes, before or after its name.

    On the commands' own parsers they default to SUPPRESS, so that an option given before
    the command name is not overwritten by the command's parser when it is absent after it.
    """

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "-c",
        "--config",
        default=default(None),
        help=f"path to the TOML config (default: ${common.CONFIG_ENV} or ./config.toml)",
    )
    parser.add_argument(
        "--log-level",
        default=default("INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity on stderr (default: INFO)",
    )
    parser.add_argument(
        "--log-format",
        default=default("text"),
        choices=common.LOG_FORMATS,
        help="log lines as text (default) or one JSON object per line, for log collectors",
    )
    parser.add_argument(
        "--accept-config",
        action="store_true",
        default=default(False),
        help="start even if the config file would retire more than half of the feeds or "
        "watches at once (run, poller, discord, poll, db upgrade refuse with exit 78 otherwise)",
    )


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: it also takes the global options (`status --config x.toml`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if kwargs.get("add_help", True):
            _global_options(self, defaults=False)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every command group."""
    parser = argparse.ArgumentParser(
        prog="timeline-bot",
        description="Poll news feeds, keep matching stories on a timeline, alert Discord.",
    )
    _global_options(parser, defaults=True)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser
    )
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    common.setup_logging(args.log_level, args.log_format)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        return common.report_config_error(exc)
    except TimelineError as exc:
        common.print_err(f"error: {exc}")
        return 1
    except DBAPIError as exc:
        text = str(exc.orig) if exc.orig is not None else str(exc)
        if "no such table" in text or "does not exist" in text:
            common.print_err(
                "error: the database has no timeline schema yet; run `timeline-bot db upgrade`"
            )
        else:
            log.debug("database error", exc_info=True)
            common.print_err(f"database error: {text.splitlines()[0] if text else exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
