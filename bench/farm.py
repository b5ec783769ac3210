"""A local feed farm: N realistic RSS feeds on 127.0.0.1, served from a separate process.

The farm is what a thousand news sites look like to the poller: ~50 items per feed (titles and
summaries of plausible news words, some with HTML, guid, pubDate), ETag and Last-Modified with
conditional GET answered by 304, some feeds without validators (identical bytes every time),
gzip for about half of them, a few slow servers and a few failing ones. Feeds are spread over
several ports of 127.0.0.1 so a per-host connection limit sees several "sites".

It runs in its own process (`FarmProcess`) so its CPU is not charged to what is measured.
Between rounds the harness asks it to `advance`: a given share of the healthy feeds prepend
1-4 new items. Everything is generated deterministically from a seed.

    python -m bench.farm --feeds 1000   # prints {"ports": [...]} once listening
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import gzip
import itertools
import json
import logging
import random
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
BASE_TIME = 1_751_961_600  # 2025-07-08 08:00 UTC: the default start of the pubDates

# Words of wire copy; the watch phrases of `WATCH_PHRASES` are woven in now and then.
NEWS_WORDS = (
    "government minister officials said on tuesday talks agreement deal report reports "
    "president prime parliament vote election campaign court ruling judge police security "
    "forces border troops army navy air strike attack missile drone drones defence defense "
    "ministry spokesperson statement sanctions trade tariffs exports imports economy growth "
    "inflation rates bank central markets stocks shares oil gas energy prices supply chain "
    "company companies chief executive investors billion million percent quarter profit "
    "climate summit leaders meeting week month year capital city region province state "
    "protest protesters crowd rally strike workers union health hospital officials data "
    "ceasefire negotiations envoy embassy foreign allies alliance treaty nuclear programme "
    "weapons military civilian aid humanitarian refugees flood earthquake storm wildfire "
    "technology chips semiconductor satellite cyber hackers network investigation probe "
    "according to the a of in and for with from after before over amid as new first "
    "latest sources familiar matter told reuters bloomberg analysts expect warned urged"
).split()
NAMES = (
    "China Russia Ukraine NATO Beijing Moscow Kyiv Washington Brussels Berlin Paris London "
    "Tokyo Taiwan Iran Israel Gaza India Brazil Turkey Poland Germany France Japan Korea "
    "Biden Xi Putin Zelenskiy Stoltenberg Rutte Macron Scholz Modi Erdogan"
).split()
SYLLABLES = [a + b for a in "bcdfghklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]
WATCH_PHRASES = (
    "NATO communique",
    "dual-use exports",
    "China Russia drone",
    "semiconductor export controls",
    "Taiwan Strait",
    "uranium enrichment",
    "grain corridor",
    "cyber attack",
    "central bank rates",
    "ceasefire talks",
)
SECTIONS = ("world", "business", "politics", "tech", "markets", "europe", "asia")


class Vocabulary:
    """Zipf-weighted words: real news words at the top ranks, a long tail of made-up ones.

    Real wire text has a long tail (names, places, jargon); a vocabulary of a few hundred words
    would make every story look like every other to clustering and matching.
    """

    def __init__(self, seed: int, tail: int = 20_000, names: int = 3_000) -> None:
        rng = random.Random(f"vocab:{seed}")
        words = [*NEWS_WORDS, *(_made_up(rng, 2 + i % 3) for i in range(tail))]
        self.words = words
        self.word_cum = list(itertools.accumulate(1 / (i + 1) ** 0.9 for i in range(len(words))))
        people = [*NAMES, *(_made_up(rng, 2 + i % 2).capitalize() for i in range(names))]
        self.names = people
        self.name_cum = list(itertools.accumulate(1 / (i + 1) for i in range(len(people))))

    def sentence(self, rng: random.Random, n: int, *, title_case: bool = False) -> str:
        """Return `n` words of news-like text (about one in six a name)."""
        n_names = max(1, n // 6)
        words = rng.choices(self.words, cum_weights=self.word_cum, k=n - n_names)
        for name in rng.choices(self.names, cum_weights=self.name_cum, k=n_names):
            words.insert(rng.randrange(len(words) + 1), name)
        if title_case:
            return " ".join(w[:1].upper() + w[1:] if rng.random() < 0.5 else w for w in words)
        text = " ".join(words)
        return text[:1].upper() + text[1:] + "."


def _made_up(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables))


@dataclass(frozen=True, slots=True)
class FarmConfig:
    """Shape of the farm: sizes and the shares of each kind of feed."""

    feeds: int = 1000
    items: int = 50
    ports: int = 20
    seed: int = 7
    slow_share: float = 0.02  # answer after `slow_seconds`
    slow_seconds: float = 0.5
    failing_share: float = 0.03  # 500, 503 + Retry-After, 404 or an HTML page
    no_validator_share: float = 0.1  # no ETag/Last-Modified: same bytes every time
    gzip_share: float = 0.5
    bait_share: float = 0.03  # items that mention one of WATCH_PHRASES
    start: int = BASE_TIME  # epoch of the newest initial item; pubDates count from here


@dataclass(slots=True)
class _Feed:
    index: int
    kind: str  # "ok" | "slow" | "fail500" | "fail503" | "fail404" | "html"
    validators: bool
    gzip: bool
    top: int = 0  # items published so far; the body shows the newest `items` of them
    extra: dict[int, tuple[str, str]] = field(default_factory=dict)  # injected stories
    body: bytes | None = None
    body_gz: bytes | None = None


class Farm:
    """The feed state and the aiohttp handlers (one app, served on several ports)."""

    def __init__(self, config: FarmConfig) -> None:
        self.config = config
        rng = random.Random(f"farm:{config.seed}")
        kinds: list[str] = []
        n = config.feeds
        n_fail = round(n * config.failing_share)
        n_slow = round(n * config.slow_share)
        fail_kinds = ("fail500", "fail503", "fail404", "html")
        kinds = [fail_kinds[i % 4] for i in range(n_fail)] + ["slow"] * n_slow
        kinds += ["ok"] * (n - len(kinds))
        rng.shuffle(kinds)
        self.feeds = [
            _Feed(
                index=i,
                kind=kinds[i],
                validators=rng.random() >= config.no_validator_share,
                gzip=rng.random() < config.gzip_share,
                top=config.items,
            )
            for i in range(n)
        ]
        self.vocab = Vocabulary(config.seed)
        self.round = 0
        self.requests: dict[str, int] = {}
        self.bytes_sent = 0
        self.published = config.feeds * config.items

    # -- content ---------------------------------------------------------------------------

    def item(self, feed: int, n: int) -> tuple[str, str, str, int]:
        """Return (guid, title, summary html, pubDate epoch) of item `n` of `feed`."""
        extra = self.feeds[feed].extra.get(n)
        rng = random.Random(f"{self.config.seed}:{feed}:{n}")
        if extra is not None:
            title, summary = extra
        else:
            title = self.vocab.sentence(rng, rng.randint(7, 13), title_case=True)
            if rng.random() < self.config.bait_share:
                words = title.split()
                cut = rng.randint(1, len(words) - 1)
                title = " ".join([*words[:cut], rng.choice(WATCH_PHRASES), *words[cut:]])
            parts = [self.vocab.sentence(rng, rng.randint(8, 16)) for _ in range(rng.randint(2, 3))]
            if rng.random() < 0.4:  # HTML the parser must sanitise and flatten
                summary = (
                    f"<p>{escape(parts[0])} <b>{escape(rng.choice(NAMES))}</b></p>"
                    f"<p><a href='https://news{feed}.example/{n}'>{escape(parts[1])}</a></p>"
                    + "".join(f"<p>{escape(p)}</p>" for p in parts[2:])
                )
            else:
                summary = escape(" ".join(parts))
        # Initial items are ten minutes apart up to `start`; later ones a few seconds apart.
        if n < self.config.items:
            published = self.config.start - (self.config.items - n) * 600 - feed % 300
        else:
            published = self.config.start + (n - self.config.items) * 5 + feed % 5
        return f"https://news{feed}.example/story/{n}", title, summary, published

    def render(self, feed: _Feed) -> bytes:
        """Build the RSS 2.0 document of `feed` as it is now."""
        i = feed.index
        parts = [
            "<?xml version='1.0' encoding='utf-8'?>\n<rss version='2.0'><channel>"
            f"<title>News {i}</title><link>https://news{i}.example/</link>"
            f"<description>Latest stories from News {i}</description>"
            f"<lastBuildDate>{_http_date(self.last_modified(feed))}</lastBuildDate>\n"
        ]
        low = max(0, feed.top - self.config.items)
        for n in range(feed.top - 1, low - 1, -1):
            guid, title, summary, published = self.item(i, n)
            section = SECTIONS[n % len(SECTIONS)]
            parts.append(
                f"<item><title>{escape(title)}</title><link>{guid}</link>"
                f"<guid isPermaLink='true'>{guid}</guid>"
                f"<pubDate>{_http_date(published)}</pubDate>"
                f"<category>{section}</category>"
                f"<description>{escape(summary)}</description></item>\n"
            )
        parts.append("</channel></rss>\n")
        return "".join(parts).encode()

    def last_modified(self, feed: _Feed) -> int:
        """Return the Last-Modified epoch of `feed` (changes with every new item)."""
        return self.config.start + feed.top

    # -- control ---------------------------------------------------------------------------

    def advance(self, share: float) -> dict[str, Any]:
        """Start a new round: `share` of the healthy feeds prepend 1-4 new items."""
        self.round += 1
        rng = random.Random(f"advance:{self.config.seed}:{self.round}")
        healthy = [f for f in self.feeds if f.kind in ("ok", "slow")]
        changed = rng.sample(healthy, min(len(healthy), round(len(self.feeds) * share)))
        new_items = 0
        for feed in changed:
            k = rng.randint(1, 4)
            self._publish(feed, k)
            new_items += k
        return {"round": self.round, "changed": len(changed), "new_items": new_items}

    def inject(self, feed: int, title: str, summary: str) -> dict[str, Any]:
        """Prepend one given story to `feed`, or the next feed that is neither slow nor failing."""
        n = len(self.feeds)
        feed = next(
            (i % n for i in range(feed, feed + n) if self.feeds[i % n].kind == "ok"),
            feed % n,
        )
        target = self.feeds[feed]
        target.extra[target.top] = (title, summary)
        self._publish(target, 1)
        return {"feed": feed, "guid": self.item(feed, target.top - 1)[0]}

    def _publish(self, feed: _Feed, count: int) -> None:
        feed.top += count
        feed.body = feed.body_gz = None
        self.published += count

    # -- HTTP ------------------------------------------------------------------------------

    async def serve_feed(self, request: web.Request) -> web.StreamResponse:
        """Answer GET /f/{n}.xml like a news site would."""
        try:
            feed = self.feeds[int(request.match_info["n"])]
        except (ValueError, IndexError):
            raise web.HTTPNotFound() from None
        if feed.kind == "slow":
            await asyncio.sleep(self.config.slow_seconds)  # a slow origin, not synchronisation
        elif feed.kind == "fail500":
            return self._count(web.Response(status=500, text="Internal Server Error"))
        elif feed.kind == "fail503":
            return self._count(
                web.Response(status=503, text="busy", headers={"Retry-After": "120"})
            )
        elif feed.kind == "fail404":
            return self._count(web.Response(status=404, text="Not Found"))
        elif feed.kind == "html":
            html = "<!doctype html><html><body><h1>We moved!</h1></body></html>"
            return self._count(web.Response(text=html, content_type="text/html"))
        headers: dict[str, str] = {}
        if feed.validators:
            etag = f'"{feed.index}-{feed.top}"'
            modified = _http_date(self.last_modified(feed))
            headers = {"ETag": etag, "Last-Modified": modified}
            if request.headers.get("If-None-Match") == etag or (
                "If-None-Match" not in request.headers
                and request.headers.get("If-Modified-Since") == modified
            ):
                return self._count(web.Response(status=304, headers=headers))
        if feed.body is None:
            feed.body = self.render(feed)
        body = feed.body
        if feed.gzip and "gzip" in request.headers.get("Accept-Encoding", ""):
            if feed.body_gz is None:
                feed.body_gz = gzip.compress(feed.body, compresslevel=6)
            body = feed.body_gz
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = "application/rss+xml; charset=utf-8"
        return self._count(web.Response(body=body, headers=headers))

    def _count(self, response: web.Response) -> web.Response:
        key = str(response.status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.bytes_sent += len(response.body or b"") if isinstance(response.body, bytes) else 0
        return response

    async def control(self, request: web.Request) -> web.Response:
        """Handle POST /_control/{action} with a JSON body."""
        action = request.match_info["action"]
        try:
            data = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            raise web.HTTPBadRequest(text="body must be JSON") from None
        if action == "advance":
            return web.json_response(self.advance(float(data.get("share", 0.2))))
        if action == "inject":
            return web.json_response(
                self.inject(int(data["feed"]), str(data["title"]), str(data["summary"]))
            )
        if action == "stats":
            return web.json_response(
                {
                    "round": self.round,
                    "requests": self.requests,
                    "bytes_sent": self.bytes_sent,
                    "published": self.published,
                    "kinds": _count_kinds(self.feeds),
                    "feed_kinds": [f.kind for f in self.feeds],
                }
            )
        raise web.HTTPNotFound()


def _count_kinds(feeds: list[_Feed]) -> dict[str, int]:
    out: dict[str, int] = {}
    for feed in feeds:
        out[feed.kind] = out.get(feed.kind, 0) + 1
    out["no_validators"] = sum(1 for f in feeds if not f.validators)
    out["gzip"] = sum(1 for f in feeds if f.gzip)
    return out


def _http_date(epoch: int) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


async def serve(config: FarmConfig) -> None:
    """Serve the farm on `config.ports` ports of 127.0.0.1 until cancelled or stdin closes."""
    farm = Farm(config)
    app = web.Application()
    app.router.add_get("/f/{n}.xml", farm.serve_feed)
    app.router.add_post("/_control/{action}", farm.control)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    ports = []
    try:
        for _ in range(config.ports):
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            assert isinstance(site._server, asyncio.Server)
            ports.append(site._server.sockets[0].getsockname()[1])
        print(json.dumps({"ports": ports}), flush=True)
        # The parent closes our stdin to stop us (also when it dies).
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()


class FarmProcess:
    """Run the farm in a child process; `with FarmProcess(config) as farm: farm.url(i)`."""

    def __init__(self, config: FarmConfig) -> None:
        self.config = config
        self.ports: list[int] = []
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> FarmProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.farm", "--config", json.dumps(asdict(self.config))],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self.__exit__(None, None, None)
            raise RuntimeError("the feed farm did not start (see its stderr above)")
        self.ports = json.loads(line)["ports"]
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(BrokenPipeError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def url(self, feed: int) -> str:
        """Return the URL of feed number `feed`."""
        return f"http://127.0.0.1:{self.ports[feed % len(self.ports)]}/f/{feed}.xml"

    def urls(self) -> list[str]:
        """Return the URLs of every feed."""
        return [self.url(i) for i in range(self.config.feeds)]

    def control(self, action: str, **data: Any) -> dict[str, Any]:
        """Call a control action on the farm (advance, inject, stats)."""
        return farm_control(self.ports, action, **data)


def farm_control(ports: list[int], action: str, **data: Any) -> dict[str, Any]:
    """Call a control action on a farm started elsewhere (from a phase process)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{ports[0]}/_control/{action}",
        data=json.dumps(data).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        result: dict[str, Any] = json.loads(resp.read())
    return result


def main(argv: list[str] | None = None) -> int:
    """Serve a farm until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", help="FarmConfig as JSON")
    parser.add_argument("--feeds", type=int)
    args = parser.parse_args(argv)
    config = FarmConfig(**json.loads(args.config)) if args.config else FarmConfig()
    if args.feeds:
        config = FarmConfig(**{**asdict(config), "feeds": args.feeds})
    started = time.perf_counter()
    log.debug("farm starting with %s", config)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    log.debug("farm ran %.0f s", time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
