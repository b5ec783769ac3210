"""Fixtures of the storage tests: the query tests' migrated SQLite file and entry writers."""

from tests.domain.query.conftest import sqlite_db

__all__ = ["sqlite_db"]
