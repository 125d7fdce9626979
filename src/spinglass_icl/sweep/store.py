"""Results store of a sweep: one SQLite file (stdlib ``sqlite3``, WAL mode).

Tables
------
``meta(key, value)``
    ``app = spinglass-icl-sweep`` and ``schema = 1``: how a store is recognized. A file
    without them (random bytes, someone else's database) raises :class:`ConfigError`
    and is never written to.
``specs(hash, spec, created)``
    Every spec run against the store (canonical JSON).
``results(key, ...)``
    One row per (point, repeat), keyed by the hash of its full configuration
    (:attr:`Task.key`), written in its own transaction as soon as it is computed.
    Parameters, seeds, observables (NULL where the solver did not converge), status,
    iterations, seconds and optional ``m``/``v`` blobs (``numpy.save`` bytes).

    ``tasks`` (the pool size K; NULL: a fresh task per prompt), ``pool_seed``,
    ``test_error_idg``, ``test_error_idg_stderr`` and ``gtask`` (NULL without a pool)
    came with task pools. A store made before them is migrated when it is opened for
    writing: the columns are added (``ALTER TABLE ... ADD COLUMN``, nothing else
    changes), and its rows read back with ``tasks = None`` -- the K of every row it can
    hold -- so a sweep resumes them. Opened read-only, such a store is read as it is.

Writes use ``INSERT OR IGNORE`` with a 60 s busy timeout, so several processes may
write one store at once; the executors of :mod:`.executors` write only from the parent.
Recognition, creation, connections, blob encoding and failed writes are those of every
store of the package (:mod:`spinglass_icl.storage`, shared with the trial store).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, storage
from ..errors import ConfigError, OutputError
from ..safeio import atomic_path, is_sqlite
from ..storage import array_to_blob, blob_to_array
from .spec import PARAMS, SweepSpec

__all__ = ["Store", "open_store", "create_or_open_store", "RESULT_COLUMNS", "VALUE_COLUMNS"]

APP = "spinglass-icl-sweep"
SCHEMA = "1"
_WHAT = "sweep store"

#: observable / bookkeeping columns exported per row
VALUE_COLUMNS: tuple[str, ...] = (
    "contrast",
    "test_error",
    "test_error_stderr",
    "relative_test_error",
    "test_error_idg",
    "test_error_idg_stderr",
    "gtask",
    "converged",
    "status",
    "n_iter",
    "seconds",
)
RESULT_COLUMNS: tuple[str, ...] = (
    "key",
    *PARAMS,
    "repeat",
    "seed",
    "test_seed",
    "pool_seed",
    *VALUE_COLUMNS,
    "m",
    "v",
    "finished",
)

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS specs (
    hash TEXT PRIMARY KEY, spec TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    D INTEGER NOT NULL, N INTEGER NOT NULL, P INTEGER NOT NULL,
    lam REAL NOT NULL, beta REAL NOT NULL, convention TEXT NOT NULL,
    solver TEXT NOT NULL, noise REAL NOT NULL,
    repeat INTEGER NOT NULL, seed INTEGER NOT NULL, test_seed INTEGER NOT NULL,
    contrast REAL, test_error REAL, test_error_stderr REAL, relative_test_error REAL,
    converged INTEGER NOT NULL, status TEXT NOT NULL, n_iter INTEGER NOT NULL,
    seconds REAL NOT NULL, m BLOB, v BLOB, finished REAL NOT NULL,
    tasks INTEGER, pool_seed INTEGER,
    test_error_idg REAL, test_error_idg_stderr REAL, gtask REAL);
"""
#: columns added after the first stores were written (NULL in their rows: no pool)
_ADDED_COLUMNS: dict[str, str] = {
    "tasks": "INTEGER",
    "pool_seed": "INTEGER",
    "test_error_idg": "REAL",
    "test_error_idg_stderr": "REAL",
    "gtask": "REAL",
}


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _validate_existing(path: Path) -> None:
    """Raise ConfigError unless ``path`` is a spinglass-icl sweep store; never writes."""
    storage.validate_store(path, app=APP, schema=SCHEMA, tables={"specs", "results"}, what=_WHAT)


class Store:
    """A sweep results store (use :func:`open_store` or :func:`create_or_open_store`).

    Parameters
    ----------
    path
        The SQLite file; must already be a valid store.
    """

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = bool(readonly)
        _validate_existing(self.path)
        self._con = self._connect_ro() if self.readonly else self._connect()
        if not self.readonly:
            self._migrate()
        self._columns = self._table_columns()

    def _migrate(self) -> None:
        """Add the columns of :data:`_ADDED_COLUMNS` that a store made before them lacks
        (NULL in its rows), all in one transaction: another process opening the store
        at the same time waits, then finds them."""
        if set(_ADDED_COLUMNS) <= self._table_columns():
            return
        try:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                have = self._table_columns()
                for name, kind in _ADDED_COLUMNS.items():
                    if name not in have:
                        self._con.execute(f"ALTER TABLE results ADD COLUMN {name} {kind}")
                self._con.execute("COMMIT")
            except BaseException:
                if self._con.in_transaction:
                    self._con.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            self._con.close()
            raise storage.write_error(_WHAT, self.path, exc) from None

    def _table_columns(self) -> set[str]:
        return {r[1] for r in self._con.execute("PRAGMA table_info(results)")}

    def _connect(self) -> sqlite3.Connection:
        return storage.connect(self.path, _WHAT)

    def _connect_ro(self) -> sqlite3.Connection:
        """A connection that never writes (status, export): works on read-only files and
        folders, leaves no ``-wal``/``-shm`` (:func:`~spinglass_icl.storage.connect_readonly`)."""
        return storage.connect_readonly(self.path, _WHAT, "SELECT COUNT(*) FROM results")

    # --------------------------------------------------------------- basics
    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, rows={len(self)})"

    def __len__(self) -> int:
        return int(self._con.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    # ------------------------------------------------------------- specs
    def add_spec(self, spec: SweepSpec) -> str:
        """Record ``spec`` (idempotent); returns its hash."""
        if self.readonly:
            raise ConfigError(f"store {str(self.path)!r} was opened read-only")
        try:
            self._con.execute(
                "INSERT OR IGNORE INTO specs (hash, spec, created) VALUES (?, ?, ?)",
                (spec.hash, spec.to_json(), time.time()),
            )
            # the package version that last ran a sweep into the store (meta ``version``)
            self._con.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (__version__,))
        except sqlite3.OperationalError as exc:
            raise storage.write_error(_WHAT, self.path, exc) from None
        return spec.hash

    def meta(self) -> dict[str, str]:
        """The store's ``meta`` table: ``app``, ``schema``, ``created_version`` (package
        version that made the file) and ``version`` (the last one that ran a sweep)."""
        return dict(self._con.execute("SELECT key, value FROM meta").fetchall())

    def specs(self) -> list[SweepSpec]:
        """Every spec run against this store, oldest first."""
        rows = self._con.execute("SELECT spec FROM specs ORDER BY created, hash").fetchall()
        out = []
        for r in rows:
            d = json.loads(r[0])
            d.setdefault("test_error", "mc")  # stored before the option: Monte Carlo
            out.append(SweepSpec.from_dict(d))
        return out

    def _resolve_spec(self, spec: SweepSpec | str | None) -> SweepSpec:
        if isinstance(spec, SweepSpec):
            return spec
        specs = self.specs()
        if not specs:
            raise ConfigError(f"store {str(self.path)!r} holds no sweep spec yet")
        if spec is None:
            return specs[-1]
        for s in specs:
            if s.hash.startswith(str(spec)):
                return s
        raise ConfigError(f"store {str(self.path)!r} has no spec with hash {spec!r}")

    # ------------------------------------------------------------- rows
    def done_keys(self, keys: Iterable[str] | None = None) -> set[str]:
        """Keys already in the store (restricted to ``keys`` if given)."""
        have = {r[0] for r in self._con.execute("SELECT key FROM results")}
        return have if keys is None else have & set(keys)

    def write(self, rows: Sequence[dict]) -> int:
        """Insert rows in one transaction (existing keys are left alone); returns # new."""
        if self.readonly:
            raise ConfigError(f"store {str(self.path)!r} was opened read-only")
        cols = [c for c in RESULT_COLUMNS]
        sql = (
            f"INSERT OR IGNORE INTO results ({', '.join(cols)}) "
            f"VALUES ({', '.join('?' for _ in cols)})"
        )
        values = []
        for r in rows:
            row = dict(r)
            row["m"] = array_to_blob(row.get("m"))
            row["v"] = array_to_blob(row.get("v"))
            row.setdefault("finished", time.time())
            row["converged"] = int(bool(row["converged"]))
            values.append(tuple(_finite_or_none(row.get(c)) for c in cols))
        before = self._con.total_changes
        try:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                self._con.executemany(sql, values)
                self._con.execute("COMMIT")
            except BaseException:
                if self._con.in_transaction:  # a failed COMMIT may have ended it already
                    self._con.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:  # full disk, quota, read-only, I/O
            raise storage.write_error(_WHAT, self.path, exc) from None
        return self._con.total_changes - before

    def rows(self, spec: SweepSpec | str | None = None, arrays: bool = False) -> list[dict]:
        """The rows of ``spec`` (default: the latest spec) as dicts, in task order."""
        spec = self._resolve_spec(spec)
        tasks = spec.tasks()
        cols = [c for c in RESULT_COLUMNS if arrays or c not in ("m", "v")]
        # a store from before the task pools (opened read-only): those columns are NULL
        sel = [c if c in self._columns else "NULL" for c in cols]
        cur = self._con.execute(f"SELECT {', '.join(sel)} FROM results")
        by_key = {r[0]: dict(zip(cols, r)) for r in cur}
        out = []
        for t in tasks:
            r = by_key.get(t.key)
            if r is None:
                continue
            r["converged"] = bool(r["converged"])
            if arrays:
                r["m"], r["v"] = blob_to_array(r["m"]), blob_to_array(r["v"])
            out.append(r)
        return out

    def status(self) -> list[dict]:
        """Progress of every spec, one dict each: ``done`` rows of ``total``, and the
        done rows split by outcome: ``converged``, ``not_converged`` (the solver ran
        and stopped at ``max_iter`` or ``diverged``: a physics result, kept with NULL
        observables) and ``errored`` (a row whose status is not a solver outcome, e.g.
        ``error``: the point itself failed). ``done == converged + not_converged +
        errored``."""
        from ..solvers.result import STATUSES

        got = {
            k: (bool(c), st)
            for k, c, st in self._con.execute("SELECT key, converged, status FROM results")
        }
        out = []
        for s in self.specs():
            keys = [t.key for t in s.tasks()]
            done = [got[k] for k in keys if k in got]
            errored = sum(1 for _, st in done if st not in STATUSES)
            converged = sum(1 for c, st in done if c and st in STATUSES)
            out.append(
                {
                    "spec": s.hash[:12],
                    "grid": {k: len(v) for k, v in s.grid.items()},
                    "repeats": s.repeats,
                    "nested_p": s.nested_p,
                    "done": len(done),
                    "total": len(keys),
                    "converged": converged,
                    "not_converged": len(done) - converged - errored,
                    "errored": errored,
                }
            )
        return out

    # ------------------------------------------------------------- export
    def to_xarray(self, spec: SweepSpec | str | None = None):
        """The rows of ``spec`` as an :class:`xarray.Dataset`.

        Dimensions are the grid parameters (values sorted) and ``repeat``. Data variables:
        ``contrast``, ``test_error``, ``test_error_stderr``, ``relative_test_error``
        (NaN where missing or not converged), ``converged`` (bool; False where missing),
        ``status`` (str; ``"missing"`` where not computed yet), ``n_iter`` (-1 missing),
        ``seconds`` (NaN missing), ``seed``. ``attrs`` hold the spec (JSON), the fixed
        parameters, the convention(s) and the store path.

        Task pools: a ``tasks`` grid is a float64 coordinate with ``inf`` for None (a
        fresh task per prompt: the K -> infinity limit); a fixed ``tasks`` is the attr
        ``tasks`` (an integer, or ``"none"``). Where some K is not None the dataset
        also has ``test_error_idg``, ``test_error_idg_stderr`` and ``gtask`` (NaN where
        missing, not converged, or at ``tasks = inf``, which has no pool to test on);
        without a pool they are not in the dataset at all.
        """
        import xarray as xr

        spec = self._resolve_spec(spec)
        dims = [*spec.grid, "repeat"]
        coords = {k: sorted(v, key=_sort_key) for k, v in spec.grid.items()}
        coords["repeat"] = list(range(spec.repeats))
        shape = tuple(len(coords[d]) for d in dims)
        index = {d: {v: i for i, v in enumerate(coords[d])} for d in dims}
        if "tasks" in coords:  # None (no pool) is the K -> infinity limit
            coords["tasks"] = [math.inf if K is None else float(K) for K in coords["tasks"]]
        floats = ("contrast", "test_error", "test_error_stderr", "relative_test_error", "seconds")
        pools = [K for K in spec.pool_sizes if K is not None]
        if pools:
            floats += ("test_error_idg", "test_error_idg_stderr", "gtask")
        data: dict[str, np.ndarray] = {k: np.full(shape, np.nan) for k in floats}
        data["converged"] = np.zeros(shape, dtype=bool)
        data["status"] = np.full(shape, "missing", dtype=object)
        data["n_iter"] = np.full(shape, -1, dtype=np.int64)
        data["seed"] = np.full(shape, -1, dtype=np.int64)
        for r in self.rows(spec):
            idx = tuple(index[d][r[d]] for d in dims)
            for k in floats:
                data[k][idx] = np.nan if r[k] is None else r[k]
            data["converged"][idx] = r["converged"]
            data["status"][idx] = r["status"]
            data["n_iter"][idx] = r["n_iter"]
            data["seed"][idx] = r["seed"]
        data["status"] = data["status"].astype(str)
        conventions = (
            spec.grid["convention"] if "convention" in spec.grid else [spec.fixed["convention"]]
        )
        attrs = {
            "spec": spec.to_json(),
            "spec_hash": spec.hash,
            "conventions": ",".join(conventions),
            "spinglass_icl_version": __version__,
            "store_version": self.meta().get("version", ""),
            "store": str(self.path),
            "contrast_kind": spec.contrast_kind,
            "test_tasks": spec.test_tasks,
            "nested_p": int(spec.nested_p),
            "description": (
                "spinglass-icl sweep (arXiv:2408.02288); NaN = missing or not converged"
                + ("; test_error_idg and gtask NaN at tasks = inf (no pool)" if pools else "")
            ),
        }
        for k, v in spec.fixed.items():
            attrs[k] = "none" if v is None else v  # (NetCDF attributes have no null)
        ds = xr.Dataset({k: (dims, v) for k, v in data.items()}, coords=coords, attrs=attrs)
        return ds

    def to_netcdf(self, path: str | Path, spec: SweepSpec | str | None = None) -> Path:
        """Write :meth:`to_xarray` to a NetCDF-4 file (netCDF4 or h5netcdf engine)."""
        import importlib.util

        path = self._export_target(path)
        engines = [("netcdf4", "netCDF4"), ("h5netcdf", "h5py")]
        engine = next((e for e, mod in engines if importlib.util.find_spec(mod)), None)
        if engine is None:
            raise ConfigError("NetCDF export needs netCDF4 or h5py (pip install netCDF4)")
        ds = self.to_xarray(spec)
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine=engine)
        return path

    def _export_target(self, path: str | Path) -> Path:
        """``path`` if an export may be written there: never this store or any SQLite
        file (checked by magic bytes, whatever the name)."""
        path = Path(path)
        if path.exists() and (is_sqlite(path) or os.path.samefile(path, self.path)):
            raise OutputError(
                f"out {str(path)!r} is an SQLite database (a sweep store?); an export never "
                "overwrites one -- pass another file name"
            )
        return path

    def to_csv(self, path: str | Path, spec: SweepSpec | str | None = None) -> Path:
        """Write the rows (one per point and repeat, task order) as CSV; missing and
        non-converged observables are empty cells, never ``nan``. The ``tasks`` cell of a
        row without a pool is ``none`` (as in a spec); its ``pool_seed``,
        ``test_error_idg``, ``test_error_idg_stderr`` and ``gtask`` cells are empty."""
        import csv

        path = self._export_target(path)
        cols = [c for c in RESULT_COLUMNS if c not in ("m", "v")]
        rows = self.rows(spec)
        with atomic_path(path) as tmp:
            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(cols)
                for r in rows:
                    cells = ["" if r[c] is None else r[c] for c in cols]
                    if r["tasks"] is None:  # a fresh task per prompt, not a missing value
                        cells[cols.index("tasks")] = "none"
                    w.writerow(cells)
        return path


def _sort_key(v: Any) -> tuple:
    """Grid values in order, the pool size None (no pool: K -> infinity) last."""
    return (1, 0) if v is None else (0, v)


def open_store(path: str | Path, readonly: bool = False) -> Store:
    """Open an existing store; :class:`ConfigError` if it is missing, corrupt or foreign
    (or, unless ``readonly``, cannot be written)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"store {str(path)!r} does not exist")
    return Store(path, readonly=readonly)


def create_or_open_store(path: str | Path) -> Store:
    """Open ``path`` if it is a store, create a new store if it does not exist.

    An existing file that is not a store raises :class:`ConfigError` and is not touched.
    A new store appears complete or not at all
    (:func:`~spinglass_icl.storage.create_store`).
    """
    path = Path(path)
    storage.create_store(path, lambda new: _init_store(new), _WHAT)
    return Store(path)


def _init_store(path: Path) -> None:
    """Write an empty store (schema and meta) to the new file ``path``."""
    storage.init_schema(path, _SCHEMA_SQL, APP, SCHEMA)
