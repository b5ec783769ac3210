"""What the checks before feedparser cost on normal feeds, and what they save on hostile ones.

`python -m bench.parse_guard` prints, per feed shape, the milliseconds per MB of the checks
feeds.parse runs before feedparser (entity guard, shape check, character reference repair)
next to those of the whole parse; then the time and peak memory of parsing the hostile
bodies of issue 14.3 in a fresh process each.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from feeds.parse import _check_prolog, _check_shape, _repair_charrefs, parse_feed

NOW = datetime(2024, 7, 12, tzinfo=UTC)
HEADERS = {"Content-Type": "application/rss+xml"}
TARGET = 2_000_000  # bytes per normal body


def _rss(description: Callable[[int], str]) -> bytes:
    items = []
    size = 0
    i = 0
    while size < TARGET:
        item = (
            f"<item><guid>urn:story:{i}</guid><title>Story {i}: NATO summit &amp; Ukraine</title>"
            f"<link>https://news.example.com/{i}?utm_source=rss</link>"
            "<pubDate>Tue, 09 Jul 2024 14:30:00 +0200</pubDate><category>World</category>"
            f"<description>{description(i)}</description></item>\n"
        )
        items.append(item)
        size += len(item)
        i += 1
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<!-- generated -->\n<rss version="2.0">'
        f"<channel><title>Wire</title>{''.join(items)}</channel></rss>"
    ).encode()


def _atom_xhtml() -> bytes:
    entries = []
    size = 0
    i = 0
    while size < TARGET:
        entry = (
            f"<entry><id>urn:e:{i}</id><title>Entry {i}</title><updated>2024-07-09T12:00:00Z"
            f'</updated><link href="https://a.example.com/{i}"/><content type="xhtml">'
            '<div xmlns="http://www.w3.org/1999/xhtml"><p>Delegations met for <b>six</b> '
            'hours in <a href="https://x.example/">Brussels</a>.</p><ul><li>One</li><li>Two'
            "</li></ul><p>Second &#8220;quoted&#8221; paragraph.</p></div></content></entry>\n"
        )
        entries.append(entry)
        size += len(entry)
        i += 1
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>A</title><id>urn:a</id>{''.join(entries)}</feed>"
    ).encode()


NORMAL = {
    "rss, escaped HTML": lambda: _rss(
        lambda i: (
            "&lt;p&gt;Delegations met for six hours in &lt;b&gt;Brussels&lt;/b&gt;"
            " &#8212; a text was agreed.&lt;/p&gt;" * 3
        )
    ),
    "rss, CDATA HTML": lambda: _rss(
        lambda i: (
            "<![CDATA[<p>Delegations met for six hours in <b>Brussels</b> &mdash; a "
            'text was agreed. <a href="https://x.example/?a=1&b=2">More</a></p>]]>' * 3
        )
    ),
    "atom, XHTML content": _atom_xhtml,
}

HOSTILE = {
    "<x> nested a million deep (3 MB)": "b'<x>' * 1_000_000",
    "200,000 attributes on one element (2.3 MB)": (
        "b'<x ' + b' '.join(b'a%d=\"1\"' % i for i in range(200_000)) + b'/>'"
    ),
    # The worst bodies the checks let through, at the default 5 MB body cap: what a parse in
    # a thread (polling.parse_workers = 0, which no deadline can stop) costs at most. Its cost
    # is linear in the number of elements, whatever their depth.
    "tags 250 deep, repeated to 5 MB": (
        "(b'<x>' * 250 + b'a' + b'</x>' * 250) * (5_000_000 // 1751)"
    ),
    "100 attributes a tag, repeated to 5 MB": (
        "(b'<x ' + b' '.join(b'a%d=\"v\"' % i for i in range(100)) + b'/>') * (5_000_000 // 800)"
    ),
}
_CHILD = """
import resource, sys, time
from datetime import UTC, datetime
from feeds.parse import FeedParseError, parse_feed
inner = {inner}
body = (b'<rss version="2.0"><channel><item><title>t</title><description>' + inner
        + b'</description></item><item><title>ok</title></item></channel></rss>')
start = time.perf_counter()
try:
    outcome = f"{{len(parse_feed(body, {{}}, 'https://x/', datetime.now(UTC)).items)}} items"
except FeedParseError as exc:
    outcome = f"refused: {{exc}}"
took = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{{took * 1000:9.1f}} ms  peak {{peak:5.0f}} MB  {{outcome}}")
"""


def _best_ms(run: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    """Print the figures."""
    print("checks before feedparser, on normal feeds (best of 5):")
    for name, make in NORMAL.items():
        body = make()
        mb = len(body) / 1e6

        def checks(body: bytes = body) -> None:
            _check_prolog(body)
            _check_shape(body)
            _repair_charrefs(body)

        def whole_parse(body: bytes = body) -> object:
            return parse_feed(body, HEADERS, "https://x/", NOW)

        pre = _best_ms(checks) / mb
        whole = _best_ms(whole_parse, 1) / mb
        print(f"  {name:22} {mb:.1f} MB: checks {pre:6.1f} ms/MB, whole parse {whole:7.0f} ms/MB")
    print("hostile bodies, each parsed in a fresh process (the last two pass the checks):")
    for name, inner in HOSTILE.items():
        out = subprocess.run(
            [sys.executable, "-c", _CHILD.format(inner=inner)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"  {name:44} {out.stdout.strip()}")


if __name__ == "__main__":
    main()
