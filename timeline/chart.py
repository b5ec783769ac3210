"""Draw the timeline as a PNG: a stacked bar per bucket (one colour per watch), the largest events labelled.

A pure function over plain data (the query that feeds it lives elsewhere). It uses the
object-oriented Matplotlib API (``Figure`` + Agg canvas, never ``pyplot``), so it keeps no
global state and is safe to call from a worker thread.

Counts per day (or week) are discrete, so they are drawn as bars, not lines between days;
the watches' bars are stacked so a series stays visible where it overlaps another. The picture
is an explicit light card with dark text and colour-blind-safe colours (Okabe-Ito), so it reads
the same on Discord's dark and light themes.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Literal

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

log = logging.getLogger(__name__)

Bucket = Literal["day", "week"]

CARD = "#f4f5f7"
INK = "#1e1f22"
GRID = "#c9ccd1"
MUTED = "#5c5f66"
# Okabe-Ito, without the yellow that fades on a light card.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")

MAX_SERIES = 8  # beyond this the lines cannot be told apart: the rest become "other"
MAX_LABELS = 8
MAX_BUCKETS = 1500  # about four years of days or thirty of weeks
MAX_NAME = 40
MAX_LABEL = 48
MAX_TITLE = 120
SIZE_INCHES = (10.0, 5.0)
DPI = 100


def _clean(text: str, limit: int) -> str:
    """Make user text safe to draw: one line, no control characters, no mathtext, bounded."""
    flat = "".join(ch if ch.isprintable() else " " for ch in str(text))
    flat = " ".join(flat.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    # A "$" would start Matplotlib's mathtext parser, which raises on malformed input.
    return flat.replace("$", r"\$")


def _bucket_start(day: date, bucket: Bucket) -> date:
    return day - timedelta(days=day.weekday()) if bucket == "week" else day


def _bucketed(
    series: Mapping[str, Sequence[tuple[date, int]]], bucket: Bucket
) -> dict[str, dict[date, int]]:
    out: dict[str, dict[date, int]] = {}
    for name, points in series.items():
        counts: dict[date, int] = {}
        for day, count in points:
            if not isinstance(day, date):
                raise ValueError(f"series {name!r}: {day!r} is not a date")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"series {name!r}: count {count!r} is not a whole number >= 0")
            key = _bucket_start(day, bucket)
            counts[key] = counts.get(key, 0) + count
        out[str(name)] = counts
    return out


def _keep_largest(counts: dict[str, dict[date, int]]) -> dict[str, dict[date, int]]:
    """Keep the MAX_SERIES - 1 busiest series and fold the rest into "other"."""
    if len(counts) <= MAX_SERIES:
        return counts
    ranked = sorted(counts, key=lambda n: (-sum(counts[n].values()), n))
    kept = {n: counts[n] for n in ranked[: MAX_SERIES - 1]}
    other: dict[date, int] = {}
    for name in ranked[MAX_SERIES - 1 :]:
        for day, count in counts[name].items():
            other[day] = other.get(day, 0) + count
    kept["other"] = other
    return kept


def render_chart(
    series: Mapping[str, Sequence[tuple[date, int]]],
    *,
    bucket: Bucket,
    labels: Sequence[tuple[date, str]] = (),
    title: str = "",
) -> bytes:
    """Render event counts per watch over time as a PNG and return its bytes.

    `series` maps a watch name to (day, count) points; points are summed into `bucket`s
    (weeks start on Monday) and missing buckets count as zero. `labels` mark events to name
    on the chart (the caller picks the largest). Raises ValueError for a bad bucket, a
    negative or non-integer count, or a span longer than MAX_BUCKETS buckets.
    """
    return _png(build_figure(series, bucket=bucket, labels=labels, title=title))


def build_figure(
    series: Mapping[str, Sequence[tuple[date, int]]],
    *,
    bucket: Bucket,
    labels: Sequence[tuple[date, str]] = (),
    title: str = "",
) -> Figure:
    """Draw the chart on a new Figure (see `render_chart`); tests inspect its artists."""
    if bucket not in ("day", "week"):
        raise ValueError(f"bucket must be 'day' or 'week', not {bucket!r}")
    step = timedelta(days=7 if bucket == "week" else 1)
    counts = _keep_largest(_bucketed(series, bucket))
    days = sorted({d for c in counts.values() for d in c})

    fig = Figure(figsize=SIZE_INCHES, dpi=DPI, facecolor=CARD)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor(CARD)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(MUTED)
    ax.tick_params(colors=INK, labelsize=9)
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    if title:
        ax.set_title(_clean(title, MAX_TITLE), color=INK, fontsize=13, loc="left", pad=12)
    ax.set_ylabel(f"events per {bucket}", color=MUTED, fontsize=9)

    if not days:
        ax.text(
            0.5,
            0.5,
            "No events in this period",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color=MUTED,
            fontsize=12,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        return fig

    first, last = days[0], days[-1]
    n_buckets = (last - first) // step + 1
    if n_buckets > MAX_BUCKETS:
        raise ValueError(
            f"{n_buckets} {bucket}s from {first} to {last} is too long to draw "
            f"(at most {MAX_BUCKETS}); use a coarser bucket or a shorter period"
        )
    axis = [first + i * step for i in range(n_buckets)]
    xs = mdates.date2num(axis)
    width = step.days * 0.8
    stacked = [0] * n_buckets
    for i, (name, per_day) in enumerate(counts.items()):
        ys = [per_day.get(d, 0) for d in axis]
        ax.bar(
            xs,
            ys,
            width=width,
            bottom=stacked,
            color=PALETTE[i % len(PALETTE)],
            edgecolor=CARD if n_buckets <= 120 else "none",
            linewidth=0.6,
            label=_clean(name, MAX_NAME),
        )
        stacked = [a + b for a, b in zip(stacked, ys, strict=True)]
    totals = dict(zip(axis, stacked, strict=True))

    top = max(stacked)
    ax.set_ylim(0, max(1, top) * (1.45 if labels else 1.15))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(float(xs[0]) - step.days * 0.6, float(xs[-1]) + step.days * 0.6)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    legend = ax.legend(loc="upper left", fontsize=9, frameon=True, ncols=min(4, len(counts)))
    legend.get_frame().set_facecolor(CARD)
    legend.get_frame().set_edgecolor(GRID)
    for text in legend.get_texts():
        text.set_color(INK)
    _annotate(ax, labels, totals, bucket, first, last)
    return fig


def _annotate(
    ax: Axes,
    labels: Sequence[tuple[date, str]],
    peak_at: Mapping[date, int],
    bucket: Bucket,
    first: date,
    last: date,
) -> None:
    """Name the given events above their bucket's bar, kept inside the plot area.

    A label near either end is anchored on its inner side (left-aligned at the start,
    right-aligned at the end) so its text never runs off the picture.
    """
    left, right = ax.get_xlim()
    ceiling = ax.get_ylim()[1]
    span = max(right - left, 1e-9)
    shown = 0
    for i, (day, text) in enumerate(labels):
        if shown >= MAX_LABELS:
            break
        if not isinstance(day, date):
            raise ValueError(f"label {text!r}: {day!r} is not a date")
        at = _bucket_start(day, bucket)
        if not first <= at <= last:
            continue
        x = float(mdates.date2num(at))
        where = (x - left) / span
        ha = "left" if where < 0.3 else "right" if where > 0.7 else "center"
        label = _clean(text, MAX_LABEL)
        # Above the tallest bar the text covers (about 5.5 px a character at 8 pt on an
        # axis about 80% of the picture wide), not only its own bucket's.
        reach = len(label) * 5.5 / (SIZE_INCHES[0] * DPI * 0.8) * span
        lo, hi = {"left": (x, x + reach), "right": (x - reach, x)}.get(
            ha, (x - reach / 2, x + reach / 2)
        )
        covered = [v for d, v in peak_at.items() if lo - 0.5 <= mdates.date2num(d) <= hi + 0.5]
        y = peak_at.get(at, 0)
        above = max([y, *covered]) + ceiling * (0.06 + 0.05 * (i % 3))
        # Alternate heights so neighbouring labels do not sit on each other.
        ax.annotate(
            label,
            xy=(x, y),
            xytext=(x, above),
            textcoords="data",
            ha=ha,
            fontsize=8,
            color=INK,
            arrowprops={
                "arrowstyle": "-",
                "color": MUTED,
                "linewidth": 0.8,
                "relpos": ({"left": 0.0, "right": 1.0}.get(ha, 0.5), 0.0),
            },
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": GRID},
        )
        shown += 1


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # Emoji or CJK in a watch name lack a glyph in the bundled font: drawn as boxes.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        fig.savefig(buf, format="png", facecolor=CARD, bbox_inches="tight", pad_inches=0.25)
    return buf.getvalue()
