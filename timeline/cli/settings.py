"""`timeline-bot settings timezone NAME --guild G` and `settings show`: twins of /settings."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from timeline.app.config import Settings
from timeline.cli import common
from timeline.cli.admin import _run, _who, safe
from timeline.storage.models import GLOBAL_SCOPE
from timeline.usecases import settings as settings_svc
from timeline.usecases.settings import SettingsView


def register(sub: Any) -> None:
    """Add `settings timezone` and `settings show`."""
    scoped = argparse.ArgumentParser(add_help=False)
    scoped.add_argument(
        "--guild",
        type=int,
        default=GLOBAL_SCOPE,
        metavar="ID",
        help="the Discord guild (default 0: the config-file scope, whose zone is the file's)",
    )
    scoped.set_defaults(actor=None)
    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument("--actor", default=None, help="who is making the change (for the log)")
    settings = sub.add_parser("settings", help="a guild's settings (its time zone)")
    s = settings.add_subparsers(dest="settings_command", metavar="ACTION", required=True)
    p = s.add_parser(
        "timezone", parents=[scoped, acting], help="set a guild's time zone (IANA name)"
    )
    p.add_argument("name", help="an IANA time zone name, e.g. Europe/Paris or America/New_York")
    p.set_defaults(func=_run(cmd_settings_timezone))
    p = s.add_parser("show", parents=[scoped], help="show a guild's settings")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run(cmd_settings_show))


def _print(view: SettingsView, as_json: bool = False) -> None:
    now = datetime.now(UTC).astimezone(settings_svc.zone(view.timezone))
    if as_json:
        print(
            json.dumps(
                {
                    "guild_id": view.guild_id,
                    "timezone": view.timezone,
                    "origin": view.origin,
                    "utc_offset": f"{now:%z}",
                    "updated_by": view.updated_by,
                    "updated_at": common.iso(view.updated_at),
                },
                ensure_ascii=False,
            )
        )
        return
    origin = (
        f"set by {view.updated_by} at {common.iso(view.updated_at)}"
        if view.origin == "guild"
        else "the config file's [discord] timezone"
    )
    print(safe(f"guild {view.guild_id}: timezone {view.timezone} (UTC{now:%z}) - {origin}"))


async def cmd_settings_timezone(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Set a guild's time zone."""
    view = await settings_svc.set_timezone(
        session, args.guild, args.name, _who(args), settings.discord.timezone
    )
    _print(view)
    return common.EX_OK


async def cmd_settings_show(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Show a guild's settings."""
    view = await settings_svc.show_settings(session, args.guild, settings.discord.timezone)
    _print(view, args.json)
    return common.EX_OK
