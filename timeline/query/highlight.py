"""Wrap matched words in markers (Discord bold by default), matching by token, not substring."""

from __future__ import annotations

from collections.abc import Iterable

from .normalise import stems, word_spans, words


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
    marked = [False] * len(spans)
    for phrase in wanted:
        n = len(phrase)
        for i in range(len(text_stems) - n + 1):
            if text_stems[i] == phrase[0] and tuple(text_stems[i : i + n]) == phrase:
                for k in range(i, i + n):
                    marked[k] = True
    out: list[str] = []
    pos = 0
    i = 0
    while i < len(spans):
        if not marked[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(spans) and marked[j + 1]:
            j += 1
        a, b = spans[i][1], spans[j][2]
        out.append(text[pos:a])
        out.append(start + text[a:b] + end)
        pos = b
        i = j + 1
    out.append(text[pos:])
    return "".join(out)
