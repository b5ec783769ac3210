"""Escape feed text so that Markdown renderers (Discord's and CommonMark) show it literally.

One escaper for every place that puts a feed's words into Markdown: Discord embeds, digests,
`/event show`, search lines and the Markdown export. It escapes *every* construct those
renderers know, not only the ones that happen to form a complete pattern in the piece at
hand: a masked link split over two pieces (``[NATO communique`` + ``](https://evil…)``), as
the highlighter produces, must not come back to life when the pieces are joined.

Backslash-escaping ASCII punctuation is safe in both renderers: the backslash is hidden and
the character shows as itself.
"""

from __future__ import annotations

import re

# Inline constructs, escaped wherever they appear: emphasis and strike (* _ ~), spoilers (|),
# code (`), masked links ([ ] and the parentheses after them), angle-bracket syntax (<t:…>
# timestamps, <@…> mentions, <#…> channels, </cmd:…> commands, <:emoji:…>, <https://…>)
# and block quotes (>), plus the backslash itself.
_INLINE = re.compile(r"([\\*_~|`\[\]()<>])")

# Block constructs only count at the start of a line (after optional spaces): headers
# (# ## ###), subtext (-#), lists (- + and 1. or 1)). `*` and `>` are already escaped inline.
_LINE_START = re.compile(r"(?m)^([ \t]*)(#|-(?=[ \t#])|\+(?=[ \t]))")
_ORDERED = re.compile(r"(?m)^([ \t]*\d{1,9})([.)])(?=[ \t])")


def escape_markdown(text: str, *, line_start: bool = True) -> str:
    """Backslash-escape every Markdown construct in `text` so it renders as plain text.

    `line_start` says whether `text` begins a line where it will be placed; the start of
    each line after a newline always counts.
    """
    out = _INLINE.sub(r"\\\1", text)
    if line_start:
        out = _ORDERED.sub(r"\1\\\2", out)
        return _LINE_START.sub(r"\1\\\2", out)
    head, newline, rest = out.partition("\n")
    if not newline:
        return out
    rest = _ORDERED.sub(r"\1\\\2", rest)
    return head + newline + _LINE_START.sub(r"\1\\\2", rest)
