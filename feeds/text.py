"""Characters that are not text, in one table for the feed parser and the query tokeniser.

Stored item text (feeds.parse) and the words the matcher, `match` and search make of any text
(timeline.domain.query.normalise) both go through `strip_invisible`, so the same text gives the same
words whichever way it came in.
"""

from __future__ import annotations

# Format characters that sit inside words in scraped HTML (&shy;, the joiners, the word joiner,
# a stray BOM): removed, so "com\u00adpany" stays one word.
INVISIBLE = "\u00ad\u200c\u200d\u2060\ufeff"
# U+200B ZERO WIDTH SPACE is a word break (Unicode UAX #29 does not count it as Format), and
# control characters (C0 but tab and newlines, DEL, C1) are not text: both become a space, as
# every other non-alphanumeric character is a word separator to the tokeniser. (PostgreSQL
# refuses a NUL in a text column: one in a title would lose the feed's whole round.)
BREAKS = "\u200b" + "".join(map(chr, [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)]))
BREAKS += "".join(map(chr, range(0x7F, 0xA0)))

_TABLE: dict[int, str | None] = {
    **dict.fromkeys(map(ord, INVISIBLE)),
    **dict.fromkeys(map(ord, BREAKS), " "),
}


def strip_invisible(text: str) -> str:
    """Remove invisible format characters; a zero-width space or a control becomes a space."""
    return text.translate(_TABLE)
