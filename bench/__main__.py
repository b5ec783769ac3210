"""Benchmark harness: the product against the common approach, on one local feed farm.

    python -m bench --quick     # make bench       (a few minutes)
    python -m bench --full      # make bench-full  (measures the real first poll and 1M search)
    python -m bench --only poll fair --profile /tmp/round.prof   # + top costs of a steady round

Starts the feed farm in its own process, runs each measured part in a fresh process of its own
(so CPU and peak RSS are that part's, not the farm's), prints a table and writes
bench/results.json. Benchmarks print figures; nothing here is a test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import pstats
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import bench_query
from bench.farm import FarmConfig, FarmProcess
from bench.phase import run_phase

HERE = Path(__file__).resolve().parent
RESULTS = {"quick": HERE / "results.json", "full": HERE / "results-full.json"}


@dataclass(frozen=True)
class Plan:
    """Sizes of one benchmark run."""

    mode: str
    feeds: int = 1000
    rounds: int = 3
    share: float = 0.2
    seed_backfill: bool = True
    baseline_rounds: int = 1
    parse_workers: int = 2
    skip_seen_items: bool = True
    storylines: bool = True
    prefill: int = 0
    alert_feeds: int = 200
    alert_trials: int = 5
    match_watches: tuple[int, ...] = (10, 100, 1000, 10_000)
    match_items: int = 2000
    search_entries: tuple[int, ...] = (100_000,)
    sections: tuple[str, ...] = ("poll", "baseline", "fair", "alerts", "match", "search")
    extra: dict[str, Any] = field(default_factory=dict)


PLANS = {
    # Under three minutes on the 2-core machine: 500 feeds (the first poll alone of 1,000
    # feeds takes more than a minute even when seeded); --full runs the 1,000-feed targets.
    "quick": Plan("quick", feeds=500, alert_feeds=100, alert_trials=3, match_items=1000),
    "full": Plan(
        "full",
        rounds=5,
        seed_backfill=False,
        baseline_rounds=2,
        alert_feeds=1000,
        alert_trials=10,
        match_items=10_000,
        search_entries=(100_000, 1_000_000),
    ),
}


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def _capture(fn: Any, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(argv)
    return out.getvalue()


def _num(text: str) -> float:
    return float(text.replace(",", ""))


_MATCH_LINE = re.compile(
    r"watches\s+([\d,]+): compile ([\d,.]+) ms; match ([\d,.]+) items/s.*?"
    r"brute force ([\d,.]+) items/s.*?end to end incl\. Document build ([\d,.]+) items/s"
)
_SEARCH_LINE = re.compile(
    r"search over ([\d,]+) entries.*?median ([\d.]+) ms, p95 ([\d.]+) ms, max ([\d.]+) ms"
)


def run_match(plan: Plan) -> dict[str, Any]:
    """Run bench/bench_query.py match and return its figures (and its raw lines)."""

    argv = ["match", "--watches", *map(str, plan.match_watches), "--items", str(plan.match_items)]
    text = _capture(bench_query.main, argv)
    rows = [
        {
            "watches": int(_num(m[1])),
            "compile_ms": _num(m[2]),
            "items_per_s_prebuilt_docs": _num(m[3]),
            "items_per_s_brute_force": _num(m[4]),
            "items_per_s_end_to_end": _num(m[5]),
        }
        for m in _MATCH_LINE.finditer(text)
    ]
    return {"command": "bench/bench_query.py " + " ".join(argv), "rows": rows, "output": text}


def run_search(plan: Plan, cache: Path) -> dict[str, Any]:
    """Run bench/bench_query.py search at each size; return latencies (and raw lines)."""

    rows = []
    for entries in plan.search_entries:
        db = cache / f"search_{entries}.db"
        reused = db.exists()
        argv = ["search", "--entries", str(entries), "--db", str(db)]
        started = time.perf_counter()
        text = _capture(bench_query.main, argv)
        m = _SEARCH_LINE.search(text)
        rows.append(
            {
                "entries": entries,
                "p50_ms": _num(m[2]) if m else None,
                "p95_ms": _num(m[3]) if m else None,
                "max_ms": _num(m[4]) if m else None,
                "store_reused": reused,
                "seconds": time.perf_counter() - started,
                "command": "bench/bench_query.py " + " ".join(argv),
                "output": text,
            }
        )
    return {"rows": rows}


def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def print_table(results: dict[str, Any]) -> None:
    """Print the figures and the targets."""
    poll, base = results.get("poll"), results.get("baseline")
    rows: list[tuple[str, str, str, str]] = []
    if poll:
        rows += [
            ("feeds per second", _fmt(poll["feeds_per_s"]), _fmt(base and base["feeds_per_s"]), ""),
            (
                "new items per second",
                _fmt(poll["new_items_per_s"]),
                _fmt(base and base["new_items_per_s"]),
                "",
            ),
            (
                "round wall p50 / p95 (s)",
                f"{poll['round_wall_p50_s']:.1f} / {poll['round_wall_p95_s']:.1f}",
                _fmt(base and base["round_wall_p50_s"]),
                "<= 10",
            ),
            (
                "CPU s per 1,000 parsed items",
                _fmt(poll["cpu_s_per_1000_parsed_items"], ".2f"),
                _fmt(base and base["cpu_s_per_1000_parsed_items"], ".2f"),
                "",
            ),
            (
                "CPU s per round (process + workers)",
                _fmt(poll["cpu_s_per_round"]),
                _fmt(base and base["cpu_s_per_round"]),
                "",
            ),
            (
                "  of which the product process",
                _fmt(poll.get("cpu_main_s_per_round")),
                "",
                "",
            ),
            ("CPU s per 1,000 new items", _fmt(poll["cpu_s_per_1000_new_items"]), "", ""),
            (
                "  of which garbage collection per round",
                _fmt(poll["gc_s_per_round"], ".2f"),
                "",
                "",
            ),
            (
                "peak RSS (MB, process + workers)",
                _fmt(poll["peak_rss_mb"], ".0f"),
                _fmt(base and base["peak_rss_mb"], ".0f"),
                "<= 300",
            ),
            (
                "  of which the product process",
                _fmt(poll.get("peak_rss_main_mb"), ".0f"),
                "",
                "",
            ),
        ]
    fair = results.get("fair")
    if fair:
        rows.append(
            (
                "fair baseline: round p50 / CPU per round (s)",
                "",
                f"{fair['round_wall_p50_s']:.1f} / {fair['cpu_s_per_round']:.1f}",
                "",
            )
        )
        rows.append(("fair baseline: peak RSS (MB)", "", _fmt(fair["peak_rss_mb"], ".0f"), ""))
        vs = results.get("ratio_vs_fair_baseline")
        if vs:
            rows.append(
                (
                    "round wall vs fair baseline",
                    _fmt(vs["round_wall_p50"], ".2f") + "x",
                    "1x",
                    ">= 3x",
                )
            )
    ratio = results.get("ratio")
    if ratio:
        rows.append(("throughput ratio (feeds/s)", _fmt(ratio["feeds_per_s"]) + "x", "1x", ">= 5x"))
    alerts = results.get("alerts")
    if alerts:
        rows.append(
            (
                "alert latency after commit p50/max (s)",
                f"{alerts['from_commit_p50_s']:.2f} / {alerts['from_commit_max_s']:.2f}",
                "",
                "",
            )
        )
        rows.append(
            (
                "alert latency after round end p50/max (s)",
                f"{alerts['after_round_end_p50_s']:.2f} / {alerts['after_round_end_max_s']:.2f}",
                "",
                "<= 2",
            )
        )
    for row in (results.get("match") or {}).get("rows", []):
        rows.append(
            (
                f"watch matching, {row['watches']:,} watches (items/s)",
                f"{row['items_per_s_end_to_end']:,.0f}",
                f"{row['items_per_s_brute_force']:,.0f} (brute force)",
                "",
            )
        )
    for row in (results.get("search") or {}).get("rows", []):
        rows.append(
            (
                f"search p50 / p95 at {row['entries']:,} entries (ms)",
                f"{_fmt(row['p50_ms'])} / {_fmt(row['p95_ms'])}",
                "",
                "",
            )
        )
    width = max(len(r[0]) for r in rows) if rows else 10
    print()
    print(f"{'':{width}}  {'product':>18}  {'baseline':>22}  {'target':>8}")
    for name, product, baseline, target in rows:
        print(f"{name:{width}}  {product:>18}  {baseline:>22}  {target:>8}")
    print()


def print_profile(path: Path, top: int) -> None:
    """Print the top costs of a profiled round: by own time, then by cumulative time."""
    print(f"profile of one steady round (the product process; parse workers not included): {path}")
    for key in ("tottime", "cumulative"):
        stats = pstats.Stats(str(path))
        stats.strip_dirs().sort_stats(key).print_stats(top)


def main(argv: list[str] | None = None) -> int:  # noqa: C901 (one flag per benchmark, dispatched in order)
    """Run the benchmark plan named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick")
    mode.add_argument("--full", action="store_const", dest="mode", const="full")
    parser.add_argument("--feeds", type=int, help="override the number of feeds")
    parser.add_argument("--rounds", type=int, help="override the number of measured rounds")
    parser.add_argument("--workers", type=int, help="override the number of parse workers")
    parser.add_argument(
        "--parse-all", action="store_true", help="parse every item of a changed feed"
    )
    parser.add_argument(
        "--no-storylines",
        action="store_true",
        help="poll without storyline placement (to measure what storylines cost a round)",
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        metavar="N",
        help="store N old entries (a year back) before the first poll: a round over a big timeline",
    )
    parser.add_argument("--only", nargs="+", choices=PLANS["quick"].sections)
    parser.add_argument("--out", type=Path, help="where to write the JSON (default bench/...)")
    parser.add_argument("--cache", type=Path, help="keep search stores here between runs")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="profile one more steady poll round (cProfile, not counted in the figures), "
        "write the stats to FILE and print the top costs",
    )
    parser.add_argument("--profile-top", type=int, default=30, help="how many lines to print")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    plan = PLANS[args.mode or "quick"]
    overrides: dict[str, Any] = {}
    if args.feeds:
        overrides.update(feeds=args.feeds, alert_feeds=min(plan.alert_feeds, args.feeds))
    if args.rounds:
        overrides["rounds"] = args.rounds
    if args.workers is not None:
        overrides["parse_workers"] = args.workers
    if args.parse_all:
        overrides["skip_seen_items"] = False
    if args.no_storylines:
        overrides["storylines"] = False
    if args.prefill:
        overrides["prefill"] = args.prefill
    if args.only:
        overrides["sections"] = tuple(args.only)
    plan = Plan(**{**asdict(plan), **overrides})
    cache = args.cache or Path(tempfile.gettempdir()) / "timeline-bench"
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "mode": plan.mode,
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": _machine(),
        "plan": asdict(plan),
    }
    farm_config = FarmConfig(feeds=plan.feeds, start=int(time.time()) - 60)
    print(
        f"Timeline Bot benchmark ({plan.mode}): {plan.feeds} feeds, {plan.rounds} rounds, "
        f"{plan.share:.0%} changed per round, parse workers {plan.parse_workers}, "
        f"skip seen items {plan.skip_seen_items}, storylines {plan.storylines}, "
        f"old entries {plan.prefill:,}; "
        f"{results['machine']['cpus']} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="timeline-bench-") as tmp:
        sections = plan.sections
        if {"poll", "baseline", "fair", "alerts"} & set(sections):
            with FarmProcess(farm_config) as farm:
                print(
                    f"feed farm: separate process pid {farm.pid} on {len(farm.ports)} ports of "
                    "127.0.0.1; each measured part runs in its own process, so the farm's CPU "
                    "and memory are not counted in it"
                )
                results["farm"] = {"config": asdict(farm_config)}
                if "poll" in sections:
                    print("product: polling ...", flush=True)
                    results["poll"] = run_phase(
                        "poll",
                        {
                            "ports": farm.ports,
                            "feeds": plan.feeds,
                            "db_path": f"{tmp}/poll.db",
                            "rounds": plan.rounds,
                            "share": plan.share,
                            "parse_workers": plan.parse_workers,
                            "skip_seen_items": plan.skip_seen_items,
                            "storylines": plan.storylines,
                            "prefill": plan.prefill,
                            "seed_backfill": plan.seed_backfill,
                            "profile": str(args.profile.resolve()) if args.profile else None,
                        },
                        verbose=args.verbose,
                    )
                if "baseline" in sections:
                    print(
                        "baseline: feedparser.parse(url), one feed after the other ...", flush=True
                    )
                    results["baseline"] = run_phase(
                        "baseline",
                        {
                            "ports": farm.ports,
                            "feeds": plan.feeds,
                            "rounds": plan.baseline_rounds,
                            "share": plan.share,
                        },
                        verbose=args.verbose,
                    )
                if "fair" in sections:
                    print(
                        "fair baseline: aiohttp x20, conditional GET, feedparser on bytes, "
                        "INSERT OR IGNORE ...",
                        flush=True,
                    )
                    results["fair"] = run_phase(
                        "fair",
                        {
                            "ports": farm.ports,
                            "feeds": plan.feeds,
                            "db_path": f"{tmp}/fair.db",
                            "rounds": plan.rounds,
                            "share": plan.share,
                        },
                        verbose=args.verbose,
                    )
                if "alerts" in sections:
                    print("alert latency through the Discord emulator ...", flush=True)
                    results["alerts"] = run_phase(
                        "alerts",
                        {
                            "ports": farm.ports,
                            "feeds": plan.alert_feeds,
                            "db_path": f"{tmp}/alerts.db",
                            "trials": plan.alert_trials,
                            "share": plan.share,
                            "parse_workers": plan.parse_workers,
                            "skip_seen_items": plan.skip_seen_items,
                        },
                        verbose=args.verbose,
                    )
                results["farm"]["stats"] = farm.control("stats")
        if results.get("poll") and results.get("baseline"):
            poll, base = results["poll"], results["baseline"]
            results["ratio"] = {
                "feeds_per_s": poll["feeds_per_s"] / base["feeds_per_s"],
                "new_items_per_s": poll["new_items_per_s"] / base["new_items_per_s"],
            }
        if results.get("poll") and results.get("fair"):
            poll, fair = results["poll"], results["fair"]
            # Keys say which baseline: "ratio" is against feedparser.parse(url) one by one.
            results["ratio_vs_fair_baseline"] = {
                "round_wall_p50": fair["round_wall_p50_s"] / poll["round_wall_p50_s"],
                "feeds_per_s": poll["feeds_per_s"] / fair["feeds_per_s"],
                "cpu_s_per_round": poll["cpu_s_per_round"] / fair["cpu_s_per_round"],
                "peak_rss_mb": poll["peak_rss_mb"] / fair["peak_rss_mb"],
            }
        if "match" in sections:
            print("watch matching (bench/bench_query.py match) ...", flush=True)
            results["match"] = run_match(plan)
        if "search" in sections:
            print("search latency (bench/bench_query.py search) ...", flush=True)
            results["search"] = run_search(plan, cache)
    results["seconds"] = time.perf_counter() - started
    print_table(results)
    if results.get("poll", {}).get("seeded_backfill"):
        seeded = results["poll"]["seeded_backfill"]
        print(
            f"first poll seeded in {seeded['seconds']:.0f} s (real fetch + parse, bulk store of "
            f"{seeded['entries']:,} entries; --full measures the product's own first poll)"
        )
    if args.profile and args.profile.exists():
        print_profile(args.profile, args.profile_top)
    out = args.out or RESULTS[plan.mode]
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"wrote {out} in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
