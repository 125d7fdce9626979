"""Finite task pools: sampling, e_ICL / e_IDG (Monte Carlo against closed form), the
Bayes baselines, the finite-kappa theory, the fast exact solution and the command."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from spinglass_icl import build_instance, ground_state, spins_to_W
from spinglass_icl.cli import main
from spinglass_icl.diversity import (
    TestContexts,
    baseline_errors,
    dmmse_predict,
    exact_weights,
    sample_pool_factors,
    task_diversity,
)
from spinglass_icl.errors import ParameterError
from spinglass_icl.observables import exact_test_error, moment_test_error
from spinglass_icl.tasks import (
    TASK_DISTRIBUTIONS,
    TaskConfig,
    TaskMoments,
    register_task,
    sample_factors,
    sample_prompts,
)
from spinglass_icl.theory import (
    pool_theory,
    ridge_error,
    ridge_icl,
    ridgeless_error,
    ridgeless_icl,
    ridgeless_idg,
    wishart_stieltjes,
    wishart_stieltjes_derivative,
)


def _weights(D, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = 0.15 * torch.randn(D + 1, D + 1, generator=g, dtype=torch.float64)
    return W + 0.3 * torch.eye(D + 1, dtype=torch.float64)


# ---------------------------------------------------------------- K = None unchanged


def test_no_pool_draws_are_the_old_draws_bit_for_bit():
    """K = None: prompts and factors are the draws of the code before pools existed
    (the original sampling written out here), for both samplers, with noise."""
    D, N, P, sig = 4, 6, 9, 0.3
    pr = sample_prompts(D, N, P, noise=sig, seed=5, batch_shape=(2,))
    g = torch.Generator().manual_seed(5)
    f64 = torch.float64
    w = torch.randn(2, P, D, generator=g, dtype=f64)
    x = torch.randn(2, P, D, N + 1, generator=g, dtype=f64)
    lab = torch.einsum("...d,...dn->...n", w, x) / math.sqrt(D)
    lab = lab + sig * torch.randn(2, P, N + 1, generator=g, dtype=f64)
    assert torch.equal(pr.w, w)
    assert torch.equal(pr.y, lab[..., -1])
    assert torch.equal(pr.X[..., :D, :], x)
    f = sample_factors(D, N, P, noise=sig, seed=5)
    g = torch.Generator().manual_seed(5)
    w, xq, gp, z = (torch.randn(P, k, generator=g, dtype=f64) for k in (D, D, D, N))
    r = w.norm(dim=-1, keepdim=True)
    e = w / r
    yc = r * z / math.sqrt(D) + sig * torch.randn(P, N, generator=g, dtype=f64)
    yq = (w * xq).sum(-1) / math.sqrt(D) + sig * torch.randn(P, generator=g, dtype=f64)
    syz, syy = (yc * z).sum(-1, keepdim=True), (yc * yc).sum(-1, keepdim=True)
    perp = gp - e * (e * gp).sum(-1, keepdim=True)
    assert torch.equal(f.u, torch.cat([syz * e + syy.sqrt() * perp, syy], -1))
    assert torch.equal(f.y, yq)
    assert torch.equal(f.q[:, :D], xq)


def test_no_pool_key_and_test_error_unchanged():
    t = TaskConfig(5, 7, 11, "normalized", 0.2)
    assert t.key() == {"D": 5, "N": 7, "P": 11, "convention": "normalized", "noise": 0.2}
    W = _weights(5)
    assert torch.equal(t.exact_test_error(W), exact_test_error(W, 7, "normalized", 0.2))
    assert torch.equal(t.exact_test_error(W, "idg"), t.exact_test_error(W, "icl"))
    # positional construction as before
    assert TaskConfig(5, 7, 11, "normalized", 0.2) == t


def test_key_with_pool_and_registry():
    t = TaskConfig(5, 7, 11, tasks=3, pool_seed=2, assignment="equal", task_norm="sphere")
    k = t.key()
    assert k["tasks"] == 3 and k["pool_seed"] == 2 and k["assignment"] == "equal"
    assert k["task_norm"] == "sphere"
    assert t.key_hash() != dataclasses.replace(t, tasks=4).key_hash()
    assert len(t.key_hash()) == 64
    assert "gaussian" in TASK_DISTRIBUTIONS
    assert "tasks=3" in repr(t)

    @dataclasses.dataclass(frozen=True)
    class Twice(TaskConfig):
        name = "twice-test"

    register_task(Twice)
    try:
        assert Twice(3, 4, 5).key()["distribution"] == "twice-test"
        with pytest.raises(ParameterError, match="already registered"):

            @dataclasses.dataclass(frozen=True)
            class Other(TaskConfig):
                name = "twice-test"

            register_task(Other)
    finally:
        TASK_DISTRIBUTIONS.pop("twice-test")


# ---------------------------------------------------------------- sampling a pool


def test_pool_prompts_take_pool_tasks():
    t = TaskConfig(4, 5, 12, tasks=3, pool_seed=9, assignment="equal")
    pr = sample_prompts(t, seed=1)
    pool = t.pool
    for mu in range(12):
        assert torch.equal(pr.w[mu], pool[mu % 3])
    tu = dataclasses.replace(t, assignment="uniform")
    pr = sample_prompts(tu, seed=1)
    assert all(any(torch.equal(w, p) for p in pool) for w in pr.w)
    ts = dataclasses.replace(t, task_norm="sphere")
    assert torch.allclose(ts.pool.norm(dim=-1), torch.full((3,), 2.0, dtype=torch.float64))


def test_nested_equal_assignment_is_prefix_consistent():
    from spinglass_icl.tasks import sample_prompts_nested

    t = TaskConfig(3, 4, 150, tasks=7, assignment="equal")
    big = sample_prompts_nested(t, seed=2)
    small = sample_prompts_nested(dataclasses.replace(t, P=70), seed=2)
    assert torch.equal(big.X[:70], small.X)
    for mu in (0, 63, 64, 65, 149):
        assert torch.equal(big.w[mu], t.pool[mu % 7])


@pytest.mark.parametrize("sampler", ["factors", "wishart"])
def test_factor_samplers_support_the_pool(sampler):
    """The exact-law factor samplers hold for a pool (the law is conditional on the
    task): moments of u and y~ agree with the prompts' factors (4 standard errors)."""
    t = TaskConfig(3, 5, 40000, "normalized", 0.3, tasks=2, pool_seed=4, assignment="equal")
    ref = sample_prompts(t, seed=0).factors()
    f = sample_factors(t, seed=1) if sampler == "factors" else sample_pool_factors(t, 1)
    for name, fn in (
        ("u", lambda z: z.u),
        ("u^2", lambda z: z.u**2),
        ("u y", lambda z: z.u * z.y[:, None]),
    ):
        a, b = fn(ref), fn(f)
        se = ((a.var(0) + b.var(0)) / a.shape[0]).sqrt()
        assert ((a.mean(0) - b.mean(0)).abs() <= 4.5 * se).all(), name


# ---------------------------------------------------------------- two test errors


@pytest.mark.parametrize("convention", ["authors", "normalized", "paper-text"])
@pytest.mark.parametrize("task_norm", ["gaussian", "sphere"])
def test_monte_carlo_icl_idg_match_closed_form(convention, task_norm):
    """MC over 100 000 test prompts against the moment formula: within 4 standard errors."""
    t = TaskConfig(4, 6, 10, convention, 0.3, tasks=3, pool_seed=1, task_norm=task_norm)
    W = _weights(4, seed=2)
    for kind in ("icl", "idg"):
        mc = t.test_error(W, kind, n_tasks=100_000, seed=3)
        ex = t.test_error(W, kind, exact=True)
        assert abs(float(mc.absolute) - float(ex.absolute)) < 4 * float(mc.stderr), kind
        assert float(ex.relative) == pytest.approx(float(ex.absolute) / t.label_variance(kind))


def test_moment_formula_with_gaussian_moments_is_the_old_formula():
    W = _weights(6, seed=4)
    t = TaskConfig(6, 9, 1, "authors", 0.4)
    a = exact_test_error(W, 9, "authors", 0.4)
    b = moment_test_error(W, 9, "authors", 0.4, t.fresh_moments())
    assert float(a) == pytest.approx(float(b), rel=1e-13)


def test_k_equals_one_idg_is_the_error_at_that_task():
    """K = 1: e_IDG is the test error with the task fixed at the pool's task (MC with
    that task, 100 000 prompts, 4 standard errors)."""
    t = TaskConfig(3, 5, 4, "normalized", 0.2, tasks=1, pool_seed=3)
    W = _weights(3, seed=5)
    w = t.pool[0]
    pr = sample_prompts(TaskConfig(3, 5, 100_000, "normalized", 0.2), seed=8)
    # relabel the same inputs with the pool's task
    x = pr.X[:, :3, :]
    g = torch.Generator().manual_seed(1)
    lab = (w @ x) / math.sqrt(3) + 0.2 * torch.randn(100_000, 6, generator=g, dtype=torch.float64)
    X = torch.cat([x, lab[:, None, :]], 1)
    X[:, 3, -1] = 0
    u = torch.einsum("pmi,pi->pm", X[..., :5], X[:, 3, :5])
    pred = torch.einsum("pa,ab,pb->p", u, W, X[..., -1]) / 5
    err = (lab[:, -1] - pred) ** 2
    ex = float(t.exact_test_error(W, "idg"))
    assert abs(float(err.mean()) - ex) < 4 * float(err.std() / math.sqrt(100_000))
    m = TaskMoments.of(w[None])
    assert torch.allclose(m.second, torch.outer(w, w))


def test_large_pool_idg_tends_to_icl():
    """K -> inf: the pool's moments tend to the fresh ones, e_IDG to e_ICL (K = 40000,
    D = 4: within 2 %)."""
    t = TaskConfig(4, 6, 10, "normalized", 0.1, tasks=40_000)
    W = _weights(4, seed=6)
    icl, idg = float(t.exact_test_error(W, "icl")), float(t.exact_test_error(W, "idg"))
    assert idg == pytest.approx(icl, rel=0.02)


# ---------------------------------------------------------------- baselines


def test_dmmse_matches_brute_force_posterior():
    """dMMSE from sufficient statistics against the posterior written out prompt by
    prompt (Gaussian likelihood of every context label, uniform prior), K = 3, D = 2."""
    rng = np.random.default_rng(0)
    D, N, K, s, sig = 2, 4, 3, 0.7, 0.5
    pool = rng.standard_normal((K, D))
    for _ in range(5):
        x = rng.standard_normal((N, D))
        y = s * x @ pool[rng.integers(K)] + sig * rng.standard_normal(N)
        xq = rng.standard_normal(D)
        logl = np.array(
            [
                sum(-((y[i] - s * x[i] @ pool[k]) ** 2) / (2 * sig**2) for i in range(N))
                for k in range(K)
            ]
        )
        p = np.exp(logl - logl.max())
        p /= p.sum()
        ref = s * (p @ pool) @ xq
        T = torch.from_numpy
        got = dmmse_predict(
            T(pool), T(x.T @ x)[None], T(x.T @ y)[None], T(np.array([y @ y])), T(xq)[None], s, sig
        )
        assert float(got[0]) == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_dmmse_beats_ridge_in_distribution_at_small_k():
    """K = 2, D = 8, N = 4 (a context too short for ridge): dMMSE's e_IDG is below ridge's;
    on fresh tasks it is worse (it only knows the pool)."""
    t = TaskConfig(8, 4, 8, "normalized", 0.1, tasks=2, task_norm="sphere")
    ctx = TestContexts.draw(8, 4, 3000, seed=1)
    b = baseline_errors(t, ctx, seed=2)
    assert b["dmmse"][1] < 0.5 * b["ridge"][1]
    assert b["dmmse"][0] > b["ridge"][0]


# ---------------------------------------------------------------- theory


def test_stieltjes_limits_and_derivative():
    x = np.array([0.05, 0.3, 2.0])
    assert np.allclose(wishart_stieltjes(x, math.inf), 1 / (1 + x))
    assert np.allclose(wishart_stieltjes(x, 1e9), 1 / (1 + x), rtol=1e-7)
    for k in (0.3, 1.0, 5.0):
        h = 1e-6
        num = (wishart_stieltjes(x + h, k) - wishart_stieltjes(x - h, k)) / (2 * h)
        assert np.allclose(wishart_stieltjes_derivative(x, k), num, rtol=1e-6)
    # against the sample second moment of K = kappa D Gaussian tasks (D = 400)
    rng = np.random.default_rng(0)
    D, kappa, xx = 400, 0.5, 0.3
    w = rng.standard_normal((int(kappa * D), D))
    R = w.T @ w / w.shape[0]
    emp = np.trace(np.linalg.inv(R + xx * np.eye(D))) / D
    assert emp == pytest.approx(wishart_stieltjes(xx, kappa), rel=0.02)


def test_finite_kappa_theory_limits():
    a, t = np.array([0.5, 2.0, 10.0]), np.array([0.4, 3.0, 10.0])
    # kappa -> inf: the kappa-free formulas
    assert np.allclose(ridgeless_icl(a, 1e10, t), ridgeless_error(a, t), rtol=1e-6)
    assert np.allclose(ridge_icl(a, 1e10, t, 0.1, 0.2), ridge_error(a, t, 0.1, 0.2), rtol=1e-6)
    assert np.allclose(ridgeless_idg(a, 1e10, t, 0.1), ridgeless_icl(a, 1e10, t, 0.1), rtol=1e-5)
    # lam' -> 0: ridge e_ICL -> ridgeless e_ICL at finite kappa
    for kap in (0.3, 1.0, 4.0):
        assert np.allclose(
            ridge_icl(a, kap, t, 1e-9, 0.1), ridgeless_icl(a, kap, t, 0.1), rtol=1e-4
        )
    # the gap closes with kappa and is large below kappa = 1
    g = [pool_theory(32, 320, 10240, K, 1e-6, "normalized", 0.1).gtask for K in (6, 32, 1024)]
    assert g[0] > g[1] > g[2] >= 0 and g[2] < 0.01 * g[0]


@pytest.mark.slow
def test_finite_d_gtask_approaches_theory():
    """alpha = 2, tau = 2, kappa = 1, lam' = 1e-4 D-free: the exact ground state's g_task
    moves toward Lu et al.'s as D = 10, 20, 40 (measured gaps 0.22, 0.10, 0.06 of a
    theory value 0.37), and is within 25 % at D = 40."""
    th = None
    gaps = []
    for D, avg in ((10, 16), (20, 8), (40, 4)):
        rows = task_diversity(
            D, 2 * D, 2 * D * D, [D], lam=1e-4 / D, convention="normalized",
            averages=avg, baselines=False, seed=1,
        )  # fmt: skip
        ex = next(r for r in rows if r.estimator == "exact")
        th = next(r for r in rows if r.estimator == "theory")
        gaps.append(abs(ex.gtask - th.gtask))
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.25 * th.gtask


# ---------------------------------------------------------------- exact solution


@pytest.mark.parametrize("P", [20, 150, 2000])
def test_exact_weights_equal_ground_state(P):
    """The dual (P <= n), dense and preconditioned-CG paths against the Cholesky ground
    state (D = 4 dense / dual; D = 22 CG with P = 2000 > n = 506)."""
    D = 4 if P < 2000 else 22
    t = TaskConfig(D, 8, P, "normalized", 0.1, tasks=3, assignment="equal", task_norm="sphere")
    f = sample_pool_factors(t, 2)
    W = exact_weights(f.u[None], f.q[None], f.y[None], t.prefactor, 1e-3)[0]
    ref = spins_to_W(ground_state(build_instance(f, 1e-3)))
    assert torch.allclose(W, ref, rtol=0, atol=1e-8 * float(ref.abs().max()))


def _cg_instances(B=3, D=22, P=2400, K=5, seed=0):
    """B instances on the CG path (n = D (D+1) = 506 > 420 dense weights, P > n)."""
    cfgs = [
        TaskConfig(D, 2 * D, P, "normalized", 0.1, tasks=K, pool_seed=seed + j, task_norm="sphere")
        for j in range(B)
    ]
    fs = [sample_pool_factors(t, seed + 10 + j) for j, t in enumerate(cfgs)]
    u, q, y = (torch.stack([getattr(f, k) for f in fs]) for k in ("u", "q", "y"))
    return cfgs, u, q, y


def _errors(cfgs, W):
    return torch.tensor(
        [[float(t.exact_test_error(W[j], k)) for k in ("icl", "idg")] for j, t in enumerate(cfgs)],
        dtype=torch.float64,
    )


def test_mixed_precision_cg_keeps_float64_accuracy():
    """float32 CG corrections on the float64 residual stop at the same float64 residual
    as the float64 CG: W within 1e-8 (relative, the largest entry), e_ICL and e_IDG
    within 1e-10 (relative), both against a float64 solution 1000x tighter; and the
    solver is really float32 inside (the corrections' products run in float32)."""
    from spinglass_icl import diversity as dv

    cfgs, u, q, y = _cg_instances()
    c, lam = cfgs[0].prefactor, 1e-6
    ref = exact_weights(u, q, y, c, lam, tol=1e-14, max_iter=500)
    e_ref = _errors(cfgs, ref)
    seen = []
    orig = dv._RankOneOperator.__call__

    def spy(self, M):
        seen.append(M.dtype)
        return orig(self, M)

    Ws = {"double": exact_weights(u, q, y, c, lam, precision="double")}
    dv._RankOneOperator.__call__ = spy
    try:
        Ws["mixed"] = exact_weights(u, q, y, c, lam, precision="mixed")
    finally:
        dv._RankOneOperator.__call__ = orig
    assert 1 <= seen.count(torch.float64) <= 4 < seen.count(torch.float32)
    for p, W in Ws.items():
        assert W.dtype == torch.float64
        rel = ((W - ref).abs().amax((-2, -1)) / ref.abs().amax((-2, -1))).max()
        assert rel < 1e-8, p
        assert ((_errors(cfgs, W) - e_ref).abs() / e_ref).max() < 1e-10, p
    # the float64 residual of the mixed solution meets the tolerance (1e-11)
    D, P = u.shape[-1] - 1, u.shape[-2]
    X, qa = Ws["mixed"][..., :D], q[..., :D]
    op = dv._RankOneOperator(u, qa, c, lam, torch.float64)
    b = (c / P) * (u * y[..., None]).transpose(-1, -2) @ qa
    res = (b - op(X)).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)
    assert (res <= 1e-11).all()


def test_batched_solution_equals_one_instance_at_a_time():
    """The batch (every instance iterates until all converge) against each instance
    alone: W within 1e-8, errors within 1e-10 (relative), both precisions."""
    cfgs, u, q, y = _cg_instances(B=3, seed=5)
    c = cfgs[0].prefactor
    for p in ("double", "mixed"):
        Wb = exact_weights(u, q, y, c, 1e-6, precision=p)
        W1 = torch.cat([exact_weights(u[j : j + 1], q[j : j + 1], y[j : j + 1], c, 1e-6,
                                      precision=p) for j in range(3)])  # fmt: skip
        rel = ((Wb - W1).abs().amax((-2, -1)) / W1.abs().amax((-2, -1))).max()
        assert rel < 1e-8
        e1 = _errors(cfgs, W1)
        assert ((_errors(cfgs, Wb) - e1).abs() / e1).max() < 1e-10


def test_batch_draw_is_the_per_instance_draw():
    """task_diversity's batch is filled (on threads) with sample_pool_factors's numbers,
    bit for bit, for every assignment and without a pool."""
    from spinglass_icl.diversity import _draw_batch

    for kw in (dict(tasks=3), dict(tasks=4, assignment="uniform"), dict(tasks=None)):
        cfgs = [TaskConfig(5, 7, 60, "normalized", 0.2, pool_seed=j, **kw) for j in range(3)]
        u, qa, y = _draw_batch(cfgs, [11, 12, 13])
        for j, t in enumerate(cfgs):
            f = sample_pool_factors(t, 11 + j)
            assert torch.equal(u[j], f.u) and torch.equal(y[j], f.y)
            assert torch.equal(qa[j], f.q[:, :5]) and not f.q[:, 5].any()


def test_pool_factor_sampler_matches_its_formula():
    """The streamlined sampler (pool directions normalized once, the projection folded
    into one coefficient) against the formula written out plainly on the same draws
    (1e-13 relative)."""
    D, N, P, sig = 6, 9, 50, 0.3
    for kw in (dict(tasks=4, assignment="uniform"), dict(tasks=5, assignment="equal")):
        t = TaskConfig(D, N, P, "normalized", sig, pool_seed=2, **kw)
        f = sample_pool_factors(t, 7)
        rng = np.random.default_rng(7)
        pool = t.pool.numpy()
        uniform = t.assignment == "uniform"
        idx = rng.integers(t.tasks, size=P) if uniform else np.arange(P) % t.tasks
        w = pool[idx]
        xq, gp = rng.standard_normal((P, D)), rng.standard_normal((P, D))
        c1, c2 = np.sqrt(rng.chisquare(N, size=P)), np.sqrt(rng.chisquare(N - 1, size=P))
        nn = rng.standard_normal(P)
        s, r = t.label_scale, np.linalg.norm(w, axis=1)
        e = w / r[:, None]
        syz = s * r * c1 * c1 + sig * c1 * nn
        syy = (s * r) ** 2 * c1 * c1 + 2 * s * r * sig * c1 * nn + sig**2 * (nn * nn + c2 * c2)
        perp = gp - e * (e * gp).sum(1, keepdims=True)
        u = np.concatenate([syz[:, None] * e + np.sqrt(syy)[:, None] * perp, syy[:, None]], 1)
        yq = s * (w * xq).sum(1) + sig * rng.standard_normal(P)
        for a, b in ((f.u, u), (f.y, yq), (f.q[:, :D], xq)):
            assert np.abs(a.numpy() - b).max() <= 1e-13 * np.abs(b).max()


def test_curve_mixed_equals_double():
    """The whole curve (CG path, D = 21) with mixed and float64 CG: every row within
    1e-10 (relative)."""
    kw = dict(noise=0.1, lam=1e-6, convention="normalized", averages=2, baselines=False)
    rows = {
        p: task_diversity(21, 42, 2000, [4, 40], precision=p, **kw) for p in ("double", "mixed")
    }
    for a, b in zip(rows["double"], rows["mixed"]):
        for k in ("icl", "idg", "gtask"):
            assert getattr(b, k) == pytest.approx(getattr(a, k), rel=1e-10, abs=1e-14), k


def test_cost_model_picks_dense_or_cg_and_both_agree(monkeypatch):
    """At tau = 10 the dense normal equations up to D = 11, CG from D = 12 (never past
    DENSE_MAX_WEIGHTS); both routes give the same W at the switch (1e-9)."""
    from spinglass_icl import diversity as dv

    assert [dv.dense_is_cheaper(D, 10 * D * D) for D in (4, 10, 11, 12, 32)] == [
        True, True, True, False, False,
    ]  # fmt: skip
    assert not dv.dense_is_cheaper(30, 10**9) and not dv.dense_is_cheaper(4, 20)
    t = TaskConfig(12, 24, 1440, "normalized", 0.1, tasks=6, task_norm="sphere")
    f = sample_pool_factors(t, 3)
    args = (f.u[None], f.q[None], f.y[None], t.prefactor, 1e-6)
    cg = exact_weights(*args)
    monkeypatch.setattr(dv, "GEMM_ADVANTAGE", 100.0)
    assert dv.dense_is_cheaper(12, 1440)
    dense = exact_weights(*args)
    assert torch.allclose(cg, dense, rtol=0, atol=1e-9 * float(dense.abs().max()))


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(tasks=0), "tasks .*integer >= 1 or None, got 0"),
        (dict(tasks=2.5), "tasks .*integer >= 1 or None, got 2.5"),
        (dict(tasks="many"), "tasks .*got 'many'"),
        (dict(tasks=3, assignment="round"), "assignment"),
        (dict(tasks=3, task_norm="cube"), "task_norm"),
    ],
)
def test_bad_pool_parameters(kw, match):
    with pytest.raises(ParameterError, match=match):
        TaskConfig(3, 4, 5, **kw)


def test_equal_assignment_needs_k_at_most_p():
    t = TaskConfig(3, 4, 5, tasks=6, assignment="equal")
    for draw in (
        lambda: sample_prompts(t),
        lambda: sample_factors(t),
        lambda: sample_pool_factors(t),
    ):
        with pytest.raises(ParameterError, match="tasks must be <= P = 5 .*got 6"):
            draw()


@pytest.mark.parametrize(
    "tasks, match",
    [
        (["2.5"], "got '2.5'"),
        (["0"], "tasks must be an integer >= 1, got 0"),
        (["99"], "<= P = 40"),
    ],
)
def test_cli_bad_tasks_one_line(capsys, tasks, match):
    rc = main(["task-diversity", "--D", "3", "--N", "4", "--P", "40", "--tasks", *tasks])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "error:" in err and re_search(match, err)


def re_search(pattern, text):
    import re

    return re.search(pattern, text) is not None


# ---------------------------------------------------------------- the command


def test_cli_json_rows(capsys):
    rc = main(
        "task-diversity --D 4 --N 8 --P 64 --tasks 2 8 --noise 0.1 --lam 1e-4 "
        "--convention normalized --averages 3 --test-prompts 200 --seed 0 --json".split()
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    keys = {"tasks", "kappa", "estimator", "icl", "icl_std", "idg", "idg_std", "gtask", "gtask_std"}
    assert {tuple(sorted(r)) for r in out["rows"]} == {tuple(sorted(keys))}
    est = [(r["tasks"], r["estimator"]) for r in out["rows"]]
    assert est == [(K, e) for K in (2, 8) for e in ("exact", "dmmse", "ridge", "theory")]
    for r in out["rows"]:
        assert r["gtask"] == pytest.approx(r["icl"] - r["idg"])
        assert r["kappa"] == r["tasks"] / 4
    assert out["convention"] == "normalized" and "version" in out


def test_cli_table(capsys):
    rc = main("task-diversity --D 3 --N 6 --P 30 --tasks 2 none --averages 2".split())
    text = capsys.readouterr().out
    assert rc == 0
    assert "K = 2  (kappa = 0.6667)" in text and "K = None  (kappa = inf)" in text
    assert "dmmse" in text and "theory" in text


def test_amp_rows_equal_exact_where_amp_converges():
    """AMP with the Onsager term has the exact mean: where it converges, its e_ICL and
    e_IDG are the exact solution's (1e-6); unconverged instances are left out with a
    warning, never averaged in."""
    kw = dict(noise=0.1, lam=0.5, convention="normalized", averages=3, baselines=False)
    ex = task_diversity(4, 40, 160, [16], **kw)[0]
    amp = task_diversity(4, 40, 160, [16], solver="amp", **kw)[0]
    assert amp.estimator == "amp"
    assert amp.icl == pytest.approx(ex.icl, rel=1e-6)
    assert amp.idg == pytest.approx(ex.idg, rel=1e-6)


def test_cli_refuses_a_size_that_cannot_fit(capsys):
    rc = main("task-diversity --D 3000 --N 4 --P 1000000 --tasks 4".split())
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "needs about" in err and "--no-memory-check" in err


def test_sweep_seeds_hash_the_distribution_key():
    """Sweep seeds hash TaskConfig.key(): for the paper's law that is the five fields
    hashed before (so old stores resume), another registered law gets seeds of its own."""
    from spinglass_icl.sweep.spec import SweepSpec, derive_seed

    fixed = {"D": 4, "N": 5, "lam": 0.1, "convention": "normalized", "noise": 0.5}
    spec = SweepSpec(grid={"P": [10, 20]}, fixed=fixed, repeats=2, seed=3)
    for t in spec.tasks():
        data = {k: t.params[k] for k in ("D", "N", "P", "convention", "noise")}
        assert t.seed == derive_seed("instance", 3, data, t.repeat)
        assert t.task_config.key() == data

    @dataclasses.dataclass(frozen=True)
    class Other(TaskConfig):
        name = "other-test"

    register_task(Other)
    try:
        other = SweepSpec(
            grid={"P": [10, 20]}, fixed=fixed, repeats=2, seed=3, distribution="other-test"
        )
        assert not {t.seed for t in other.tasks()} & {t.seed for t in spec.tasks()}
        assert not {t.key for t in other.tasks()} & {t.key for t in spec.tasks()}
        assert isinstance(other.tasks()[0].task_config, Other)
        assert "distribution" in other.to_dict() and "distribution" not in spec.to_dict()
    finally:
        TASK_DISTRIBUTIONS.pop("other-test")


def test_no_pool_monte_carlo_equals_the_old_monte_carlo():
    from spinglass_icl.observables import test_error

    t = TaskConfig(4, 6, 10, "authors", 0.2)
    W = _weights(4, seed=9)
    a = t.test_error(W, n_tasks=3000, seed=4, chunk=1000)
    b = test_error(W, 6, convention="authors", noise=0.2, n_tasks=3000, seed=4, chunk=1000)
    assert torch.equal(a.absolute, b.absolute) and torch.equal(a.stderr, b.stderr)
    assert a.n_tasks == b.n_tasks == 3000
