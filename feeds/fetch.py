"""Fetch feeds over HTTP with one shared aiohttp session, limits and an SSRF guard.

`Fetcher.fetch` never raises for network, HTTP or parse problems: it returns a `FetchResult`
whose `outcome` is "ok", "not_modified", "unchanged" or "error" (then `error_kind` is one of
`ERROR_KINDS` and `error` one human-readable line).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeGuard, cast

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from feeds.parse import ParsedFeed, parse_job
from feeds.parse_pool import ParseWorkerPool, PoolClosed
from feeds.seen import ChangedParse, SeenBody, parse_changed_job
from feeds.ssrf import AddressPolicy, GuardedResolver, RefusedAddress
from feeds.types import FetchResult, FetchState
from feeds.urls import BadURL, check_http_url

if TYPE_CHECKING:
    from timeline.app.config import PollingSettings

log = logging.getLogger(__name__)

ERROR_KINDS = frozenset(
    {
        "bad_url",  # not an absolute http(s) URL
        "unreachable",  # DNS failure, connection refused/reset, TLS failure
        "timeout",  # the fetch took longer than timeout_seconds, or the parse (in a worker
        # process) longer than parse_timeout_seconds
        "http",  # an HTTP error status or an invalid HTTP response
        "rate_limited",  # 429 (see retry_after)
        "not_feed",  # HTML page, JSON, empty body...
        "malformed",  # broken XML without entries, entity declarations
        "too_large",  # body (after decompression) over max_body_bytes
        "refused",  # SSRF guard: private/loopback/metadata address
        "redirect_loop",  # redirect cycle or more than max_redirects hops
        "internal",  # a bug in this module (logged with a traceback)
    }
)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
# A hostile Retry-After must not park a feed for years.
MAX_RETRY_AFTER = 24 * 3600.0
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """Limits and identity for fetching feeds."""

    timeout_seconds: float = 20.0
    max_body_bytes: int = 5 * 1024 * 1024
    user_agent: str = "TimelineBot/0.1 (+https://github.com/timeline-bot/timeline-bot)"
    per_host_concurrency: int = 2
    max_redirects: int = 5
    allow_private: tuple[str, ...] = ()
    # Parse in this many worker processes (feeds/parse_pool.py; feedparser is CPU-bound); 0 parses
    # in a thread.
    parse_workers: int = 0
    # A parse in a worker process that takes longer is stopped (the worker killed) and the
    # feed gets a "timeout" error. (A parse in a thread cannot be stopped: there, the limits
    # feeds.parse checks before feedparser are the bound.)
    parse_timeout_seconds: float = 60.0
    # Parse only the items that were not in this feed's previous body (see feeds/seen.py).
    skip_seen_items: bool = False

    @classmethod
    def from_settings(cls, polling: PollingSettings) -> FetchSettings:
        """Build from the config's [polling] settings, field by field: a renamed setting is
        a type error here, never a silent fall back to a default."""
        return cls(
            timeout_seconds=polling.timeout_seconds,
            max_body_bytes=polling.max_body_bytes,
            user_agent=polling.user_agent,
            per_host_concurrency=polling.per_host_concurrency,
            max_redirects=polling.max_redirects,
            allow_private=tuple(polling.allow_private),
            parse_workers=polling.parse_workers,
            skip_seen_items=polling.skip_seen_items,
        )


class FetchFailed(Exception):
    """An expected failure of one fetch, turned into an "error" FetchResult."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


@dataclass(slots=True)
class _Body:
    status: int
    headers: CIMultiDictProxy[str]
    data: bytes
    raw_bytes: int


class _BodyDecoder:
    """Undo gzip/deflate while enforcing the byte cap on the *decoded* size (gzip bombs)."""

    def __init__(self, encoding: str, limit: int) -> None:
        self._limit = limit
        self._out = bytearray()
        self._encoding = encoding
        self._z: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            # RFC 9110 says zlib-wrapped, but many servers send raw deflate: sniff the header.
            self._z = None
        elif encoding not in ("", "identity"):
            raise FetchFailed("http", f"server sent unsupported Content-Encoding {encoding!r}")

    def feed(self, chunk: bytes) -> None:
        if self._encoding == "deflate" and self._z is None:
            looks_zlib = (
                len(chunk) >= 2 and (chunk[0] & 0x0F) == 8 and (chunk[0] << 8 | chunk[1]) % 31 == 0
            )
            self._z = zlib.decompressobj(zlib.MAX_WBITS if looks_zlib else -zlib.MAX_WBITS)
        if self._z is None:
            self._append(chunk)
            return
        while chunk:
            room = self._limit - len(self._out) + 1
            try:
                out = self._z.decompress(chunk, room)
            except zlib.error as exc:
                raise FetchFailed(
                    "http", f"corrupt {self._encoding} response body: {exc}"
                ) from None
            self._append(out)
            chunk = self._z.unconsumed_tail
            if self._z.eof:
                rest = self._z.unused_data
                if self._encoding == "deflate" or not rest.startswith(b"\x1f\x8b"):
                    break  # trailing bytes after the stream are ignored, as browsers do
                # Concatenated gzip members (RFC 1952 2.2) are one body.
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                chunk = rest

    def finish(self) -> bytes:
        if self._z is not None:
            self._append(self._z.flush())
        return bytes(self._out)

    def _append(self, data: bytes) -> None:
        self._out += data
        if len(self._out) > self._limit:
            raise FetchFailed("too_large", f"response body is larger than {self._limit} bytes")


def _header_safe(value: str | None) -> TypeGuard[str]:
    """Whether a remembered validator can be sent back (no CR/LF or control chars, sane length)."""
    return bool(value) and len(value or "") <= 1024 and (value or "").isprintable()


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Return the seconds a Retry-After header asks for (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(int(text[:12]))
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # RFC 9110: HTTP-dates are GMT
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class Fetcher:
    """Fetch feeds with one shared aiohttp session; use as `async with Fetcher(settings) as f`."""

    def __init__(self, settings: FetchSettings | None = None) -> None:
        self.settings = settings or FetchSettings()
        self.policy = AddressPolicy(self.settings.allow_private)
        self._session: aiohttp.ClientSession | None = None
        self._host_limits: dict[str, asyncio.Semaphore] = {}
        self._pool: ParseWorkerPool | None = None
        self._seen: dict[str, SeenBody] = {}

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the shared session (idempotent)."""
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.policy),
            limit=100,
            limit_per_host=max(1, self.settings.per_host_concurrency),
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # we decompress ourselves, under the byte cap
            trust_env=False,  # no proxy from the environment: it would bypass the SSRF guard
            timeout=aiohttp.ClientTimeout(total=None),  # fetch() enforces the total budget
            headers={"User-Agent": self.settings.user_agent},
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        if self.settings.parse_workers > 0:
            self._pool = ParseWorkerPool(  # started on first use
                self.settings.parse_workers, deadline=self.settings.parse_timeout_seconds
            )

    async def close(self) -> None:
        """Close the shared session and its connections, and stop the parse workers."""
        session, self._session = self._session, None
        pool, self._pool = self._pool, None
        try:
            if session is not None:
                await session.close()
        finally:
            if pool is not None:
                await pool.close()

    async def fetch(self, state: FetchState) -> FetchResult:
        """Fetch and parse the feed at `state.url`; never raises for network/HTTP/parse problems."""
        started = time.monotonic()
        result = await self._fetch(state)
        result.duration_ms = (time.monotonic() - started) * 1000.0
        if result.outcome == "error":
            log.warning(
                "feed fetch failed url=%s kind=%s status=%s: %s",
                state.url,
                result.error_kind,
                result.status,
                result.error,
            )
        else:
            for warning in result.warnings:
                log.warning("feed repaired url=%s: %s", state.url, warning)
            log.debug(
                "feed fetched url=%s outcome=%s items=%d bytes=%d ms=%.0f",
                state.url,
                result.outcome,
                len(result.items),
                result.bytes_read,
                result.duration_ms,
            )
        return result

    async def _fetch(self, state: FetchState) -> FetchResult:
        bytes_read = 0
        try:
            body, final_url, permanent_url = await self._download(state)
            bytes_read = body.raw_bytes
            return await self._interpret(state, body, final_url, permanent_url)
        except FetchFailed as exc:
            return FetchResult(
                url=state.url,
                outcome="error",
                state=state,
                status=exc.status,
                error=str(exc),
                error_kind=exc.kind,
                retry_after=exc.retry_after,
                bytes_read=bytes_read,
            )
        except Exception as exc:  # never let one feed take the poller down
            log.exception("unexpected error fetching url=%s", state.url)
            return FetchResult(
                url=state.url,
                outcome="error",
                state=state,
                error=f"internal error: {type(exc).__name__}: {exc}",
                error_kind="internal",
            )

    async def _interpret(
        self, state: FetchState, body: _Body, final_url: str, permanent_url: str | None
    ) -> FetchResult:
        result = FetchResult(
            url=state.url,
            outcome="ok",
            state=state,
            status=body.status,
            permanent_url=permanent_url,
            bytes_read=body.raw_bytes,
        )
        etag = body.headers.get("ETag")
        last_modified = body.headers.get("Last-Modified")
        if body.status == 304:
            result.outcome = "not_modified"
            result.state = replace(
                state, etag=etag or state.etag, last_modified=last_modified or state.last_modified
            )
            return result
        body_hash = hashlib.sha256(body.data).hexdigest()
        new_state = replace(state, etag=etag, last_modified=last_modified, body_hash=body_hash)
        if state.body_hash is not None and body_hash == state.body_hash:
            result.outcome = "unchanged"
            result.state = new_state
            return result
        headers = dict(body.headers.items())
        now = datetime.now(UTC)
        if self.settings.skip_seen_items:
            parsed = await self._parse_changed(state, body.data, headers, final_url, now, body_hash)
        else:
            parsed = await self._parse(body.data, headers, final_url, now)
        if isinstance(parsed, tuple):
            kind, message = parsed
            raise FetchFailed(kind, message, status=body.status)
        result.state = new_state
        result.items = parsed.items
        result.feed_title = parsed.title
        result.warnings = parsed.warnings
        return result

    async def _parse_changed(
        self,
        state: FetchState,
        data: bytes,
        headers: dict[str, str],
        url: str,
        now: datetime,
        body_hash: str,
    ) -> ParsedFeed | tuple[str, str]:
        """Parse only the items this body adds to the last one stored (`parse_changed_job`,
        in a worker process if configured, else in a thread), and remember its items."""
        args = (data, headers, url, now, body_hash, self._seen.get(state.url), state.body_hash)
        result = await self._run(parse_changed_job, *args, url=url)
        if isinstance(result, tuple):
            return result  # the worker died or the parse took too long: the feed's error
        assert isinstance(result, ChangedParse)
        if result.seen is None:
            self._seen.pop(state.url, None)
        else:
            self._seen[state.url] = result.seen
        return result.parsed

    async def _parse(
        self, data: bytes, headers: dict[str, str], url: str, now: datetime
    ) -> ParsedFeed | tuple[str, str]:
        """Parse a whole body (`parse_job`) off the event loop."""
        result = await self._run(parse_job, data, headers, url, now, url=url)
        return cast("ParsedFeed | tuple[str, str]", result)

    async def _run(self, job: Callable[..., Any], *args: Any, url: str) -> Any:
        """Run a parse job off the event loop: in a worker process if configured, else in a
        thread. A worker's death or a parse past its deadline comes back as the pool gives
        them, `(kind, message)`."""
        # feedparser is CPU-bound: keep the event loop (and Discord heartbeats) responsive.
        # Small bodies too (the few new items of `skip_seen_items`): a thread parses holding
        # this process's GIL, which a round waits on; shipping a body and its items costs
        # this process far less than parsing it (at 1,000 feeds, 0.45 of 3.6 CPU s a round).
        pool = self._pool
        if pool is not None:
            try:
                # A worker that dies mid-job (OOM killer, a crash in a C extension) fails this
                # job only, logged by the pool: the body is not retried, it may be the cause.
                return await pool.run(job, *args, url=url)
            except PoolClosed:
                pass  # close() ran meanwhile
        return await asyncio.to_thread(job, *args)

    def _host_limit(self, host: str) -> asyncio.Semaphore:
        sem = self._host_limits.get(host)
        if sem is None:
            sem = asyncio.Semaphore(max(1, self.settings.per_host_concurrency))
            self._host_limits[host] = sem
        return sem

    async def _download(self, state: FetchState) -> tuple[_Body, str, str | None]:
        if self._session is None:
            raise RuntimeError("Fetcher used outside 'async with' (call open() first)")
        try:
            url = URL(check_http_url(state.url))
        except (BadURL, ValueError) as exc:
            raise FetchFailed("bad_url", f"bad feed URL: {exc}") from None
        headers = {
            "Accept": "application/rss+xml, application/atom+xml, application/rdf+xml, "
            "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5",
            "Accept-Encoding": "gzip, deflate",
        }
        if _header_safe(state.etag):
            headers["If-None-Match"] = state.etag
        if _header_safe(state.last_modified):
            headers["If-Modified-Since"] = state.last_modified
        budget = self.settings.timeout_seconds
        seen = {str(url)}
        permanent_url: str | None = None
        permanent_chain = True
        for _hop in range(self.settings.max_redirects + 1):
            self._check_target(url)
            host = f"{url.host}:{url.port}"
            async with self._host_limit(host):
                # Waiting for a slot is not the server's fault: only network time is budgeted.
                started = time.monotonic()
                body = await self._request(url, headers, budget)
                budget -= time.monotonic() - started
            if body.status not in REDIRECT_STATUSES:
                self._check_status(body)
                return body, str(url), permanent_url
            location = body.headers.get("Location")
            if not location:
                raise FetchFailed("http", f"HTTP {body.status} redirect without a Location header")
            try:
                target = url.join(URL(location.strip())).with_fragment(None)
                check_http_url(str(target))
            except (BadURL, ValueError, TypeError) as exc:
                raise FetchFailed(
                    "bad_url", f"redirect to a bad URL {location[:200]!r}: {exc}"
                ) from None
            if str(target) in seen:
                raise FetchFailed("redirect_loop", f"redirect loop: {url} -> {target}")
            seen.add(str(target))
            if permanent_chain and body.status in PERMANENT_REDIRECTS:
                permanent_url = str(target)
            else:
                permanent_chain = False
            url = target
        raise FetchFailed(
            "redirect_loop", f"too many redirects (more than {self.settings.max_redirects})"
        )

    def _check_target(self, url: URL) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise FetchFailed("bad_url", f"only http and https URLs are allowed: {url}")
        try:
            self.policy.check_literal(url.host)
        except RefusedAddress as exc:
            raise FetchFailed("refused", f"refused to connect: {exc}") from None

    def _check_status(self, body: _Body) -> None:
        status = body.status
        if status == 304 or 200 <= status < 300:
            if status == 204:
                raise FetchFailed("not_feed", "HTTP 204 No Content: no feed", status=status)
            return
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(body.headers.get("Retry-After"), datetime.now(UTC))
        kind = "rate_limited" if status == 429 else "http"
        reason = _REASONS.get(status, "")
        wait = f" (Retry-After {retry_after:.0f} s)" if retry_after is not None else ""
        raise FetchFailed(
            kind, f"HTTP {status} {reason}{wait}".strip(), status=status, retry_after=retry_after
        )

    async def _request(self, url: URL, headers: Mapping[str, str], budget: float) -> _Body:  # noqa: C901 (one branch per HTTP outcome, kept in the order they happen)
        assert self._session is not None
        limit = self.settings.max_body_bytes
        if budget <= 0:
            raise FetchFailed("timeout", f"timed out after {self.settings.timeout_seconds:g} s")
        status: int | None = None
        try:
            async with asyncio.timeout(budget):
                async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
                    status = resp.status
                    if resp.status in REDIRECT_STATUSES or resp.status == 304:
                        return _Body(resp.status, resp.headers, b"", 0)
                    if resp.status >= 400:
                        # Error pages are not read: the status says it all.
                        return _Body(resp.status, resp.headers, b"", 0)
                    declared = resp.content_length
                    if declared is not None and declared > limit:
                        raise FetchFailed(
                            "too_large",
                            f"response body is {declared} bytes, over the {limit}-byte limit",
                            status=resp.status,
                        )
                    encoding = resp.headers.get("Content-Encoding", "").strip().lower()
                    decoder = _BodyDecoder(encoding, limit)
                    raw = 0
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        raw += len(chunk)
                        if raw > limit:
                            raise FetchFailed(
                                "too_large",
                                f"response body is larger than {limit} bytes",
                                status=resp.status,
                            )
                        decoder.feed(chunk)
                    return _Body(resp.status, resp.headers, decoder.finish(), raw)
        except FetchFailed as exc:
            exc.status = exc.status or status
            raise
        except TimeoutError:
            raise FetchFailed(
                "timeout", f"timed out after {self.settings.timeout_seconds:g} s"
            ) from None
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                raise FetchFailed("refused", f"refused to connect: {exc.os_error}") from None
            raise FetchFailed("unreachable", f"cannot resolve host {url.host}") from None
        except aiohttp.ClientSSLError as exc:
            raise FetchFailed("unreachable", f"TLS error with {url.host}: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.strerror or type(exc.os_error).__name__
            raise FetchFailed(
                "unreachable", f"cannot connect to {url.host}:{url.port}: {reason}"
            ) from None
        except aiohttp.InvalidURL as exc:
            raise FetchFailed("bad_url", f"invalid URL: {exc}") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise FetchFailed("unreachable", f"connection to {url.host} failed: {exc}") from None
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:
            raise FetchFailed("http", f"invalid HTTP response: {exc}") from None
        except aiohttp.ClientError as exc:
            raise FetchFailed("unreachable", f"{type(exc).__name__}: {exc}") from None


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    410: "Gone",
    429: "Too Many Requests",
    451: "Unavailable For Legal Reasons",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
