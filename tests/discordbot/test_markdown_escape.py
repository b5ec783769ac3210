"""Issue 14.2: no text from a feed renders as Markdown, through any rendering path.

A table of every construct Discord renders (masked links, headers, lists, block quotes,
code, spoilers, timestamps, mentions, custom emoji, subtext) goes through every place that
shows feed text: the alert embed (title, snippet with highlighted terms, fields), the burst
digest, the scheduled digest, `/event show`, `/search`, `/timeline`, `/story` and the
Markdown export. The checker reads the output as Discord would: an escaped character
(`\\x`) is plain text, and a construct is live only if its syntax survives unescaped.

Each payload carries the marker `zorb` (or the number 666, or the host evil.example), so the
checker tells the payload's syntax from the bot's own (its links, `<t:…>` times, bold terms).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import pytest

from discordbot import render
from discordbot.cogs import events as events_cog
from discordbot.cogs import search as search_cog
from discordbot.cogs import storylines as storylines_cog
from discordbot.cogs import timeline as timeline_cog
from timeline.render.markup import escape_markdown
from timeline.storage.outbox import AlertView, DigestLine, SourceView, StorylineRef
from timeline.usecases import views
from timeline.usecases.export import render_markdown
from timeline.usecases.storylines import StorylineDetail, StorylineSummary

WHEN = datetime(2024, 7, 9, 12, 0, tzinfo=UTC)
LINK = "https://outlet.example/story"

# (name, payload, live syntax in the rendered text, after escapes are masked out)
CONSTRUCTS: list[tuple[str, str, str]] = [
    (
        "masked link",
        "[NATO communique zorb](https://evil.example/login)",
        r"\]\(\s*<?https?://evil\.example",
    ),
    ("masked link, bare", "see [zorb](http://evil.example)", r"\]\(\s*<?https?://evil\.example"),
    ("angle link", "<https://evil.example/x> zorb", r"<https?://evil\.example"),
    ("header", "# zorb NATO communique", r"(?m)^[ \t]*#{1,3}[ \t]+zorb"),
    ("header 3", "### zorb", r"(?m)^[ \t]*#{1,3}[ \t]+zorb"),
    ("subtext", "-# zorb small print", r"(?m)^[ \t]*-#[ \t]+zorb"),
    ("bullet list", "- zorb item", r"(?m)^[ \t]*[-*+][ \t]+zorb"),
    ("star list", "* zorb item", r"(?m)^[ \t]*[-*+][ \t]+zorb"),
    ("ordered list", "1. zorb item", r"(?m)^[ \t]*\d+[.)][ \t]+zorb"),
    ("block quote", "> zorb quoted", r"(?m)^[ \t]*>{1,3}[ \t]+zorb"),
    ("block quote 3", ">>> zorb quoted", r"(?m)^[ \t]*>{1,3}[ \t]+zorb"),
    ("inline code", "`zorb` NATO", r"`zorb"),
    ("code block", "```zorb```", r"`zorb"),
    ("spoiler", "||zorb|| communique", r"\|\|zorb"),
    ("bold", "**zorb**", r"\*\*zorb"),
    ("italic", "*zorb*", r"(?<![*\\])\*zorb"),
    ("underline", "__zorb__", r"__zorb"),
    ("italic underscore", "_zorb_", r"(?<![_\\])_zorb"),
    ("strike", "~~zorb~~", r"~~zorb"),
    ("timestamp", "<t:666:R> zorb", r"<t:666"),
    ("user mention", "<@666> zorb", r"<@!?666"),
    ("role mention", "<@&666> zorb", r"<@&666"),
    ("channel mention", "<#666> zorb", r"<#666"),
    ("slash command", "</cmd:666> zorb", r"</cmd"),
    ("custom emoji", "<:e:666> zorb", r"<a?:e:666>"),
    ("animated emoji", "<a:e:666> zorb", r"<a?:e:666>"),
    ("everyone", "@everyone zorb", r"@everyone"),
    ("here", "@here zorb", r"@here"),
]

# Escapes, as Discord reads them: a backslash makes the next character plain text.
_ESCAPED = re.compile(r"\\.", re.DOTALL)


def live(text: str, pattern: str) -> bool:
    return re.search(pattern, _ESCAPED.sub("\x00", text)) is not None


def embed_texts(data: Mapping[str, Any]) -> list[str]:
    """Each separately rendered piece of an embed (a field value starts its own lines)."""
    out = [data.get("title", ""), data.get("description", "")]
    for f in data.get("fields", []):
        out += [f["name"], f["value"]]
    out.append(data.get("footer", {}).get("text", ""))
    author = data.get("author", {}).get("name")
    if author:
        out.append(author)
    return [t for t in out if t]


def alert(payload: str) -> AlertView:
    first = SourceView(payload, payload, LINK, f"{payload} NATO communique {payload}", WHEN)
    joined = SourceView(f"{payload} 2", payload, LINK, payload, WHEN, brief=payload)
    return AlertView(
        id=1,
        status="sending",
        channel_id=1001,
        nonce="a" * 25,
        message_id=None,
        dirty=False,
        attempts=0,
        matched_terms=("NATO", "communique"),
        watch_id=3,
        watch_name=payload,
        role_id=None,
        event_id=42,
        event_title=payload,
        event_link=LINK,
        occurred_at=WHEN,
        sources=(first, joined),
        storyline=StorylineRef(7, payload, 2, WHEN),
    )


def event(payload: str) -> views.EventView:
    return views.EventView(
        id=42,
        title=payload,
        link=LINK,
        occurred_at=WHEN,
        sources=[
            views.SourceView(payload, payload, LINK, WHEN, entry_id=1),
            views.SourceView(f"{payload} b", f"other {payload}", LINK, WHEN, 2, brief=payload),
        ],
        watches=[payload],
        note_count=1,
        storyline_id=7,
        storyline_title=payload,
    )


def renderings(payload: str) -> dict[str, list[str]]:
    """Every rendering path, each as the list of separately rendered texts it produces."""
    a = alert(payload)
    e = event(payload)
    detail = views.EventDetail(
        event=e,
        notes=[views.NoteView(1, payload, payload, WHEN)],
        dates=[views.DateView(date(2024, 7, 9), date(2024, 7, 9), "day", payload)],
        storyline=StorylineRef(7, payload, 2, WHEN),
    )
    hit = views.HitView(1, 42, payload, LINK, WHEN, payload, ["NATO", "communique"], payload)
    summary = StorylineSummary(7, payload, 3, WHEN, WHEN, [payload])
    daily = render.daily_digest_message({payload: [DigestLine(42, payload, LINK, WHEN, 2)]}, WHEN)
    assert daily is not None
    return {
        "alert": embed_texts(render.alert_message(a).embed.to_dict()),
        "alert snippet": [render.highlight(a.snippet_source, a.matched_terms, 300)],
        "digest": embed_texts(render.digest_message([a, a]).embed.to_dict()),
        "daily digest": embed_texts(daily.embed.to_dict()),
        "/event show": embed_texts(events_cog.event_embed(detail).to_dict()),
        "/search line": [search_cog.hit_line(hit)],
        "/search": embed_texts(search_cog.search_embed(payload, [hit], 0, False).to_dict()),
        "/timeline line": [timeline_cog.event_line(e)],
        "/timeline heading": [timeline_cog.heading(payload, payload, payload)],
        "/story list": [storylines_cog._summary_line(summary)],
        "/story show": embed_texts(
            storylines_cog.show_embed(StorylineDetail(summary, [e])).to_dict()
        ),
        "export md": [render_markdown([e])],
    }


@pytest.mark.parametrize(("name", "payload", "syntax"), CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
@pytest.mark.parametrize("where", ["alone", "after a newline", "mid-sentence"])
def test_no_feed_text_renders_as_markdown_anywhere(
    name: str, payload: str, syntax: str, where: str
) -> None:
    text = {"alone": payload, "after a newline": f"Update\n{payload}", "mid-sentence": payload}[
        where
    ]
    if where == "mid-sentence":
        text = f"NATO communique: {payload} said"
    for path, texts in renderings(text).items():
        if path == "export md" and name in ("everyone", "here"):
            continue  # a Markdown file has no mentions
        joined = "\n".join(texts)
        # The payload reached the output (the test would prove nothing otherwise) ...
        assert "zorb" in joined, path
        # ... and nothing of it is live there.
        for piece in texts:
            assert not live(piece, syntax), f"{name} is live in {path}: {piece!r}"


def test_highlight_cannot_revive_a_masked_link() -> None:
    """The reproduction from the issue: bold terms inside a feed's masked link."""
    summary = "[NATO communique](https://evil.example/login)"
    out = render.highlight(summary, ("NATO", "communique"), 300)
    assert "**NATO**" in out and "**communique**" in out
    assert not live(out, r"\]\(\s*<?https?://evil")
    assert out == r"\[**NATO** **communique**\]\(https://evil.example/login\)"


def test_digest_link_goes_to_the_event_not_to_a_url_in_the_title() -> None:
    a = alert("[x](http://evil.example)")
    line = render.digest_message([a]).embed.description or ""
    masked = _ESCAPED.sub("\x00", line)
    targets = re.findall(r"\]\((\S+?)\)", masked)
    assert targets == [LINK]


def test_escaped_text_reads_the_same() -> None:
    """The escapes hide only syntax: unescaping gives the feed's text back."""
    for _, payload, _ in CONSTRUCTS:
        for line_start in (True, False):
            escaped = escape_markdown(payload, line_start=line_start)
            assert re.sub(r"\\(.)", r"\1", escaped) == payload


def test_ordinary_text_is_left_readable() -> None:
    assert escape_markdown("dual-use goods, 3.5% up; #NATO mid-line") == (
        "dual-use goods, 3.5% up; #NATO mid-line"
    )
    assert escape_markdown("2024. A year") == "2024\\. A year"
    assert escape_markdown("2024. A year", line_start=False) == "2024. A year"
