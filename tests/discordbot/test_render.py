"""Alert rendering: Discord's limits hold and feed text can neither format nor ping."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import discord
from hypothesis import given, settings
from hypothesis import strategies as st

from discordbot import render
from timeline.storage.outbox import AlertView, DigestLine, SourceView

WHEN = datetime(2024, 7, 9, 12, 0, tzinfo=UTC)
HOSTILE = "@everyone @here <@&123> <@456> <@!789> **bold** __under__ `code` ||spoiler|| # head"


def sent_mentions(message: render.RenderedMessage) -> dict[str, object]:
    """The allowed_mentions payload sent (discord.py types it as a TypedDict with every key,
    but it holds only the keys that were set)."""
    return dict(message.allowed_mentions.to_dict())


def make_alert(**overrides: object) -> AlertView:
    base = AlertView(
        id=1,
        status="sending",
        channel_id=1001,
        nonce="a" * 25,
        message_id=None,
        dirty=False,
        attempts=0,
        matched_terms=("communique",),
        watch_id=3,
        watch_name="NATO communique",
        role_id=None,
        event_id=42,
        event_title="NATO Summit Draft Communique Calls Out China",
        event_link="https://bloomberg.example/nato",
        occurred_at=WHEN,
        sources=(
            SourceView(
                "Bloomberg",
                "NATO Summit Draft Communique",
                "https://bloomberg.example/nato",
                "The draft communique names dual-use military-civilian materials.",
                WHEN,
            ),
        ),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def all_text(message: render.RenderedMessage) -> str:
    data = message.embed.to_dict()
    parts = [message.content or "", data.get("title", ""), data.get("description", "")]
    parts += [f["name"] + f["value"] for f in data.get("fields", [])]
    parts.append(data.get("footer", {}).get("text", ""))
    return "\n".join(parts)


def assert_within_limits(message: render.RenderedMessage) -> None:
    data = message.embed.to_dict()
    n = render.discord_len
    assert n(data.get("title", "")) <= 256
    assert n(data.get("description", "")) <= 4096
    assert len(data.get("fields", [])) <= 25
    for f in data.get("fields", []):
        assert 0 < n(f["name"]) <= 256 and 0 < n(f["value"]) <= 1024
    assert n(data.get("footer", {}).get("text", "")) <= 2048
    total = n(data.get("title", "")) + n(data.get("description", ""))
    total += sum(n(f["name"]) + n(f["value"]) for f in data.get("fields", []))
    total += n(data.get("footer", {}).get("text", ""))
    assert total <= 6000
    assert message.content is None or n(message.content) <= 2000
    if "url" in data:
        assert data["url"].startswith(("http://", "https://")) and len(data["url"]) <= 2048


def test_alert_links_title_and_shows_source_time_watch_and_event() -> None:
    message = render.alert_message(make_alert())
    data = message.embed.to_dict()

    assert data["title"] == "NATO Summit Draft Communique Calls Out China"
    assert data["url"] == "https://bloomberg.example/nato"
    fields = {f["name"]: f["value"] for f in data["fields"]}
    assert fields["Source"] == "[Bloomberg](https://bloomberg.example/nato)"
    # The embed's own timestamp shows the time (in each reader's zone); no field repeats it.
    assert "Published" not in fields
    assert data["timestamp"] == WHEN.isoformat()
    assert fields["Watch"] == "NATO communique"
    assert data["footer"]["text"] == "Event #42 · /event show 42"
    assert "**communique**" in data["description"]


def test_second_source_is_listed() -> None:
    extra = SourceView("Reuters", "t", "https://reuters.example/x", "", WHEN)
    alert = make_alert()
    data = render.alert_embed(replace(alert, sources=(*alert.sources, extra))).to_dict()
    fields = {f["name"]: f["value"] for f in data["fields"]}
    assert fields["Sources"] == (
        "[Bloomberg](https://bloomberg.example/nato), [Reuters](https://reuters.example/x)"
    )


def test_hostile_ten_thousand_char_text_fits_every_limit() -> None:
    huge = ("\U0001f4a5" + HOSTILE) * 200
    alert = make_alert(
        event_title=huge,
        watch_name=huge,
        matched_terms=tuple(huge.split()[:50]),
        sources=tuple(
            SourceView(f"{huge[:300]}{n}", huge, "https://x.example/" + "a" * 3000, huge, WHEN)
            for n in range(40)
        ),
    )
    message = render.alert_message(alert, snippet_chars=10_000)
    assert_within_limits(message)
    assert 250 <= render.discord_len(message.embed.title or "") <= 256
    assert message.embed.title and message.embed.title.endswith("…")


def test_markdown_in_feed_text_is_escaped() -> None:
    alert = make_alert(event_title="**Breaking** _news_ `x` ||y||", matched_terms=())
    title = render.alert_embed(alert).title or ""
    assert title == r"\*\*Breaking\*\* \_news\_ \`x\` \|\|y\|\|"


def test_mentions_in_feed_text_ping_nobody() -> None:
    alert = make_alert(
        event_title=HOSTILE,
        watch_name=HOSTILE,
        sources=(SourceView(HOSTILE, HOSTILE, None, HOSTILE, WHEN),),
        matched_terms=("everyone",),
    )
    message = render.alert_message(alert)

    assert message.content is None
    assert sent_mentions(message) == {"parse": []}
    text = all_text(message)
    for raw in ("@everyone", "@here", "<@&123>", "<@456>", "<@!789>"):
        assert raw not in text


def test_watch_role_is_the_only_ping() -> None:
    alert = make_alert(role_id=555, event_title="<@&123> @everyone")
    message = render.alert_message(alert)

    assert message.content == "<@&555>"
    assert sent_mentions(message) == {"parse": [], "roles": [555]}
    assert "<@&123>" not in all_text(message)


def test_unsafe_links_are_dropped_and_brackets_quoted() -> None:
    assert render.safe_url("javascript:alert(1)") is None
    assert render.safe_url("https://") is None
    assert render.safe_url("https://a.example/x y") is None
    assert render.safe_url("https://a.example/" + "a" * 3000) is None
    assert render.safe_url("https://a.example/f(x)") == "https://a.example/f%28x%29"
    assert "url" not in render.alert_embed(make_alert(event_link="javascript:alert(1)")).to_dict()


def test_snippet_centres_on_first_match_and_bolds_stems() -> None:
    text = "filler " * 200 + "The communiqué and communiques named Dual-Use goods. " + "tail " * 200
    snippet = render.highlight(text, ["communiqu", "dual use"], 200)

    assert snippet.startswith("…") and snippet.endswith("…")
    assert "**communiqué**" in snippet and "**communiques**" in snippet
    assert "**Dual-Use**" in snippet
    assert render.discord_len(snippet) <= 200


def test_snippet_strips_html_and_never_ends_in_a_lone_escape() -> None:
    snippet = render.highlight("<p>a &amp; b</p>" + "\\" * 50, [], 20)
    assert snippet.startswith("a & b")
    assert render.discord_len(snippet) <= 20
    body = snippet.removesuffix("…")
    assert (len(body) - len(body.rstrip("\\"))) % 2 == 0


def test_cut_keeps_escapes_whole() -> None:
    assert render.cut("abc\\*def", 5) == "abc…"
    assert render.cut("short", 10) == "short"
    assert render.discord_len(render.cut("\U0001f4a5" * 10, 5)) <= 5


def test_burst_digest_lists_lines_and_counts_the_rest() -> None:
    alerts = [
        make_alert(id=n, event_id=n, role_id=7 if n % 2 else 8, event_title=HOSTILE * 5)
        for n in range(1, 101)
    ]
    message = render.digest_message(alerts)

    assert_within_limits(message)
    assert message.embed.title == "100 new stories"
    assert "…and 80 more" in (message.embed.description or "")
    assert message.content == "<@&7> <@&8>"
    assert message.allowed_mentions.to_dict()["roles"] == [7, 8]
    assert "@everyone" not in all_text(message)


def test_daily_digest_groups_per_watch() -> None:
    digest = {
        "NATO communique": [DigestLine(1, "story @everyone", "https://a.example/1", WHEN, 2)],
        "dual-use": [DigestLine(n, HOSTILE * 3, None, WHEN, 1) for n in range(60)],
    }
    message = render.daily_digest_message(digest, WHEN)
    assert message is not None
    assert_within_limits(message)
    assert [f.name for f in message.embed.fields] == ["NATO communique", "dual-use"]
    assert "2 sources" in (message.embed.fields[0].value or "")
    assert render.daily_digest_message({}, WHEN) is None


text_st = st.text(alphabet=st.characters(codec="utf-8"), max_size=3000)


@settings(max_examples=60, deadline=None)
@given(
    title=text_st,
    summary=text_st,
    feed=text_st,
    watch=text_st,
    link=text_st,
    terms=st.lists(text_st, max_size=5),
)
def test_any_text_renders_within_limits_without_pings(
    title: str, summary: str, feed: str, watch: str, link: str, terms: list[str]
) -> None:
    alert = make_alert(
        event_title=title,
        event_link=link,
        watch_name=watch,
        matched_terms=tuple(terms),
        sources=(SourceView(feed, title, link, summary, WHEN),),
    )
    for message in (render.alert_message(alert), render.digest_message([alert] * 30)):
        assert_within_limits(message)
        assert sent_mentions(message) == {"parse": []}
        assert isinstance(message.embed, discord.Embed)


def test_matched_lists_each_term_once_whatever_its_case_or_form() -> None:
    alert = make_alert(matched_terms=("NATO", "Communique", "communique", "communiques", "nato"))
    fields = {f["name"]: f["value"] for f in render.alert_embed(alert).to_dict()["fields"]}
    assert fields["Matched"] == "NATO, Communique"
