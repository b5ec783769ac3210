"""The timeline chart is a real PNG for real, empty and hostile input."""

from __future__ import annotations

import struct
import zlib
from datetime import date, timedelta

import pytest

from timeline.chart import MAX_BUCKETS, render_chart

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
def test_bad_input_is_a_clear_error(series: dict, bucket: str, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        render_chart(series, bucket=bucket)  # type: ignore[arg-type]


def test_daily_counts_are_stacked_bars_not_lines() -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    from timeline.chart import build_figure

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
        by_colour.setdefault(tuple(bar.get_facecolor()), []).append(bar)
    assert len(by_colour) == 2
    lower, upper = sorted(by_colour.values(), key=lambda group: group[0].get_y())
    # Stacked: every bar of the second series starts where the first one ends.
    for low, high in zip(lower, upper, strict=True):
        assert high.get_y() == low.get_y() + low.get_height()
        assert high.get_height() == low.get_height()


def test_labels_stay_inside_the_picture() -> None:
    from timeline.chart import build_figure

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
    canvas.draw()  # type: ignore[no-untyped-call]
    renderer = canvas.get_renderer()  # type: ignore[attr-defined]
    frame = fig.bbox
    texts = fig.axes[0].texts
    assert len(texts) == 3
    for text in texts:
        box = text.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, (text.get_text(), box, frame)
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, (text.get_text(), box, frame)
