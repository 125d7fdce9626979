"""The spin-glass mapping (eq. 3-5): H = L - const, couplings, blocks."""

from __future__ import annotations

import pytest
import torch

from spinglass_icl.errors import ParameterError
from spinglass_icl.hamiltonian import (
    GRAM_RANK_ONE_MIN_SPINS,
    block_masks,
    build_instance,
    gram,
    gram_from_factors,
    gram_rank_one,
    make_instance,
    rank_one_factors,
    zero_coupling_fraction,
)
from spinglass_icl.tasks import sample_prompts


def test_energy_equals_loss_minus_constant(convention):
    """H(sigma) = L(sigma) - (1/2P) sum y~^2 for random sigma (eq. 5 vs eq. 2)."""
    inst = make_instance(4, 15, 60, 0.3, convention=convention, seed=1)
    g = torch.Generator().manual_seed(0)
    for scale in (0.1, 1.0, 10.0):
        sigma = scale * torch.randn(5, inst.n, generator=g, dtype=torch.float64)
        H = inst.energy(sigma)
        L = inst.loss(sigma)
        assert H.shape == (5,)
        torch.testing.assert_close(H, L - inst.constant, rtol=1e-10, atol=1e-12)


def test_energy_equals_loss_minus_constant_batched(convention):
    inst = make_instance(3, 10, 40, 0.05, convention=convention, seed=2, batch_shape=(2, 3))
    sigma = torch.randn(
        2, 3, inst.n, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    H = inst.energy(sigma)
    assert H.shape == (2, 3)
    torch.testing.assert_close(H, inst.loss(sigma) - inst.constant, rtol=1e-10, atol=1e-12)
    # and equals the unbatched energy of each instance
    torch.testing.assert_close(inst[1][2].energy(sigma[1, 2]), H[1, 2], rtol=1e-12, atol=0)


def test_loss_is_eq2_from_brute_force_predictions():
    """L = 1/(2P) sum (y~ - c (X X^T W X)[D,N])^2 + lam/2 |W|^2 with plain matrix products."""
    D, N, P, lam = 3, 5, 12, 0.7
    pr = sample_prompts(D, N, P, convention="paper-text", seed=4)
    inst = build_instance(pr, lam)
    W = torch.randn(D + 1, D + 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    c = pr.config.prefactor
    preds = torch.stack([c * (X @ X.T @ W @ X)[D, N] for X in pr.X])
    L = ((pr.y - preds) ** 2).sum() / (2 * P) + lam / 2 * (W**2).sum()
    torch.testing.assert_close(inst.loss(W.reshape(-1)), L, rtol=1e-12, atol=0)
    torch.testing.assert_close(inst.predict(W.reshape(-1)), preds, rtol=1e-10, atol=1e-12)


def test_couplings_fields_and_ridge_against_definitions():
    inst = make_instance(2, 6, 25, 0.2, seed=5)
    S = inst.s.numpy()
    y = inst.y.numpy()
    P, n = S.shape
    J = inst.couplings.numpy()
    for i in range(n):
        assert J[i, i] == 0
        for j in range(n):
            if i != j:
                assert abs(J[i, j] + (S[:, i] * S[:, j]).sum() / P) < 1e-12
    torch.testing.assert_close(inst.fields, torch.from_numpy(S.T @ y / P), rtol=1e-12, atol=1e-14)
    lam_i = 0.2 + (S**2).sum(0) / P
    torch.testing.assert_close(inst.lam_i, torch.from_numpy(lam_i), rtol=1e-12, atol=0)
    A = S.T @ S / P + 0.2 * torch.eye(n, dtype=torch.float64).numpy()
    torch.testing.assert_close(inst.hessian, torch.from_numpy(A), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(
        inst.constant, torch.tensor((y**2).sum() / (2 * P)), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("D", [1, 2, 5, 9])
def test_zero_coupling_fraction(D):
    """(2D+1)/(D+1)^2 of the couplings are exactly zero (docs/solvers.md#couplings-and-fields)."""
    assert zero_coupling_fraction(D) == pytest.approx((2 * D + 1) / (D + 1) ** 2, abs=1e-15)
    inst = make_instance(D, 8, 30, 0.1, seed=D)
    assert inst.zero_fraction() == pytest.approx(zero_coupling_fraction(D), abs=1e-12)
    # the zero couplings are exactly those touching W's last column
    zero = block_masks(D)["zero"]
    assert torch.all(inst.gram[zero] == 0) and torch.all(inst.gram[:, zero] == 0)
    assert torch.all(inst.gram[~zero][:, ~zero] != 0)


def test_block_shapes_and_masks():
    D = 4
    inst = make_instance(D, 10, 50, 0.1, seed=0)
    masks = block_masks(D)
    assert int(masks["A"].sum()) == D * D
    assert int(masks["B"].sum()) == D
    assert int(masks["zero"].sum()) == D + 1
    assert torch.all(masks["A"] ^ masks["B"] ^ masks["zero"])
    fb = inst.field_blocks()
    assert fb.A.shape == (D, D) and fb.B.shape == (D,) and fb.zero.shape == (D + 1,)
    assert torch.all(fb.zero == 0)
    Hm = inst.fields.reshape(D + 1, D + 1)
    assert torch.equal(fb.A, Hm[:D, :D]) and torch.equal(fb.B, Hm[D, :D])
    cb = inst.coupling_blocks()
    nA = D * D
    assert cb.C.shape == (nA * (nA - 1) // 2,)
    assert cb.D.shape == (nA * D,)
    assert cb.E.shape == (D * (D - 1) // 2,)
    # total number of pairs off the zero column
    J = inst.couplings
    a, b = masks["A"], masks["B"]
    torch.testing.assert_close(cb.D, J[a][:, b].reshape(-1), rtol=0, atol=0)


def test_batched_instance_indexing_and_to():
    inst = make_instance(2, 5, 10, 0.5, seed=1, batch_shape=(3,))
    assert inst.batch_shape == (3,)
    assert inst.gram.shape == (3, 9, 9)
    single = inst[2]
    torch.testing.assert_close(single.gram, inst.gram[2], rtol=1e-14, atol=0)
    f32 = inst.to(dtype=torch.float32)
    assert f32.s.dtype == torch.float32 and f32.gram.dtype == torch.float32
    with pytest.raises(IndexError):
        single[0]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(lam=-1.0), "lam"),
        (dict(lam=float("inf")), "lam"),
        (dict(D=0), "D"),
        (dict(N=0), "N"),
        (dict(P=0), "P"),
        (dict(convention="text"), "convention"),
        (dict(device="gpu0"), "device"),
    ],
)
def test_bad_input(kwargs, name):
    args = dict(D=2, N=3, P=4, lam=0.1)
    args.update(kwargs)
    with pytest.raises(ParameterError) as exc:
        make_instance(**args)
    assert str(exc.value).startswith(name)
    with pytest.raises(ParameterError, match="^lam"):
        build_instance(sample_prompts(2, 3, 4), -0.5)
    with pytest.raises(ParameterError, match="^D"):
        zero_coupling_fraction(0)


# ------------------------------------------------- G from the rank-one structure
@pytest.mark.parametrize(
    "convention, batch_shape", [("authors", ()), ("paper-text", (2,)), ("normalized", ())]
)
def test_rank_one_gram_equals_s_transpose_s(convention, batch_shape):
    """G built from s = vec(f (x) g) over unordered pairs equals S^T S / P to rounding."""
    D = 31  # n = 1024: the rank-one path
    inst = make_instance(D, 7, 150, 0.1, convention=convention, seed=3, batch_shape=batch_shape)
    assert inst.n >= GRAM_RANK_ONE_MIN_SPINS
    f, g = rank_one_factors(inst.s)
    assert f.shape == (*batch_shape, 150, D + 1) and g.shape == f.shape
    outer = (f[..., :, None] * g[..., None, :]).reshape(inst.s.shape)
    torch.testing.assert_close(outer, inst.s, rtol=1e-13, atol=1e-15 * float(inst.s.abs().max()))
    ref = inst.s.transpose(-1, -2) @ inst.s / inst.P
    G = inst.gram
    assert float((G - ref).abs().max() / ref.abs().max()) < 1e-13
    torch.testing.assert_close(gram_from_factors(inst.u, inst.q, inst.c), G, rtol=0, atol=0)
    assert float((gram_rank_one(f, g) - G).abs().max() / G.abs().max()) < 1e-13
    assert torch.equal(G, G.transpose(-1, -2))  # exactly symmetric
    assert inst.zero_fraction() == pytest.approx(zero_coupling_fraction(D), abs=1e-12)


def test_gram_falls_back_for_features_that_are_not_rank_one():
    inst = make_instance(31, 7, 150, 0.1, seed=0)
    noisy = inst.s + 1e-6 * torch.randn(
        inst.s.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    torch.testing.assert_close(gram(noisy), noisy.T @ noisy / 150, rtol=0, atol=0)
    # an all-zero prompt is rank one (f = g = 0) and handled
    s = inst.s.clone()
    s[5] = 0.0
    ref = s.T @ s / 150
    assert float((gram(s) - ref).abs().max() / ref.abs().max()) < 1e-13


def test_gram_float32():
    inst = make_instance(31, 7, 150, 0.1, seed=0, dtype=torch.float32)
    ref = inst.s.double().T @ inst.s.double() / 150
    assert inst.gram.dtype == torch.float32
    assert float((inst.gram.double() - ref).abs().max() / ref.abs().max()) < 1e-5
