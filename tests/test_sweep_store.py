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
