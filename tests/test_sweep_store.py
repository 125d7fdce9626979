"""The sweep store: resume skips finished rows, bad stores are refused, exports,
concurrent writers."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess

import numpy as np
import pytest

from spinglass_icl.errors import ConfigError
from spinglass_icl.sweep import SweepSpec, open_store, run_sweep
from sweep_helpers import SMALL, _assert_same, _cli, _snapshot, _values

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------- store
def test_rerun_skips_finished_rows(tmp_path):
    spec = SweepSpec(**SMALL)
    path = tmp_path / "s.sqlite"
    store = run_sweep(spec, path, executor="serial", progress=False)
    first = {r["key"]: r["finished"] for r in store.rows()}
    assert len(first) == spec.n_tasks
    store.close()
    store = run_sweep(spec, path, executor="serial", progress=False)
    assert {r["key"]: r["finished"] for r in store.rows()} == first
    assert store.status() == [
        {
            "spec": spec.hash[:12],
            "grid": {"P": 2, "N": 2},
            "repeats": 2,
            "nested_p": False,
            "done": 8,
            "total": 8,
            "converged": store.status()[0]["converged"],
            "not_converged": 8 - store.status()[0]["converged"],
            "errored": 0,
        }
    ]


@pytest.mark.parametrize("kind", ["random", "foreign", "empty"])
def test_corrupt_or_foreign_store_is_refused_and_untouched(tmp_path, kind):
    path = tmp_path / "store.sqlite"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE results (a INTEGER, b TEXT)")
        con.execute("INSERT INTO results VALUES (1, 'x')")
        con.commit()
        con.close()
    before = _snapshot(path)
    with pytest.raises(ConfigError, match="not a (sweep store|spinglass-icl sweep store)"):
        open_store(path)
    with pytest.raises(ConfigError):
        run_sweep(SweepSpec(**SMALL), path, executor="serial", progress=False)
    assert _snapshot(path) == before


def test_open_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        open_store(tmp_path / "nothing.sqlite")


def test_export_round_trip(tmp_path):
    import xarray as xr

    spec = SweepSpec(**{**SMALL, "store_arrays": True})
    store = run_sweep(spec, tmp_path / "s.sqlite", executor="serial", progress=False)
    ds = store.to_xarray()
    assert ds.contrast.dims == ("P", "N", "repeat")
    assert list(ds.P.values) == [100, 200] and list(ds.N.values) == [4, 8]
    assert ds.attrs["conventions"] == "authors"
    rows = store.rows(arrays=True)
    for r in rows:
        sel = ds.sel(P=r["P"], N=r["N"], repeat=r["repeat"])
        assert str(sel.status.values) == r["status"]
        if r["contrast"] is None:
            assert np.isnan(sel.contrast.values)
        else:
            assert float(sel.contrast) == r["contrast"]
        assert r["m"].shape == (25,) and r["v"].shape == (25,)
    nc = store.to_netcdf(tmp_path / "s.nc")
    back = xr.open_dataset(nc)
    xr.testing.assert_identical(back.load(), ds)
    back.close()
    path = store.to_csv(tmp_path / "s.csv")
    with open(path) as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == spec.n_tasks
    assert "nan" not in path.read_text().lower()
    by_key = {r["key"]: r for r in rows}
    for t in table:
        r = by_key[t["key"]]
        if r["contrast"] is None:
            assert t["contrast"] == ""
        else:
            assert float(t["contrast"]) == r["contrast"]  # repr round-trips exactly
        assert int(t["P"]) == r["P"] and t["status"] == r["status"]


# ------------------------------------------------------------ concurrent writers
CONCURRENT_SPEC = """
repeats = 3
seed = 4
[grid]
P = [40, 60, 80, 100]
N = [4, 8]
[fixed]
D = 4
lam = 1.0
"""


def test_concurrent_writers_to_one_store(tmp_path):
    """Three processes run the same sweep into one store at once (plus one more spec):
    every row is there exactly once, equal to a run alone; nothing is lost or doubled."""
    spec_path = tmp_path / "c.toml"
    spec_path.write_text(CONCURRENT_SPEC)
    other_path = tmp_path / "o.toml"
    other_path.write_text(CONCURRENT_SPEC.replace("seed = 4", "seed = 5"))
    path = tmp_path / "shared.sqlite"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = ["--store", str(path), "--executor", "serial", "--threads", "1", "--no-progress"]
    base += ["--max-batch", "1"]  # many small transactions: more chances to collide
    procs = [
        subprocess.Popen(
            _cli("run", str(p), *base), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for p in (spec_path, spec_path, spec_path, other_path)
    ]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()
    spec = SweepSpec.from_toml(spec_path)
    other = SweepSpec.from_toml(other_path)
    con = sqlite3.connect(path)
    keys = [r[0] for r in con.execute("SELECT key FROM results")]
    con.close()
    assert len(keys) == len(set(keys)) == spec.n_tasks + other.n_tasks
    alone = run_sweep(spec, tmp_path / "alone.sqlite", executor="serial", progress=False)
    with open_store(path) as st:
        shared = {r["key"]: r for r in st.rows(spec)}
        assert {s["spec"] for s in st.status()} == {spec.hash[:12], other.hash[:12]}
    cols = ("contrast", "test_error", "relative_test_error", "n_iter", "status")
    # alone in batches of the default size: equal up to batching's rounding
    _assert_same(_values(alone), {k: tuple(r[c] for c in cols) for k, r in shared.items()})
    alone.close()


def test_status_separates_not_converged_from_errored(tmp_path, capsys):
    """Done rows split into converged, not converged (max_iter / diverged: a result) and
    errored (a status that is no solver outcome); the CLI table says so."""
    from spinglass_icl.cli import main

    spec = SweepSpec(**SMALL)
    path = tmp_path / "s.sqlite"
    run_sweep(spec, path, executor="serial", progress=False).close()
    keys = [t.key for t in spec.tasks()]
    con = sqlite3.connect(path)
    con.execute("UPDATE results SET converged = 1, status = 'converged'")
    con.execute("UPDATE results SET converged = 0, status = 'max_iter' WHERE key = ?", keys[:1])
    con.execute("UPDATE results SET converged = 0, status = 'diverged' WHERE key = ?", keys[1:2])
    con.execute("UPDATE results SET converged = 0, status = 'error' WHERE key = ?", keys[2:3])
    con.execute("DELETE FROM results WHERE key = ?", keys[3:4])
    con.commit()
    con.close()
    with open_store(path, readonly=True) as st:
        s = st.status()[0]
    assert (s["done"], s["total"]) == (7, 8)
    assert (s["converged"], s["not_converged"], s["errored"]) == (4, 2, 1)
    assert "failed" not in s
    assert main(["sweep", "status", "--store", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "spec", "grid", "repeats", "done", "total", "converged", "not", "conv.", "errored"
    ]  # fmt: skip
    assert out[1].split()[-5:] == ["7", "8", "4", "2", "1"]
    assert out[2].startswith("done = converged + not conv.")


# ------------------------------------------------------------------- task pools
#: the results table of every store written before task pools (schema 1, first form)
_OLD_RESULTS = """
CREATE TABLE results (
    key TEXT PRIMARY KEY,
    D INTEGER NOT NULL, N INTEGER NOT NULL, P INTEGER NOT NULL,
    lam REAL NOT NULL, beta REAL NOT NULL, convention TEXT NOT NULL,
    solver TEXT NOT NULL, noise REAL NOT NULL,
    repeat INTEGER NOT NULL, seed INTEGER NOT NULL, test_seed INTEGER NOT NULL,
    contrast REAL, test_error REAL, test_error_stderr REAL, relative_test_error REAL,
    converged INTEGER NOT NULL, status TEXT NOT NULL, n_iter INTEGER NOT NULL,
    seconds REAL NOT NULL, m BLOB, v BLOB, finished REAL NOT NULL);
"""
_OLD_COLUMNS = (
    "key, D, N, P, lam, beta, convention, solver, noise, repeat, seed, test_seed, contrast, "
    "test_error, test_error_stderr, relative_test_error, converged, status, n_iter, seconds, "
    "m, v, finished"
)


def _old_store(tmp_path, spec):
    """A store as the package wrote it before task pools: the spec's rows computed, then
    copied, with the old columns only, into a file of the old schema."""
    new = run_sweep(spec, tmp_path / "new.sqlite", executor="serial", progress=False)
    new.close()
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE specs (hash TEXT PRIMARY KEY, spec TEXT NOT NULL, created REAL NOT NULL);"
        + _OLD_RESULTS
    )
    con.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [("app", "spinglass-icl-sweep"), ("schema", "1"), ("created_version", "0.1.0")],
    )
    con.execute(f"ATTACH DATABASE '{tmp_path / 'new.sqlite'}' AS new")
    con.execute("INSERT INTO specs SELECT * FROM new.specs")
    con.execute(f"INSERT INTO results ({_OLD_COLUMNS}) SELECT {_OLD_COLUMNS} FROM new.results")
    con.commit()
    con.execute("DETACH DATABASE new")
    con.close()
    return path


def _columns(path):
    con = sqlite3.connect(path)
    try:
        return [r[1] for r in con.execute("PRAGMA table_info(results)")]
    finally:
        con.close()


def test_a_store_from_before_task_pools_resumes_and_is_migrated(tmp_path):
    spec = SweepSpec(**{**SMALL, "repeats": 1})
    path = _old_store(tmp_path, spec)
    old_cols = _columns(path)
    assert "tasks" not in old_cols
    # read-only: read as it is (the new columns None), never changed
    before = _snapshot(path)
    with open_store(path, readonly=True) as ro:
        rows = ro.rows()
        assert len(rows) == spec.n_tasks
        assert all(r["tasks"] is None and r["test_error_idg"] is None for r in rows)
        assert all(r["pool_seed"] is None and r["gtask"] is None for r in rows)
        ro.to_xarray()
    assert _snapshot(path)[0] == before[0] and _columns(path) == old_cols
    # resumed: nothing is recomputed (the rows of K = None have the keys of before), and
    # the store gains the new columns, NULL in the old rows
    finished = {r["key"]: r["finished"] for r in rows}
    store = run_sweep(spec, path, executor="serial", progress=False)
    assert {r["key"]: r["finished"] for r in store.rows()} == finished
    assert _columns(path) == old_cols + [
        "tasks", "pool_seed", "test_error_idg", "test_error_idg_stderr", "gtask",
    ]  # fmt: skip
    assert store.meta()["schema"] == "1"
    # a sweep with pools then writes into it beside the old rows
    pool = SweepSpec(**{**SMALL, "repeats": 1, "grid": {"P": [100], "tasks": [3, None]},
                        "fixed": {**SMALL["fixed"], "N": 4}})  # fmt: skip
    store.close()
    store = run_sweep(pool, path, executor="serial", progress=False)
    rows = store.rows(pool)
    assert [r["tasks"] for r in rows] == [3, None]
    assert rows[1]["key"] in finished  # (P = 100, N = 4, no pool) was there already
    assert len(store) == spec.n_tasks + 1
    # opening again (another process, a second run) changes nothing
    store.close()
    snap = _snapshot(path)[0]
    open_store(path).close()
    assert _columns(path) == _columns(tmp_path / "new.sqlite")
    assert _snapshot(path)[0] == snap


def test_pool_rows_export_with_none_spelled_out(tmp_path):
    import xarray as xr

    spec = SweepSpec(
        grid={"tasks": [None, 2, 8]}, fixed={"D": 3, "N": 6, "P": 40, "lam": 0.01,
        "solver": "exact"}, repeats=2, seed=0,
    )  # fmt: skip
    store = run_sweep(spec, tmp_path / "s.sqlite", executor="serial", progress=False)
    ds = store.to_xarray()
    assert list(ds.tasks.values) == [2.0, 8.0, np.inf]  # None: the K -> infinity limit
    for r in store.rows():
        K = np.inf if r["tasks"] is None else r["tasks"]
        sel = ds.sel(tasks=K, repeat=r["repeat"])
        assert float(sel.test_error) == r["test_error"]
        if r["tasks"] is None:
            assert r["test_error_idg"] is None and r["gtask"] is None
            assert np.isnan(sel.test_error_idg) and np.isnan(sel.gtask)
        else:
            assert float(sel.test_error_idg) == r["test_error_idg"]
            assert r["gtask"] == r["test_error"] - r["test_error_idg"]
            assert float(sel.gtask) == r["gtask"]
    nc = store.to_netcdf(tmp_path / "s.nc")
    with xr.open_dataset(nc) as back:
        xr.testing.assert_identical(back.load(), ds)
    table = list(csv.DictReader(open(store.to_csv(tmp_path / "s.csv"))))
    assert [t["tasks"] for t in table] == ["none", "none", "2", "2", "8", "8"]
    for t in table:
        if t["tasks"] == "none":
            assert t["test_error_idg"] == t["gtask"] == t["pool_seed"] == ""
        else:
            gap = float(t["test_error"]) - float(t["test_error_idg"])
            assert float(t["gtask"]) == pytest.approx(gap, rel=1e-12)
            assert int(t["pool_seed"]) >= 0
    # without a pool the dataset has no e_IDG at all; a fixed K is an attribute
    plain = run_sweep(SweepSpec(**SMALL), tmp_path / "p.sqlite", executor="serial",
                      progress=False).to_xarray()  # fmt: skip
    assert "test_error_idg" not in plain and plain.attrs["tasks"] == "none"
    rest = {k: v for k, v in spec.fixed.items() if k != "N"}
    fixed = SweepSpec(grid={"N": [6]}, fixed={**rest, "tasks": 4}, seed=0)
    ds4 = run_sweep(fixed, tmp_path / "s.sqlite", executor="serial", progress=False).to_xarray()
    assert ds4.attrs["tasks"] == 4 and "gtask" in ds4


def test_sweep_run_tasks_flag_makes_a_grid_over_k(tmp_path):
    """``sweep run --tasks 2 none`` replaces the spec's K by a grid; a bad K is one line."""
    from sweep_helpers import ENV, TINY_TOML

    spec = tmp_path / "t.toml"
    spec.write_text(TINY_TOML)
    store = tmp_path / "s.sqlite"
    args = _cli("run", str(spec), "--store", str(store), "--executor", "serial",
                "--no-progress")  # fmt: skip
    done = subprocess.run([*args, "--tasks", "2", "none"], env=ENV, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    with open_store(store, readonly=True) as st:
        rows = st.rows()
        assert sorted((r["P"], str(r["tasks"])) for r in rows) == [
            (20, "2"), (20, "None"), (30, "2"), (30, "None"),
        ]  # fmt: skip
        assert st.specs()[-1].grid["tasks"] == [2, None]
    bad = subprocess.run([*args, "--tasks", "2", "0"], env=ENV, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "spinglass-icl: error: tasks (the task pool size K) must be an integer >= 1 or 'none' "
        "(a fresh task per prompt), got '0'"
    ]
