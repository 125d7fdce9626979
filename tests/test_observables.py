"""Observables (eq. 9, Fig. 4a): spins <-> W, blocks, contrast ratio, test error."""

from __future__ import annotations

import math

import pytest
import torch

from spinglass_icl import observables as obs
from spinglass_icl.conventions import Convention
from spinglass_icl.errors import ParameterError
from spinglass_icl.observables import W_to_spins, blocks, contrast, predict, spins_to_W
from spinglass_icl.tasks import make_generator, sample_prompts


def test_spins_W_round_trip_row_major():
    D = 3
    sigma = torch.arange((D + 1) ** 2, dtype=torch.float64)
    W = spins_to_W(sigma)
    assert W.shape == (D + 1, D + 1)
    for m in range(D + 1):
        for n in range(D + 1):
            assert W[m, n] == (D + 1) * m + n  # spin i = (D+1) m + n (docs/solvers.md#spin-index)
    assert torch.equal(W_to_spins(W), sigma)
    batch = torch.randn(2, 5, 16, dtype=torch.float64)
    assert torch.equal(W_to_spins(spins_to_W(batch)), batch)
    with pytest.raises(ValueError):
        spins_to_W(torch.zeros(15))


def test_blocks_shapes_and_content():
    D = 4
    W = torch.randn(3, D + 1, D + 1, dtype=torch.float64)
    b = blocks(W)
    assert b.W11.shape == (3, D, D)
    assert b.W12.shape == (3, D, 1)
    assert b.W21.shape == (3, 1, D)
    assert b.W22.shape == (3, 1, 1)
    assert torch.equal(b.W11, W[:, :D, :D]) and torch.equal(b.W22[..., 0, 0], W[:, D, D])
    b1 = blocks(W_to_spins(W[0]))  # spins work too
    assert torch.equal(b1.W21, W[0, D:, :D])


@pytest.mark.parametrize("kind", ["w11", "full", "cosine"])
def test_contrast_of_identity_is_one(kind):
    for D in (1, 3, 10):
        W = 2.5 * torch.eye(D + 1, dtype=torch.float64)
        assert float(contrast(W, kind)) == pytest.approx(1.0, abs=1e-14)
        assert float(contrast(W_to_spins(W), kind)) == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize("fn", ["contrast", "test_error"])
def test_one_dimensional_spins_accepted(fn):
    """The docstrings promise 'W may be spins'; a flat spin vector must work like W."""
    W = torch.eye(4, dtype=torch.float64)
    if fn == "contrast":
        assert float(contrast(W_to_spins(W))) == pytest.approx(1.0)
    else:
        a = obs.test_error(W_to_spins(W), 5, n_tasks=100)
        assert float(a.absolute) == float(obs.test_error(W, 5, n_tasks=100).absolute)


def test_contrast_formula_and_batch():
    W = torch.tensor([[2.0, 1.0, 9.0], [-1.0, 3.0, 9.0], [9.0, 9.0, 9.0]], dtype=torch.float64)
    # W11 = [[2, 1], [-1, 3]]: <m_ii^2> = 6.5, <m_ij^2> = 1 -> C = 5.5 / 6.5
    assert float(contrast(W)) == pytest.approx(5.5 / 6.5, rel=1e-14)
    # full: diag (4 + 9 + 81)/3, off (1 + 81 + 1 + 81 + 81 + 81)/6
    d, o = 94 / 3, 326 / 6
    assert float(contrast(W, "full")) == pytest.approx((d - o) / d, rel=1e-14)
    # cosine between W11 and I_2: (2 + 3) / (sqrt(15) sqrt(2))
    assert float(contrast(W, "cosine")) == pytest.approx(5 / math.sqrt(30), rel=1e-14)
    batch = torch.stack([W, 2 * torch.eye(3, dtype=torch.float64)])
    c = contrast(batch)
    assert c.shape == (2,)
    assert float(c[1]) == pytest.approx(1.0)


def test_contrast_of_random_matrix_is_near_zero():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(20, 61, 61, generator=g, dtype=torch.float64)
    # for i.i.d. entries <m_ii^2> = <m_ij^2>: C -> 0 with fluctuations ~ sqrt(2/D)
    c = contrast(W)
    assert abs(float(c.mean())) < 0.1
    assert float(c.abs().max()) < 0.6
    cos = contrast(W, "cosine")  # ~ N(0, 1/D)
    assert float(cos.abs().max()) < 5 / math.sqrt(60)


def test_contrast_bad_kind():
    with pytest.raises(ParameterError, match="^contrast kind"):
        contrast(torch.eye(3), "trace")


def test_predict_equals_brute_force_matrix_products(convention):
    D, N, M = 3, 7, 25
    pr = sample_prompts(D, N, M, convention=convention, seed=1)
    W = torch.randn(D + 1, D + 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    c = Convention(convention).prefactor(D, N)
    brute = torch.stack([c * (X @ X.T @ W @ X)[D, N] for X in pr.X])
    torch.testing.assert_close(predict(W, pr.X, c), brute, rtol=1e-10, atol=1e-12)
    # a batch of W against one set of prompts
    Wb = torch.stack([W, 2 * W])
    yb = predict(Wb, pr.X, c)
    assert yb.shape == (2, M)
    torch.testing.assert_close(yb[1], 2 * brute, rtol=1e-10, atol=1e-12)


def test_test_error_equals_brute_force_on_the_same_prompts():
    """test_error = mean over the seed's prompts of (y~ - c (X X^T W X)[D,N])^2."""
    D, N, n_tasks, seed = 3, 6, 300, 77
    W = torch.randn(D + 1, D + 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    err = obs.test_error(W, N, convention="paper-text", noise=0.2, n_tasks=n_tasks, seed=seed)
    pr = sample_prompts(
        D, N, n_tasks, convention="paper-text", noise=0.2, generator=make_generator(seed)
    )
    c = Convention("paper-text").prefactor(D, N)
    sq = torch.stack([(y - c * (X @ X.T @ W @ X)[D, N]) ** 2 for X, y in zip(pr.X, pr.y)])
    assert float(err.absolute) == pytest.approx(float(sq.mean()), rel=1e-10)
    assert float(err.stderr) == pytest.approx(float(sq.std() / math.sqrt(n_tasks)), rel=1e-6)
    assert float(err.relative) == pytest.approx(float(sq.mean()) / (D + 0.2**2), rel=1e-10)
    assert err.n_tasks == n_tasks


@pytest.mark.parametrize("factor", [0.5, 1.0, 1.5])
def test_test_error_of_scaled_identity_matches_closed_form(convention, factor):
    """For W11 = g I, W21 = 0 (no noise): with b = c g and Wishart moments
    E[X0 X0^T] = N I, E[(X0 X0^T)^2] = N (N + D + 1) I,
    eps_g / E y~^2 = 1 - 2 b N + b^2 N (N + D + 1); minimal at the ground-state g."""
    D, N = 5, 20
    conv = Convention(convention)
    g = factor * conv.ground_state_diag(D, N)
    W = torch.zeros(D + 1, D + 1, dtype=torch.float64)
    W[:D, :D] = g * torch.eye(D, dtype=torch.float64)
    b = conv.prefactor(D, N) * g
    rel_exact = 1 - 2 * b * N + b * b * N * (N + D + 1)
    err = obs.test_error(W, N, convention=convention, n_tasks=40_000, seed=3)
    assert float(err.relative) == pytest.approx(float(err.absolute) / conv.label_variance(D))
    se_rel = float(err.stderr) / conv.label_variance(D)
    assert abs(float(err.relative) - rel_exact) < 5 * se_rel, (float(err.relative), rel_exact)
    if factor == 1.0:
        assert rel_exact == pytest.approx((D + 1) / (N + D + 1), rel=1e-12)


def test_test_error_seeded_and_batched():
    W = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = obs.test_error(W, 5, n_tasks=500, seed=1)
    b = obs.test_error(W, 5, n_tasks=500, seed=1)
    assert a.absolute.shape == (2,)
    assert torch.equal(a.absolute, b.absolute)
    single = obs.test_error(W[1], 5, n_tasks=500, seed=1)
    assert float(single.absolute) == pytest.approx(float(a.absolute[1]), rel=1e-12)
    assert "±" in str(a)


@pytest.mark.parametrize("kwargs, name", [(dict(N=0), "N"), (dict(n_tasks=0), "n_tasks")])
def test_test_error_bad_input(kwargs, name):
    args = dict(N=5, n_tasks=10)
    args.update(kwargs)
    with pytest.raises(ParameterError, match=f"^{name}"):
        obs.test_error(torch.eye(4, dtype=torch.float64), **args)
    with pytest.raises(ParameterError, match="^convention"):
        obs.test_error(torch.eye(4, dtype=torch.float64), 5, convention="x")


@pytest.mark.parametrize("convention", ["authors", "paper-text", "normalized"])
def test_exact_test_error_option_agrees_with_monte_carlo(convention):
    """test_error(exact=True) is the closed form; Monte Carlo agrees within 4 stderr."""
    g = torch.Generator().manual_seed(3)
    D, N = 4, 12
    W = torch.eye(D + 1, dtype=torch.float64) + 0.3 * torch.randn(
        D + 1, D + 1, generator=g, dtype=torch.float64
    )
    ex = obs.test_error(W, N, convention=convention, exact=True)
    mc = obs.test_error(W, N, convention=convention, n_tasks=40_000, seed=7)
    assert float(ex.stderr) == 0.0 and ex.n_tasks == 0
    assert abs(float(ex.absolute) - float(mc.absolute)) < 4 * float(mc.stderr)
    assert float(ex.relative) == pytest.approx(
        float(ex.absolute) / Convention(convention).label_variance(D), rel=1e-12
    )
