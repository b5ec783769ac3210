"""The timeline chart is a real PNG for real, empty and hostile input."""

from __future__ import annotations

import struct
import zlib
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Required, TypedDict

import matplotlib.dates as mdates
import numpy
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle, StepPatch
from matplotlib.text import Text

from timeline.render.chart import MAX_BUCKETS, Bucket, build_figure, render_chart

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Return (width, height) after checking the signature and the IHDR chunk's CRC."""
    assert data[:8] == PNG_MAGIC
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert zlib.crc32(kind + body) == crc
    width, height = struct.unpack(">II", body[:8])
    assert data.endswith(b"IEND\xaeB`\x82")
    return width, height


def week_of_days(start: date, counts: list[int]) -> list[tuple[date, int]]:
    return [(start + timedelta(days=i), n) for i, n in enumerate(counts)]


def test_renders_lines_and_labels_as_png() -> None:
    start = date(2024, 7, 8)
    data = render_chart(
        {
            "NATO communique": week_of_days(start, [1, 4, 9, 3, 0, 1, 2]),
            "dual-use": week_of_days(start, [0, 2, 5, 1, 1, 0, 0]),
        },
        bucket="day",
        labels=[(date(2024, 7, 10), "NATO calls China a 'decisive enabler' of Russia's war")],
        title="Timeline: last 7 days",
    )
    width, height = png_size(data)
    assert 600 <= width <= 1400 and 300 <= height <= 800
    assert len(data) > 10_000  # lines, text and a legend, not a blank image


def test_empty_input_still_gives_a_png() -> None:
    empty: list[dict[str, list[tuple[date, int]]]] = [{}, {"NATO": []}]
    for series in empty:
        width, height = png_size(render_chart(series, bucket="week", title="Nothing yet"))
        assert width > 100 and height > 100


def test_week_buckets_sum_days_and_fill_gaps() -> None:
    # Three weeks apart with nothing between: still one picture, not an error.
    data = render_chart(
        {"a": [(date(2024, 1, 1), 2), (date(2024, 1, 3), 1), (date(2024, 1, 22), 5)]},
        bucket="week",
    )
    png_size(data)


def test_single_point_and_many_series() -> None:
    series = {f"watch {i}": [(date(2024, 5, 1), i)] for i in range(20)}
    png_size(render_chart(series, bucket="day", labels=[(date(2024, 5, 1), "one day")]))


def test_a_blank_series_name_still_has_a_legend_entry() -> None:

    fig = build_figure({"\x00\n\t ": [(START, 1)], "b": [(START, 2)]}, bucket="day")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["(no name)", "b"]


def test_hostile_text_is_drawn_not_parsed() -> None:
    data = render_chart(
        {"$\\frac{": [(date(2024, 5, 1), 1)], "x" * 500: [(date(2024, 5, 2), 2)], "🚀 中文": []},
        bucket="day",
        labels=[(date(2024, 5, 2), "$$ \x00\n" + "y" * 1000), (date(1999, 1, 1), "out of range")],
        title="$^_ \t title",
    )
    png_size(data)


@pytest.mark.parametrize(
    ("series", "bucket", "message"),
    [
        ({"a": [(date(2024, 1, 1), -1)]}, "day", "whole number"),
        ({"a": [(date(2024, 1, 1), 1.5)]}, "day", "whole number"),
        ({"a": [("2024-01-01", 1)]}, "day", "not a date"),
        ({"a": [(date(2024, 1, 1), 1)]}, "month", "bucket"),
        (
            {"a": [(date(2000, 1, 1), 1), (date(2000, 1, 1) + timedelta(days=MAX_BUCKETS), 1)]},
            "day",
            "too long",
        ),
    ],
)
def test_bad_input_is_a_clear_error(series: dict[str, Any], bucket: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_chart(series, bucket=bucket)  # type: ignore[arg-type]


def test_daily_counts_are_stacked_bars_not_lines() -> None:

    start = date(2024, 7, 8)
    # The two watches have the same counts on the same days: as lines one would hide the other.
    same = week_of_days(start, [1, 4, 9, 3, 0, 1, 2])
    fig = build_figure({"a": same, "b": same}, bucket="day")
    ax = fig.axes[0]
    assert [line for line in ax.get_lines() if isinstance(line, Line2D)] == []
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 2 * 7
    by_colour: dict[tuple[float, ...], list[Rectangle]] = {}
    for bar in bars:
        by_colour.setdefault(to_rgba(bar.get_facecolor()), []).append(bar)
    assert len(by_colour) == 2
    lower, upper = sorted(by_colour.values(), key=lambda group: group[0].get_y())
    # Stacked: every bar of the second series starts where the first one ends.
    for low, high in zip(lower, upper, strict=True):
        assert high.get_y() == low.get_y() + low.get_height()
        assert high.get_height() == low.get_height()


def test_labels_stay_inside_the_picture() -> None:

    start = date(2024, 7, 1)
    long = "A very long headline about the summit communique that goes on"
    fig = build_figure(
        {"a": week_of_days(start, [5, 1, 1, 1, 1, 1, 1, 1, 1, 7])},
        bucket="day",
        labels=[
            (start, long),
            (start + timedelta(days=9), long),
            (start + timedelta(days=4), long),
        ],
    )
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.draw()
    renderer = canvas.get_renderer()
    frame = fig.bbox
    texts = fig.axes[0].texts
    assert len(texts) == 3
    for text in texts:
        box = text.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, (text.get_text(), box, frame)
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, (text.get_text(), box, frame)


# Hostile shapes for the layout: 100-character names, 20 series, a one-day and a 365-day
# window, a single event, week buckets, and labels and a title far longer than the picture.
LONG = "N" * 60 + " watch about the summit communique and dual-use exports"[:40]
START = date(2025, 1, 6)
HEADLINES = [
    (START + timedelta(days=d), f"W{d} " + "Headline that goes on and on " * 6) for d in range(8)
]
TITLE = "Timeline: " + "(NATO OR Ukraine) AND drone " * 10 + "(2025-01-06 to 2026-01-05)"


def _days(n: int, mult: int, mod: int, every: int = 1) -> list[tuple[date, int]]:
    return [(START + timedelta(days=i), (i * mult) % mod + 1) for i in range(0, n, every)]


class Layout(TypedDict, total=False):
    series: Required[dict[str, list[tuple[date, int]]]]
    bucket: Bucket
    window: tuple[date, date]


LAYOUTS: dict[str, Layout] = {
    "twenty-long-names": {
        "series": {f"{LONG[:96]} {i:02d}": _days(30, i + 1, 4, 3) for i in range(20)},
    },
    "one-day-window": {
        "series": {LONG: [(START, 3)], "b": [(START, 2)]},
        "window": (START, START),
    },
    "single-event": {"series": {"NATO": [(START, 1)]}},
    "year-by-day": {"series": {"NATO": _days(365, 13, 7), LONG: _days(365, 1, 1, 11)}},
    "year-by-week": {
        "series": {"NATO": _days(365, 13, 7), "b": _days(365, 3, 2)},
        "bucket": "week",
    },
    "given-window": {
        "series": {"NATO": [(START + timedelta(days=20), 2)]},
        "window": (START, START + timedelta(days=29)),
    },
}


def _figure(case: Layout) -> tuple[Figure, RendererAgg]:
    """The drawn figure of `case` and its renderer."""

    fig = build_figure(
        case["series"],
        bucket=case.get("bucket", "day"),
        labels=HEADLINES,
        title=TITLE,
        window=case.get("window"),
    )
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.draw()
    return fig, canvas.get_renderer()


def _legends(fig: Figure) -> list[Legend]:
    return [*fig.legends, *(legend for ax in fig.axes if (legend := ax.get_legend()) is not None)]


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_no_text_runs_off_the_picture_or_overlaps(name: str) -> None:

    fig, renderer = _figure(LAYOUTS[name])
    frame = fig.bbox
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    bottom, top = ax.get_ylim()
    ticks = [t for t in ax.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
    yticks = [t for t in ax.get_yticklabels() if bottom <= t.get_position()[1] <= top]
    # Tick labels outside the view limits are not drawn: check only the drawn ones.
    undrawn = {*ax.get_xticklabels(), *ax.get_yticklabels()} - {*ticks, *yticks}
    texts = [
        t
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t not in undrawn
    ]
    titles = [t for t in texts if t.get_text().startswith("Timeline:")]
    assert len(titles) == 1 and titles[0].get_text().endswith("…")
    assert len(ax.texts) >= 1 and ticks
    for text in texts:
        box = text.get_window_extent(renderer)
        inside = (
            frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 <= box.y1 <= frame.y1
        )
        assert inside, (text.get_text(), box, frame)
    # The event labels and the x tick labels never cover one another.
    patches = [t.get_bbox_patch() for t in ax.texts]
    label_boxes = [p.get_window_extent(renderer) for p in patches if p is not None]
    assert len(label_boxes) == len(ax.texts)  # every event label is drawn in its box
    for boxes in (label_boxes, [t.get_window_extent(renderer) for t in ticks]):
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not a.overlaps(b), (a, b)
    # Each legend entry is shortened to its column, so the entries do not overlap either.
    (legend,) = _legends(fig)
    entries = [t.get_window_extent(renderer) for t in legend.get_texts()]
    assert all(not a.overlaps(b) for i, a in enumerate(entries) for b in entries[i + 1 :])
    # The picture is the figure: nothing is cropped off or grows it (no "tight" bounding box).
    data = render_chart(
        LAYOUTS[name]["series"],
        bucket=LAYOUTS[name].get("bucket", "day"),
        labels=HEADLINES,
        title=TITLE,
        window=LAYOUTS[name].get("window"),
    )
    assert png_size(data) == (round(frame.width), round(frame.height))


@pytest.mark.parametrize("name", ["twenty-long-names", "year-by-day", "one-day-window"])
def test_every_series_with_data_shows_in_its_own_colour(name: str) -> None:
    fig, _ = _figure(LAYOUTS[name])
    ax = fig.axes[0]
    assert isinstance(fig.canvas, FigureCanvasAgg)
    pixels = numpy.asarray(fig.canvas.buffer_rgba())
    height = pixels.shape[0]
    lo, hi = ax.get_xlim()
    top = ax.get_ylim()[1]
    names = [t.get_text() for t in _legends(fig)[0].get_texts()]
    drawn = _series_segments(ax)
    assert len(drawn) == len(names) == min(8, len(LAYOUTS[name]["series"]))
    assert len({colour for colour, _ in drawn}) == len(drawn)  # no two series share a colour
    for colour, segments in drawn:
        assert segments, colour
        # Its tallest segment lies inside the plot and shows its colour: nothing covers it.
        x0, y0, x1, y1 = max(segments, key=lambda seg: seg[3] - seg[1])
        assert lo <= x0 and x1 <= hi and y1 <= top
        (px0, py0), (px1, py1) = ax.transData.transform([(x0, y0), (x1, y1)])
        region = pixels[height - int(py1) : height - int(py0), int(px0) : int(px1) + 1, :3]
        want = numpy.array([round(c * 255) for c in colour[:3]])
        assert (abs(region.astype(int) - want).max(axis=-1) <= 2).any(), colour


Box = tuple[float, float, float, float]


def _series_segments(ax: Axes) -> list[tuple[Box, list[Box]]]:
    """Return (colour, [(x0, y0, x1, y1) of each non-empty bar]) per series drawn."""

    out: list[tuple[Box, list[Box]]] = []
    for container in ax.containers:  # bars with gaps
        bars = [b for b in container if b.get_height() > 0]
        out.append(
            (
                to_rgba(container[0].get_facecolor()),
                [
                    (b.get_x(), b.get_y(), b.get_x() + b.get_width(), b.get_y() + b.get_height())
                    for b in bars
                ],
            )
        )
    for patch in ax.patches:  # touching bars, one stepped outline per series
        if isinstance(patch, StepPatch):
            values, edges, baseline = patch.get_data()
            # Stacked series have one baseline per bar (the stubs say a single float).
            bottoms = numpy.broadcast_to(baseline, values.shape)
            out.append(
                (
                    to_rgba(patch.get_facecolor()),
                    [
                        (edges[i], bottoms[i], edges[i + 1], values[i])
                        for i in range(len(values))
                        if values[i] > bottoms[i]
                    ],
                )
            )
    return out


def test_a_given_window_is_drawn_as_given_and_no_window_fits_the_data() -> None:

    sparse = {"NATO": [(START + timedelta(days=20), 2), (START + timedelta(days=22), 1)]}
    given = build_figure(sparse, bucket="day", window=(START, START + timedelta(days=29)))
    lo, hi = (mdates.num2date(x).date() for x in given.axes[0].get_xlim())
    assert lo == START - timedelta(days=1) and hi == START + timedelta(days=29)
    fitted = build_figure(sparse, bucket="day")
    lo, hi = (mdates.num2date(x).date() for x in fitted.axes[0].get_xlim())
    # Three days of data padded to a week of context before the newest (not after: the future).
    assert (lo, hi) == (START + timedelta(days=15), START + timedelta(days=22))
    for fig in (given, fitted):
        ticks = fig.axes[0].get_xticks()
        assert all(float(t).is_integer() for t in ticks)  # whole days, never hours
