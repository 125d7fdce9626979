"""Resumable store of trained trials: one SQLite file (stdlib ``sqlite3``), one row per chunk.

A figure that trains many independent trials (:mod:`spinglass_icl.training`) trains them in
chunks; :func:`run_chunks` writes each chunk's per-trial numbers as soon as the chunk
finishes, so a run that is killed resumes at the first missing chunk, and a finished
chunk is never retrained.

Each chunk is keyed by the SHA-256 of the canonical JSON of

* ``spec``: everything that defines the numbers (the full training configuration, the
  seed, whatever the figure computes from the trained weights);
* ``trials``: the trial count of the whole run (``reproduce --trials K``);
* ``first_trial`` and ``n``: which trials the chunk holds;
* ``code``: :data:`CODE_VERSION` (the package version and
  :data:`spinglass_icl.training.TRAINING_VERSION`).

so results of different trial counts, seeds, configurations or code versions are kept
apart under their own keys and never mixed. Values are float arrays with one entry per
trial (``numpy.save`` bytes).

Tables: ``meta(key, value)`` (``app = spinglass-icl-trials``, ``schema = 1``; a file
without them raises :class:`ConfigError` and is never written to) and
``chunks(key, spec, first_trial, n, code, names, data, finished)``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, storage
from .errors import ParameterError, check_int

__all__ = ["CODE_VERSION", "TrialStore", "chunk_key", "run_chunks"]

APP = "spinglass-icl-trials"
SCHEMA = "1"


def _code_version() -> str:
    from .training import TRAINING_VERSION

    return f"{__version__}+training.{TRAINING_VERSION}"


#: the code-version tag every chunk key holds
CODE_VERSION: str = _code_version()

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    key TEXT PRIMARY KEY, spec TEXT NOT NULL, trials INTEGER NOT NULL,
    first_trial INTEGER NOT NULL, n INTEGER NOT NULL, code TEXT NOT NULL,
    data BLOB NOT NULL, finished REAL NOT NULL);
"""


_WHAT = "trial store"


def _canonical(obj: Any) -> str:
    # other objects as their text, NaN allowed: the keys of every earlier trial store
    return storage.canonical_json(obj, default=str, allow_nan=True)


def chunk_key(spec: dict, trials: int, first_trial: int, n: int, code: str = CODE_VERSION) -> str:
    """SHA-256 (hex) of the chunk's identity (see the module docstring)."""
    ident = {"spec": spec, "trials": trials, "first_trial": first_trial, "n": n, "code": code}
    return storage.sha256_hex(_canonical(ident))


class TrialStore:
    """A trial store at ``path`` (created if missing; an existing file must be one).

    Recognition, creation, connections, value encoding and failed writes are those of
    every store of the package (:mod:`spinglass_icl.storage`): a file that is not a
    trial store (corrupt, foreign, a named pipe, another schema) raises
    :class:`~spinglass_icl.errors.ConfigError` and is never written to; a store on a
    read-only file system can still be read.

    Parameters
    ----------
    path : str or Path
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            storage.create_store(
                self.path, lambda new: storage.init_schema(new, _SCHEMA_SQL, APP, SCHEMA), _WHAT
            )
        storage.validate_store(self.path, app=APP, schema=SCHEMA, tables={"chunks"}, what=_WHAT)

    def _read(self) -> sqlite3.Connection:
        return storage.connect_readonly(self.path, _WHAT, "SELECT COUNT(*) FROM chunks")

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The values of chunk ``key``, or None when it is not stored."""
        con = self._read()
        try:
            row = con.execute("SELECT data FROM chunks WHERE key = ?", (key,)).fetchone()
        finally:
            con.close()
        return None if row is None else storage.unpack_arrays(row[0])

    def put(
        self, key: str, spec: dict, trials: int, first_trial: int, n: int, values: dict
    ) -> None:
        """Store one chunk (one transaction; a chunk already stored is kept)."""
        for k, v in values.items():
            if np.asarray(v).shape[:1] != (n,):
                raise ParameterError(f"values[{k!r}] must have {n} entries (one per trial)")
        con = storage.connect(self.path, _WHAT)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute(
                "INSERT OR IGNORE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, _canonical(spec), trials, first_trial, n, CODE_VERSION,
                 storage.pack_arrays(values), time.time()),
            )  # fmt: skip
            con.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # full disk, quota, read-only, I/O
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise storage.write_error(_WHAT, self.path, exc) from None
        finally:
            con.close()

    def __len__(self) -> int:
        con = self._read()
        try:
            return int(con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        finally:
            con.close()


def run_chunks(
    store: TrialStore | None,
    spec: dict,
    trials: int,
    chunks: Iterable[tuple[int, int]],
    compute: Callable[[int, int], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Per-trial values of all ``chunks`` ``(first_trial, n)``, concatenated in order.

    A chunk found in ``store`` (same ``spec``, ``trials`` and code version) is read back;
    any other is computed by ``compute(first_trial, n)`` (a dict of arrays with ``n``
    leading entries) and stored before the next one starts. ``store=None`` computes all.
    """
    trials = check_int("trials", trials)
    parts: list[dict[str, np.ndarray]] = []
    for first, n in chunks:
        key = chunk_key(spec, trials, first, n)
        got = store.get(key) if store is not None else None
        if got is None:
            got = {k: np.asarray(v) for k, v in compute(first, n).items()}
            if store is not None:
                store.put(key, spec, trials, first, n, got)
        parts.append(got)
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
