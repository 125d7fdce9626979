"""Nested task diversity (``SweepSpec(nested_p=True)``): the prefix-consistent
prompt stream, its seeds and keys, and the chain kernel that accumulates the couplings
over P -- equal to the per-instance path, resumable, the same on every executor."""

from __future__ import annotations

import math

import pytest
import torch

from spinglass_icl.conventions import get_convention
from spinglass_icl.errors import ParameterError
from spinglass_icl.hamiltonian import build_instance
from spinglass_icl.observables import contrast, spins_to_W
from spinglass_icl.solvers import solve
from spinglass_icl.sweep import SweepSpec, open_store, run_sweep
from spinglass_icl.sweep.plan import plan_chunks
from spinglass_icl.sweep.rows import iter_chunk_rows, run_chunk, spec_fields
from spinglass_icl.tasks import (
    NESTED_BLOCK,
    concat_prompts,
    prompt_block,
    sample_prompts,
    sample_prompts_nested,
)

NESTED = dict(
    grid={"P": [30, 64, 100, 129], "N": [8, 16], "lam": [3.0, 10.0]},
    fixed={"D": 4, "beta": 100.0, "solver": "amp"},
    repeats=2,
    seed=5,
    solver_options={"damping": 0.5, "tol": 1e-9},
    nested_p=True,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _values(store, keys=("contrast", "test_error", "relative_test_error", "n_iter", "status")):
    return {r["key"]: tuple(r[k] for k in keys) for r in store.rows()}


# ------------------------------------------------------------- prompt stream
@pytest.mark.parametrize("small", [1, 30, NESTED_BLOCK, NESTED_BLOCK + 1, 150])
def test_nested_draw_is_a_prefix_of_every_larger_draw(small):
    big = sample_prompts_nested(3, 5, 200, noise=0.3, seed=9)
    part = sample_prompts_nested(3, 5, small, noise=0.3, seed=9)
    assert part.config.P == small and part.X.shape == (small, 4, 6)
    assert torch.equal(part.X, big.X[:small])
    assert torch.equal(part.w, big.w[:small])
    assert torch.equal(part.y, big.y[:small])
    # the stream is made of blocks drawn independently
    b1 = prompt_block(3, 5, 1, noise=0.3, seed=9)
    assert torch.equal(big.X[NESTED_BLOCK : 2 * NESTED_BLOCK], b1.X)
    # another seed, another stream
    assert not torch.equal(sample_prompts_nested(3, 5, small, noise=0.3, seed=10).X, part.X)


def test_nested_stream_has_the_model_distribution():
    D, N, P = 6, 7, 4000
    pr = sample_prompts_nested(D, N, P, seed=1)
    scale = get_convention("authors").label_scale(D)
    # labels of context and query are scale * w.x exactly (no noise)
    x = pr.X[:, :D, :]
    lab = scale * torch.einsum("pd,pdn->pn", pr.w, x)
    assert torch.allclose(pr.X[:, D, :N], lab[:, :N], atol=1e-12)
    assert torch.allclose(pr.y, lab[:, N], atol=1e-12)
    assert torch.all(pr.X[:, D, N] == 0)
    # standard normal tasks and inputs: mean 0, variance 1 within 5 standard errors
    for t in (pr.w, x):
        n = t.numel()
        assert abs(float(t.mean())) < 5 / math.sqrt(n)
        assert abs(float(t.var()) - 1) < 5 * math.sqrt(2 / n)
    # blocks are independent: correlation of consecutive blocks' tasks ~ 0
    w = pr.w[: 2 * (P // 2)].reshape(2, P // 2, D)
    corr = float((w[0] * w[1]).mean())
    assert abs(corr) < 5 / math.sqrt(w[0].numel())


def test_head_and_concat():
    pr = sample_prompts(3, 4, 10, seed=0)
    both = concat_prompts([pr.head(4), sample_prompts(3, 4, 6, seed=1)])
    assert both.config.P == 10 and torch.equal(both.X[:4], pr.X[:4])
    with pytest.raises(ParameterError, match="P must be an integer in \\[1, 10\\]"):
        pr.head(11)
    with pytest.raises(ValueError, match="differ in D, N"):
        concat_prompts([pr, sample_prompts(3, 5, 2, seed=0)])
    with pytest.raises(ParameterError, match="index"):
        prompt_block(3, 4, -1)


# ------------------------------------------------------------- seeds and keys
def test_nested_seeds_ignore_P_and_keys_are_their_own():
    spec = SweepSpec(**NESTED)
    tasks = spec.tasks()
    by_family: dict = {}
    for t in tasks:
        by_family.setdefault(t.family, set()).add(t.params["P"])
    # one family per (N, repeat), each holding every P
    assert len(by_family) == 2 * 2
    assert all(ps == {30, 64, 100, 129} for ps in by_family.values())
    plain = SweepSpec(**{**NESTED, "nested_p": False})
    assert {t.key for t in tasks}.isdisjoint({t.key for t in plain.tasks()})
    assert len({t.seed for t in plain.tasks()}) == 4 * 2 * 2  # by P, N and repeat
    # specs without the option keep their dict, hash and TOML (stores made before it)
    assert "nested_p" not in plain.to_dict() and "nested_p" not in plain.to_toml()
    assert spec.to_dict()["nested_p"] is True


def test_nested_spec_toml_round_trip_and_errors(tmp_path):
    spec = SweepSpec(**NESTED)
    path = tmp_path / "s.toml"
    spec.to_toml(path)
    assert "nested_p = true" in path.read_text()
    back = SweepSpec.from_toml(path)
    assert back == spec and back.hash == spec.hash
    with pytest.raises(ParameterError, match="nested_p must be true or false"):
        SweepSpec(**{**NESTED, "nested_p": 1})
    with pytest.raises(ParameterError, match="nested_p must be false when matfree"):
        SweepSpec(**{**NESTED, "matfree": True})


def test_plan_keeps_families_whole():
    tasks = SweepSpec(**NESTED).tasks()
    for mb in (1, 2, None):
        chunks = plan_chunks(tasks, nested=True, max_batch=mb)
        assert sorted(t.key for c in chunks for t in c) == sorted(t.key for t in tasks)
        seen = set()
        for c in chunks:
            fams = {t.family for t in c}
            assert not fams & seen  # a family is never split over chunks
            seen |= fams
            if mb is not None:
                assert len(fams) <= mb
    # per-instance: one task per chunk
    assert all(len(c) == 1 for c in plan_chunks(tasks, batched=False, nested=True))


# ------------------------------------------------------------- chain kernel
@pytest.mark.parametrize("solver", ["amp", "amp-paper", "exact", "rbp"])
def test_nested_chain_equals_per_instance_solve(solver):
    """Every row of a nested chunk equals solving the instance of its own prompt prefix
    alone (sample_prompts_nested + build_instance + solve)."""
    spec = SweepSpec(**{**NESTED, "fixed": {**NESTED["fixed"], "solver": solver}})
    fields = spec_fields(spec)
    tasks = spec.tasks()
    chunks = plan_chunks(tasks, nested=True, max_batch=2)
    assert any(len({t.family for t in c}) == 2 for c in chunks)  # a batch of families
    rows = {r["key"]: r for c in chunks for r in run_chunk(c, fields)}
    (whole,) = plan_chunks(tasks, nested=True)  # one batch of all 4 families, 2 N values
    assert len({t.params["N"] for t in whole}) == 2
    for r in run_chunk(whole, fields):
        for k in ("contrast", "test_error", "n_iter", "status"):
            x = rows[r["key"]][k]
            assert r[k] == (pytest.approx(x, rel=1e-12, abs=1e-14) if isinstance(x, float) else x)
    opts = spec.solver_options
    n_conv = 0
    for t in tasks:
        p = t.params
        pr = sample_prompts_nested(p["D"], p["N"], p["P"], seed=t.seed)
        res = solve(build_instance(pr, p["lam"]), solver, beta=p["beta"], warn=False, **opts)
        row = rows[t.key]
        assert row["status"] == str(res.status) and row["n_iter"] == int(res.n_iter)
        if res.converged:
            c = float(contrast(spins_to_W(res.m)))
            assert row["contrast"] == pytest.approx(c, rel=1e-10, abs=1e-13)
        one = run_chunk([t], fields, batched=False)[0]  # the sweep's per-instance path
        for k in ("contrast", "test_error"):
            if one[k] is None:
                assert row[k] is None
            else:
                assert row[k] == pytest.approx(one[k], rel=1e-10, abs=1e-13)
        n_conv += row["converged"]
    assert n_conv == len(tasks)


def test_nested_mixed_precision_agrees_with_float64():
    spec = SweepSpec(**{**NESTED, "solver_options": {"damping": 0.9, "tol": 1e-6}})
    fields = spec_fields(spec)
    chunks = plan_chunks(spec.tasks(), nested=True)
    a = {r["key"]: r for c in chunks for r in run_chunk(c, fields)}
    b = {r["key"]: r for c in chunks for r in run_chunk(c, fields, dtype="mixed")}
    for k, ra in a.items():
        rb = b[k]
        assert ra["status"] == rb["status"] == "converged"
        assert abs(ra["n_iter"] - rb["n_iter"]) <= 2
        for key in ("contrast", "relative_test_error"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-6, abs=1e-9)


def test_nested_sweep_executors_and_resume(tmp_path):
    spec = SweepSpec(**{**NESTED, "grid": {"P": [30, 64, 100], "N": [8, 16]}, "fixed": {
        "D": 4, "lam": 3.0, "beta": 100.0, "solver": "amp"}})  # fmt: skip
    a = run_sweep(spec, tmp_path / "a.sqlite", executor="serial", progress=False)
    b = run_sweep(spec, tmp_path / "b.sqlite", executor="local", workers=2, progress=False)
    loop = run_sweep(spec, tmp_path / "c.sqlite", executor="serial", batched=False, progress=False)
    va, vb, vl = _values(a), _values(b), _values(loop)
    assert len(va) == spec.n_tasks
    # every output says how it was drawn
    assert a.to_xarray().attrs["nested_p"] == 1 and loop.to_xarray().attrs["nested_p"] == 1
    assert a.status()[0]["nested_p"] is True
    for other in (vb, vl):
        assert other.keys() == va.keys()
        for k in va:
            for x, y in zip(va[k], other[k]):
                if isinstance(x, float):
                    assert y == pytest.approx(x, rel=1e-10, abs=1e-13)
                else:
                    assert x == y
    # lose some rows of a chain (a killed run) and resume: the chain is recomputed
    # with the same segments and the rows come back bit-identical
    gone = sorted(va)[::3]
    a.close()
    import sqlite3

    con = sqlite3.connect(tmp_path / "a.sqlite")
    con.executemany("DELETE FROM results WHERE key = ?", [(k,) for k in gone])
    con.commit()
    con.close()
    with open_store(tmp_path / "a.sqlite") as st:
        assert len(st) == spec.n_tasks - len(gone)
    again = run_sweep(spec, tmp_path / "a.sqlite", executor="serial", progress=False)
    assert _values(again) == va
    again.close()
    b.close()
    loop.close()


def test_default_batch_budget_on_cpu():
    from spinglass_icl.sweep.executors import default_batch_bytes
    from spinglass_icl.sweep.plan import DEFAULT_BATCH_BYTES

    assert default_batch_bytes("cpu") == DEFAULT_BATCH_BYTES


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nested_cuda_agrees_with_cpu(tmp_path):
    from spinglass_icl.sweep.executors import default_batch_bytes

    assert default_batch_bytes("cuda") >= 1 << 30
    spec = SweepSpec(**NESTED)
    cpu = _values(run_sweep(spec, tmp_path / "c.sqlite", executor="serial", progress=False))
    for dtype, rel in (("float64", 1e-9), ("mixed", 1e-6)):
        gpu = _values(
            run_sweep(spec, tmp_path / f"{dtype}.sqlite", executor="serial", device="cuda",
                      dtype=dtype, progress=False)
        )  # fmt: skip
        assert gpu.keys() == cpu.keys()
        for k in cpu:
            for x, y in zip(cpu[k][:3], gpu[k][:3]):
                assert y == pytest.approx(x, rel=rel, abs=1e-12)


def test_nested_chunk_yields_its_rows_one_P_at_a_time():
    """A serial sweep stores a nested chunk's rows as each P finishes (a killed GPU sweep,
    whose chunk may hold the whole grid, loses at most one P)."""
    spec = SweepSpec(**NESTED)
    fields = spec_fields(spec)
    (chunk,) = plan_chunks(spec.tasks(), nested=True)
    parts = list(iter_chunk_rows(chunk, fields))
    assert [len({r["P"] for r in part}) for part in parts] == [1] * 4
    assert [part[0]["P"] for part in parts] == [30, 64, 100, 129]
    assert all(len(part) == 2 * 2 * 2 for part in parts)  # lam x N x repeat
    assert sorted(r["key"] for part in parts for r in part) == sorted(t.key for t in chunk)
    assert all(r["seconds"] > 0 for part in parts for r in part)
