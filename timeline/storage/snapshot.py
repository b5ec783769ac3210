"""Snapshot files: in-memory indexes saved as arrays, so a restart loads them instead of
rebuilding them from the database (the storyline indexes, the clustering indexes).

A snapshot is one ``.npz`` file of numpy arrays, no pickled objects (a damaged or planted file
cannot run code), written whole or not at all (a temporary file, flushed, then renamed over the
old one: a crash mid-write leaves the previous snapshot). What the arrays mean, and whether a
snapshot may be used, is for the caller to check: it is a cache of what the database holds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import numpy as np

from timeline.storage.engine import Database


def snapshot_file(setting: str, db: Database, suffix: str) -> Path | None:
    """Where a snapshot goes, from its setting: "auto" is beside a SQLite database file, its
    name and `suffix` (none for another database: each poller needs a file of its own), ""
    is none, anything else a path (``~`` expanded)."""
    if not setting:
        return None
    if setting == "auto":
        file = db.file
        return None if file is None else file.with_name(f"{file.name}-{suffix}")
    return Path(setting).expanduser()


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` to `path` as a whole or not at all (a temporary file, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            np.savez(out, allow_pickle=False, **cast(dict[str, Any], arrays))
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_arrays(path: Path) -> dict[str, Any]:
    """The arrays of a snapshot file (no pickled objects: a damaged file cannot run code)."""
    with path.open("rb") as file:
        data = np.load(file, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("not a snapshot (one array)")
        with data:
            return {name: data[name] for name in data.files}
