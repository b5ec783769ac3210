"""Parse only the items a changed body adds (`polling.skip_seen_items`), where it is parsed.

A changed feed usually prepends a few items to the ones it served last time. Its body is cut
to the new item elements and only those are parsed, when the feed's stored state says its last
stored body *is* the one remembered (same body hash): so every skipped item was in a body this
feed stored. Anything unusual (a reused guid or link, a broken document, a parse of the cut
body that is not clean) parses the whole body.

`parse_changed_job` does the cut and the parse in one job, in a parse worker process (or a
thread): finding the items and hashing them is Python work per item, which the poller's own
process (its event loop) need not do. It imports only what `feeds.parse` does.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from feeds.parse import ParsedFeed, parse_job

# One RSS <item> or Atom <entry> element, as bytes (prefixed names too, e.g. <atom:entry>).
_ITEM = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?(?:item|entry))[\s>].*?</\1\s*>", re.S | re.I)
# What identifies a story across bodies: its guid/id, or its link.
_IDENTITY = re.compile(
    rb"<(?:[A-Za-z_][\w.-]*:)?(?:guid|id|link)\b[^>]*?(?:/>|>(.*?)</)|\bhref\s*=\s*[\"']([^\"']*)",
    re.S | re.I,
)


@dataclass(frozen=True, slots=True)
class SeenBody:
    """The items of the last body fetched from a URL, by digest."""

    body_hash: str
    # 64-bit digests in arrays, not sets of bytes: a poller keeps one of these per feed
    # (about 1.5 KB instead of 10 KB for a 50-item feed).
    items: array[int]
    identities: array[int]


@dataclass(frozen=True, slots=True)
class ChangedParse:
    """What `parse_changed_job` gives back: the parse (as `parse_job` returns it) and what to
    remember of this body for the next one (None: nothing, forget the last)."""

    parsed: ParsedFeed | tuple[str, str]
    seen: SeenBody | None


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def _identities(element: bytes) -> set[int]:
    return {_digest(a or b) for a, b in _IDENTITY.findall(element) if a or b}


def without_seen_items(
    data: bytes, body_hash: str, seen: SeenBody | None, stored_hash: str | None
) -> tuple[bytes | None, SeenBody | None]:
    """Return the body without the items of `seen` (the last body remembered for its URL,
    None to parse all of it), and what to remember of this body instead (None: nothing).

    `stored_hash` is the hash of the body the feed's stored state says it stored last: the
    cut is only made when `seen` is that body.
    """
    spans = [(m.start(), m.end()) for m in _ITEM.finditer(data)]
    if not spans:
        return None, None
    digests = [_digest(data[a:b]) for a, b in spans]
    identities = [_identities(data[a:b]) for a, b in spans]
    remembered = SeenBody(body_hash, array("q", set(digests)), array("q", set().union(*identities)))
    if seen is None or stored_hash != seen.body_hash:
        return None, remembered  # not the body this feed stored last: parse everything
    seen_items = set(seen.items)
    keep = [i for i, d in enumerate(digests) if d not in seen_items]
    if len(keep) == len(spans):
        return None, remembered
    if any(not identities[i].isdisjoint(seen.identities) for i in keep):
        return None, remembered  # a guid or link reused by a changed item: the parser sorts it
    parts = [data[: spans[0][0]]]
    parts += [data[spans[i][0] : spans[i][1]] for i in keep]
    parts.append(data[spans[-1][1] :])
    return b"".join(parts), remembered


def parse_changed_job(
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    now: datetime,
    body_hash: str,
    seen: SeenBody | None,
    stored_hash: str | None,
) -> ChangedParse:
    """Parse a changed body's new items (`without_seen_items`), or all of it when the cut is
    not possible or its parse not clean; both pickle (a parse worker process runs this)."""
    reduced, remembered = without_seen_items(body, body_hash, seen, stored_hash)
    if reduced is not None:
        parsed = parse_job(reduced, headers, url, now)
        if not isinstance(parsed, tuple) and not parsed.bozo:
            return ChangedParse(parsed, remembered)
    return ChangedParse(parse_job(body, headers, url, now), remembered)
