"""Solvers against the exact Gaussian answer (docs/solvers.md#exact) with explicit tolerances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from spinglass_icl.conventions import Convention
from spinglass_icl.errors import ConvergenceWarning, ParameterError
from spinglass_icl.hamiltonian import Instance, make_instance
from spinglass_icl.observables import blocks
from spinglass_icl.solvers import ground_state, solve, solver_names

BETA = 100.0


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ----------------------------------------------------------------- exact solver
@pytest.mark.parametrize("lam", [1e-3, 0.1, 2.0])
def test_exact_equals_normal_equations(convention, lam):
    """m solves (S^T S/P + lam I) m = S^T y/P; v = diag(inv(beta A)) (scipy, directly)."""
    inst = make_instance(4, 12, 150, lam, convention=convention, seed=3)
    S, y, P = inst.s.numpy(), inst.y.numpy(), inst.P
    A = S.T @ S / P + lam * np.eye(inst.n)
    m_ref = scipy.linalg.solve(A, S.T @ y / P, assume_a="pos")
    v_ref = np.diag(scipy.linalg.inv(BETA * A))
    res = solve(inst, "exact", beta=BETA)
    assert bool(res.converged) and res.status == "converged" and res.n_iter == 0
    np.testing.assert_allclose(res.m.numpy(), m_ref, rtol=1e-9, atol=1e-12 * np.abs(m_ref).max())
    np.testing.assert_allclose(res.v.numpy(), v_ref, rtol=1e-9)
    torch.testing.assert_close(ground_state(inst), res.m, rtol=1e-10, atol=1e-13)


def test_exact_mean_minimizes_energy():
    inst = make_instance(3, 10, 80, 0.05, seed=0)
    m = solve(inst, "exact").m
    e0 = inst.energy(m)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        d = 1e-3 * torch.randn(inst.n, generator=g, dtype=torch.float64)
        assert float(inst.energy(m + d)) > float(e0)
    # gradient A m - h vanishes
    grad = inst.hessian @ m - inst.fields
    assert float(grad.abs().max()) < 1e-12 * float(inst.fields.abs().max())


def test_exact_variances_scale_as_one_over_beta_and_mean_does_not():
    inst = make_instance(3, 10, 80, 0.5, seed=1)
    a, b = solve(inst, "exact", beta=10.0), solve(inst, "exact", beta=1000.0)
    torch.testing.assert_close(a.m, b.m, rtol=0, atol=0)
    torch.testing.assert_close(a.v, 100.0 * b.v, rtol=1e-12, atol=0)


def test_ground_state_at_lam_zero_is_min_norm_least_squares():
    inst = make_instance(2, 8, 40, 0.0, seed=2)
    S, y = inst.s.numpy(), inst.y.numpy()
    ref = np.linalg.lstsq(S, y, rcond=None)[0]
    np.testing.assert_allclose(ground_state(inst).numpy(), ref, rtol=1e-7, atol=1e-9)


# -------------------------------------------- message passing vs exact (means)
@pytest.mark.parametrize("solver", ["amp", "rbp"])
def test_amp_and_rbp_means_equal_exact(convention, solver):
    """Converged r-BP and AMP-with-Onsager fixed points have the exact mean
    (docs/solvers.md#onsager-term)."""
    inst = make_instance(4, 20, 200, 1.0, convention=convention, seed=0)
    ex = solve(inst, "exact", beta=BETA)
    res = solve(inst, solver, beta=BETA, damping=0.5, tol=1e-12, max_iter=5000)
    assert bool(res.converged) and res.status == "converged"
    assert 0 < res.n_iter < 5000
    assert float((res.m - ex.m).abs().max() / ex.m.abs().max()) < 1e-8
    # the undamped residual history ends below the tolerance
    assert float(res.residuals[-1]) < 1e-12
    assert res.residuals.shape == (res.n_iter,)


@pytest.mark.parametrize("solver", ["amp", "rbp"])
def test_variances_within_a_few_percent(solver):
    """TAP / r-BP variances vs diag((beta A)^-1): ~0.7% at paper-text D=10,N=100,P=1000."""
    inst = make_instance(10, 100, 1000, 0.01, convention="paper-text", seed=0)
    ex = solve(inst, "exact", beta=BETA)
    res = solve(inst, solver, beta=BETA, tol=1e-10)
    assert res.converged
    err = float(((res.v - ex.v).abs() / ex.v).mean())
    assert err < 0.03, err
    assert err > 1e-6  # approximate, not exact: the test would notice a silent copy of exact
    assert torch.all(res.v > 0)


# -------------------------------------------------------- amp-paper: the bias
def test_amp_paper_satisfies_eq34_at_its_fixed_point():
    inst = make_instance(6, 50, 500, 0.01, convention="paper-text", seed=1)
    res = solve(inst, "amp-paper", beta=BETA, tol=1e-13, max_iter=5000)
    assert res.converged
    J = inst.couplings
    h, lam_i, m, v = inst.fields, inst.lam_i, res.m, res.v
    V = BETA**2 * (J * J) @ v
    denom = BETA * lam_i - V
    assert torch.all(denom > 0)
    m_rhs = (BETA * h + BETA * J @ m) / denom  # eq. 34a
    v_rhs = 1.0 / denom  # eq. 34b
    assert float((m - m_rhs).abs().max() / m.abs().max()) < 1e-11
    assert float((v - v_rhs).abs().max() / v.abs().max()) < 1e-11
    # and it is NOT the exact mean: A m != h
    grad = inst.hessian @ m - h
    assert float(grad.norm() / h.norm()) > 1e-3


@pytest.mark.parametrize(
    "D, N, P, low, high",
    [(10, 100, 1000, 0.03, 0.10), (10, 100, 5000, 0.005, 0.02)],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_amp_paper_bias_is_real_and_amp_is_unbiased(D, N, P, low, high, seed):
    """docs/solvers.md#onsager-term: eq. 34a's mean is biased by ~6% (P=1000) and ~1% (P=5000); amp
    is exact."""
    inst = make_instance(D, N, P, 0.01, convention="paper-text", seed=seed)
    ex = solve(inst, "exact", beta=BETA)
    paper = solve(inst, "amp-paper", beta=BETA, tol=1e-10)
    amp = solve(inst, "amp", beta=BETA, tol=1e-12, max_iter=5000)
    assert paper.converged and amp.converged
    bias = rel(paper.m, ex.m)
    assert low < bias < high, bias
    assert rel(amp.m, ex.m) < 1e-8


@pytest.mark.slow
def test_amp_paper_bias_large_instance():
    """docs/solvers.md#onsager-term: 0.3% at D=20, N=100, P=10^4 (about 2 s)."""
    inst = make_instance(20, 100, 10_000, 0.01, convention="paper-text", seed=0)
    ex = solve(inst, "exact", beta=BETA)
    paper = solve(inst, "amp-paper", beta=BETA, tol=1e-10)
    amp = solve(inst, "amp", beta=BETA, tol=1e-12, max_iter=5000)
    assert 0.0015 < rel(paper.m, ex.m) < 0.006
    assert rel(amp.m, ex.m) < 1e-8


def test_amp_mean_independent_of_beta():
    """docs/solvers.md#amp: at fixed lam, AMP's mean does not depend on beta (v ~ 1/beta)."""
    inst = make_instance(4, 20, 200, 1.0, seed=0)
    a = solve(inst, "amp-paper", beta=10.0, tol=1e-12, max_iter=5000)
    b = solve(inst, "amp-paper", beta=1000.0, tol=1e-12, max_iter=5000)
    assert a.converged and b.converged
    assert rel(a.m, b.m) < 1e-9
    torch.testing.assert_close(a.v, 100 * b.v, rtol=1e-9, atol=0)


# --------------------------------------------------- ground-state scale (conventions.md)
@pytest.mark.parametrize("seed", [0, 1])
def test_ground_state_scale(convention, seed):
    """At large P, small lam: W11 ~ g I with g = Convention.ground_state_diag, W21 ~ 0."""
    D, N, P = 4, 20, 20_000
    inst = make_instance(D, N, P, 1e-6, convention=convention, seed=seed)
    m = solve(inst, "exact").m
    b = blocks(m)
    g = Convention(convention).ground_state_diag(D, N)
    expected = {"authors": (N + 1) / (N + D + 1), "paper-text": D * N / (N + D + 1)}
    expected["normalized"] = N / (N + D + 1)
    assert g == pytest.approx(expected[convention], rel=1e-14)
    diag = b.W11.diagonal()
    assert abs(float(diag.mean()) / g - 1) < 0.03
    off = b.W11 - torch.diag(diag)
    assert float(off.abs().max()) < 0.06 * g
    assert float(b.W21.abs().max()) < 0.05 * g
    # the last column of W has no field and no coupling: exactly zero
    assert torch.all(b.W12 == 0) and torch.all(b.W22 == 0)


# ------------------------------------------------------------ non-convergence
def test_divergence_is_reported():
    """Authors convention, D=4, N=20, P=200, lam=0.1: undamped-ish AMP diverges."""
    inst = make_instance(4, 20, 200, 0.1, seed=0)
    for solver in ("amp", "amp-paper"):
        with pytest.warns(ConvergenceWarning, match="diverged"):
            res = solve(inst, solver)
        assert res.status == "diverged"
        assert not res.converged
        assert not res.all_converged
        assert torch.isfinite(res.m).all() and torch.isfinite(res.v).all()
        assert res.n_iter < 2000


def test_max_iter_is_reported():
    inst = make_instance(4, 20, 200, 1.0, seed=0)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        res = solve(inst, "amp", max_iter=3)
    assert res.status == "max_iter" and not res.converged and res.n_iter == 3
    assert res.residuals.shape == (3,)
    assert torch.isfinite(res.m).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solve(inst, "amp", max_iter=3, warn=False)  # no warning when asked


def test_batched_divergence_keeps_the_others():
    """A diverging instance in a batch does not spoil its converging neighbour."""
    a = make_instance(4, 20, 200, 0.1, seed=0)  # authors: AMP diverges
    b = make_instance(4, 20, 200, 0.1, convention="paper-text", seed=0)  # converges
    inst = Instance.from_features(
        s=torch.stack([a.s, b.s, a.s]), y=torch.stack([a.y, b.y, a.y]), lam=0.1, config=a.config
    )
    with pytest.warns(ConvergenceWarning, match="diverged 2"):
        res = solve(inst, "amp")
    assert res.status.tolist() == ["diverged", "converged", "diverged"]
    assert res.converged.tolist() == [False, True, False]
    assert torch.isfinite(res.m).all()
    one = solve(b, "amp")
    torch.testing.assert_close(res.m[1], one.m, rtol=1e-10, atol=1e-14)
    assert int(res.n_iter[1]) == one.n_iter


# ----------------------------------------------------------- batched = single
@pytest.mark.parametrize("solver", solver_names())
def test_batched_equals_per_instance(solver):
    inst = make_instance(3, 15, 120, 1.0, convention="paper-text", seed=4, batch_shape=(3,))
    res = solve(inst, solver, tol=1e-10)
    assert res.batched and len(res) == 3
    assert res.m.shape == (3, inst.n) and res.v.shape == (3, inst.n)
    assert res.status.shape == (3,) and res.converged.shape == res.n_iter.shape == (3,)
    for i in range(3):
        one = solve(inst[i], solver, tol=1e-10)
        assert one.status == res.status[i] == res[i].status
        assert one.n_iter == int(res.n_iter[i])
        torch.testing.assert_close(res.m[i], one.m, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(res.v[i], one.v, rtol=1e-10, atol=0)


# ----------------------------------------------------------------- seeds
@pytest.mark.parametrize("solver", solver_names())
def test_same_seed_same_numbers(solver):
    a = solve(make_instance(3, 10, 60, 0.5, seed=8), solver)
    b = solve(make_instance(3, 10, 60, 0.5, seed=8), solver)
    assert torch.equal(a.m, b.m) and torch.equal(a.v, b.v)
    assert a.n_iter == b.n_iter and a.status == b.status


def test_float32_instance_solves():
    inst = make_instance(3, 10, 60, 1.0, seed=2)
    ex = solve(inst, "exact")
    r32 = solve(inst.to(dtype=torch.float32), "amp", tol=1e-5)
    assert r32.m.dtype == torch.float32 and r32.converged
    assert rel(r32.m.double(), ex.m) < 1e-3


@pytest.mark.parametrize("solver", ["amp", "amp-paper", "exact"])
def test_float32_agrees_with_float64(solver):
    """float32 (the fast path of benchmarks/solve.py) keeps the answer to ~1e-5."""
    from spinglass_icl.observables import contrast, spins_to_W, test_error

    inst = make_instance(12, 12, 288, 1.0, seed=4)
    r64 = solve(inst, solver, tol=1e-10)
    r32 = solve(inst.to(dtype=torch.float32), solver, tol=1e-5)
    assert r32.converged and r64.converged
    assert rel(r32.m.double(), r64.m) < 1e-4
    assert rel(r32.v.double(), r64.v) < 1e-4
    W32, W64 = spins_to_W(r32.m.double()), spins_to_W(r64.m)
    assert abs(float(contrast(W32)) - float(contrast(W64))) < 1e-4
    e32 = float(test_error(W32, 12, exact=True).relative)
    e64 = float(test_error(W64, 12, exact=True).relative)
    assert abs(e32 - e64) < 1e-4 * e64


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(beta=0.0), "beta"),
        (dict(beta=-1.0), "beta"),
        (dict(beta=float("nan")), "beta"),
        (dict(damping=1.0), "damping"),
        (dict(damping=-0.1), "damping"),
        (dict(damping=1.5), "damping"),
        (dict(tol=0.0), "tol"),
        (dict(max_iter=0), "max_iter"),
        (dict(solver="bp"), "solver"),
    ],
)
def test_bad_solver_arguments(small_instance, kwargs, name):
    args = dict(solver="amp")
    args.update(kwargs)
    with pytest.raises(ParameterError) as exc:
        solve(small_instance, **args)
    assert str(exc.value).startswith(name), str(exc.value)


@pytest.mark.parametrize("solver", solver_names())
def test_lam_zero_rejected_for_boltzmann_solvers(solver):
    inst = make_instance(2, 5, 20, 0.0, seed=0)
    with pytest.raises(ParameterError, match="^lam"):
        solve(inst, solver)


def test_non_instance_rejected():
    with pytest.raises(ParameterError, match="^instance"):
        solve(torch.zeros(3), "exact")


@pytest.mark.gpu
@pytest.mark.parametrize("solver", ["exact", "amp"])
def test_cuda_matches_cpu(solver):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    inst = make_instance(4, 20, 200, 1.0, seed=0)
    cpu = solve(inst, solver, tol=1e-12, max_iter=5000)
    gpu = solve(inst.to("cuda"), solver, tol=1e-12, max_iter=5000)
    assert gpu.m.is_cuda
    torch.testing.assert_close(gpu.m.cpu(), cpu.m, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------ the engine itself
def test_engine_damped_linear_map():
    """x <- d x + (1-d) F(x) with F(x) = 0.5 x + 1: fixed point 2, residual as documented."""
    from spinglass_icl.solvers.engine import iterate

    def F(state):
        (x,) = state
        return (0.5 * x + 1.0,), torch.ones(x.shape[:-1], dtype=torch.bool)

    x0 = torch.zeros(2, 3, dtype=torch.float64)
    out = iterate(F, (x0,), batch_shape=(2,), damping=0.5, tol=1e-12, max_iter=500)
    assert out.converged.all() and not out.diverged.any()
    torch.testing.assert_close(out.state[0], torch.full_like(x0, 2.0), rtol=0, atol=1e-11)
    # the residual history, recomputed by hand: r_t = |F(x) - x| / max(|F(x)|, |x|)
    x, expect = 0.0, []
    for _ in range(out.residuals.shape[0]):
        fx = 0.5 * x + 1.0
        expect.append(abs(fx - x) / max(abs(fx), abs(x)))
        x = 0.5 * x + 0.5 * fx
    r = out.residuals[:, 0]
    torch.testing.assert_close(r, torch.tensor(expect, dtype=torch.float64), rtol=1e-12, atol=0)
    assert float(r[-1]) < 1e-12 <= float(r[-2])
    assert int(out.n_iter[0]) == r.shape[0]


def test_engine_flags_invalid_and_blown_up_updates():
    from spinglass_icl.solvers.engine import iterate

    def F(state):
        (x,) = state
        ok = torch.tensor([True, bool(x[1, 0] < 3)])  # instance 1 turns invalid
        return (torch.stack([0.5 * x[0] + 1, x[1] + 1]),), ok

    out = iterate(F, (torch.zeros(2, 1, dtype=torch.float64),), batch_shape=(2,), tol=1e-10)
    assert out.converged.tolist() == [True, False]
    assert out.diverged.tolist() == [False, True]
    assert float(out.state[0][1, 0]) == 3.0  # last valid iterate kept

    def grow(state):
        (x,) = state
        return (10.0 * x,), torch.ones((), dtype=torch.bool)

    out = iterate(grow, (torch.ones(1, dtype=torch.float64),), batch_shape=(), max_iter=100)
    assert bool(out.diverged) and torch.isfinite(out.state[0]).all()


# ------------------------------------------------------ results of one kind
def test_results_have_short_reprs_and_batch_shaped_fields():
    from spinglass_icl import amp_stability
    from spinglass_icl.solvers import DenseOperators, get_solver, iterate, solver_names

    inst = make_instance(3, 10, 60, 1.0, seed=2, batch_shape=(3,))
    res = solve(inst, "amp", warn=False)
    st = amp_stability(inst)
    out = iterate(lambda s: ((0.5 * s[0],), torch.ones(3, dtype=torch.bool)),
                  (torch.ones(3, 4),), batch_shape=(3,))  # fmt: skip
    for obj in (res, res[0], st, st[1], inst, DenseOperators.of(inst), out, get_solver("amp")):
        text = repr(obj)
        assert len(text) < 300 and "tensor(" not in text and "array(" not in text, text
    assert st.variance_status.shape == st.reason.shape == st.converges.shape == (3,)
    one = amp_stability(inst[1])
    assert one.variance_status.shape == () and str(one.reason) == str(st[1].reason)
    assert bool(one.converges) == bool(st[1].converges)
    assert set(solver_names()) >= {"exact", "amp", "amp-paper", "rbp"}


def test_matrix_free_exact_reports_absent_variances_under_its_registered_name():
    from spinglass_icl.solvers import SolverResult

    inst = make_instance(3, 10, 60, 1.0, seed=2, batch_shape=(2,))
    cg = solve(inst, "exact", backend="matfree")
    assert cg.solver == "exact" and cg.v is None and "mean only" in cg.message
    assert cg.all_converged and bool((cg.n_iter > 0).all())
    ex = solve(inst, "exact").m
    assert float((cg.m - ex).abs().max() / ex.abs().max()) < 1e-8  # CG to tol 1e-10 |h|
    assert cg[0].v is None and SolverResult.cat([cg, cg]).v is None
    # the residual history is |A m - h| / |h| per CG step (below 1e-10 at the last one)
    last = cg.residuals[cg.n_iter - 1, torch.arange(2)]
    assert bool((last < 1e-10).all()) and float(cg.residuals[0].max()) < 1.0


def test_unknown_solver_names_are_refused_everywhere():
    from spinglass_icl.errors import ParameterError
    from spinglass_icl.experiments.presets import AmpStabilityPreset
    from spinglass_icl.solvers import SolverConfig
    from spinglass_icl.sweep import SweepSpec

    inst = make_instance(3, 10, 60, 1.0, seed=2)
    for call in (
        lambda: solve(inst, "bp"),
        lambda: SolverConfig("bp"),
        lambda: SweepSpec(fixed={"D": 3, "N": 4, "P": 20, "lam": 1.0, "solver": "bp"}),
        lambda: AmpStabilityPreset(solver="exact"),
    ):
        with pytest.raises(ParameterError, match="solver must be one of"):
            call()
