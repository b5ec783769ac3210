"""Full-text index for searching entries with the watch query language.

SQLite: an FTS5 table `entries_fts` (rowid = entries.id, detail=none, ascii tokenizer so the
pre-normalised tokens written by timeline.domain.query are stored exactly). PostgreSQL: a table
`entries_fts` (entry_id, tsvector) with a GIN index. On both, triggers queue the id of every
inserted or edited entry in `entries_fts_pending`; timeline.domain.query.sync_search_index tokenises
queued entries with the same Python normaliser the matcher uses. Existing entries are queued.

Note for later SQLite revisions: a batch migration that recreates `entries` drops its
triggers; such a revision must create the `entries_fts_*` triggers again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UP = [
    "CREATE VIRTUAL TABLE entries_fts USING fts5("
    "tokens, detail=none, columnsize=0, tokenize='ascii')",
    "CREATE TABLE entries_fts_pending (entry_id INTEGER NOT NULL PRIMARY KEY)",
    "CREATE TRIGGER entries_fts_ai AFTER INSERT ON entries BEGIN "
    "INSERT OR IGNORE INTO entries_fts_pending(entry_id) VALUES (new.id); END",
    "CREATE TRIGGER entries_fts_au AFTER UPDATE OF title, summary ON entries BEGIN "
    "INSERT OR IGNORE INTO entries_fts_pending(entry_id) VALUES (new.id); END",
    # Deleting is plain SQL, so it happens at once: no stale row is ever a candidate.
    "CREATE TRIGGER entries_fts_ad AFTER DELETE ON entries BEGIN "
    "DELETE FROM entries_fts WHERE rowid = old.id; "
    "DELETE FROM entries_fts_pending WHERE entry_id = old.id; END",
    "INSERT INTO entries_fts_pending(entry_id) SELECT id FROM entries",
]

SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS entries_fts_ad",
    "DROP TRIGGER IF EXISTS entries_fts_au",
    "DROP TRIGGER IF EXISTS entries_fts_ai",
    "DROP TABLE IF EXISTS entries_fts_pending",
    "DROP TABLE IF EXISTS entries_fts",
]

POSTGRES_UP = [
    "CREATE TABLE entries_fts ("
    "entry_id INTEGER NOT NULL PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE, "
    "tsv tsvector NOT NULL)",
    "CREATE INDEX entries_fts_tsv_idx ON entries_fts USING gin (tsv)",
    "CREATE TABLE entries_fts_pending ("
    "entry_id INTEGER NOT NULL PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE)",
    "CREATE FUNCTION entries_fts_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN INSERT INTO entries_fts_pending(entry_id) VALUES (NEW.id) ON CONFLICT DO NOTHING; "
    "RETURN NULL; END $$",
    "CREATE TRIGGER entries_fts_enqueue AFTER INSERT OR UPDATE OF title, summary ON entries "
    "FOR EACH ROW EXECUTE FUNCTION entries_fts_enqueue()",
    "INSERT INTO entries_fts_pending(entry_id) SELECT id FROM entries",
]

POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS entries_fts_enqueue ON entries",
    "DROP FUNCTION IF EXISTS entries_fts_enqueue()",
    "DROP TABLE IF EXISTS entries_fts_pending",
    "DROP TABLE IF EXISTS entries_fts",
]


def _statements(up: bool) -> list[str]:
    name = op.get_bind().dialect.name
    if name == "sqlite":
        return SQLITE_UP if up else SQLITE_DOWN
    if name == "postgresql":
        return POSTGRES_UP if up else POSTGRES_DOWN
    raise NotImplementedError(f"full-text search is not available on {name}")


def upgrade() -> None:
    for statement in _statements(up=True):
        op.execute(statement)


def downgrade() -> None:
    for statement in _statements(up=False):
        op.execute(statement)
