"""Sweep rows: batched chunks equal the per-instance solve; test errors, failures,
precisions, matrix-free sweeps, CUDA."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from spinglass_icl.errors import ParameterError
from spinglass_icl.hamiltonian import make_instance
from spinglass_icl.observables import contrast, spins_to_W
from spinglass_icl.observables import test_error as mc_test_error
from spinglass_icl.solvers import solve
from spinglass_icl.sweep import SweepSpec, run_sweep
from spinglass_icl.sweep.plan import plan_chunks
from spinglass_icl.sweep.rows import run_chunk, spec_fields
from sweep_helpers import SMALL, _values

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    short = dataclasses.replace(
        fields, solver_options={"damping": 0.9, "tol": 1e-6, "max_iter": 300}
    )
    r32 = run_chunk(spec.tasks()[:2], short, dtype="float32")
    assert not any(r["converged"] for r in r32)
    with pytest.raises(ParameterError, match="mixed"):
        run_sweep(spec, tmp_path / "m.sqlite", executor="serial", batched=False, dtype="mixed")


def test_seconds_and_no_nan_in_rows(tmp_path):
    spec = SweepSpec(**SMALL)
    store = run_sweep(spec, tmp_path / "s.sqlite", executor="serial", progress=False)
    for r in store.rows():
        assert r["seconds"] > 0
        for k in ("contrast", "test_error", "relative_test_error"):
            assert r[k] is None or math.isfinite(r[k])


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


# ------------------------------------------------------------------- task pools
_POOL = dict(
    grid={"tasks": [2, 6, None], "P": [48, 64]},
    fixed={"D": 3, "N": 6, "lam": 0.05, "noise": 0.1, "solver": "exact"},
    repeats=2,
    seed=5,
)


def test_pool_rows_report_the_closed_form_e_icl_e_idg_and_gtask():
    """Every row with a pool: e_ICL (fresh tasks) and e_IDG (the pool's moments) equal
    the closed forms of the row's TaskConfig at the weights solved from the row's own
    instance (rel 1e-10); g_task is their difference; K = None rows have no e_IDG."""
    from spinglass_icl.hamiltonian import build_instance

    spec = SweepSpec(**_POOL)
    tasks = spec.tasks()
    rows = run_chunk(tasks, spec_fields(spec), batched=False)
    for t, r in zip(tasks, rows):
        cfg = t.task_config
        inst = build_instance(cfg.draw_factors(seed=t.seed), t.params["lam"])
        W = spins_to_W(solve(inst, "exact", beta=t.params["beta"], warn=False).m)
        icl = float(cfg.exact_test_error(W, "icl"))
        assert r["test_error"] == pytest.approx(icl, rel=1e-10)
        assert r["relative_test_error"] == pytest.approx(icl / cfg.label_variance(), rel=1e-10)
        if t.params["tasks"] is None:
            assert r["test_error_idg"] is r["gtask"] is r["pool_seed"] is None
            continue
        idg = float(cfg.exact_test_error(W, "idg"))
        assert r["test_error_idg"] == pytest.approx(idg, rel=1e-10)
        assert r["test_error_idg_stderr"] == 0.0 and r["pool_seed"] == t.pool_seed
        assert r["gtask"] == r["test_error"] - r["test_error_idg"]
    # memorizing a pool of 2 tasks: far below the fresh-task error (data: every row)
    small = [r for r in rows if r["tasks"] == 2]
    assert all(r["test_error_idg"] < 0.5 * r["test_error"] for r in small)


def test_pool_monte_carlo_errors_agree_with_the_closed_forms():
    """test_error = "mc": e_ICL and e_IDG within 4 standard errors of the closed forms,
    row by row (4000 test prompts)."""
    kw = {**_POOL, "grid": {"tasks": [2, 6]}, "fixed": {**_POOL["fixed"], "P": 64}}
    tasks = SweepSpec(**kw).tasks()
    ex = run_chunk(tasks, spec_fields(SweepSpec(**kw)))
    mc = run_chunk(tasks, spec_fields(SweepSpec(**kw, test_error="mc", test_tasks=4000)))
    for a, b in zip(ex, mc):
        assert b["test_error_idg_stderr"] > 0.0
        assert abs(a["test_error"] - b["test_error"]) < 4 * b["test_error_stderr"]
        assert abs(a["test_error_idg"] - b["test_error_idg"]) < 4 * b["test_error_idg_stderr"]


@pytest.mark.parametrize("nested", [False, True])
def test_pool_batched_chunks_equal_the_per_instance_solve(nested):
    spec = SweepSpec(
        **{**_POOL, "fixed": {**_POOL["fixed"], "solver": "amp", "lam": 1.0}},
        nested_p=nested, sampler="factors", assignment="equal",
    )  # fmt: skip
    fields = spec_fields(spec)
    for chunk in plan_chunks(spec.tasks(), batched=True):
        rows_b = run_chunk(chunk, fields, batched=True)
        rows_s = run_chunk(chunk, fields, batched=False)
        assert [r["key"] for r in rows_b] == [t.key for t in chunk]
        for rb, rs in zip(rows_b, rows_s):
            assert rb["status"] == rs["status"] and rb["tasks"] == rs["tasks"]
            for k in ("contrast", "test_error", "test_error_idg", "gtask"):
                if rs[k] is None:
                    assert rb[k] is None
                else:
                    assert rb[k] == pytest.approx(rs[k], rel=1e-9, abs=1e-12)
        assert any(r["test_error_idg"] is not None for r in rows_b)


def test_no_pool_rows_are_unchanged_bit_for_bit(tmp_path):
    """The K = None rows of a sweep over K are the rows of the same sweep without K:
    same keys, same numbers exactly."""
    plain = SweepSpec(**{**_POOL, "grid": {"P": [48, 64]}})
    pooled = SweepSpec(**_POOL)
    a = run_sweep(plain, tmp_path / "a.sqlite", executor="serial", progress=False)
    b = run_sweep(pooled, tmp_path / "b.sqlite", executor="serial", progress=False)
    ra = {r["key"]: r for r in a.rows()}
    rb = {r["key"]: r for r in b.rows() if r["tasks"] is None}
    assert ra.keys() == rb.keys() and len(ra) == plain.n_tasks
    for k, r in ra.items():
        for c in ("contrast", "test_error", "relative_test_error", "seed", "test_seed"):
            assert rb[k][c] == r[c]
