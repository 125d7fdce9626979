"""Matrix-free large-D solvers against the dense ones at small D."""

from __future__ import annotations

import pytest
import torch

from spinglass_icl import build_instance, make_instance, sample_prompts, solve
from spinglass_icl.errors import ParameterError
from spinglass_icl.precision import Precision
from spinglass_icl.solvers import SolverConfig
from spinglass_icl.solvers.matfree import (
    hutchinson_row_sums,
    make_lowrank_instance,
    solve_amp_matfree,
    solve_cg,
    solve_matfree,
)
from spinglass_icl.tasks import TaskConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


CASES = [(4, 8, 100, 1.0, 0), (5, 10, 200, 1.0, 1), (6, 20, 500, 0.1, 2)]


def _pair(D, N, P, lam, seed, convention="authors"):
    pr = sample_prompts(D, N, P, seed=seed, convention=convention)
    return build_instance(pr, lam), make_instance(D, N, P, lam, seed=seed, convention=convention)


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("convention", ["authors", "paper-text", "normalized"])
def test_operators_match_dense(convention):
    lr, inst = _pair(5, 7, 60, 0.5, 3, convention)
    g = torch.Generator().manual_seed(0)
    m = torch.randn(inst.n, generator=g, dtype=torch.float64)
    r = torch.randn(inst.P, generator=g, dtype=torch.float64)
    torch.testing.assert_close(lr.S(m), inst.s @ m, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lr.ST(r), inst.s.T @ r, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lr.gram_matvec(m), inst.gram @ m, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lr.fields, inst.fields, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(lr.lam_i, inst.lam_i, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(lr.s, inst.s)


@pytest.mark.parametrize("D, N, P, lam, seed", CASES)
def test_cg_equals_dense_exact_mean(D, N, P, lam, seed):
    lr, inst = _pair(D, N, P, lam, seed)
    ex = solve(inst, "exact")
    cg = solve_cg(lr, tol=1e-12)
    assert cg.converged and cg.status == "converged" and cg.n_iter > 0
    assert _rel(cg.m, ex.m) < 1e-8
    assert cg.v is None and cg.solver == "exact" and "mean only" in cg.message


def test_cg_batched_equals_single():
    lrs = [_pair(4, 6, 80, 1.0, s)[0] for s in range(3)]
    stacked = type(lrs[0]).stack(lrs)
    res = solve_cg(stacked, tol=1e-12)
    assert bool(res.converged.all()) and res.m.shape == (3, 25)
    for i, x in enumerate(lrs):
        assert _rel(res.m[i], solve_cg(x, tol=1e-12).m) < 1e-10


@pytest.mark.parametrize("onsager", [True, False])
@pytest.mark.parametrize("D, N, P, lam, seed", CASES[:2])
def test_amp_exact_variance_term_equals_dense_amp(D, N, P, lam, seed, onsager):
    lr, inst = _pair(D, N, P, lam, seed)
    name = "amp" if onsager else "amp-paper"
    d = solve(inst, name, damping=0.5, tol=1e-10, warn=False)
    e = solve_amp_matfree(lr, onsager=onsager, variance_term="exact", damping=0.5, tol=1e-10)
    assert d.status == e.status == "converged" and d.n_iter == e.n_iter
    assert _rel(e.m, d.m) < 1e-12 and _rel(e.v, d.v) < 1e-12


@pytest.mark.parametrize("D, N, P, lam, seed", CASES)
def test_amp_scalar_variance_term_gives_exact_mean(D, N, P, lam, seed):
    lr, inst = _pair(D, N, P, lam, seed)
    ex = solve(inst, "exact")
    amp = solve(inst, "amp", damping=0.5, tol=1e-10, warn=False)
    s = solve_matfree(lr, "amp", damping=0.5, tol=1e-10)
    assert s.converged
    assert _rel(s.m, ex.m) < 1e-8  # the reaction term cancels at the fixed point
    # block-uniform variance estimate (documented in solvers/matfree.py)
    rel = (s.v - amp.v).abs() / amp.v
    assert float(rel.mean()) < 0.10 and float(rel.max()) < 0.5


def test_hutchinson_row_sums_is_close_to_exact():
    lr, inst = _pair(4, 8, 100, 1.0, 0)
    G = inst.gram
    J2 = G * G
    J2.fill_diagonal_(0)
    exact = J2.sum(-1)
    est = hutchinson_row_sums(lr, n_probes=400, seed=1)
    coupled = exact > 0
    assert float(((est - exact).abs()[coupled] / exact[coupled]).median()) < 0.15
    assert (est[~coupled] == 0).all()


def test_chunked_sampling_equals_make_instance_when_one_chunk():
    lr = make_lowrank_instance(4, 6, 50, 1.0, seed=7, chunk=64)
    inst = make_instance(4, 6, 50, 1.0, seed=7)
    torch.testing.assert_close(lr.s, inst.s)
    big = make_lowrank_instance(4, 6, 130, 1.0, seed=7, chunk=64)
    again = make_lowrank_instance(4, 6, 130, 1.0, seed=7, chunk=64)
    assert big.u.shape == (130, 5) and torch.equal(big.u, again.u)


def test_bad_input():
    lr, _ = _pair(3, 4, 20, 1.0, 0)
    with pytest.raises(ParameterError, match="solver must be one of"):
        solve_matfree(lr, "rbp")
    with pytest.raises(ParameterError, match="variance_term must be one of"):
        solve_amp_matfree(lr, variance_term="nope")
    zero = type(lr)(lr.u, lr.q, lr.y, 0.0, lr.config)
    with pytest.raises(ParameterError, match="lam must be > 0"):
        solve_cg(zero)


@pytest.mark.parametrize("solver", ["exact", "amp", "amp-paper"])
def test_solver_config_form_equals_keyword_form(solver):
    """A SolverConfig gives bit for bit the numbers of the old keyword form."""
    lr, _ = _pair(4, 8, 100, 1.0, 0)
    if solver == "exact":
        cfg = SolverConfig("exact", beta=50.0, tol=1e-10, max_iter=10_000)
        a, b = solve_cg(lr, cfg), solve_cg(lr, 50.0)
    else:
        cfg = SolverConfig(solver, beta=50.0, damping=0.6, tol=1e-9, max_iter=500)
        a = solve_amp_matfree(lr, cfg, n_probes=16)
        b = solve_amp_matfree(
            lr, 50.0, onsager=solver == "amp", n_probes=16, damping=0.6, tol=1e-9, max_iter=500
        )
    c = solve_matfree(lr, cfg, **({} if solver == "exact" else {"n_probes": 16}))
    for r in (b, c):
        assert torch.equal(a.m, r.m) and torch.equal(a.n_iter, r.n_iter)
        assert (a.v is None) == (r.v is None) and a.status == r.status
        if a.v is not None:
            assert torch.equal(a.v, r.v)


def test_solver_config_form_refuses_loose_options():
    lr, _ = _pair(3, 4, 20, 1.0, 0)
    with pytest.raises(ParameterError, match="options must be given in the SolverConfig"):
        solve_cg(lr, SolverConfig("exact"), tol=1e-3)
    with pytest.raises(ParameterError, match="solver must be one of"):
        solve_amp_matfree(lr, SolverConfig("rbp"))
    with pytest.raises(ParameterError, match="onsager must match"):
        solve_amp_matfree(lr, SolverConfig("amp"), onsager=False)
    with pytest.raises(ParameterError, match="beta must be > 0"):
        solve_cg(lr, 0.0)


def test_make_instance_takes_a_precision_and_a_task_config():
    ref = make_instance(3, 5, 40, 0.5, seed=2, dtype=torch.float32)
    for dtype in (Precision("float32"), "float32"):
        inst = make_instance(3, 5, 40, 0.5, seed=2, dtype=dtype)
        assert inst.u.dtype == torch.float32 and torch.equal(inst.u, ref.u)
    assert make_instance(3, 5, 40, 0.5, dtype=Precision("mixed")).u.dtype == torch.float64
    task = TaskConfig(D=3, N=5, P=40)
    assert torch.equal(make_instance(task, lam=0.5, seed=2, dtype="float32").u, ref.u)
    with pytest.raises(ParameterError, match="lam must be a real number"):
        make_instance(task, seed=2)
    with pytest.raises(ParameterError, match="dtype must be one of"):
        make_instance(task, lam=0.5, dtype="float16")
