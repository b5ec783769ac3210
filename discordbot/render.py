"""Turn outbox alerts into Discord messages that Discord always accepts and that ping no one.

Feed text is hostile: it may hold markdown, ``@everyone``, role or user mentions, ten
thousand character titles or ``javascript:`` links. Every string from a feed is cleaned,
escaped and cut to Discord's limits here, and every message carries an ``allowed_mentions``
that permits at most the role configured on the watch.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from urllib.parse import quote, urlsplit

import discord
from discord.utils import format_dt

from timeline.domain.query.normalise import stems, words
from timeline.render.markup import escape_markdown
from timeline.render.templates import render_template
from timeline.storage.notices import FAILING, NoticeView
from timeline.storage.outbox import AlertView, DigestLine, SourceView, StorylineRef

log = logging.getLogger(__name__)

# https://discord.com/developers/docs/resources/message#embed-object-embed-limits
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
AUTHOR_LIMIT = 256
EMBED_TOTAL_LIMIT = 6000
FIELDS_LIMIT = 25
CONTENT_LIMIT = 2000
URL_LIMIT = 2048

ELLIPSIS = "…"
ALERT_COLOUR = discord.Colour.blurple()
DIGEST_COLOUR = discord.Colour.gold()
DEFAULT_SNIPPET_CHARS = 300
DIGEST_LINES = 20

_TAG_RE = re.compile(r"<[^>]{0,2000}>")
_SPACE_RE = re.compile(r"\s+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Anything that Discord would turn into a mention or a link-like token. Pings are already
# impossible through `allowed_mentions`; this keeps the text from even rendering as mentions.
_MENTION_RE = re.compile(r"@(everyone|here)|<(@[!&]?|#|/|a?:)")


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """What to hand `channel.send` / `message.edit`."""

    content: str | None
    embed: discord.Embed
    allowed_mentions: discord.AllowedMentions


def discord_len(text: str) -> int:
    """Measure `text` as Discord does for its limits (UTF-16 code units, the safe count)."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """Shorten `text` to at most `limit` Discord characters, marking the cut with an ellipsis."""
    if discord_len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    budget = limit - 1
    out = []
    used = 0
    for ch in text:
        size = 2 if ord(ch) > 0xFFFF else 1
        if used + size > budget:
            break
        out.append(ch)
        used += size
    head = "".join(out).rstrip()
    # A lone trailing backslash would escape the ellipsis; an odd run of them is one escape.
    trailing = len(head) - len(head.rstrip("\\"))
    if trailing % 2:
        head = head[:-1]
    return head + ELLIPSIS


def clean_text(text: str | None) -> str:
    """Flatten feed text to one line of plain text: no tags, entities, controls or runs of space."""
    if not text:
        return ""
    text = _TAG_RE.sub(" ", text)
    text = html.unescape(text)
    text = _CONTROL_RE.sub("", text)
    return _SPACE_RE.sub(" ", text).strip()


def neutralise_mentions(text: str) -> str:
    """Break every mention-like token with a zero-width space so it renders as text."""
    return _MENTION_RE.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)


def neutralise_mentions_except(text: str, role_id: int | None) -> str:
    """Like neutralise_mentions, but keep the mention of `role_id` (a template's {role})."""
    if not role_id:
        return neutralise_mentions(text)
    keep = f"<@&{role_id}>"
    return keep.join(neutralise_mentions(part) for part in text.split(keep))


def escape(text: str | None) -> str:
    """Clean feed text and escape it for Discord markdown and mentions."""
    return neutralise_mentions(escape_markdown(clean_text(text)))


def _escape_clean(text: str, line_start: bool = True) -> str:
    # For pieces of already cleaned text: spaces at the edges matter here, and a piece in
    # the middle of a line cannot start a header or a list.
    return neutralise_mentions(escape_markdown(text, line_start=line_start))


def safe_url(url: str | None) -> str | None:
    """Return `url` if Discord would accept it as an embed or markdown link, else None."""
    if not url:
        return None
    url = url.strip()
    if len(url) > URL_LIMIT or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    # Parentheses and angle brackets would end a markdown link early.
    return quote(url, safe=":/?#[]@!$&'*+,;=%~-._")


def _link(label: str, url: str | None) -> str:
    target = safe_url(url)
    return f"[{label}]({target})" if target else label


def _term_pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    parts = []
    for term in list(terms)[:20]:
        words = re.findall(r"\w+", term)
        if words:
            # Matched terms may be stems ("communiqu"): the bold covers the whole word.
            parts.append(r"\b" + r"\W+".join(re.escape(w) for w in words) + r"\w*")
    if not parts:
        return None
    parts.sort(key=len, reverse=True)
    return re.compile("|".join(parts), re.IGNORECASE)


def highlight(text: str | None, terms: Iterable[str], limit: int) -> str:
    """Cut a snippet of at most `limit` characters around the first match, terms in bold."""
    plain = clean_text(text)
    if not plain or limit <= 0:
        return ""
    pattern = _term_pattern(terms)
    matches = list(pattern.finditer(plain)) if pattern else []
    start = 0
    if matches and matches[0].start() > limit // 3:
        start = matches[0].start() - limit // 3
        space = plain.find(" ", start)
        if 0 <= space < matches[0].start():
            start = space + 1
    pieces: list[str] = [ELLIPSIS] if start else []
    used = discord_len(pieces[0]) if pieces else 0
    pos = start
    truncated = False
    spans = [(m.start(), m.end()) for m in matches if m.start() >= start]
    spans.append((len(plain), len(plain)))
    for m_start, m_end in spans:
        for segment, bold in ((plain[pos:m_start], False), (plain[m_start:m_end], True)):
            if not segment:
                continue
            piece = _escape_clean(segment, line_start=not pieces)
            if bold:
                piece = f"**{piece}**"
            size = discord_len(piece)
            if used + size > limit - 1:
                if not bold:
                    # Plain text can be cut mid-way; a bold term is kept whole or dropped.
                    piece = cut(_escape_clean(segment, not pieces), limit - 1 - used)
                    piece = piece.removesuffix(ELLIPSIS)
                    pieces.append(piece)
                truncated = True
                break
            pieces.append(piece)
            used += size
        if truncated:
            break
        pos = m_end
    body = "".join(pieces).rstrip()
    if truncated:
        body = body.rstrip("\\") if (len(body) - len(body.rstrip("\\"))) % 2 else body
        body += ELLIPSIS
    return body


def no_pings(role_ids: Iterable[int] = ()) -> discord.AllowedMentions:
    """Allow mentions of exactly `role_ids` and nobody else, never @everyone or users."""
    roles = [discord.Object(id=r) for r in dict.fromkeys(role_ids)]
    return discord.AllowedMentions(
        everyone=False, users=False, roles=roles or False, replied_user=False
    )


def _role_content(role_ids: Iterable[int]) -> str | None:
    unique = list(dict.fromkeys(role_ids))
    if not unique:
        return None
    return cut(" ".join(f"<@&{r}>" for r in unique), CONTENT_LIMIT)


def _sources_value(alert: AlertView) -> str:
    seen: dict[str, str | None] = {}
    for source in alert.sources:
        seen.setdefault(source.feed_name, source.link)
    if not seen:
        return "unknown"
    linked = ", ".join(_link(escape(name) or "?", link) for name, link in seen.items())
    if discord_len(linked) <= FIELD_VALUE_LIMIT:
        return linked
    return cut(", ".join(escape(name) or "?" for name in seen), FIELD_VALUE_LIMIT)


def storyline_line(ref: StorylineRef) -> str:
    """One line: which storyline an event belongs to, how many events before it, since when."""
    title = cut(escape(ref.title) or "Untitled storyline", 200)
    if ref.earlier_events and ref.since is not None:
        plural = "event" if ref.earlier_events == 1 else "events"
        told = f" — {ref.earlier_events} earlier {plural} since {ref.since:%d %b}"
    else:
        told = " — the first event"
    return f"Part of *{title}*{told} · story #{ref.id}"


def brief_value(source: SourceView, limit: int = FIELD_VALUE_LIMIT) -> str:
    """What one joining source adds, escaped and cut (or that it adds nothing new)."""
    name = escape(source.feed_name) or "?"
    if not source.brief:
        return cut(f"{name} — nothing new", limit)
    return cut(f"{name} — adds: ‘{escape(source.brief)}’", limit)


def _latest_brief(alert: AlertView) -> SourceView | None:
    """The newest source that joined the event after the first one, if any."""
    joined = [s for s in alert.sources if s.brief is not None]
    return joined[-1] if joined and len(alert.sources) > 1 else None


def matched_terms(terms: Iterable[str]) -> list[str]:
    """The matched words once each: `NATO`, `Communique`, `communiques` are one term, shown
    as it first appeared."""
    seen: dict[tuple[str, ...], str] = {}
    for term in terms:
        key = tuple(stems(words(term)))
        if key and key not in seen:
            seen[key] = " ".join(term.split())
    return list(seen.values())


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """Trim an embed until it is within Discord's 6000-character total."""
    excess = len(embed) - EMBED_TOTAL_LIMIT
    if excess > 0 and embed.description:
        keep = max(discord_len(embed.description) - excess, 0)
        embed.description = cut(embed.description, keep) or None
        excess = len(embed) - EMBED_TOTAL_LIMIT
    while excess > 0 and embed.fields:
        embed.remove_field(len(embed.fields) - 1)
        excess = len(embed) - EMBED_TOTAL_LIMIT
    if excess > 0 and embed.title:
        embed.title = cut(embed.title, max(discord_len(embed.title) - excess, 1))
    return embed


def template_values(alert: AlertView, snippet_chars: int = DEFAULT_SNIPPET_CHARS) -> dict[str, str]:
    """Every placeholder's value for `alert`, escaped (see timeline.render.templates)."""
    link = safe_url(alert.event_link) or ""
    names = [escape(n) or "?" for n in alert.source_names]
    when = alert.occurred_at
    return {
        "title": cut(escape(alert.event_title) or "(untitled story)", TITLE_LIMIT),
        "link": link,
        "source": names[0] if names else "unknown",
        "sources": cut(", ".join(names) or "unknown", FIELD_VALUE_LIMIT),
        "published": format_dt(when, "f"),
        "published_relative": format_dt(when, "R"),
        "snippet": highlight(
            alert.snippet_source, alert.matched_terms, min(snippet_chars, DESCRIPTION_LIMIT)
        ),
        "terms": ", ".join(escape(t) for t in matched_terms(alert.matched_terms)),
        "watch": cut(escape(alert.watch_name) or "?", 200),
        "storyline": storyline_line(alert.storyline) if alert.storyline is not None else "",
        "role": f"<@&{alert.role_id}>" if alert.role_id else "",
        "event_id": str(alert.event_id),
    }


def alert_embed(alert: AlertView, snippet_chars: int = DEFAULT_SNIPPET_CHARS) -> discord.Embed:
    """Render one alert: linked title, snippet, sources, time, watch and event id.

    With the watch's template the description is the team's text with the placeholders
    filled (values escaped, the template's own Markdown kept), in the watch's colour, with
    the outlet as the author line.
    """
    if alert.template:
        text = render_template(alert.template, template_values(alert, snippet_chars))
        description = cut(neutralise_mentions_except(text, alert.role_id), DESCRIPTION_LIMIT)
    else:
        description = highlight(
            alert.snippet_source, alert.matched_terms, min(snippet_chars, DESCRIPTION_LIMIT)
        )
    embed = discord.Embed(
        title=cut(escape(alert.event_title) or "(untitled story)", TITLE_LIMIT),
        url=safe_url(alert.event_link),
        description=description or None,
        colour=alert.colour if alert.colour is not None else ALERT_COLOUR,
        timestamp=alert.occurred_at,
    )
    if alert.template and alert.source_names:
        embed.set_author(name=cut(clean_text(alert.source_names[0]) or "?", AUTHOR_LIMIT))
    image = next((url for s in alert.sources if (url := safe_url(s.image))), None)
    if image is not None:
        embed.set_thumbnail(url=image)
    names = alert.source_names
    embed.add_field(
        name="Sources" if len(names) > 1 else "Source", value=_sources_value(alert), inline=True
    )
    embed.add_field(
        name="Watch", value=cut(escape(alert.watch_name) or "?", FIELD_VALUE_LIMIT), inline=True
    )
    if alert.matched_terms:
        terms = ", ".join(escape(t) for t in matched_terms(alert.matched_terms))
        if terms:
            embed.add_field(name="Matched", value=cut(terms, FIELD_VALUE_LIMIT), inline=False)
    latest = _latest_brief(alert)
    if latest is not None:
        embed.add_field(name="+1 source", value=brief_value(latest), inline=False)
    if alert.storyline is not None:
        embed.add_field(
            name="Storyline",
            value=cut(storyline_line(alert.storyline), FIELD_VALUE_LIMIT),
            inline=False,
        )
    embed.set_footer(text=cut(f"Event #{alert.event_id} · /event show {alert.event_id}", 2048))
    return fit_embed(embed)


def alert_message(alert: AlertView, snippet_chars: int = DEFAULT_SNIPPET_CHARS) -> RenderedMessage:
    """Render one alert as a message that may ping only the watch's role."""
    roles = [alert.role_id] if alert.role_id else []
    return RenderedMessage(_role_content(roles), alert_embed(alert, snippet_chars), no_pings(roles))


def _digest_line(alert: AlertView, width: int) -> str:
    title = cut(escape(alert.event_title) or "(untitled story)", 150)
    sources = cut(", ".join(escape(n) for n in alert.source_names) or "unknown", 80)
    line = (
        f"`#{alert.event_id}` {_link(title, alert.event_link)} — {sources} · "
        f"{format_dt(alert.occurred_at, 'R')} · {cut(escape(alert.watch_name), 60)}"
    )
    if discord_len(line) > width:
        # The link is the long part; drop it before cutting the words.
        line = f"`#{alert.event_id}` {title} — {sources} · {format_dt(alert.occurred_at, 'R')}"
    return cut(line, width)


def digest_message(alerts: Sequence[AlertView], max_lines: int = DIGEST_LINES) -> RenderedMessage:
    """Render a burst of alerts for one channel as a single message."""
    shown = list(alerts[:max_lines])
    width = (DESCRIPTION_LIMIT - 200) // max(len(shown), 1)
    lines = [_digest_line(a, width) for a in shown]
    rest = len(alerts) - len(shown)
    if rest > 0:
        lines.append(f"…and {rest} more — see `/timeline`.")
    watches = list(dict.fromkeys(a.watch_name for a in alerts))
    embed = discord.Embed(
        title=cut(f"{len(alerts)} new stories", TITLE_LIMIT),
        description=cut("\n".join(lines), DESCRIPTION_LIMIT),
        colour=DIGEST_COLOUR,
    )
    embed.add_field(
        name="Watches", value=cut(", ".join(escape(w) for w in watches) or "?", FIELD_VALUE_LIMIT)
    )
    events = sorted({a.event_id for a in alerts})
    embed.set_footer(
        text=cut(
            f"Digest of {len(alerts)} alerts · events #{events[0]}–#{events[-1]}", FOOTER_LIMIT
        )
    )
    roles = [a.role_id for a in alerts if a.role_id]
    return RenderedMessage(_role_content(roles), fit_embed(embed), no_pings(roles))


def daily_digest_message(
    digest: dict[str, list[DigestLine]],
    since: datetime,
    zone: tzinfo = UTC,
    max_lines: int = DIGEST_LINES,
) -> RenderedMessage | None:
    """Render the scheduled digest: the day's events per watch, or None when there are none.

    The heading's time is in the guild's `zone` (a title cannot hold a Discord timestamp).
    """
    if not digest:
        return None
    local = since.astimezone(zone)
    embed = discord.Embed(
        title=f"Timeline digest since {local:%Y-%m-%d %H:%M} {local:%Z}", colour=DIGEST_COLOUR
    )
    total = 0
    for watch_name, lines in list(digest.items())[:FIELDS_LIMIT]:
        total += len(lines)
        linked, plain = [], []
        for line in lines[:max_lines]:
            title = cut(escape(line.title) or "(untitled story)", 100)
            extra = f" · {line.sources} sources" if line.sources > 1 else ""
            linked.append(f"`#{line.event_id}` {_link(title, line.link)}{extra}")
            plain.append(f"`#{line.event_id}` {title}{extra}")
        if len(lines) > max_lines:
            linked.append(f"…and {len(lines) - max_lines} more")
            plain.append(linked[-1])
        value = "\n".join(linked)
        if discord_len(value) > FIELD_VALUE_LIMIT:
            value = "\n".join(plain)
        embed.add_field(
            name=cut(escape(watch_name) or "?", FIELD_NAME_LIMIT),
            value=cut(value, FIELD_VALUE_LIMIT),
            inline=False,
        )
    embed.set_footer(text=f"{total} events")
    return RenderedMessage(None, fit_embed(embed), no_pings())


FAILING_COLOUR = discord.Colour.red()
RECOVERED_COLOUR = discord.Colour.green()


def notice_message(notice: NoticeView) -> RenderedMessage:
    """Render a feed health notice for the ops channel (pings no one)."""
    name = cut(escape(notice.feed_name) or "?", 200)
    url = safe_url(notice.feed_url)
    if notice.kind == FAILING:
        embed = discord.Embed(
            title=cut(f"Feed failing: {clean_text(notice.feed_name) or '?'}", TITLE_LIMIT),
            url=url,
            description=cut(
                f"**{name}** failed {notice.error_count} times in a row; the last error: "
                f"{escape(notice.detail) or 'unknown'}. It is retried with backoff and listed "
                "in `/status`; its stories so far stay on the timeline.",
                DESCRIPTION_LIMIT,
            ),
            colour=FAILING_COLOUR,
            timestamp=notice.created_at,
        )
    else:
        embed = discord.Embed(
            title=cut(f"Feed recovered: {clean_text(notice.feed_name) or '?'}", TITLE_LIMIT),
            url=url,
            description=cut(
                f"**{name}** answers again after {notice.error_count} failed polls; its new "
                "stories alert the watches as usual.",
                DESCRIPTION_LIMIT,
            ),
            colour=RECOVERED_COLOUR,
            timestamp=notice.created_at,
        )
    embed.set_footer(text="Feed health · one notice per change")
    return RenderedMessage(None, fit_embed(embed), no_pings())
