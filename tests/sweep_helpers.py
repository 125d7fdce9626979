"""Shared data and helpers of the sweep tests (not a test module)."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest

#: the repository's sources first on the path of every subprocess a test starts
SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}

#: a two-row sweep that runs in well under a second
TINY_TOML = """
repeats = 1
seed = 1
test_tasks = 50
[grid]
P = [20, 30]
[fixed]
D = 2
N = 4
lam = 1.0
"""

SMALL = dict(
    grid={"P": [100, 200], "N": [4, 8]},
    fixed={"D": 4, "lam": 1.0, "beta": 100.0, "solver": "amp"},
    repeats=2,
    seed=3,
    test_tasks=300,
)


def _values(store, keys=("contrast", "test_error", "relative_test_error", "n_iter", "status")):
    return {r["key"]: tuple(r[k] for k in keys) for r in store.rows()}


def _write(path, text):
    path.write_text(text)
    return path


def _snapshot(path: Path):
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


def _assert_same(va, vb, rel=1e-10):
    """Same rows; status and iterations equal; floats equal up to BLAS thread-count
    rounding (pool and Dask workers run torch with one thread)."""
    assert va.keys() == vb.keys()
    for k in va:
        for x, y in zip(va[k], vb[k]):
            if isinstance(x, float):
                assert y == pytest.approx(x, rel=rel, abs=1e-13)
            else:
                assert x == y


def _cli(*args):
    code = "import sys; from spinglass_icl.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "sweep", *args]


def _count(path: Path) -> int:
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0
