"""Wrap matched words in markers (Discord bold by default), matching by token, not substring."""

from __future__ import annotations

from collections.abc import Iterable

from timeline.domain.query.normalise import stems, word_spans, words


def highlight(text: str, terms: Iterable[str], start: str = "**", end: str = "**") -> str:
    """Return `text` with every occurrence of `terms` (words or phrases) wrapped in markers.

    Escape markdown in `text` before calling: escapes are punctuation, so tokens are unchanged.
    """
    spans = word_spans(text)
    if not spans:
        return text
    text_stems = stems([s[0] for s in spans])
    wanted = {tuple(stems(words(t))) for t in terms}
    wanted.discard(())
    # Occurrences as token ranges; overlapping ones merge, merely adjacent ones stay apart.
    ranges: list[tuple[int, int]] = []
    for phrase in wanted:
        n = len(phrase)
        for i in range(len(text_stems) - n + 1):
            if text_stems[i] == phrase[0] and tuple(text_stems[i : i + n]) == phrase:
                ranges.append((i, i + n))
    ranges.sort()
    merged: list[list[int]] = []
    for a, b in ranges:
        if merged and a < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out: list[str] = []
    pos = 0
    for a, b in merged:
        lo, hi = spans[a][1], spans[b - 1][2]
        out.append(text[pos:lo])
        out.append(start + text[lo:hi] + end)
        pos = hi
    out.append(text[pos:])
    return "".join(out)
