"""Per-watch delivery options: post as the bot ("channel"), through a channel webhook, or as
the bot with a thread per event ("thread": later sources are replies in it), or as a post
per event in a forum channel ("forum": later sources edit its first message and reply).

Checked the same way at config load (`timeline.app.config`) and by `/watch delivery`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

CHANNEL = "channel"
WEBHOOK = "webhook"
THREAD = "thread"
FORUM = "forum"
MODES = (CHANNEL, WEBHOOK, THREAD, FORUM)
MAX_WEBHOOK_NAME = 80
MAX_AVATAR_URL = 2000
# Discord refuses webhook names containing these (case-insensitive).
_REFUSED_NAME_PARTS = ("clyde", "discord")


def mode_problem(mode: str) -> str | None:
    """Why `mode` is not a delivery mode, or None."""
    if mode not in MODES:
        return f"must be one of {', '.join(MODES)} (got {mode[:40]!r})"
    return None


def webhook_name_problem(name: str) -> str | None:
    """Why `name` cannot be a webhook message's author name, or None."""
    clean = name.strip()
    if not clean:
        return "must not be empty"
    if len(clean) > MAX_WEBHOOK_NAME:
        return f"must be at most {MAX_WEBHOOK_NAME} characters"
    if any(ord(c) < 32 for c in clean):
        return "must not contain control characters"
    if any(part in clean.casefold() for part in _REFUSED_NAME_PARTS):
        return 'must not contain "clyde" or "discord" (Discord refuses it)'
    return None


def avatar_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook avatar, or None: an http(s) URL with a host."""
    clean = url.strip()
    if len(clean) > MAX_AVATAR_URL:
        return f"must be at most {MAX_AVATAR_URL} characters"
    if any(ord(c) <= 32 for c in clean):
        return "must be a URL without spaces or control characters"
    try:
        parts = urlsplit(clean)
    except ValueError:
        return "must be an http or https URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http or https URL"
    return None
