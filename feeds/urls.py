"""URL helpers for feeds: scheme checks and the canonical form used for links and dedup."""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus, urlsplit, urlunsplit

log = logging.getLogger(__name__)

ALLOWED_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Query parameters that only say where a click came from, never which page it is.
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "mc_cid",
        "mc_eid",
        "ref_src",
        "ref_url",
        "igshid",
        "igsh",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "wt_mc",
        "cmpid",
        "ncid",
        "sr_share",
        "s_cid",
        "guccounter",
        "guce_referrer",
        "guce_referrer_sig",
        "at_medium",
        "at_campaign",
        "taid",
    }
)
_TRACKING_PREFIXES = ("utm_", "hmb_", "pk_", "mtm_", "__s")


class BadURL(ValueError):
    """A URL that is not an absolute http(s) URL with a host."""


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in _TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES)


def _param_name(segment: str) -> str:
    return unquote_plus(segment.partition("=")[0])


def check_http_url(url: str) -> str:
    """Return `url` stripped if it is an absolute http(s) URL with a host, else raise BadURL."""
    text = url.strip()
    if not text:
        raise BadURL("empty URL")
    if any(ord(ch) < 0x21 for ch in text):
        raise BadURL("URL contains whitespace or control characters")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise BadURL(f"invalid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = scheme or "none"
        raise BadURL(f"only http and https URLs are allowed (scheme is {shown})")
    if not parts.hostname:
        raise BadURL("URL has no host")
    return text


def canonical_url(url: str) -> str:
    """Return the canonical form of `url`: lower-case scheme/host, no default port, fragment or
    tracking parameters; everything else (path, other parameters and their order) is kept.

    A string that cannot be parsed as a URL is returned stripped but otherwise unchanged.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    host = parts.hostname  # already lower-case, without brackets or credentials
    if not scheme or host is None:
        return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        netloc = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or ("/" if scheme in ALLOWED_SCHEMES else "")
    query = parts.query
    if query:
        # Filter the raw "name=value" segments so the kept ones stay byte-identical.
        kept = [seg for seg in query.split("&") if seg and not _is_tracking(_param_name(seg))]
        query = "&".join(kept)
    return urlunsplit((scheme, netloc, path, query, ""))
