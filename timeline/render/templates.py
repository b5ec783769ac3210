"""Alert message templates a team shapes per watch: `{title}`, `{sources}`, `{published}`...

A template is the alert embed's description, written in Discord Markdown by the team. Its own
Markdown is kept; every placeholder's *value* comes from a feed and is escaped by the renderer
before it is put in (discordbot.render), so a feed can neither format nor mention through a
template. The template itself may mention no one: the watch's role is the `{role}` placeholder
(and pings only through the message content, as without a template).

Validated where it is written (config load, `/watch template`, `watch template`): unknown
placeholders, format specs, attribute access and literal mentions are refused with the reason.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

MAX_TEMPLATE = 2000

PLACEHOLDERS: dict[str, str] = {
    "title": "the event's title (escaped)",
    "link": "the event's link (http/https only; empty when none)",
    "source": "the first outlet's name",
    "sources": "every outlet's name, comma-separated",
    "published": "the published time as a Discord timestamp (each reader sees local time)",
    "published_relative": "the same, relative (“3 hours ago”)",
    "snippet": "the summary around the first match, matched terms in bold",
    "terms": "the matched terms, once each",
    "watch": "the watch's name",
    "storyline": "the storyline line (“Part of … — 4 earlier events since …”), or empty",
    "role": "the watch's role as a mention (shown, not pinged: the ping is the message's)",
    "event_id": "the event's number (for /event show)",
}

_MENTION = re.compile(r"@(everyone|here)\b|<@[!&]?\d+>|<#\d+>")
_FORMATTER = string.Formatter()


def template_problem(text: str) -> str | None:
    """Return why `text` is not a usable template, or None."""
    if not isinstance(text, str):
        return "must be text"
    if not text.strip():
        return "must not be empty"
    if len(text) > MAX_TEMPLATE:
        return f"is too long ({len(text)} characters, at most {MAX_TEMPLATE})"
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as exc:  # a lone { or }
        return f"{exc} (write {{{{ or }}}} for a literal brace)"
    for literal, field, spec, conversion in parts:
        if _MENTION.search(literal):
            return "must not mention anyone: use {role} for the watch's role"
        if field is None:
            continue
        if field not in PLACEHOLDERS:
            known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
            return f"unknown placeholder {{{field}}}; known: {known}"
        if spec or conversion:
            return f"placeholder {{{field}}} takes no format or conversion"
    return None


def render_template(text: str, values: Mapping[str, str]) -> str:
    """Fill `text` (a valid template) with already escaped `values`."""
    out: list[str] = []
    for literal, field, _, _ in _FORMATTER.parse(text):
        out.append(literal)
        if field is not None:
            out.append(values.get(field, ""))
    return "".join(out)


def colour_problem(value: str) -> str | None:
    """Return why `value` is not a colour like "#1f8b4c", or None."""
    if not isinstance(value, str) or not re.fullmatch(r"#?[0-9A-Fa-f]{6}", value.strip()):
        return 'must be a colour like "#1f8b4c"'
    return None


def parse_colour(value: str) -> int:
    """Turn "#1f8b4c" (a valid colour) into its integer."""
    return int(value.strip().removeprefix("#"), 16)
