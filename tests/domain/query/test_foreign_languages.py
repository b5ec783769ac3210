"""French, German and Spanish stories go through normalisation, matching, the full-text index
and date extraction without errors and with sensible results.

Queries and documents are normalised the same way (NFKC, case folding, diacritics removed,
English stemming), so "securite" finds "Sécurité" and "aussenminister" finds "Außenminister".
Date extraction understands English phrasing only: a French, German or Spanish date gives at
most its year, never a wrong day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tests.domain.query.conftest import add_entries, add_feed
from timeline.domain.query import Document, parse_query, words
from timeline.domain.text_dates import extract_dates
from timeline.storage.engine import Database
from timeline.storage.search import index_tokens, search_entries

PUB = datetime(2025, 7, 3, 12, 0, tzinfo=UTC)

FRENCH = (
    "La Sécurité européenne : l'OTAN réunit ses ministres à Bruxelles",
    "Le sommet se tiendra du 9 au 11 juillet 2025 à Vilnius ; « défense » renforcée.",
)
GERMAN = (
    "Gespräche über die Sicherheit: Außenminister treffen sich in Berlin",
    "Am 9. Juli 2025 beginnt der Gipfel. Die Bundesregierung äußerte sich am Dienstag, 11.07.2025.",
)
SPANISH = (
    "¿Qué pasó en la cumbre de la OTAN? España aumenta el gasto en defensa",
    "La reunión será el 9 de julio de 2025 en Madrid, según el Ministerio de Defensa. 09/07/2025",
)
STORIES = {"fr": FRENCH, "de": GERMAN, "es": SPANISH}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (FRENCH[0], ["la", "securite", "europeenne", "l", "otan", "reunit", "ses"]),
        (GERMAN[0], ["gesprache", "uber", "die", "sicherheit", "aussenminister", "treffen"]),
        (SPANISH[0], ["que", "paso", "en", "la", "cumbre", "de", "la", "otan", "espana"]),
        ("« Défense » — ¡Sí! ¿Año?", ["defense", "si", "ano"]),
    ],
)
def test_words_fold_diacritics_and_punctuation(text: str, expected: list[str]) -> None:
    assert words(text)[: len(expected)] == expected


@pytest.mark.parametrize(
    ("lang", "query"),
    [
        ("fr", "securite"),
        ("fr", "Sécurité"),
        ("fr", "SECURITE europeenne"),
        ("fr", "securites"),  # English stemming still joins a plural
        ("fr", '"l\'OTAN réunit"'),
        ("fr", "defense AND vilnius"),
        ("de", "gesprache"),
        ("de", "Gespräche"),
        ("de", "aussenminister"),
        ("de", "Außenminister"),
        ("de", '"uber die sicherheit"'),
        ("es", "que paso"),
        ("es", "españa"),
        ("es", "espana OR portugal"),
        ("es", '"la cumbre de la otan"'),
        ("es", "reunion madrid"),
        ("es", "ministerio NOT lisboa"),
    ],
)
def test_queries_match_foreign_stories_accents_or_not(lang: str, query: str) -> None:
    title, summary = STORIES[lang]
    assert parse_query(query).matches(Document(title, summary, ()))


@pytest.mark.parametrize(
    ("lang", "query"),
    [("fr", "securitaire"), ("de", "sicher"), ("es", "cumbres NOT otan"), ("fr", '"otan l"')],
)
def test_queries_do_not_match_what_the_story_does_not_say(lang: str, query: str) -> None:
    title, summary = STORIES[lang]
    assert not parse_query(query).matches(Document(title, summary, ()))


def test_index_tokens_hold_the_folded_words() -> None:
    tokens = set(index_tokens(*GERMAN))
    assert {"gesprache", "aussenminister", "sicherheit", "bundesregierung"} <= tokens
    assert not any(ch in "äöüß" for token in tokens for ch in token)


async def test_the_full_text_index_finds_foreign_stories_without_accents(
    sqlite_db: Database,
) -> None:
    feed = await add_feed(sqlite_db, "Le Monde", "https://lemonde.example/rss")
    fr, de, es = await add_entries(sqlite_db, feed, [FRENCH, GERMAN, SPANISH])
    async with sqlite_db.session() as session:

        async def ids(query: str) -> set[int]:
            hits = await search_entries(session, parse_query(query), guild_ids=None)
            return {h.entry_id for h in hits}

        assert await ids("securite") == {fr}
        assert await ids("Außenminister") == {de}
        assert await ids("aussenminister") == {de}
        assert await ids("espana") == {es}
        assert await ids("otan") == {fr, es}
        assert await ids('"cumbre de la otan"') == {es}


@pytest.mark.parametrize("lang", ["fr", "de", "es"])
def test_date_extraction_never_fails_or_invents_a_day(lang: str) -> None:
    title, summary = STORIES[lang]
    mentions = extract_dates(f"{title}. {summary}", PUB)
    # Foreign phrasing is not understood: at most the year, never a made-up day or month.
    for mention in mentions:
        assert mention.precision == "year" and mention.start == date(2025, 1, 1), mention


@pytest.mark.parametrize(
    ("text", "year"),
    [
        ("Le 14 juillet 2025, défilé sur les Champs-Élysées.", 2025),
        ("Depuis 2019, la France investit.", 2019),
        ("en mayo de 2024 se firmó el acuerdo", 2024),
        ("im März 2024 unterzeichnet", 2024),
    ],
)
def test_a_foreign_date_gives_its_year_at_most(text: str, year: int) -> None:
    found = [(m.start, m.end, m.precision) for m in extract_dates(text, PUB)]
    assert found in ([], [(date(year, 1, 1), date(year, 12, 31), "year")])


@pytest.mark.parametrize(
    "text",
    [
        "Treffen am 8.7. in Berlin",
        "Reunión el martes 8/7",
        "Mardi 8 juillet à 14h00",
        "Sept ministres se réunissent à Paris.",
        "La cumbre de Mar del Plata, 9 de julio.",
        "Am 1. Mai demonstrierten Tausende.",
    ],
)
def test_foreign_day_and_month_words_are_not_misread_as_english(text: str) -> None:
    # "Sept" (seven), "Mar" (sea), "Mai" and "martes" look like English month/day names.
    assert extract_dates(text, PUB) == []
