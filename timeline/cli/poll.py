"""`poll --once`: one polling round, printing new events and the alerts that would be posted."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from timeline.app.wiring import App
from timeline.cli import common
from timeline.usecases.polling import FeedOutcome


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `poll` command."""
    poll = sub.add_parser("poll", help="poll the configured feeds")
    poll.add_argument(
        "--once", action="store_true", required=True, help="run one round and exit (required)"
    )
    poll.add_argument("--json", action="store_true", help="one JSON object per line")
    poll.add_argument(
        "--all",
        action="store_true",
        help="poll every active feed now, not only those that are due; feeds still leased by "
        "another (e.g. killed) poller are taken over",
    )
    poll.set_defaults(func=poll_command)


def outcome_lines(outcomes: list[FeedOutcome], as_json: bool) -> list[str]:
    """Render a round's outcomes as text or JSON lines (alerts first, then feed errors)."""
    lines: list[str] = []
    for outcome in outcomes:
        for alert in outcome.alerts:
            record: dict[str, Any] = {
                "type": "alert",
                "watch": alert.watch,
                "channel": alert.channel_id,
                "event_id": alert.event_id,
                "title": alert.title,
                "link": alert.link,
                "sources": list(alert.sources),
                "published": common.iso(alert.published),
                "terms": list(alert.terms),
            }
            if as_json:
                lines.append(json.dumps(record, ensure_ascii=False))
            else:
                lines.append(
                    f"ALERT [{alert.watch}] -> #{alert.channel_id}: {alert.title} "
                    f"({', '.join(alert.sources)}; event {alert.event_id}) {alert.link or ''}"
                )
    for outcome in outcomes:
        if outcome.outcome == "error":
            if as_json:
                lines.append(
                    json.dumps(
                        {
                            "type": "feed_error",
                            "feed": outcome.name,
                            "url": outcome.url,
                            "error": outcome.error,
                            "kind": outcome.error_kind,
                        },
                        ensure_ascii=False,
                    )
                )
            else:
                lines.append(f"FEED ERROR {outcome.name}: {outcome.error}")
        elif not as_json:
            note = " (first poll: stored without alerts)" if outcome.backfill else ""
            joined = (
                f", {outcome.joined_events} joined existing events" if outcome.joined_events else ""
            )
            lines.append(
                f"feed {outcome.name}: {outcome.outcome}, {outcome.new_entries} new entries, "
                f"{outcome.new_events} new events{joined}{note}"
            )
    return lines


async def poll_once(args: argparse.Namespace) -> int:
    settings = common.load_settings(args)
    async with App(settings) as app:
        await app.prepare(accept_config=common.accept_config(args))
        taken = await app.store.make_all_due() if args.all else 0
        report = await app.poll_once()
        if taken:
            note = (
                f"took over {taken} feed(s) still leased by another poller "
                "(a killed poller's leases had not run out)"
            )
            print(json.dumps({"type": "leases_taken", "count": taken}) if args.json else note)
        for line in outcome_lines(report.outcomes, args.json):
            print(line)
    # Feed failures are reported above; they are not a failure of the command.
    return common.EX_OK


def poll_command(args: argparse.Namespace) -> int:
    """Run one polling round."""
    return asyncio.run(poll_once(args))
