"""The prompt sampler (eq. 1; docs/conventions.md): shapes, labels, conventions, seeds,
validation."""

from __future__ import annotations

import math

import pytest
import torch

from spinglass_icl.conventions import CONVENTIONS, Convention, get_convention
from spinglass_icl.errors import ParameterError
from spinglass_icl.tasks import TaskConfig, resolve_device, sample_prompts


def test_shapes_and_masked_query():
    pr = sample_prompts(3, 7, 11, seed=1)
    assert pr.X.shape == (11, 4, 8)
    assert pr.w.shape == (11, 3)
    assert pr.y.shape == (11,)
    assert pr.X.dtype == torch.float64
    # the query label is hidden: X[D, N] = 0 (eq. 1)
    assert torch.all(pr.X[:, -1, -1] == 0)
    assert pr.u.shape == (11, 4) and pr.q.shape == (11, 4)
    assert pr.features().shape == (11, 16)


def test_batch_shape():
    pr = sample_prompts(2, 5, 6, seed=0, batch_shape=(3, 2))
    assert pr.X.shape == (3, 2, 6, 3, 6)
    assert pr.w.shape == (3, 2, 6, 2)
    assert pr.y.shape == (3, 2, 6)
    assert pr.features().shape == (3, 2, 6, 9)


def test_labels_follow_the_convention(convention):
    D, N, P = 5, 9, 40
    pr = sample_prompts(D, N, P, convention=convention, seed=3)
    scale = Convention(convention).label_scale(D)
    x = pr.X[:, :D, :]  # (P, D, N+1)
    labels = scale * torch.einsum("pd,pdn->pn", pr.w, x)
    torch.testing.assert_close(pr.X[:, D, :N], labels[:, :N], rtol=0, atol=1e-12)
    torch.testing.assert_close(pr.y, labels[:, N], rtol=0, atol=1e-12)
    assert scale == (1.0 if convention == "paper-text" else 1 / math.sqrt(D))


def test_label_noise_is_added_with_the_right_variance():
    D, N, P, noise = 4, 3, 20000, 0.5
    pr = sample_prompts(D, N, P, noise=noise, seed=7)
    clean = torch.einsum("pd,pdn->pn", pr.w, pr.X[:, :D, :]) / math.sqrt(D)
    resid = torch.cat([pr.X[:, D, :N] - clean[:, :N], (pr.y - clean[:, N])[:, None]], 1)
    # residuals are N(0, noise^2): sample variance within 5 standard errors
    n = resid.numel()
    var = float(resid.var())
    assert abs(var - noise**2) < 5 * noise**2 * math.sqrt(2 / n)
    assert abs(float(resid.mean())) < 5 * noise / math.sqrt(n)


def test_query_label_variance(convention):
    """E y~^2 = scale^2 D (+ noise^2), within 5 standard errors."""
    D, N, P = 6, 2, 40000
    pr = sample_prompts(D, N, P, convention=convention, seed=11)
    y2 = pr.y**2
    expect = Convention(convention).label_variance(D)
    se = float(y2.std()) / math.sqrt(P)
    assert abs(float(y2.mean()) - expect) < 5 * se


def test_u_q_and_features_against_brute_force():
    """u = sum_i y_i [x_i; y_i], q = [x~; 0] and S = c X X^T restricted (eq. 3)."""
    D, N, P = 3, 6, 5
    for conv in CONVENTIONS:
        pr = sample_prompts(D, N, P, convention=conv, seed=2)
        c = Convention(conv).prefactor(D, N)
        for mu in range(P):
            X = pr.X[mu]
            u = sum(X[D, i] * X[:, i] for i in range(N))
            torch.testing.assert_close(pr.u[mu], u, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(pr.q[mu], X[:, N], rtol=0, atol=0)
            # S[m, n] = c * (X X^T)[D, m] * X[n, N]  ->  y^ = (c X X^T W X)[D, N] = s . vec(W)
            S = c * (X @ X.T)[D][:, None] * X[:, N][None, :]
            torch.testing.assert_close(pr.features()[mu], S.reshape(-1), rtol=1e-12, atol=1e-12)
            assert torch.all(S[:, D] == 0)  # last column of S vanishes
            W = torch.randn(D + 1, D + 1, dtype=torch.float64)
            brute = c * (X @ X.T @ W @ X)[D, N]
            fast = pr.features()[mu] @ W.reshape(-1)
            assert abs(float(brute - fast)) < 1e-10 * (1 + abs(float(brute)))


def test_same_seed_same_numbers_and_different_seeds_differ():
    a = sample_prompts(4, 5, 30, seed=5, noise=0.1)
    b = sample_prompts(4, 5, 30, seed=5, noise=0.1)
    c = sample_prompts(4, 5, 30, seed=6, noise=0.1)
    assert torch.equal(a.X, b.X) and torch.equal(a.w, b.w) and torch.equal(a.y, b.y)
    assert not torch.equal(a.X, c.X)


def test_dtype_does_not_change_the_draw():
    a = sample_prompts(3, 4, 10, seed=9)
    b = sample_prompts(3, 4, 10, seed=9, dtype=torch.float32)
    assert b.X.dtype == torch.float32
    torch.testing.assert_close(b.X.double(), a.X, rtol=1e-6, atol=1e-6)


def test_generator_continues_its_stream():
    g = torch.Generator().manual_seed(0)
    a = sample_prompts(2, 3, 4, generator=g)
    b = sample_prompts(2, 3, 4, generator=g)
    assert not torch.equal(a.X, b.X)
    assert torch.equal(a.X, sample_prompts(2, 3, 4, seed=0).X)


def test_task_config_properties():
    cfg = TaskConfig(D=4, N=10, P=3, convention="normalized")
    assert cfg.n_spins == 25
    assert cfg.prefactor == pytest.approx(0.1)
    assert get_convention(None).name == "authors"


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(D=0), "D"),
        (dict(N=0), "N"),
        (dict(P=0), "P"),
        (dict(D=-3), "D"),
        (dict(D=2.5), "D"),
        (dict(D=True), "D"),
        (dict(noise=-0.1), "noise"),
        (dict(noise=float("nan")), "noise"),
        (dict(convention="foo"), "convention"),
        (dict(seed=-1), "seed"),
        (dict(device="foo"), "device"),
        (dict(batch_shape=(0,)), "batch_shape"),
    ],
)
def test_bad_input_raises_parameter_error(kwargs, name):
    args = dict(D=3, N=4, P=5)
    args.update(kwargs)
    with pytest.raises(ParameterError) as exc:
        sample_prompts(**args)
    msg = str(exc.value)
    assert msg.startswith(name), msg
    assert "\n" not in msg


def test_cuda_device_rejected_without_cuda(cpu_only):
    with pytest.raises(ParameterError, match="^device"):
        resolve_device("cuda")
    with pytest.raises(ParameterError, match="^device"):
        sample_prompts(2, 2, 2, device="cuda")


@pytest.mark.gpu
def test_cuda_draw_equals_cpu_draw():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    a = sample_prompts(3, 4, 10, seed=9)
    b = sample_prompts(3, 4, 10, seed=9, device="cuda")
    assert b.X.is_cuda
    assert torch.equal(b.X.cpu(), a.X)
