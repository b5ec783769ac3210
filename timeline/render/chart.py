"""Draw the timeline as a PNG: a stacked bar per bucket (one colour per watch), the largest events labelled.

A pure function over plain data (the query that feeds it lives elsewhere). It uses the
object-oriented Matplotlib API (``Figure`` + Agg canvas, never ``pyplot``), so it keeps no
global state and is safe to call from a worker thread.

Counts per day (or week) are discrete, so they are drawn as bars, not lines between days;
the watches' bars are stacked so a series stays visible where it overlaps another. The picture
is an explicit light card with dark text and colour-blind-safe colours (Okabe-Ito), so it reads
the same on Discord's dark and light themes.

Every piece of text is measured and shortened (with an ellipsis) to the room it has: the
title to the picture's width, legend entries to their column (the legend sits below the
plot), event labels to a band above the bars where they never overlap one another. The
figure has a fixed size and constrained layout, so nothing runs off the picture and every
PNG is the same size. Run ``python -m timeline.render.chart --demo OUT_DIR`` to draw sample
pictures for review.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import Formatter, Locator, MaxNLocator

log = logging.getLogger(__name__)

Bucket = Literal["day", "week"]

CARD = "#f4f5f7"
INK = "#1e1f22"
GRID = "#c9ccd1"
MUTED = "#5c5f66"
# Okabe-Ito, without the yellow that fades on a light card, then Tol's wine for an eighth.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#882255")
OTHER_COLOUR = "#9a9da3"  # the folded series is grey: not mistaken for a watch

MAX_SERIES = len(PALETTE)  # beyond this the colours cannot be told apart: the rest fold
MAX_LABELS = 8
LABEL_ROWS = 3  # rows of event labels above the bars; a label with no room is left out
MIN_FIT_BUCKETS = 7  # a window fitted to very little data still shows a week of context
MAX_BUCKETS = 1500  # about four years of days or thirty of weeks
WIDE_BARS = 120  # up to this many buckets, bars with gaps; beyond, touching bars
MAX_TICKS = 10
MAX_NAME = 80  # then shortened further to the legend column's width
MAX_LABEL = 48
MAX_TITLE = 120
SIZE_INCHES = (10.0, 5.6)
DPI = 100
LEGEND_COLUMNS = 4
TITLE_SIZE = 13.0
LABEL_SIZE = 8.0
LEGEND_SIZE = 9.0
EDGE_PX = 12.0  # room kept free along the picture's edges


def _flat(text: object, limit: int) -> str:
    """Make user text one line without control characters, at most `limit` characters."""
    flat = "".join(ch if ch.isprintable() else " " for ch in str(text))
    flat = " ".join(flat.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat


def _width_px(renderer: RendererBase, text: str, size: float) -> float:
    # parse_math is off on every text artist, so measure as plain text too.
    width, _, _ = renderer.get_text_width_height_descent(text, FontProperties(size=size), False)
    return float(width)


def _shorten(renderer: RendererBase, text: str, size: float, room: float) -> str:
    """Return `text`, or its longest prefix plus an ellipsis, that is at most `room` px wide."""
    if _width_px(renderer, text, size) <= room:
        return text
    lo, hi = 0, len(text)  # the prefix text[:lo] + "…" fits; text[:hi] + "…" may not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _width_px(renderer, text[:mid].rstrip() + "…", size) <= room:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


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


@dataclass(frozen=True, slots=True)
class _Series:
    name: str
    colour: str
    counts: dict[date, int]


def _keep_largest(counts: dict[str, dict[date, int]]) -> list[_Series]:
    """Give each series a colour; past MAX_SERIES, fold the quietest into one grey series."""
    if len(counts) <= MAX_SERIES:
        return [_Series(n, PALETTE[i], c) for i, (n, c) in enumerate(counts.items())]
    ranked = sorted(counts, key=lambda n: (-sum(counts[n].values()), n))
    kept = ranked[: MAX_SERIES - 1]
    out = [_Series(n, PALETTE[i], counts[n]) for i, n in enumerate(n for n in counts if n in kept)]
    other: dict[date, int] = {}
    rest = ranked[MAX_SERIES - 1 :]
    for name in rest:
        for day, count in counts[name].items():
            other[day] = other.get(day, 0) + count
    out.append(_Series(f"{len(rest)} others", OTHER_COLOUR, other))
    return out


def render_chart(
    series: Mapping[str, Sequence[tuple[date, int]]],
    *,
    bucket: Bucket,
    labels: Sequence[tuple[date, str]] = (),
    title: str = "",
    window: tuple[date, date] | None = None,
) -> bytes:
    """Render event counts per watch over time as a PNG and return its bytes.

    `series` maps a watch name to (day, count) points; points are summed into `bucket`s
    (weeks start on Monday) and missing buckets count as zero. `window` (first day, last day)
    is the period to show; without it the picture fits the data (at least MIN_FIT_BUCKETS
    buckets, ending at the newest).
    `labels` mark events to name on the chart (the caller picks them, the most important first).
    Raises ValueError for a bad bucket, a negative or non-integer count, or a span longer
    than MAX_BUCKETS buckets.
    """
    return _png(build_figure(series, bucket=bucket, labels=labels, title=title, window=window))


def build_figure(
    series: Mapping[str, Sequence[tuple[date, int]]],
    *,
    bucket: Bucket,
    labels: Sequence[tuple[date, str]] = (),
    title: str = "",
    window: tuple[date, date] | None = None,
) -> Figure:
    """Draw the chart on a new Figure (see `render_chart`); tests inspect its artists."""
    with _no_glyph_warnings():
        return _build(series, bucket=bucket, labels=labels, title=title, window=window)


@contextmanager
def _no_glyph_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        # Emoji or CJK in a watch name lack a glyph in the bundled font: drawn as boxes.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        yield


def _build(
    series: Mapping[str, Sequence[tuple[date, int]]],
    *,
    bucket: Bucket,
    labels: Sequence[tuple[date, str]],
    title: str,
    window: tuple[date, date] | None,
) -> Figure:
    if bucket not in ("day", "week"):
        raise ValueError(f"bucket must be 'day' or 'week', not {bucket!r}")
    step = timedelta(days=7 if bucket == "week" else 1)
    drawn = _keep_largest(_bucketed(series, bucket))
    days = sorted({d for s in drawn for d, n in s.counts.items() if n > 0})

    fig = Figure(figsize=SIZE_INCHES, dpi=DPI, facecolor=CARD, layout="constrained")
    fig.get_layout_engine().set(w_pad=EDGE_PX / DPI, h_pad=EDGE_PX / DPI)  # type: ignore[union-attr, call-arg]
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    ax = fig.add_subplot()
    ax.set_facecolor(CARD)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(MUTED)
    ax.tick_params(colors=INK, labelsize=9)
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    width_px = SIZE_INCHES[0] * DPI
    if title:
        text = _shorten(renderer, _flat(title, MAX_TITLE), TITLE_SIZE, width_px - 3 * EDGE_PX)
        fig.suptitle(
            text, x=EDGE_PX / width_px, ha="left", color=INK, fontsize=TITLE_SIZE, parse_math=False
        )
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
    if window is not None:
        # The period asked for is kept; data outside it (none, from the service) still shows.
        first = min(first, _bucket_start(window[0], bucket))
        last = max(last, _bucket_start(window[1], bucket))
    else:
        # Padded into the past only: days after the newest event may not have happened yet.
        first = min(first, last - step * (MIN_FIT_BUCKETS - 1))
    n_buckets = (last - first) // step + 1
    if n_buckets > MAX_BUCKETS:
        raise ValueError(
            f"{n_buckets} {bucket}s from {first} to {last} is too long to draw "
            f"(at most {MAX_BUCKETS}); use a coarser bucket or a shorter period"
        )
    axis = [first + i * step for i in range(n_buckets)]
    xs = mdates.date2num(axis)
    stacked = [0] * n_buckets
    wide = n_buckets <= WIDE_BARS
    # Past WIDE_BARS buckets a bar would be under about 7 px wide: the bars then touch, each
    # series drawn as one stepped outline of its bars (fast, and no moire of 1 px gaps).
    edges = [float(x) - step.days / 2 for x in xs] + [float(xs[-1]) + step.days / 2]
    for s in drawn:
        ys = [s.counts.get(d, 0) for d in axis]
        tops = [a + b for a, b in zip(stacked, ys, strict=True)]
        if wide:
            ax.bar(
                xs,
                ys,
                width=step.days * 0.8,
                bottom=stacked,
                color=s.colour,
                # A thin card-coloured edge parts the stacked segments.
                edgecolor=CARD,
                linewidth=0.6,
                label=s.name,
            )
        else:
            ax.stairs(tops, edges, baseline=stacked, fill=True, color=s.colour, label=s.name)
        stacked = tops
    totals = dict(zip(axis, stacked, strict=True))
    top = max(1, max(stacked))

    ax.set_ylim(0, top * (1.4 if labels else 1.1))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(float(xs[0]) - step.days * 0.6, float(xs[-1]) + step.days * 0.6)
    locator = _date_locator(n_buckets, bucket)
    ax.xaxis.set_major_locator(locator)
    if isinstance(locator, mdates.DayLocator | mdates.WeekdayLocator):
        ax.xaxis.set_major_formatter(_DayFormatter())
    else:
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    _legend(fig, ax, drawn, renderer)
    fig.draw_without_rendering()  # lay out once, so the plot area's size is known
    _annotate(ax, labels, totals, bucket, (first, last), top, renderer)
    return fig


def _date_locator(n_buckets: int, bucket: Bucket) -> Locator:
    """Return a locator with at most MAX_TICKS ticks, each at a bucket's start (its bar)."""
    days = n_buckets * (7 if bucket == "week" else 1)
    if bucket == "day" and days <= 3 * MAX_TICKS:
        return mdates.DayLocator(interval=math.ceil(days / MAX_TICKS))
    if bucket == "week" and n_buckets <= 3 * MAX_TICKS:
        return mdates.WeekdayLocator(mdates.MO, interval=math.ceil(n_buckets / MAX_TICKS))
    months = days / 30.44
    if months <= 3 * MAX_TICKS:
        return mdates.MonthLocator(interval=max(1, math.ceil(months / MAX_TICKS)))
    return mdates.YearLocator(base=max(1, math.ceil(months / 12 / MAX_TICKS)))


class _DayFormatter(Formatter):
    """Label day ticks "6 Jan", then only the day until the month changes; the year aside.

    Matplotlib's concise formatter names a month only on its first day, which weekly ticks
    (Mondays) rarely hit, and labels a lone tick with a time ("00:00").
    """

    def __init__(self) -> None:
        self._years = ""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{mdates.num2date(x):%-d %b}"

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        days = [mdates.num2date(v).date() for v in values]
        years = sorted({d.year for d in days})
        self._years = (
            str(years[0]) if len(years) == 1 else f"{years[0]}–{years[-1]}" if years else ""
        )
        return [
            f"{d:%-d %b}"
            if i == 0 or (d.year, d.month) != (days[i - 1].year, days[i - 1].month)
            else f"{d:%-d}"
            for i, d in enumerate(days)
        ]

    def get_offset(self) -> str:
        return self._years


def _legend(fig: Figure, ax: Axes, drawn: Sequence[_Series], renderer: RendererBase) -> None:
    """Put the legend below the plot, each entry shortened to fit its column."""
    handles, _ = ax.get_legend_handles_labels()
    columns = min(LEGEND_COLUMNS, len(drawn))
    # Per column: the handle (2 em), the gap to the text (0.8 em), the gap between columns (2 em).
    room = (SIZE_INCHES[0] * DPI - 4 * EDGE_PX) / columns - 4.8 * LEGEND_SIZE * DPI / 72
    # A name of only control characters or spaces would leave its colour unexplained.
    names = [
        _shorten(renderer, _flat(s.name, MAX_NAME) or "(no name)", LEGEND_SIZE, room) for s in drawn
    ]
    legend = fig.legend(
        handles,
        names,
        loc="outside lower center",
        ncols=columns,
        fontsize=LEGEND_SIZE,
        frameon=False,
    )
    for text in legend.get_texts():
        text.set_color(INK)
        text.set_parse_math(False)


def _annotate(
    ax: Axes,
    labels: Sequence[tuple[date, str]],
    totals: Mapping[date, int],
    bucket: Bucket,
    span: tuple[date, date],
    top: int,
    renderer: RendererBase,
) -> None:
    """Name the given events in a band above the bars, each joined to its bar by a line.

    Labels are placed in the order given (the largest first) in the first of LABEL_ROWS rows
    where they overlap no other label, shifted sideways to stay inside the plot; a label that
    finds no room is left out (the caption and /timeline still list every event). The y
    limit is then raised so the bars stay below the rows used.
    """
    box = ax.get_window_extent(renderer)
    if box.width < 50 or box.height < 50:
        return
    pad = 0.25 * LABEL_SIZE * DPI / 72  # the rounded box's padding, in px
    _, line_h, _ = renderer.get_text_width_height_descent(
        "Ág", FontProperties(size=LABEL_SIZE), False
    )
    row_h = line_h + 2 * pad + 4
    placed: list[tuple[int, float, float, float]] = []  # row, left, right, line's x
    chosen: list[tuple[date, str, float, int, float]] = []
    for day, text in labels:
        if len(chosen) >= MAX_LABELS:
            break
        if not isinstance(day, date):
            raise ValueError(f"label {text!r}: {day!r} is not a date")
        at = _bucket_start(day, bucket)
        if not span[0] <= at <= span[1]:
            continue
        label = _shorten(
            renderer, _flat(text, MAX_LABEL), LABEL_SIZE, box.width * 0.45 - 2 * pad - 4
        )
        if not label:
            continue
        w = _width_px(renderer, label, LABEL_SIZE) + 2 * pad
        x_px = float(ax.transData.transform((mdates.date2num(at), 0))[0])
        # Centred over its bar, else reaching right or left from it; always inside the plot.
        lefts = [
            min(max(a, box.x0 + 2), box.x1 - 2 - w)
            for a in (x_px - w / 2, x_px - 12, x_px + 12 - w)
        ]
        spot = next(
            (
                (row, left)
                for row in range(LABEL_ROWS)
                for left in lefts
                if all(_clear(row, left, left + w, x_px, other) for other in placed)
            ),
            None,
        )
        if spot is not None:
            placed.append((spot[0], spot[1], spot[1] + w, x_px))
            chosen.append((at, label, spot[1], spot[0], w))
    if not chosen:
        ax.set_ylim(0, top * 1.1)
        return
    rows = 1 + max(row for *_, row, _ in chosen)
    band = rows * row_h + 8
    ax.set_ylim(0, top / max(0.3, 1 - band / box.height) * 1.04)
    ceiling = ax.get_ylim()[1]
    box_h = line_h + 2 * pad
    for at, label, left, row, _ in chosen:
        x = float(mdates.date2num(at))
        y_top = (box.y1 - 2 - row * row_h - box.y0) / box.height  # fractions of the plot
        y_bottom = y_top - box_h / box.height
        # The leader drops straight from the box to its bar (both at the bar's x).
        ax.vlines(x, totals.get(at, 0), y_bottom * ceiling, color=MUTED, linewidth=0.8, zorder=3)
        artist = ax.text(
            # x in data units, so the box stays over its bar when the final layout shifts the
            # plot a few pixels; y as a fraction of the plot's height (the label band).
            float(ax.transData.inverted().transform((left + pad, 0))[0]),
            y_top - pad / box.height,
            label,
            transform=ax.get_xaxis_transform(),
            ha="left",
            va="top",
            fontsize=LABEL_SIZE,
            color=INK,
            parse_math=False,
            zorder=4,
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": GRID},
        )
        artist.set_in_layout(False)


def _clear(
    row: int, left: float, right: float, x: float, other: tuple[int, float, float, float]
) -> bool:
    """Say whether a label box may go here: it overlaps no other box and no other's line.

    A label's line drops from its box to its bar, so it crosses every row below its own.
    """
    o_row, o_left, o_right, o_x = other
    if o_row == row:
        return right + 12 <= o_left or o_right + 12 <= left
    if o_row < row:  # the other is higher: its line must miss this box
        return not left - 8 <= o_x <= right + 8
    return not o_left - 8 <= x <= o_right + 8  # the other is lower: this line must miss it


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with _no_glyph_warnings():
        fig.savefig(buf, format="png", facecolor=CARD)
    return buf.getvalue()


def _demo_cases() -> dict[str, dict[str, object]]:
    """Sample inputs for review: overlapping, many long-named, tiny and long series."""
    start = date(2025, 1, 6)
    long = "A really long watch name about the NATO summit communique and dual-use exports"
    headline = "NATO calls China a 'decisive enabler' of Russia's war, summit communique says"
    labels = [(start + timedelta(days=d), f"{headline} ({d})") for d in (2, 3, 9, 0, 13, 12)]
    title = "Timeline: " + "(NATO OR Ukraine) AND drone " * 8 + "(2025-01-06 to 2026-01-05)"

    def days(n: int, f: int, g: int, every: int = 1) -> list[tuple[date, int]]:
        return [(start + timedelta(days=i), (i * f) % g + 1) for i in range(0, n, every)]

    return {
        "overlap": {"series": {"NATO": days(14, 7, 5), "Drones": days(14, 7, 5)}, "labels": labels},
        "twenty-long-names": {
            "series": {f"{long} {i:02d}": days(30, i + 1, 4, 3) for i in range(20)},
            "labels": labels,
            "title": title,
        },
        "single-event": {"series": {"NATO": [(start, 1)]}, "labels": labels[3:4]},
        "one-day-window": {
            "series": {"NATO": [(start, 3)], "x" * 100: [(start, 2)]},
            "window": (start, start),
            "labels": labels[3:4],
        },
        "year-by-day": {
            "series": {"NATO": days(365, 13, 7), "quiet": days(365, 1, 1, 11)},
            "labels": labels,
            "title": title,
        },
        "half-year-by-week": {
            "series": {"NATO": days(180, 13, 7), "Drones": days(180, 5, 3, 2)},
            "bucket": "week",
            "labels": labels,
        },
        "given-window-sparse": {
            "series": {"NATO": [(start + timedelta(days=20), 2), (start + timedelta(days=22), 1)]},
            "window": (start, start + timedelta(days=29)),
            "title": "Timeline: NATO (2025-01-06 to 2025-02-04, per day)",
        },
        "empty": {"series": {}, "title": "Timeline (nothing yet)"},
    }


def _demo(out_dir: str) -> None:
    """Write one PNG per sample case to `out_dir` (for a person to look at)."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, case in _demo_cases().items():
        png = render_chart(
            case["series"],  # type: ignore[arg-type]
            bucket=case.get("bucket", "day"),  # type: ignore[arg-type]
            labels=case.get("labels", ()),  # type: ignore[arg-type]
            title=str(case.get("title", f"Timeline: {name}")),
            window=case.get("window"),  # type: ignore[arg-type]
        )
        (out / f"{name}.png").write_bytes(png)
        print(out / f"{name}.png")


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "--demo":
        sys.exit("usage: python -m timeline.render.chart --demo OUT_DIR")
    _demo(sys.argv[2])
