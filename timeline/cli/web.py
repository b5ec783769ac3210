"""`timeline-bot web link`: the terminal twin of `/web` (a signed link for one member)."""

from __future__ import annotations

import argparse

from timeline.cli import common
from timeline.usecases.web import member_link


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `web` commands."""
    web = sub.add_parser("web", help="the web timeline")
    web_sub = web.add_subparsers(dest="web_command", metavar="ACTION", required=True)
    link = web_sub.add_parser("link", help="print a signed link to a guild's web timeline")
    link.add_argument("--guild", type=int, required=True, help="Discord guild id")
    link.add_argument("--member", required=True, help="who the link is for (shown on the page)")
    link.set_defaults(func=link_command)


def link_command(args: argparse.Namespace) -> int:
    """Print a link for `--member` to `--guild`'s timeline, and when it expires."""
    settings = common.load_settings(args)
    if not settings.web.enabled:
        common.print_err(
            f"error: {settings.path}: web.enabled is false; the link would lead nowhere. "
            "Set [web] enabled = true first."
        )
        return common.EX_CONFIG
    if args.guild <= 0:
        common.print_err("error: --guild must be a Discord guild id (a positive integer)")
        return common.EX_USAGE
    member = " ".join(args.member.split())
    if not member:
        common.print_err("error: --member must not be empty")
        return common.EX_USAGE
    secret = common.web_secret(settings)
    assert secret is not None
    url, expires = member_link(settings.web, secret, args.guild, member)
    print(url)
    common.print_err(f"valid until {common.iso(expires)} for {member} in guild {args.guild}")
    return common.EX_OK
