"""Sweeps: spec and seeds, batched == per-instance, store safety, resume after SIGKILL,
executors agree, exports round-trip, CLI."""

from __future__ import annotations

import csv
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spinglass_icl.errors import ConfigError, ParameterError
from spinglass_icl.hamiltonian import make_instance
from spinglass_icl.observables import contrast, spins_to_W
from spinglass_icl.observables import test_error as mc_test_error
from spinglass_icl.solvers import solve
from spinglass_icl.sweep import SweepSpec, open_store, run_sweep
from spinglass_icl.sweep.batched import plan_chunks, run_chunk, spec_fields

SMALL = dict(
    grid={"P": [100, 200], "N": [4, 8]},
    fixed={"D": 4, "lam": 1.0, "beta": 100.0, "solver": "amp"},
    repeats=2,
    seed=3,
    test_tasks=300,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _values(store, keys=("contrast", "test_error", "relative_test_error", "n_iter", "status")):
    return {r["key"]: tuple(r[k] for k in keys) for r in store.rows()}


# ---------------------------------------------------------------- spec and seeds
def test_spec_expands_and_seeds_are_deterministic():
    spec = SweepSpec(**SMALL)
    tasks = spec.tasks()
    assert spec.n_tasks == len(tasks) == 2 * 2 * 2
    assert len({t.key for t in tasks}) == len(tasks)
    # same spec, same seeds and keys; a different base seed changes every instance seed
    again = SweepSpec(**SMALL).tasks()
    assert [(t.key, t.seed, t.test_seed) for t in tasks] == [
        (t.key, t.seed, t.test_seed) for t in again
    ]
    other = SweepSpec(**{**SMALL, "seed": 4}).tasks()
    assert not {t.seed for t in tasks} & {t.seed for t in other}
    assert all(0 <= t.seed < 2**63 for t in tasks)
    # seeds depend on the data parameters only: lam does not change the instance
    a = SweepSpec(grid={"lam": [0.5, 2.0]}, fixed={"D": 3, "N": 4, "P": 20}).tasks()
    assert a[0].seed == a[1].seed and a[0].key != a[1].key


def test_spec_toml_round_trip(tmp_path):
    spec = SweepSpec(**{**SMALL, "solver_options": {"damping": 0.8, "tol": 1e-7}})
    path = tmp_path / "s.toml"
    spec.to_toml(path)
    back = SweepSpec.from_toml(path)
    assert back == spec and back.hash == spec.hash


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"grid": {"Q": [1]}}, "grid parameter must be one of"),
        ({"grid": {"D": [0]}, "fixed": {"N": 2, "P": 3, "lam": 1.0}}, "D must be an integer >= 1"),
        ({"fixed": {"D": 2, "N": 2, "P": 3}}, "lam must be given"),
        ({"fixed": {"D": 2, "N": 2, "P": 3, "lam": -1}}, "lam must be > 0"),
        ({"fixed": {"D": 2, "N": 2, "P": 3, "lam": 1, "solver": "sgd"}}, "solver must be one of"),
        ({"fixed": {"D": 2, "N": 2, "P": 3, "lam": 1}, "repeats": 0}, "repeats must be"),
        ({"fixed": {"D": 2, "N": 2, "P": 3, "lam": 1}, "solver_options": {"eta": 1}}, "eta"),
    ],
)
def test_spec_rejects_bad_values(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        SweepSpec(**kwargs)


def test_spec_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        SweepSpec.from_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("grid = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        SweepSpec.from_toml(bad)
    bad.write_text("colour = 3\n[fixed]\nD = 2\n")
    with pytest.raises(ConfigError, match="unknown sweep spec key"):
        SweepSpec.from_toml(bad)


# ------------------------------------------------------------ batched == single
@pytest.mark.parametrize("test_error", ["exact", "mc"])
def test_batched_chunk_equals_per_instance_solve(test_error):
    spec = SweepSpec(**SMALL, test_error=test_error)
    fields = spec_fields(spec)
    chunks = plan_chunks(spec.tasks(), batched=True)
    assert len(chunks) == 2 and all(len(c) == 4 for c in chunks)  # grouped by P, N mixed
    for chunk in chunks:
        rows_b = run_chunk(chunk, fields, batched=True)
        rows_s = run_chunk(chunk, fields, batched=False)
        for rb, rs in zip(rows_b, rows_s):
            assert rb["status"] == rs["status"] and rb["n_iter"] == rs["n_iter"]
            for k in ("contrast", "test_error", "relative_test_error", "test_error_stderr"):
                if rs[k] is None:
                    assert rb[k] is None
                else:
                    assert rb[k] == pytest.approx(rs[k], rel=1e-10, abs=1e-12)
        # and the per-instance path is the plain core API with the derived seeds
        t, rs = chunk[0], rows_s[0]
        p = t.params
        inst = make_instance(p["D"], p["N"], p["P"], p["lam"], seed=t.seed)
        res = solve(inst, "amp", beta=p["beta"], warn=False, **spec.solver_options)
        assert res.status == rs["status"]
        if res.converged:
            W = spins_to_W(res.m)
            assert float(contrast(W)) == pytest.approx(rs["contrast"], rel=1e-12)
            if test_error == "exact":
                err = mc_test_error(W, p["N"], exact=True)
                assert rs["test_error_stderr"] == 0.0
            else:
                err = mc_test_error(W, p["N"], n_tasks=spec.test_tasks, seed=t.test_seed)
                assert rs["test_error_stderr"] > 0.0
            assert float(err.absolute) == pytest.approx(rs["test_error"], rel=1e-12)
            assert float(err.relative) == pytest.approx(rs["relative_test_error"], rel=1e-12)


def test_exact_test_error_is_the_mean_of_the_monte_carlo_one():
    """The default closed-form test error and the Monte Carlo option agree within the
    Monte Carlo error (4 standard errors), row by row."""
    kw = {**SMALL, "grid": {"P": [200], "N": [4, 8]}, "test_tasks": 4000}
    fields = {m: spec_fields(SweepSpec(**kw, test_error=m)) for m in ("exact", "mc")}
    tasks = SweepSpec(**kw).tasks()
    ex, mc = (run_chunk(tasks, fields[m]) for m in ("exact", "mc"))
    for a, b in zip(ex, mc):
        assert a["converged"] and b["converged"]
        assert abs(a["test_error"] - b["test_error"]) < 4 * b["test_error_stderr"]


def test_test_error_option_keys_and_old_stores(tmp_path):
    """'mc' rows keep the keys of sweeps stored before the option; 'exact' rows differ;
    a spec stored without the field reads back as 'mc'."""
    import json

    exact, mc = SweepSpec(**SMALL), SweepSpec(**SMALL, test_error="mc")
    assert exact.test_error == "exact"
    assert not {t.key for t in exact.tasks()} & {t.key for t in mc.tasks()}
    assert SweepSpec.from_toml(_write(tmp_path / "m.toml", mc.to_toml())) == mc
    store = run_sweep(mc, tmp_path / "old.sqlite", executor="serial", progress=False)
    d = mc.to_dict()
    del d["test_error"]  # what a store written before the option holds
    store._con.execute("UPDATE specs SET spec = ?", (json.dumps(d),))
    store._con.commit()
    assert store.specs() == [mc] and len(store.rows()) == mc.n_tasks
    with pytest.raises(ParameterError, match="test_error must be one of"):
        SweepSpec(**SMALL, test_error="sampled")


def _write(path, text):
    path.write_text(text)
    return path


def test_failures_stay_in_the_table_with_null_observables(tmp_path):
    # at D = 4, P = 20, lam = 1 undamped AMP diverges for most instances
    spec = SweepSpec(
        grid={"P": [20]},
        fixed={"D": 4, "N": 2, "lam": 1.0},
        repeats=4,
        solver_options={"damping": 0.0, "max_iter": 50},
        test_tasks=100,
    )
    store = run_sweep(spec, tmp_path / "f.sqlite", executor="serial", progress=False)
    rows = store.rows()
    assert len(rows) == 4
    failed = [r for r in rows if not r["converged"]]
    assert failed, "expected non-converged rows at this setting"
    for r in failed:
        assert r["status"] in ("diverged", "max_iter")
        assert r["contrast"] is None and r["test_error"] is None
    ds = store.to_xarray()
    assert int(ds.converged.sum()) == 4 - len(failed)
    assert int(np.isnan(ds.contrast.values).sum()) == len(failed)


def test_float32_agrees_with_float64_to_1e_4():
    spec = SweepSpec(
        grid={"N": [5, 20], "solver": ["exact", "amp"]},
        fixed={"D": 5, "P": 200, "lam": 1.0},
        repeats=2,
        test_tasks=500,
        solver_options={"tol": 1e-5},  # float32 AMP stalls near 1e-6 relative residual
    )
    fields = spec_fields(spec)
    for chunk in plan_chunks(spec.tasks()):
        r64 = run_chunk(chunk, fields, dtype="float64")
        r32 = run_chunk(chunk, fields, dtype="float32")
        for a, b in zip(r64, r32):
            assert a["converged"] and b["converged"]
            assert abs(a["contrast"] - b["contrast"]) < 1e-4
            assert abs(a["relative_test_error"] - b["relative_test_error"]) < 1e-4


def test_mixed_precision_agrees_with_float64_and_meets_tol_1e_6(tmp_path):
    """dtype='mixed' (float32 matrices, float64 state) converges at the authors'
    tol = 1e-6 in (almost) the same iterations, within 1e-6 of float64 on contrast and
    relative test error; all-float32 AMP stalls above tol = 1e-6 (why mixed exists)."""
    spec = SweepSpec(**SMALL)
    fields = spec_fields(spec)
    for chunk in plan_chunks(spec.tasks()):
        r64 = run_chunk(chunk, fields, dtype="float64")
        rmx = run_chunk(chunk, fields, dtype="mixed")
        for a, b in zip(r64, rmx):
            assert a["status"] == b["status"]  # a few diverge at P = 100, in both
            if not a["converged"]:
                continue
            assert abs(a["n_iter"] - b["n_iter"]) <= 2
            assert abs(a["contrast"] - b["contrast"]) < 1e-6
            assert abs(a["relative_test_error"] - b["relative_test_error"]) < 1e-6
            assert a["contrast"] != b["contrast"]  # really float32 matrices
    r32 = run_chunk(spec.tasks()[:2], {**fields, "solver_options": {
        "damping": 0.9, "tol": 1e-6, "max_iter": 300}}, dtype="float32")  # fmt: skip
    assert not any(r["converged"] for r in r32)
    with pytest.raises(ParameterError, match="mixed"):
        run_sweep(spec, tmp_path / "m.sqlite", executor="serial", batched=False, dtype="mixed")


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
            "failed": store.status()[0]["failed"],
        }
    ]


def _snapshot(path: Path):
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


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


# ---------------------------------------------------------- executors agree
def test_local_pool_equals_serial(tmp_path):
    spec = SweepSpec(**SMALL)
    a = run_sweep(spec, tmp_path / "a.sqlite", executor="serial", progress=False)
    b = run_sweep(spec, tmp_path / "b.sqlite", executor="local", workers=2, progress=False)
    _assert_same(_values(a), _values(b))


def test_dask_local_cluster_equals_serial(tmp_path):
    pytest.importorskip("distributed")
    spec = SweepSpec(**{**SMALL, "grid": {"P": [100], "N": [4, 8]}})
    a = run_sweep(spec, tmp_path / "a.sqlite", executor="serial", progress=False)
    b = run_sweep(spec, tmp_path / "b.sqlite", executor="dask", workers=1, progress=False)
    _assert_same(_values(a), _values(b))


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


# -------------------------------------------------- SIGKILL and resume (CLI)
KILL_SPEC = """
repeats = 2
seed = 11
test_tasks = 400
[grid]
P = [40, 50, 60, 70, 80, 90, 100, 110]
N = [4, 8]
[fixed]
D = 5
lam = 1.0
[solver_options]
damping = 0.9
tol = 1e-7
"""


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


@pytest.mark.parametrize("nested", [False, True])
def test_sigkill_then_rerun_gives_every_row_once_identical(tmp_path, nested):
    """Also for a nested_p sweep, whose chunks are whole chains over P (one family per
    chunk with --max-batch 1 there)."""
    spec_path = tmp_path / "kill.toml"
    spec_path.write_text(("nested_p = true\n" if nested else "") + KILL_SPEC)
    mb = "1" if nested else "2"
    total = SweepSpec.from_toml(spec_path).n_tasks
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # interrupted run: SIGKILL once a few chunks are written
    path = tmp_path / "kill.sqlite"
    cmd = _cli("run", str(spec_path), "--store", str(path), "--executor", "serial")
    proc = subprocess.Popen(
        [*cmd, "--max-batch", mb, "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and _count(path) < 4:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _count(path)
    assert 0 < partial < total, f"kill landed outside the run ({partial}/{total})"
    rerun = subprocess.run(
        [*cmd, "--max-batch", mb, "--threads", "1", "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    con = sqlite3.connect(path)
    keys = [r[0] for r in con.execute("SELECT key FROM results")]
    con.close()
    assert len(keys) == len(set(keys)) == total
    # an uninterrupted run with the same options; stderr is a pipe (not a tty): the
    # progress bar must not break it
    same = tmp_path / "same.sqlite"
    ok = subprocess.run(
        [*_cli("run", str(spec_path), "--store", str(same), "--executor", "serial")]
        + ["--max-batch", mb, "--threads", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().startswith(f"spinglass-icl sweep: {total}/{total} rows")
    assert "Traceback" not in ok.stderr and f"{total}/{total}" in ok.stderr
    with open_store(same) as a, open_store(path) as b:
        assert _values(a) == _values(b)  # bit-identical


def test_cli_status_export_and_errors(tmp_path, capsys):
    from spinglass_icl.cli import main

    spec_path = tmp_path / "s.toml"
    SweepSpec(**SMALL).to_toml(spec_path)
    store = tmp_path / "s.sqlite"
    assert main(["sweep", "run", str(spec_path), "--store", str(store), "--executor", "serial",
                 "--no-progress"]) == 0  # fmt: skip
    assert main(["sweep", "status", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "8/8 rows" in out and "P:2 x N:2" in out
    assert main(["sweep", "export", "--store", str(store), "--format", "csv",
                 "--out", str(tmp_path / "o.csv")]) == 0  # fmt: skip
    assert (tmp_path / "o.csv").read_text().count("\n") == 9
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\nD = [1.5]\n[fixed]\nN = 2\nP = 3\nlam = 1\n")
    assert main(["sweep", "run", str(bad), "--store", str(tmp_path / "x.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "D must be an integer" in err
    assert not (tmp_path / "x.sqlite").exists()
    assert main(["sweep", "status", "--store", str(tmp_path / "none.sqlite")]) == 2
    assert main(["sweep", "run", str(spec_path), "--store", str(store), "--executor", "nope"]) == 2
    assert "executor must be one of" in capsys.readouterr().err


def test_seconds_and_no_nan_in_rows(tmp_path):
    spec = SweepSpec(**SMALL)
    store = run_sweep(spec, tmp_path / "s.sqlite", executor="serial", progress=False)
    for r in store.rows():
        assert r["seconds"] > 0
        for k in ("contrast", "test_error", "relative_test_error"):
            assert r[k] is None or math.isfinite(r[k])


@pytest.mark.parametrize("lowrank_matvec", [True, False])
def test_batched_amp_kernel_equals_core_amp(lowrank_matvec):
    from spinglass_icl.sweep.batched import lowrank_couplings, solve_amp_batched
    from spinglass_icl.tasks import sample_prompts

    D, P, lam = 4, 150, 1.0
    prs = [sample_prompts(D, N, P, seed=s) for s, N in enumerate([3, 6, 9])]
    u = torch.stack([pr.u * pr.config.prefactor for pr in prs])
    q = torch.stack([pr.q for pr in prs])
    y = torch.stack([pr.y for pr in prs])
    insts = [make_instance(D, pr.config.N, P, lam, seed=s) for s, pr in enumerate(prs)]
    G = lowrank_couplings(u, q, 1.0)
    for i, inst in enumerate(insts):
        torch.testing.assert_close(G[i], inst.gram, rtol=1e-12, atol=1e-15)
    for onsager in (True, False):
        res = solve_amp_batched(
            u, q, y, 1.0, lam, 100.0, onsager=onsager, damping=0.5, tol=1e-10,
            lowrank_matvec=lowrank_matvec,
        )  # fmt: skip
        for i, inst in enumerate(insts):
            ref = solve(inst, "amp" if onsager else "amp-paper", damping=0.5, tol=1e-10,
                        warn=False)  # fmt: skip
            assert res.status[i] == ref.status and int(res.n_iter[i]) == ref.n_iter
            torch.testing.assert_close(res.m[i], ref.m, rtol=1e-10, atol=1e-13)
            torch.testing.assert_close(res.v[i], ref.v, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("sampler", ["prompts", "factors"])
def test_matfree_sweep_equals_dense_sweep(tmp_path, sampler):
    common = dict(grid={"N": [4, 8]}, fixed={"D": 4, "P": 200, "lam": 1.0}, repeats=2)
    exact = dict(
        common, fixed={**common["fixed"], "solver": "exact"}, test_tasks=300, sampler=sampler
    )
    dense = run_sweep(SweepSpec(**exact), tmp_path / "d.sqlite", executor="serial",
                      progress=False).rows()  # fmt: skip
    mf_spec = SweepSpec(**exact, matfree=True)
    mf = run_sweep(mf_spec, tmp_path / "m.sqlite", executor="serial", progress=False).rows()
    assert len(mf) == len(dense) == 4
    for a, b in zip(dense, mf):
        assert a["seed"] == b["seed"] and b["converged"]
        assert b["contrast"] == pytest.approx(a["contrast"], rel=1e-8)
        assert b["test_error"] == pytest.approx(a["test_error"], rel=1e-8)
    with pytest.raises(ParameterError, match="matfree"):
        SweepSpec(**dict(common, fixed={**common["fixed"], "solver": "rbp"}), matfree=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_float64_and_float32_agree_with_cpu(tmp_path):
    spec = SweepSpec(**{**SMALL, "solver_options": {"tol": 1e-5}})
    cpu = _values(run_sweep(spec, tmp_path / "c.sqlite", executor="serial", progress=False))
    for dtype, rel in (("float64", 1e-9), ("float32", None)):
        gpu = _values(
            run_sweep(spec, tmp_path / f"{dtype}.sqlite", executor="serial", device="cuda",
                      dtype=dtype, progress=False)
        )  # fmt: skip
        assert gpu.keys() == cpu.keys()
        for k in cpu:
            a, b = cpu[k], gpu[k]
            if rel is not None:
                assert a[4] == b[4]
            for x, y in zip(a[:3], b[:3]):
                if x is not None and y is not None:
                    assert abs(x - y) <= (rel * abs(x) if rel else 1e-4)


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
