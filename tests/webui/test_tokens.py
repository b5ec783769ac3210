"""Signed links: a token names one guild and member, runs out, and cannot be altered."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from timeline.domain.signed_links import BadToken, sign_token, verify_token

SECRET = b"s3cret-for-tests-only-0123456789"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_token_round_trip_names_guild_and_member() -> None:
    token = sign_token(SECRET, 42, "alice", lifetime=HOUR, now=NOW)
    claims = verify_token(SECRET, token, now=NOW + timedelta(minutes=59))
    assert (claims.guild_id, claims.member) == (42, "alice")
    assert claims.expires_at == NOW + HOUR


def test_expired_token_is_refused() -> None:
    token = sign_token(SECRET, 42, "alice", lifetime=HOUR, now=NOW)
    with pytest.raises(BadToken, match="expired"):
        verify_token(SECRET, token, now=NOW + HOUR)


def test_other_secret_is_refused() -> None:
    token = sign_token(SECRET, 42, "alice", lifetime=HOUR, now=NOW)
    with pytest.raises(BadToken, match="signature"):
        verify_token(b"another-secret-another-secret-00", token, now=NOW)


def test_changed_guild_is_refused() -> None:
    token = sign_token(SECRET, 42, "alice", lifetime=HOUR, now=NOW)
    version, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["g"] = 43
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    with pytest.raises(BadToken, match="signature"):
        verify_token(SECRET, f"{version}.{forged}.{signature}", now=NOW)


@pytest.mark.parametrize("flip", range(0, 60, 7))
def test_any_changed_character_is_refused(flip: int) -> None:
    token = sign_token(SECRET, 42, "alice", lifetime=HOUR, now=NOW)
    index = flip % len(token)
    changed = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]
    with pytest.raises(BadToken):
        verify_token(SECRET, changed, now=NOW)


@pytest.mark.parametrize(
    "token", ["", "v1", "v1..", "v2.a.b", "v1.a.b.c", "x" * 5000, "v1.é.é", "v1.%%%.%%%"]
)
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(BadToken):
        verify_token(SECRET, token, now=NOW)


def test_signed_garbage_payload_is_refused() -> None:
    # Right signature over a payload that is not the token's JSON: still refused, no crash.

    for body in (b"[]", b'{"g": "42", "m": "a", "e": 1}', b'{"g": 1, "m": "a", "e": 1e400}'):
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        signed = f"v1.{payload}"
        sig = hmac.new(SECRET, signed.encode(), hashlib.sha256).digest()
        token = f"{signed}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}"
        with pytest.raises(BadToken, match="payload"):
            verify_token(SECRET, token, now=NOW)


def test_member_name_is_cleaned_and_bounded() -> None:
    token = sign_token(SECRET, 42, "  al\nice  " + "x" * 500, lifetime=HOUR, now=NOW)
    claims = verify_token(SECRET, token, now=NOW)
    assert claims.member.startswith("al ice") and len(claims.member) == 100


def test_empty_secret_cannot_sign_or_verify() -> None:
    with pytest.raises(ValueError):
        sign_token(b"", 42, "alice", lifetime=HOUR, now=NOW)
    token = sign_token(SECRET, 42, "alice", lifetime=HOUR, now=NOW)
    with pytest.raises(BadToken):
        verify_token(b"", token, now=NOW)
