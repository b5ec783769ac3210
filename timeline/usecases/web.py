"""The web timeline's links: `/web` and `timeline-bot web link` both make them here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from timeline.app.config import WebSettings
from timeline.domain.signed_links import sign_token


def member_link(
    settings: WebSettings,
    secret: bytes,
    guild_id: int,
    member: str,
    *,
    now: datetime | None = None,
) -> tuple[str, datetime]:
    """Return a signed link for `member` to `guild_id`'s timeline, and when it expires."""
    now = now or datetime.now(UTC)
    lifetime = timedelta(seconds=settings.token_lifetime_seconds)
    token = sign_token(secret, guild_id, member, lifetime=lifetime, now=now)
    expires = datetime.fromtimestamp(int((now + lifetime).timestamp()), UTC)
    return f"{settings.public_url}/?{urlencode({'token': token})}", expires
