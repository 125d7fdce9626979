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

import hashlib
import io
import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import ConfigError, ParameterError, check_int

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


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def chunk_key(spec: dict, trials: int, first_trial: int, n: int, code: str = CODE_VERSION) -> str:
    """SHA-256 (hex) of the chunk's identity (see the module docstring)."""
    ident = {"spec": spec, "trials": trials, "first_trial": first_trial, "n": n, "code": code}
    return hashlib.sha256(_canonical(ident).encode()).hexdigest()


def _pack(values: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in values.items()})
    return buf.getvalue()


def _unpack(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class TrialStore:
    """A trial store at ``path`` (created if missing; an existing file must be one).

    Parameters
    ----------
    path : str or Path
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists():
            self._check()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._connect()
        try:
            with con:
                con.executescript(_SCHEMA_SQL)
                con.execute("INSERT OR IGNORE INTO meta VALUES ('app', ?)", (APP,))
                con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA,))
        except sqlite3.OperationalError as exc:  # full disk, quota, read-only, I/O
            from .safeio import store_write_error

            raise store_write_error("trial store", self.path, exc) from None
        finally:
            con.close()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def _check(self) -> None:
        from .safeio import check_input_file

        check_input_file(self.path, "trial store", max_bytes=None)  # a FIFO or device
        try:
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                meta = dict(con.execute("SELECT key, value FROM meta"))
            finally:
                con.close()
        except sqlite3.Error:
            meta = {}
        if meta.get("app") != APP:
            raise ConfigError(
                f"{str(self.path)!r} is not a trial store; refusing to touch it -- "
                "pass a new file name or remove it"
            )
        if meta.get("schema") != SCHEMA:
            raise ConfigError(
                f"trial store {str(self.path)!r} has schema {meta.get('schema')!r}; "
                f"this version reads schema {SCHEMA!r}"
            )

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The values of chunk ``key``, or None when it is not stored."""
        con = self._connect()
        try:
            row = con.execute("SELECT data FROM chunks WHERE key = ?", (key,)).fetchone()
        finally:
            con.close()
        return None if row is None else _unpack(row[0])

    def put(
        self, key: str, spec: dict, trials: int, first_trial: int, n: int, values: dict
    ) -> None:
        """Store one chunk (one transaction; a chunk already stored is kept)."""
        for k, v in values.items():
            if np.asarray(v).shape[:1] != (n,):
                raise ParameterError(f"values[{k!r}] must have {n} entries (one per trial)")
        con = self._connect()
        try:
            with con:
                con.execute(
                    "INSERT OR IGNORE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, _canonical(spec), trials, first_trial, n, CODE_VERSION,
                     _pack(values), time.time()),
                )  # fmt: skip
        except sqlite3.OperationalError as exc:  # full disk, quota, read-only, I/O
            from .safeio import store_write_error

            raise store_write_error("trial store", self.path, exc) from None
        finally:
            con.close()

    def __len__(self) -> int:
        con = self._connect()
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
