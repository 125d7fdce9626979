"""Models of eq. 40-45: shapes, gradients, trial independence, and the explicit formulas."""

import math

import pytest
import torch

from spinglass_icl import ParameterError, sample_prompts
from spinglass_icl.conventions import CONVENTIONS
from spinglass_icl.models import build_model, model_config, model_names
from spinglass_icl.observables import predict as core_predict
from spinglass_icl.tasks import make_generator

D, N, T, B = 4, 6, 3, 7


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _setup(name, convention="authors", seed=0):
    model = model_config(name, strict=False, H=5, M=3).build(D, N, convention)
    gens = [make_generator(seed + k) for k in range(T)]
    params = model.init_params(gens)
    pr = sample_prompts(D, N, B, convention=convention, seed=seed + 100, batch_shape=(T,))
    return model, params, pr


@pytest.mark.parametrize("name", model_names())
def test_shapes_and_gradients(name):
    model, params, pr = _setup(name)
    for p in params.values():
        assert p.shape[0] == T and p.dtype == torch.float64
        p.requires_grad_(True)
    y = model.predict(params, model.prepare(pr.X))
    assert y.shape == (T, B)
    assert torch.isfinite(y).all()
    grads = torch.autograd.grad(y.sum(), list(params.values()), allow_unused=False)
    for (k, p), g in zip(params.items(), grads):
        assert g.shape == p.shape
        assert torch.isfinite(g).all()
        if not k.startswith("b_"):  # biases start at 0 but still get gradient below
            assert g.abs().sum() > 0, k
    # gradient check of the whole map (finite differences) on a small float64 problem
    small = {k: v.detach()[:1].clone().requires_grad_(True) for k, v in params.items()}
    data = tuple(t[:1, :2] for t in model.prepare(pr.X))
    f = lambda *ps: model.predict(dict(zip(small, ps)), data).sum()  # noqa: E731
    assert torch.autograd.gradcheck(f, tuple(small.values()), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", model_names())
def test_trials_are_independent(name):
    """Trial k's prediction depends on trial k's weights only (no mixing across trials)."""
    model, params, pr = _setup(name)
    for p in params.values():
        p.requires_grad_(True)
    y = model.predict(params, model.prepare(pr.X))
    grads = torch.autograd.grad(y[1].sum(), list(params.values()))
    for g in grads:
        assert g[0].abs().max() == 0 and g[2].abs().max() == 0
        assert g[1].abs().max() > 0


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_sla_prediction_is_s_dot_sigma(convention):
    """SLA's y^ = c (X X^T W X)[D, N] equals the core's s . vec(W) (eq. 3) and predict()."""
    model, params, pr = _setup("sla", convention)
    W = params["W"]
    y = model.predict(params, model.prepare(pr.X))
    s = pr.features()  # (T, B, (D+1)^2)
    y_spin = torch.einsum("tpn,tn->tp", s, W.reshape(T, -1))
    torch.testing.assert_close(y, y_spin, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y, core_predict(W, pr.X, model.c), rtol=1e-12, atol=1e-12)
    # and the literal matrix product of eq. (40)
    Y = model.c * pr.X @ pr.X.transpose(-1, -2) @ W[:, None] @ pr.X
    torch.testing.assert_close(y, Y[..., D, N], rtol=1e-12, atol=1e-12)


def test_fla_and_mhla_follow_eq41():
    model, params, pr = _setup("fla")
    X = pr.X
    Y = model.c / math.sqrt(D) * params["W_V"][:, None] @ X @ X.transpose(-1, -2)
    Y = Y @ params["W"][:, None] @ X
    torch.testing.assert_close(
        model.predict(params, model.prepare(X)), Y[..., D, N], rtol=1e-11, atol=1e-12
    )
    # with W_V's read-out row sqrt(D) e_D, FLA is SLA
    sla = build_model("sla", D, N)
    V = torch.zeros_like(params["W_V"])
    V[:, D, D] = math.sqrt(D)
    fla_as_sla = model.predict({"W": params["W"], "W_V": V}, model.prepare(X))
    torch.testing.assert_close(fla_as_sla, sla.predict({"W": params["W"]}, sla.prepare(X)))
    # MHLA: the readout-weighted sum of M FLA heads
    mh, mp, _ = _setup("mhla")
    heads = torch.stack(
        [
            model.predict({"W": mp["W"][:, h], "W_V": mp["W_V"][:, h]}, model.prepare(X))
            for h in range(mh.M)
        ],
        -1,
    )
    torch.testing.assert_close(mh.predict(mp, mh.prepare(X)), (heads * mp["W_O"][:, None]).sum(-1))


def _naive_sa(p, X, H):
    """Full SA(X) of eq. (43)-(44), every column, softmax over keys i for each query t."""
    Q, K, V = p["W_Q"][:, None] @ X, p["W_K"][:, None] @ X, p["W_V"][:, None] @ X  # (T,B,H,N+1)
    scores = K.transpose(-1, -2) @ Q / math.sqrt(H)  # [i, t] = k_i . q_t
    alpha = torch.softmax(scores, dim=-2)  # normalized over i, per column t
    return p["W_O"][:, None] @ (V @ alpha)  # (T, B, D+1, N+1)


def test_sa_and_tf_follow_eq42_45():
    model, params, pr = _setup("sa")
    X = pr.X
    Y = _naive_sa(params, X, model.H)
    torch.testing.assert_close(
        model.predict(params, model.prepare(X)), Y[..., D, N], rtol=1e-11, atol=1e-12
    )
    tf, tp, _ = _setup("tf")
    tp["b_1"] = torch.randn(tp["b_1"].shape, generator=make_generator(5), dtype=torch.float64)
    tp["b_2"] = torch.randn(tp["b_2"].shape, generator=make_generator(6), dtype=torch.float64)
    z1 = _naive_sa(tp, X, tf.H) + X
    z2 = torch.relu(tp["W_1"][:, None] @ z1 + tp["b_1"][:, None, :, None])
    z3 = tp["W_2"][:, None] @ z2 + tp["b_2"][:, None, :, None]
    torch.testing.assert_close(
        tf.predict(tp, tf.prepare(X)), (z1 + z3)[..., D, N], rtol=1e-11, atol=1e-12
    )


def _literal_mhla(p, X, c):
    """Eq. (41) per head on the tokens, ``sum_h w_O[h] c/sqrt(D) (W_V^h X X^T W^h X)[D, N]``."""
    XX = X @ X.transpose(-1, -2)  # (T, B, D+1, D+1)
    heads = [
        (c / math.sqrt(D) * p["W_V"][:, h, None] @ XX @ p["W"][:, h, None] @ X)[..., D, N]
        for h in range(p["W"].shape[1])
    ]
    return (torch.stack(heads, -1) * p["W_O"][:, None]).sum(-1)


@pytest.mark.parametrize("name", ["mhla", "sa"])
def test_statistics_paths_equal_the_token_formulas_with_gradients(name):
    """MHLA from the prompts' Gram pairs and SA from one stacked product ``X [r, u]`` give
    the literal eq. (41) per head / eq. (42)-(44) predictions and weight gradients to 1e-10
    (float64)."""
    model, params, pr = _setup(name)
    X = pr.X
    ref = _literal_mhla if name == "mhla" else (lambda p, X, c: _naive_sa(p, X, 5)[..., D, N])
    ps = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    y = model.predict(ps, model.prepare(X))
    y_ref = ref(ps, X, model.c)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    w = torch.randn(y.shape, generator=make_generator(9), dtype=torch.float64)
    g = torch.autograd.grad((w * y).sum(), list(ps.values()))
    g_ref = torch.autograd.grad((w * y_ref).sum(), list(ps.values()))
    for k, a, b in zip(ps, g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=k)


def test_init_is_per_trial_and_seeded():
    model = build_model("tf", D, N, H=5)
    a = model.init_params([make_generator(1), make_generator(2)])
    b = model.init_params([make_generator(2)])
    for k in a:
        torch.testing.assert_close(a[k][1], b[k][0], rtol=0, atol=0)
        if not k.startswith("b_"):
            assert not torch.equal(a[k][0], a[k][1])


def test_bad_model_arguments():
    with pytest.raises(ParameterError, match="model must be one of sla, fla, mhla, sa, tf"):
        build_model("gpt", D, N)
    with pytest.raises(ParameterError, match="M is not a parameter of model 'sa'"):
        build_model("sa", D, N, M=3)
    with pytest.raises(ParameterError, match="H must be"):
        build_model("sa", D, N, H=0)
    with pytest.raises(ParameterError, match="M must be"):
        build_model("mhla", D, N, M=-1)
    with pytest.raises(ParameterError, match="convention must be"):
        build_model("sla", D, N, convention="mine")


def test_separate_attention_is_the_merged_sla_of_W_Q_T_W_K():
    """SeparateSLA (eq. 40 before merging) predicts exactly what SLA predicts with the
    merged W = W_Q^T W_K (1e-12, every convention and a key size below D + 1)."""
    from spinglass_icl.models import SeparateSLA

    for convention in CONVENTIONS:
        for d_k in (None, 2):
            sep = build_model("sla-separate", D, N, convention=convention, d_k=d_k)
            params = sep.init_params([make_generator(k) for k in range(T)])
            assert params["W_Q"].shape == (T, d_k or D + 1, D + 1)
            pr = sample_prompts(D, N, B, convention=convention, seed=3, batch_shape=(T,))
            sla = build_model("sla", D, N, convention=convention)
            y_sep = sep.predict(params, sep.prepare(pr.X))
            y_sla = sla.predict({"W": SeparateSLA.merged(params)}, sla.prepare(pr.X))
            torch.testing.assert_close(y_sep, y_sla, rtol=1e-12, atol=1e-12)


def test_registry_refuses_clashes_and_non_configs():
    from spinglass_icl.models import SLAConfig, get_model, register_model

    assert get_model("sla") is SLAConfig
    with pytest.raises(ParameterError, match="needs a ModelConfig subclass"):
        register_model(int)

    class Clash(SLAConfig):
        pass

    with pytest.raises(ParameterError, match="model name 'sla' is taken by SLAConfig"):
        register_model(Clash)
    assert get_model("sla") is SLAConfig
