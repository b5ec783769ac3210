"""The web timeline: an aiohttp.web application over the same use cases as the cogs.

Every page needs a valid token (see :mod:`timeline.domain.signed_links`): from `?token=` on the first visit,
which is moved into a cookie by a redirect so it does not stay in the address bar, then from
the cookie. The token's guild is the only guild any handler reads. No SQL here: the handlers
call `timeline.usecases` and render Jinja2 templates with autoescaping on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, tzinfo
from importlib.resources import files
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.app.config import WebSettings
from timeline.domain.errors import BadQuery, NotFound, TimelineError
from timeline.domain.signed_links import BadToken, Claims, verify_token
from timeline.domain.typed_dates import parse_when
from timeline.storage.engine import Database
from timeline.usecases.chart import chart_data, render_png
from timeline.usecases.events import mentioned_dates, show_event
from timeline.usecases.export import FORMATS, export_events
from timeline.usecases.feeds import list_feeds
from timeline.usecases.search import check_search
from timeline.usecases.settings import check_timezone, guild_zone
from timeline.usecases.storylines import (
    export_storyline,
    list_storylines,
    show_storyline,
    storyline_chart,
)
from timeline.usecases.timeline import timeline_page
from timeline.usecases.watches import list_watches

log = logging.getLogger(__name__)

COOKIE = "timeline_session"
PAGE_SIZE = 25
MAX_PARAM = 1000
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # The address may carry the token: never send it to the outlets a member clicks through to.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
CONTENT_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "ics": "text/calendar",
    "md": "text/markdown",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DB_KEY: web.AppKey[Database] = web.AppKey("db", Database)
WEB_KEY: web.AppKey[WebSettings] = web.AppKey("web", WebSettings)
SECRET_KEY: web.AppKey[bytes] = web.AppKey("secret", bytes)
ENV_KEY: web.AppKey[jinja2.Environment] = web.AppKey("jinja", jinja2.Environment)
CLOCK_KEY: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
# The config file's [discord] timezone: the zone of a guild that has not chosen its own.
ZONE_KEY: web.AppKey[str] = web.AppKey("timezone", str)
# The request's claims and its guild's time zone; web.RequestKey where aiohttp has it (3.13+),
# a plain key before.
_REQUEST_KEY = getattr(web, "RequestKey", None)
CLAIMS_KEY: Any = _REQUEST_KEY("claims", Claims) if _REQUEST_KEY is not None else "claims"
GUILD_ZONE_KEY: Any = _REQUEST_KEY("zone", tzinfo) if _REQUEST_KEY is not None else "zone"


def safe_url(url: object) -> str | None:
    """Return `url` when it is an http(s) URL with a host (feed links are untrusted), else None."""
    if not isinstance(url, str) or len(url) > 2048:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url.strip()


@jinja2.pass_context
def _local(context: jinja2.runtime.Context, value: datetime | None) -> str:
    """Format a time in the page's zone (the guild's) with the zone's abbreviation."""
    if value is None:
        return ""
    zone = context.get("zone") or UTC
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def make_environment() -> jinja2.Environment:
    """Build the Jinja2 environment: package templates, autoescape on everywhere."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("webui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["safe_url"] = safe_url
    env.filters["local"] = _local
    env.filters["iso"] = _iso
    return env


def make_app(
    db: Database,
    settings: WebSettings,
    secret: bytes,
    *,
    clock: Callable[[], datetime] | None = None,
    default_timezone: str = "UTC",
) -> web.Application:
    """Build the web timeline application for `db`, signing links with `secret`.

    Pages show times and days in the guild's time zone (`/settings timezone`), or in
    `default_timezone` (the config file's `[discord] timezone`) when it has none.
    """
    app = web.Application(middlewares=[_headers, _errors, _auth])
    app[DB_KEY] = db
    app[WEB_KEY] = settings
    app[SECRET_KEY] = secret
    app[ENV_KEY] = make_environment()
    app[CLOCK_KEY] = clock or (lambda: datetime.now(UTC))
    app[ZONE_KEY] = check_timezone(default_timezone)

    static = files("webui") / "static"
    app.router.add_static("/static/", str(static), name="static", append_version=True)
    app.router.add_get("/", timeline_handler, name="timeline")
    app.router.add_get(r"/event/{id:\d{1,18}}", event_handler, name="event")
    app.router.add_get(r"/storyline/{id:\d{1,18}}", storyline_handler, name="storyline")
    app.router.add_get(
        r"/storyline/{id:\d{1,18}}/chart.png", storyline_chart_handler, name="storyline_chart"
    )
    app.router.add_get(
        r"/storyline/{id:\d{1,18}}/export.{fmt}", storyline_export_handler, name="storyline_export"
    )
    app.router.add_get("/chart", chart_page_handler, name="chart")
    app.router.add_get("/chart.png", chart_png_handler, name="chart_png")
    app.router.add_get("/export.{fmt}", export_handler, name="export")
    return app


# -- middlewares ----------------------------------------------------------------------------


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except NotFound as exc:
        return _page(request, "error.html", status=404, title="Not found", message=str(exc))
    except TimelineError as exc:
        return _page(request, "error.html", status=400, title="Cannot show that", message=str(exc))
    except Exception:
        log.exception("web: %s %s failed", request.method, request.path)
        return _page(
            request,
            "error.html",
            status=500,
            title="Something went wrong",
            message="Sorry, this page failed on our side. It has been logged; try again later.",
        )


def _forbidden(request: web.Request, reason: str) -> web.Response:
    # One line for the operator; never the token itself.
    log.info("web: refused %s %s: %s", request.method, request.path, reason)
    response = _page(
        request,
        "error.html",
        status=403,
        title="This link does not work",
        message="The link is expired or not valid. Run /web in Discord for a new one.",
        claims=None,
    )
    response.del_cookie(COOKIE, path="/")
    return response


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/static/"):
        return await handler(request)
    secret = request.app[SECRET_KEY]
    now = request.app[CLOCK_KEY]()
    token = request.query.get("token")
    if token is not None:
        try:
            claims = verify_token(secret, token, now=now)
        except BadToken as exc:
            return _forbidden(request, f"link token {exc}")
        # Move the token into a cookie so it leaves the address bar (and the history).
        location = _same_site(request, [(k, v) for k, v in request.query.items() if k != "token"])
        response = web.HTTPSeeOther(location)
        secure = request.app[WEB_KEY].public_url.startswith("https://")
        response.set_cookie(
            COOKIE,
            token,
            max_age=max(1, int((claims.expires_at - now).total_seconds())),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=secure,
        )
        log.info(
            "web: link opened by %s",
            claims.member,
            extra={"guild_id": claims.guild_id},
        )
        raise response
    cookie = request.cookies.get(COOKIE)
    if cookie is None:
        return _forbidden(request, "no token")
    try:
        claims = verify_token(secret, cookie, now=now)
    except BadToken as exc:
        return _forbidden(request, f"cookie token {exc}")
    request[CLAIMS_KEY] = claims
    async with request.app[DB_KEY].session() as session:
        request[GUILD_ZONE_KEY] = await guild_zone(session, claims.guild_id, request.app[ZONE_KEY])
    return await handler(request)


# -- helpers --------------------------------------------------------------------------------


def _same_site(request: web.Request, query: list[tuple[str, str]]) -> str:
    """Return this request's path (still percent-encoded) with `query`, on this site only.

    One leading slash and no backslash: `//host` or `/\\host` would send the browser to
    another site (an open redirect that a valid link could carry).
    """
    path = "/" + request.rel_url.raw_path.lstrip("/\\").replace("\\", "%5C")
    return path + ("?" + urlencode(query) if query else "")


def _page(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    env = request.app[ENV_KEY]
    context.setdefault("claims", request.get(CLAIMS_KEY))
    context.setdefault("zone", _zone(request))
    context.setdefault("static", _static_url(request))
    html = env.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _static_url(request: web.Request) -> Callable[[str], str]:
    resource = request.app.router["static"]

    def url(name: str) -> str:
        return str(resource.url_for(filename=name))

    return url


def _zone(request: web.Request) -> tzinfo:
    """The guild's time zone (UTC on pages shown before the token is checked)."""
    zone: tzinfo = request.get(GUILD_ZONE_KEY) or UTC
    return zone


def _claims(request: web.Request) -> Claims:
    claims: Claims = request[CLAIMS_KEY]
    return claims


def _param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "")
    value = " ".join(value.split()) if name != "q" else value.strip()
    if not value:
        return None
    if len(value) > MAX_PARAM:
        raise BadQuery(f"{name} is longer than {MAX_PARAM} characters")
    return value


class Filters:
    """The timeline filters of one request, as given (strings) and parsed."""

    NAMES = ("q", "watch", "source", "storyline", "since", "until", "order")

    def __init__(self, request: web.Request) -> None:
        self.raw: dict[str, str] = {}
        for name in self.NAMES:
            value = request.query.get(name, "")
            if value.strip():
                self.raw[name] = value.strip()[:MAX_PARAM]
        self.query = _param(request, "q")
        self.watch = _param(request, "watch")
        self.source = _param(request, "source")
        self.oldest_first = self.raw.get("order") == "oldest"
        self.storyline_id: int | None = None
        self.since: datetime | None = None
        self.until: datetime | None = None
        self.errors: dict[str, str] = {}
        story = self.raw.get("storyline", "").lstrip("#")
        if story:
            if story.isdigit() and len(story) <= 18:
                self.storyline_id = int(story)
            else:
                self.errors["storyline"] = "storyline: pick one from the list"
        now = request.app[CLOCK_KEY]()
        # A date is that day where the guild is (its time zone).
        self.zone = _zone(request)
        for name, end in (("since", False), ("until", True)):
            text = self.raw.get(name)
            if not text:
                continue
            try:
                setattr(self, name, parse_when(text, now, end=end, zone=self.zone))
            except BadQuery as exc:
                self.errors[name] = f"{name}: {exc.message}"
        if self.since and self.until and self.since > self.until:
            self.errors["until"] = "since is after until: nothing can match"

    def link(self, path: str, **extra: str | None) -> str:
        """Return `path` with these filters (and `extra`) as its query string."""
        params = {**self.raw, **{k: v for k, v in extra.items() if v is not None}}
        return path + ("?" + urlencode(params) if params else "")


def _query_error(exc: BadQuery, query: str) -> dict[str, Any]:
    column = exc.column
    caret = None
    if column is not None and 1 <= column <= len(query) + 1:
        caret = " " * (column - 1) + "^"
    return {"message": str(exc), "column": column, "caret": caret}


async def _choices(session: AsyncSession, guild_id: int) -> dict[str, Any]:
    watches = await list_watches(session, guild_id)
    feeds = await list_feeds(session, guild_id)
    stories = await list_storylines(session, guild_id, active_only=False, limit=200)
    return {
        "watches": sorted({w.name for w in watches}, key=str.casefold),
        "feeds": sorted({f.name for f in feeds}, key=str.casefold),
        "storylines": [(s.id, s.title) for s in stories],
    }


# -- handlers -------------------------------------------------------------------------------


async def timeline_handler(request: web.Request) -> web.Response:
    """The guild's timeline with search and filters, one cursor page at a time."""
    claims = _claims(request)
    filters = Filters(request)
    query_error: dict[str, Any] | None = None
    page = None
    status = 200
    cursor = _param(request, "cursor")
    async with request.app[DB_KEY].session() as session:
        if filters.query:
            try:
                await check_search(session, claims.guild_id, filters.query)
            except BadQuery as exc:
                query_error = _query_error(exc, filters.query)
        if query_error is None and not filters.errors:
            try:
                page = await timeline_page(
                    session,
                    claims.guild_id,
                    query=filters.query,
                    since=filters.since,
                    until=filters.until,
                    watch=filters.watch,
                    source=filters.source,
                    storyline_id=filters.storyline_id,
                    oldest_first=filters.oldest_first,
                    cursor=cursor,
                    limit=PAGE_SIZE,
                )
            except (NotFound, BadQuery) as exc:
                filters.errors["filter"] = str(exc)
        dates = await mentioned_dates(session, claims.guild_id, page.events) if page else {}
        choices = await _choices(session, claims.guild_id)
    if query_error or filters.errors:
        status = 400
    next_link = filters.link("/", cursor=page.next_cursor) if page and page.next_cursor else None
    exports = {fmt: filters.link(f"/export.{fmt}") for fmt in FORMATS}
    return _page(
        request,
        "timeline.html",
        status=status,
        filters=filters,
        query_error=query_error,
        page=page,
        dates=dates,
        next_link=next_link,
        first_page=cursor is None,
        exports=exports,
        chart_link=filters.link("/chart"),
        **choices,
    )


async def event_handler(request: web.Request) -> web.Response:
    """One event: all its sources with links and what each added, notes, dates, storyline."""
    claims = _claims(request)
    async with request.app[DB_KEY].session() as session:
        detail = await show_event(session, claims.guild_id, int(request.match_info["id"]))
    return _page(request, "event.html", detail=detail, event=detail.event)


AXIS_WIDTH = 1000


async def storyline_handler(request: web.Request) -> web.Response:
    """A storyline: its events oldest first on a time axis."""
    claims = _claims(request)
    async with request.app[DB_KEY].session() as session:
        detail = await show_storyline(session, claims.guild_id, int(request.match_info["id"]))
        dates = await mentioned_dates(session, claims.guild_id, detail.events)
    events = detail.events
    axis: list[dict[str, Any]] = []
    if events:
        first = events[0].occurred_at
        span = (events[-1].occurred_at - first).total_seconds() or 1.0
        for event in events:
            offset = (event.occurred_at - first).total_seconds() / span
            axis.append({"x": round(20 + offset * (AXIS_WIDTH - 40), 1), "event": event})
    exports = {
        fmt: str(
            request.app.router["storyline_export"].url_for(id=str(detail.storyline.id), fmt=fmt)
        )
        for fmt in FORMATS
    }
    return _page(
        request,
        "storyline.html",
        detail=detail,
        story=detail.storyline,
        axis=axis,
        axis_width=AXIS_WIDTH,
        dates=dates,
        exports=exports,
    )


def _png(data: bytes) -> web.Response:
    return web.Response(body=data, content_type="image/png")


async def storyline_chart_handler(request: web.Request) -> web.Response:
    """The storyline's events over time as a PNG (the `/story chart` picture)."""
    claims = _claims(request)
    async with request.app[DB_KEY].session() as session:
        data = await storyline_chart(
            session, claims.guild_id, int(request.match_info["id"]), zone=_zone(request)
        )
    return _png(await asyncio.to_thread(render_png, data, data.title()))


async def storyline_export_handler(request: web.Request) -> web.Response:
    """One storyline as csv, json, ics or md."""
    claims = _claims(request)
    fmt = request.match_info["fmt"]
    if fmt not in FORMATS:
        raise NotFound(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    async with request.app[DB_KEY].session() as session:
        filename, data = await export_storyline(
            session, claims.guild_id, int(request.match_info["id"]), fmt, zone=_zone(request)
        )
    return _download(filename, fmt, data)


def _download(filename: str, fmt: str, data: bytes) -> web.Response:
    response = web.Response(body=data, content_type=CONTENT_TYPES[fmt], charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _checked(filters: Filters) -> None:
    if filters.errors:
        raise BadQuery("; ".join(filters.errors.values()))


async def chart_page_handler(request: web.Request) -> web.Response:
    """A page with the chart of the current filter (the PNG) and what it counts."""
    filters = Filters(request)
    _checked(filters)
    bucket = request.query.get("bucket", "day")
    return _page(
        request,
        "chart.html",
        filters=filters,
        bucket=bucket if bucket in ("day", "week") else "day",
        png=filters.link("/chart.png", bucket=bucket if bucket in ("day", "week") else "day"),
        back=filters.link("/"),
    )


async def chart_png_handler(request: web.Request) -> web.Response:
    """Events per watch over time as a PNG: the same data as `/chart`."""
    claims = _claims(request)
    filters = Filters(request)
    _checked(filters)
    bucket = request.query.get("bucket", "day")
    async with request.app[DB_KEY].session() as session:
        if filters.query:
            await check_search(session, claims.guild_id, filters.query)
        data = await chart_data(
            session,
            claims.guild_id,
            query=filters.query,
            since=filters.since,
            until=filters.until,
            bucket=bucket,
            now=request.app[CLOCK_KEY](),
            watch=filters.watch,
            source=filters.source,
            zone=filters.zone,
        )
    return _png(await asyncio.to_thread(render_png, data, data.title(filters.query)))


async def export_handler(request: web.Request) -> web.Response:
    """The current filter's events as csv, json, ics or md (what `/export` sends)."""
    claims = _claims(request)
    fmt = request.match_info["fmt"]
    if fmt not in FORMATS:
        raise NotFound(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    filters = Filters(request)
    _checked(filters)
    async with request.app[DB_KEY].session() as session:
        if filters.storyline_id is not None:
            filename, data = await export_storyline(
                session, claims.guild_id, filters.storyline_id, fmt, zone=filters.zone
            )
        else:
            if filters.query:
                await check_search(session, claims.guild_id, filters.query)
            filename, data = await export_events(
                session,
                claims.guild_id,
                fmt,
                query=filters.query,
                since=filters.since,
                until=filters.until,
                now=request.app[CLOCK_KEY](),
                watch=filters.watch,
                source=filters.source,
                zone=filters.zone,
            )
    log.info("web: export %s for %s", filename, claims.member, extra={"guild_id": claims.guild_id})
    return _download(filename, fmt, data)
