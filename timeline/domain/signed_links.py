"""Signed, expiring links: a token names one guild and one member, HMAC-SHA256 signed.

A token is `v1.<payload>.<signature>`: the payload is base64url JSON `{"g": guild, "m":
member, "e": expiry}` (Unix seconds), the signature the base64url HMAC-SHA256 of
`v1.<payload>` under the secret from the environment variable `[web] secret_env` names.
There are no accounts: whoever holds the link reads that guild's timeline until it expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

VERSION = "v1"
MAX_TOKEN = 1024
MAX_MEMBER = 100


class BadToken(Exception):
    """A token that is malformed, tampered with, signed with another secret, or expired."""


@dataclass(frozen=True, slots=True)
class Claims:
    """What a valid token says: the guild, the member it was made for, when it runs out."""

    guild_id: int
    member: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, signed: str) -> str:
    return _b64(hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest())


def sign_token(
    secret: bytes, guild_id: int, member: str, *, lifetime: timedelta, now: datetime | None = None
) -> str:
    """Return a token for `member` of `guild_id` that is valid for `lifetime` from `now`."""
    if not secret:
        raise ValueError("the signing secret is empty")
    if not isinstance(guild_id, int) or isinstance(guild_id, bool) or guild_id <= 0:
        raise ValueError(f"guild id must be a positive integer, got {guild_id!r}")
    member = " ".join(str(member).split())[:MAX_MEMBER] or "member"
    now = now or datetime.now(UTC)
    expires = int((now + lifetime).timestamp())
    body = json.dumps({"g": guild_id, "m": member, "e": expires}, separators=(",", ":"))
    signed = f"{VERSION}.{_b64(body.encode('utf-8'))}"
    return f"{signed}.{_signature(secret, signed)}"


def verify_token(secret: bytes, token: str, *, now: datetime | None = None) -> Claims:
    """Return the claims of a valid token; raise BadToken (with the reason) for any other."""
    if not secret:
        raise BadToken("no signing secret")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN or not token.isascii():
        raise BadToken("missing or overlong token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise BadToken("not a token of this version")
    signed = f"{parts[0]}.{parts[1]}"
    # Constant-time comparison: the time taken says nothing about how much of it matched.
    if not hmac.compare_digest(_signature(secret, signed).encode(), parts[2].encode("ascii")):
        raise BadToken("bad signature")
    try:
        body = json.loads(_unb64(parts[1]).decode("utf-8"))
        guild_id, member, expires = body["g"], body["m"], body["e"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, binascii.Error):
        raise BadToken("unreadable payload") from None
    if (
        not isinstance(guild_id, int)
        or isinstance(guild_id, bool)
        or guild_id <= 0
        or not isinstance(member, str)
        or not isinstance(expires, int)
        or isinstance(expires, bool)
    ):
        raise BadToken("unreadable payload")
    now = now or datetime.now(UTC)
    try:
        expires_at = datetime.fromtimestamp(expires, UTC)
    except (OverflowError, OSError, ValueError):
        raise BadToken("unreadable payload") from None
    if now >= expires_at:
        raise BadToken("expired")
    return Claims(guild_id, member, expires_at)
