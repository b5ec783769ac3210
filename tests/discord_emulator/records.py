"""What the emulator remembers: messages, interactions, requests, violations and faults."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7


@dataclass
class StoredAttachment:
    """A file the bot uploaded (or a member attached), bytes included."""

    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    description: str | None = None

    def payload(self) -> dict[str, Any]:
        """Return the attachment object as Discord serialises it."""
        return {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
            "content_type": self.content_type,
            "description": self.description,
        }


@dataclass
class StoredMessage:
    """A message as the emulator stores it; ``payload`` is what the API returns.

    ``history`` holds earlier versions (payload snapshots) so tests can see every edit.
    """

    payload: dict[str, Any]
    attachments: list[StoredAttachment] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    interaction_id: int | None = None
    # The avatar a channel-webhook execution asked for (Discord shows it, not as a field).
    avatar_url: str | None = None

    @property
    def id(self) -> int:
        """The message id."""
        return int(self.payload["id"])

    @property
    def channel_id(self) -> int:
        """The channel the message is in."""
        return int(self.payload["channel_id"])

    @property
    def content(self) -> str:
        """The message text."""
        return str(self.payload.get("content") or "")

    @property
    def embeds(self) -> list[dict[str, Any]]:
        """Embeds as stored (dicts)."""
        return list(self.payload.get("embeds") or [])

    @property
    def components(self) -> list[dict[str, Any]]:
        """Components as stored (dicts)."""
        return list(self.payload.get("components") or [])

    @property
    def flags(self) -> int:
        """Message flags."""
        return int(self.payload.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        """Whether only the invoking member sees the message."""
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """Whether this is a deferred response still "thinking"."""
        return bool(self.flags & FLAG_LOADING)

    @property
    def nonce(self) -> str | int | None:
        """The nonce the bot sent with the message, if any."""
        nonce: str | int | None = self.payload.get("nonce")
        return nonce

    @property
    def edited(self) -> bool:
        """Whether the message was edited at least once."""
        return bool(self.history)

    @property
    def edit_count(self) -> int:
        """How many times the message was edited."""
        return len(self.history)

    def buttons(self) -> list[dict[str, Any]]:
        """Return every button (type 2) in the message's components."""
        return [c for c in iter_components(self.components) if c.get("type") == 2]

    def component(self, custom_id: str) -> dict[str, Any] | None:
        """Return the component with this custom_id, if any."""
        for comp in iter_components(self.components):
            if comp.get("custom_id") == custom_id:
                return comp
        return None

    def text(self) -> str:
        """Return content plus every embed's visible text, for simple ``in`` assertions."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title") or "", embed.get("description") or ""]
            for item in embed.get("fields") or []:
                parts += [item.get("name") or "", item.get("value") or ""]
            parts.append((embed.get("footer") or {}).get("text") or "")
            parts.append((embed.get("author") or {}).get("name") or "")
        return "\n".join(p for p in parts if p)

    def snapshot(self) -> dict[str, Any]:
        """Return a deep copy of the current payload."""
        return copy.deepcopy(self.payload)

    def __repr__(self) -> str:
        text = self.text().replace("\n", " | ")
        return f"<StoredMessage id={self.id} channel={self.channel_id} edits={self.edit_count} {text[:80]!r}>"


def iter_components(components: Any) -> list[dict[str, Any]]:
    """Flatten nested components (rows, sections, containers) into one list."""
    out: list[dict[str, Any]] = []
    if not isinstance(components, list):
        return out
    for comp in components:
        if not isinstance(comp, dict):
            continue
        out.append(comp)
        out += iter_components(comp.get("components"))
        for key in ("accessory", "component"):
            if isinstance(comp.get(key), dict):
                out.append(comp[key])
    return out


@dataclass
class InteractionRecord:
    """An interaction the emulator dispatched and everything the bot answered to it."""

    id: int
    token: str
    type: int
    payload: dict[str, Any]
    channel_id: int | None
    guild_id: int | None
    callback_type: int | None = None
    callback_data: dict[str, Any] | None = None
    original: StoredMessage | None = None
    followups: list[StoredMessage] = field(default_factory=list)
    autocomplete_choices: list[dict[str, Any]] | None = None
    modal: dict[str, Any] | None = None
    source_message: StoredMessage | None = None

    @property
    def acknowledged(self) -> bool:
        """Whether the bot answered the interaction callback."""
        return self.callback_type is not None

    @property
    def deferred(self) -> bool:
        """Whether the bot deferred (callback type 5 or 6)."""
        return self.callback_type in (5, 6)

    @property
    def ephemeral(self) -> bool:
        """Whether the original response is ephemeral."""
        return self.original is not None and self.original.ephemeral

    def messages(self) -> list[StoredMessage]:
        """Return the original response (if any) followed by the followups."""
        return ([self.original] if self.original else []) + list(self.followups)

    def text(self) -> str:
        """Return the visible text of all response messages."""
        return "\n".join(m.text() for m in self.messages())

    def __repr__(self) -> str:
        return (
            f"<InteractionRecord id={self.id} type={self.type} callback={self.callback_type} "
            f"original={self.original!r} followups={len(self.followups)}>"
        )


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the bot made."""

    method: str
    path: str
    route: str | None
    query: Mapping[str, str]
    body: Any
    files: tuple[str, ...]
    status: int


@dataclass(frozen=True)
class Violation:
    """A request (or gateway frame) that real Discord would have rejected."""

    method: str
    path: str
    route: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.field or "<body>"
        return f"{self.method} {self.path} ({self.route}): {where}: {self.message}"


@dataclass(frozen=True)
class Fault:
    """A canned error answer: status, JSON body and headers."""

    status: int
    body: dict[str, Any] | None
    headers: Mapping[str, str] = field(default_factory=dict)


def rate_limited(retry_after: float = 0.01, *, is_global: bool = False) -> Fault:
    """Answer 429 like Discord: ``retry_after`` in the body, X-RateLimit-* headers, ``Via``."""
    headers = {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": "emulated-bucket",
        "X-RateLimit-Scope": "shared" if not is_global else "global",
        "Retry-After": str(max(1, round(retry_after))),
        # discord.py treats a 429 without Via as a Cloudflare ban.
        "Via": "1.1 google",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
    }
    return Fault(429, body, headers)


def server_error() -> Fault:
    """Answer 500 Internal Server Error."""
    return Fault(500, {"message": "500: Internal Server Error", "code": 0})


def missing_access() -> Fault:
    """Answer 403 with Discord error 50001 Missing Access."""
    return Fault(403, {"message": "Missing Access", "code": 50001})


def missing_permissions() -> Fault:
    """Answer 403 with Discord error 50013 Missing Permissions."""
    return Fault(403, {"message": "Missing Permissions", "code": 50013})


def unknown_channel() -> Fault:
    """Answer 404 with Discord error 10003 Unknown Channel."""
    return Fault(404, {"message": "Unknown Channel", "code": 10003})


def unknown_message() -> Fault:
    """Answer 404 with Discord error 10008 Unknown Message."""
    return Fault(404, {"message": "Unknown Message", "code": 10008})


class FaultRule:
    """Answer the next ``times`` requests matching ``pattern`` with ``fault``."""

    def __init__(self, pattern: str, fault: Fault, times: int) -> None:
        method, _, path = pattern.strip().partition(" ")
        if not path:
            method, path = "*", method
        self.pattern = pattern
        self.method = method.upper()
        self.fault = fault
        self.remaining = times
        self.hits: list[str] = []
        parts = []
        for segment in path.strip("/").split("/"):
            if segment in ("*", "") or (segment.startswith("{") and segment.endswith("}")):
                parts.append("[^/]+")
            else:
                parts.append(re.escape(segment))
        self._regex = re.compile("^/" + "/".join(parts) + "$")

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to the request (and still has uses left)."""
        return (
            self.remaining > 0
            and self.method in ("*", method)
            and self._regex.match(path) is not None
        )

    def consume(self, method: str, path: str) -> Fault:
        """Use one of the rule's answers."""
        self.remaining -= 1
        self.hits.append(f"{method} {path}")
        return self.fault

    @property
    def exhausted(self) -> bool:
        """Whether every injected answer was used."""
        return self.remaining == 0

    def __repr__(self) -> str:
        return f"<FaultRule {self.pattern!r} status={self.fault.status} remaining={self.remaining}>"
