"""Training (eq. 2): the bridge to the spin glass, trial batching, optimizers, bad input."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from spinglass_icl import ParameterError, ground_state, solve
from spinglass_icl.models import model_config, model_names
from spinglass_icl.tasks import make_generator
from spinglass_icl.training import (
    STREAM_INIT,
    TrainConfig,
    train,
    trial_prompts,
    trial_seed,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = dict(D=3, N=5, P=64, lam=0.05, test_tasks=200, H=6, M=3)


def _cfg(model="sla", **kw):
    """A TrainConfig from flat names; H and M go to the models that have them."""
    own = {k: kw.pop(k) for k in ("H", "M") if k in kw}
    return TrainConfig.of(model, model_params=model_config(model, strict=False, **own).params(),
                          **kw)  # fmt: skip


def _rel(a, b):
    return float((a - b).norm() / b.norm())


# ----------------------------------------------------------------- the bridge
@pytest.mark.parametrize("optimizer,lr,epochs", [("adam", 0.03, 200), ("sgd", 1.0, 100)])
def test_sla_training_reaches_the_exact_ground_state(optimizer, lr, epochs):
    """SLA trained by the real loop lands on the ground state A^{-1} h of the same instance."""
    cfg = _cfg(
        model="sla", D=5, N=20, P=500, lam=0.1, trials=2, epochs=epochs, lr=lr,
        optimizer=optimizer, test_tasks=200, seed=3, eval_every=epochs,
    )  # fmt: skip
    res = train(cfg)
    inst = res.instances
    assert inst.batch_shape == (2,) and inst.P == 500 and inst.lam == 0.1
    for k in range(2):
        exact = solve(inst[k], "exact").m.reshape(6, 6)
        assert _rel(res.W[k], exact) < 1e-2
        # the recorded training loss is the loss eq. (2) of the instance, at the minimum
        torch.testing.assert_close(
            torch.tensor(float(res.history.train_loss[-1, k]), dtype=torch.float64),
            inst[k].loss(res.W[k].reshape(-1)),
            rtol=1e-10,
            atol=0,
        )
    gs = ground_state(inst).reshape(2, 6, 6)
    assert _rel(res.W, gs) < 1e-2
    # the untrained W was far from it
    W0 = torch.randn(6, 6, generator=make_generator(trial_seed(3, 0, STREAM_INIT))) / 6**0.5
    assert _rel(W0.double(), gs[0]) > 0.5


def test_instances_match_the_training_prompts():
    cfg = _cfg(model="sla", trials=2, epochs=1, **SMALL)
    res = train(cfg)
    X, y = trial_prompts(cfg)
    inst = res.instances
    torch.testing.assert_close(inst.y, y)
    # y^ = s . sigma reproduces the model's prediction on the same prompts
    model = res.model
    pred = model.predict(res.state, model.prepare(X))
    torch.testing.assert_close(inst.predict(res.W.reshape(2, -1)), pred, rtol=1e-12, atol=1e-12)
    assert train(TrainConfig.replace(cfg, model="fla")).instances is None


# ----------------------------------------------------------- trial batching
@pytest.mark.parametrize("name", model_names())
def test_batched_trials_equal_single_runs(name):
    cfg = _cfg(model=name, trials=3, epochs=4, batch_size=24, seed=7, **SMALL)
    res = train(cfg)
    for k in (0, 2):
        alone = train(TrainConfig.replace(cfg, trials=1, first_trial=k))
        for key, v in res.state.items():
            torch.testing.assert_close(v[k], alone.state[key][0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(
            res.test_error.absolute[k], alone.test_error.absolute[0], rtol=1e-9, atol=1e-14
        )
    # trials differ (own data, init)
    assert not torch.allclose(res.test_error.absolute[0], res.test_error.absolute[1])
    # the same seed gives the same numbers
    torch.testing.assert_close(
        train(cfg).test_error.absolute, res.test_error.absolute, rtol=0, atol=0
    )


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("batch_size", [None, 16])
def test_loss_decreases(name, batch_size):
    # 60 epochs: full-batch Adam at the SA/TF default lr 3e-3 needs about 35 for -20 %
    cfg = _cfg(model=name, trials=2, epochs=60, batch_size=batch_size, seed=1, **SMALL)
    h = train(cfg).history
    assert h.train_loss.dims == ("epoch", "trial") and h.sizes["trial"] == 2
    first, last = h.train_loss.isel(epoch=0).values, h.train_loss.isel(epoch=-1).values
    assert (last < 0.8 * first).all(), (first, last)
    assert (h.test_error.isel(epoch=-1) < h.test_error.isel(epoch=0)).all()


# ------------------------------------------------------------- optimizers
def _torch_reference(cfg, opt_cls, loss_kind, weight_decay, **kw):
    """Train trial 0 of a 1-trial SLA run with torch.optim and torch's weight_decay."""
    X, y = trial_prompts(cfg)
    model = cfg.build_model()
    u, q = model.prepare(X)
    W = model.init_params([make_generator(trial_seed(cfg.seed, 0, STREAM_INIT))])["W"]
    W = W.clone().requires_grad_(True)
    opt = opt_cls([W], lr=cfg.learning_rate, weight_decay=weight_decay, **kw)
    for _ in range(cfg.epochs):
        opt.zero_grad()
        pred = model.predict({"W": W}, (u, q))
        r2 = ((y - pred) ** 2).mean()
        loss = r2 / 2 if loss_kind == "half" else r2
        loss.backward()
        opt.step()
    return W.detach()[0]


def test_adam_and_sgd_match_torch_optim_weight_decay():
    """lam/2 ||W||^2 in eq. 2 == torch weight_decay=lam on the 1/(2P) loss (Adam and SGD);
    the authors' MSE (1/P) with Adam weight_decay=wd == eq. 2 with lam = wd/2."""
    base = _cfg(model="sla", trials=1, epochs=25, **SMALL)
    lam = base.lam
    for opt, cls, lr, kw in [
        ("adam", torch.optim.Adam, 0.01, {}),
        ("sgd", torch.optim.SGD, 0.5, {}),
    ]:
        cfg = TrainConfig.replace(base, optimizer=opt, lr=lr)
        ours = train(cfg).W[0]
        ref = _torch_reference(cfg, cls, "half", lam, **kw)
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    cfg = TrainConfig.replace(base, optimizer="adam", lr=0.01)
    authors = _torch_reference(cfg, torch.optim.Adam, "mse", 2 * lam)
    torch.testing.assert_close(train(cfg).W[0], authors, rtol=1e-5, atol=1e-7)


def test_convergence_stop_freezes_each_trial():
    cfg = _cfg(model="sla", trials=3, epochs=3000, lr=0.5, optimizer="sgd", tol=1e-7, **SMALL)
    res = train(cfg)
    assert res.converged.all()
    assert (res.epochs_run < 3000).all() and (res.epochs_run > 5).all()
    # a stopped trial is frozen: its weights are what a run of exactly that many epochs gives
    k = int(res.epochs_run.argmin())
    short = train(
        TrainConfig.replace(cfg, tol=None, epochs=int(res.epochs_run[k]), first_trial=k, trials=1)
    )
    torch.testing.assert_close(res.W[k], short.W[0], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", ["fla", "mhla", "sa", "tf"])
def test_a_chunk_steps_only_its_active_trials_and_each_equals_its_trial_alone(name, monkeypatch):
    """Full batch with autograd, a chunk whose trials stop at different epochs steps only
    the trials still training (training._LiveTrials) and changes no number: each trial's
    weights, epochs and test error are those of the trial trained alone."""
    import spinglass_icl.training as training

    stepped, loss = [], training._loss
    spy = lambda model, params, *a: stepped.append(len(a[1])) or loss(model, params, *a)  # noqa: E731
    monkeypatch.setattr(training, "_loss", spy)
    cfg = _cfg(model=name, trials=3, epochs=400, tol=1e-4, lr=0.03, seed=5, **SMALL)
    res = train(cfg)
    monkeypatch.undo()
    assert len(set(res.epochs_run.tolist())) > 1  # the chunk shrank on the way
    # the steps after the first stop trained the trials still active only
    assert stepped.count(1) + stepped.count(2) == int(res.epochs_run.max() - res.epochs_run.min())
    assert res.converged.all() and (res.epochs_run < 400).all()
    for k in range(3):
        alone = train(TrainConfig.replace(cfg, trials=1, first_trial=k))
        assert int(alone.epochs_run[0]) == int(res.epochs_run[k])
        for key, v in res.state.items():
            torch.testing.assert_close(v[k], alone.state[key][0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(
            res.test_error.absolute[k], alone.test_error.absolute[0], rtol=1e-9, atol=1e-14
        )


def test_summary_and_history():
    cfg = _cfg(model="sla", trials=3, epochs=10, eval_every=3, **SMALL)
    res = train(cfg)
    assert list(res.history.epoch.values) == [0, 3, 6, 9, 10]
    s = res.summary()
    te = res.test_error.absolute
    assert s["test_error"]["per_trial"] == te.tolist()
    assert math.isclose(s["test_error"]["mean"], float(te.mean()), rel_tol=1e-12)
    assert math.isclose(s["test_error"]["stderr"], float(te.std() / math.sqrt(3)), rel_tol=1e-12)
    var = cfg.task.conv.label_variance(cfg.task.D)
    torch.testing.assert_close(res.test_error.relative, te / var)
    assert s["config"]["lr"] == cfg.learning_rate
    assert res.W.shape == (3, 4, 4) and res.state["W"].shape == (3, 4, 4)
    # final test error equals the model's error on the trial's own test prompts
    Xte, yte = trial_prompts(cfg, stream=2, n=cfg.test_tasks)
    pred = res.model.predict(res.state, res.model.prepare(Xte))
    torch.testing.assert_close(((yte - pred) ** 2).mean(-1), te, rtol=1e-10, atol=0)


# -------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kw,match",
    [
        ({"model": "rnn"}, "model must be one of"),
        ({"D": 0}, "D must be"),
        ({"P": 2.5}, "P must be"),
        ({"lam": -1}, "lam must be"),
        ({"lr": 0.0}, "lr must be"),
        ({"lr": float("nan")}, "lr must be"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
        ({"batch_size": 65}, "batch_size must be"),
        ({"trials": 0}, "trials must be"),
        ({"device": "tpu"}, "device must be"),
        ({"tol": 0}, "tol must be"),
        ({"seed": -1}, "seed must be"),
        ({"convention": "x"}, "convention must be"),
        ({"dtype": "float16"}, "dtype must be"),
    ],
)
def test_bad_config(kw, match):
    args = {**SMALL, **kw}
    with pytest.raises(ParameterError, match=match):
        _cfg(**args)


def test_bad_train_arguments_and_divergence():
    with pytest.raises(ParameterError, match="config must be a TrainConfig"):
        train({"model": "sla"})
    cfg = _cfg(model="sla", trials=1, epochs=400, lr=1e6, optimizer="sgd", **SMALL)
    with pytest.raises(ParameterError, match="lr must be smaller"):
        train(cfg)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    cfg = _cfg(model="tf", trials=2, epochs=5, **SMALL)
    cpu = train(cfg)
    gpu = train(TrainConfig.replace(cfg, device="cuda"))
    for k, v in cpu.state.items():
        torch.testing.assert_close(gpu.state[k], v, rtol=1e-8, atol=1e-10)


def test_warm_start_from_the_ground_state_stays_there():
    """train(init=...) starts from the given weights: SLA started at the exact ground state
    A^{-1} h of its own instance has zero gradient and stays put (SGD), while the same run from
    the random init moves; bad init is a one-line error."""
    cfg = _cfg(model="sla", trials=2, epochs=5, lr=0.5, optimizer="sgd", **SMALL)
    inst = train(TrainConfig.replace(cfg, epochs=1)).instances
    gs = ground_state(inst).reshape(2, 4, 4)
    res = train(cfg, init={"W": gs})
    assert _rel(res.W, gs) < 1e-10
    torch.testing.assert_close(
        torch.tensor(res.history.train_loss[0].values), torch.stack(
            [inst[k].loss(gs[k].reshape(-1)) for k in range(2)]), rtol=1e-10, atol=0,
    )  # fmt: skip
    assert _rel(train(cfg).W, gs) > 1e-3
    with pytest.raises(ParameterError, match="init must be a dict with keys"):
        train(cfg, init={"V": gs})
    with pytest.raises(ParameterError, match="init must hold finite W of shape"):
        train(cfg, init={"W": gs[:1]})


# ------------------------------------------------------- the quadratic path
@pytest.mark.parametrize("optimizer,lr", [("adam", 0.03), ("sgd", 0.5)])
def test_full_batch_sla_quadratic_path_equals_the_prompt_path(optimizer, lr):
    """Full-batch SLA steps with (G + lam I) sigma - h (eq. 2 as a quadratic, eq. 5): the
    trajectory, losses and gradient norms equal the prompt-by-prompt autograd ones to 1e-10
    (float64) over 60 steps, for Adam and SGD; the recorded epoch by epoch weights agree at
    every step (checked at 1, 7, 60 epochs)."""
    base = _cfg(
        model="sla", D=4, N=8, P=300, lam=0.02, trials=3, lr=lr, optimizer=optimizer,
        test_tasks=100, seed=5, eval_every=1,
    )  # fmt: skip
    for epochs in (1, 7, 60):
        cfg = TrainConfig.replace(base, epochs=epochs)
        fast, slow = train(cfg), train(cfg, quadratic=False)
        torch.testing.assert_close(fast.W, slow.W, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(fast.grad_norm, slow.grad_norm, rtol=1e-10, atol=1e-12)
    h_fast, h_slow = fast.history.train_loss.values, slow.history.train_loss.values
    assert h_fast.shape == (61, 3)
    torch.testing.assert_close(torch.tensor(h_fast), torch.tensor(h_slow), rtol=1e-10, atol=0)
    assert _rel(fast.W, train(TrainConfig.replace(cfg, epochs=1)).W) > 1e-2  # it moved
    # the quadratic form is eq. 2 of the core instance
    from spinglass_icl.training import sla_quadratic

    model = cfg.build_model()
    X, y = trial_prompts(cfg)
    A, h, const = sla_quadratic(model, model.prepare(X), y, cfg.lam)
    inst = fast.instances
    torch.testing.assert_close(A, inst.hessian, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(h, inst.fields, rtol=1e-12, atol=1e-14)
    sig = fast.W.reshape(3, -1)
    quad = 0.5 * torch.einsum("ti,tij,tj->t", sig, A, sig) - (h * sig).sum(-1) + const
    torch.testing.assert_close(quad, inst.loss(sig), rtol=1e-12, atol=0)
    with pytest.raises(ParameterError, match="quadratic=True needs a full-batch SLA"):
        train(TrainConfig.replace(cfg, batch_size=10), quadratic=True)


def test_window_convergence_and_grad_norm():
    """tol with a window: stops when |L_t - L_{t-w}| / |L_{t-w}| < tol; the stopped trial
    equals the same trial run for exactly its epochs; grad_norm is that run's last gradient."""
    cfg = _cfg(
        model="sla", trials=3, epochs=3000, lr=0.03, optimizer="adam", tol=1e-7, window=20,
        **SMALL,
    )  # fmt: skip
    res = train(cfg)
    assert res.converged.all() and (res.epochs_run < 3000).all() and (res.epochs_run > 20).all()
    k = int(res.epochs_run.argmax())
    short = train(
        TrainConfig.replace(cfg, tol=None, epochs=int(res.epochs_run[k]), first_trial=k, trials=1)
    )
    torch.testing.assert_close(res.W[k], short.W[0], rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(res.grad_norm[k : k + 1], short.grad_norm, rtol=1e-10, atol=0)
    # near the optimum the gradient is small against the first step's
    first = train(TrainConfig.replace(cfg, tol=None, epochs=1))
    assert (res.grad_norm < 1e-2 * first.grad_norm).all()
    with pytest.raises(ParameterError, match="window must be"):
        _cfg(window=0)


def test_factor_sampler_trains_on_its_own_instances():
    """sampler='factors' (SLA): the trained W is the ground state of res.instances (the same
    factors), the test error is scored on factor-drawn test prompts of the same law (close to
    the prompt sampler's mean over trials), and other models refuse it."""
    cfg = _cfg(
        model="sla", D=4, N=10, P=400, lam=0.05, trials=4, epochs=400, lr=0.03,
        test_tasks=2000, sampler="factors", tol=1e-10, window=20,
    )  # fmt: skip
    res = train(cfg)
    gs = ground_state(res.instances).reshape(res.W.shape)
    assert _rel(res.W, gs) < 1e-4
    pr = train(TrainConfig.replace(cfg, sampler="prompts"))
    assert not torch.allclose(res.W, pr.W)  # a different draw
    a, b = float(res.test_error.relative.mean()), float(pr.test_error.relative.mean())
    assert abs(a - b) < 0.1 * b, (a, b)
    with pytest.raises(ParameterError, match="sampler='factors' needs model='sla'"):
        _cfg(model="fla", sampler="factors")


@pytest.mark.parametrize("name", ["fla", "sa", "tf"])
def test_float32_gives_the_float64_test_errors_to_3_digits(name):
    """150 full-batch Adam epochs in float32 give each trial's relative test error of the
    float64 run to 1e-3 (relative), for the models the paper preset trains in float32."""
    cfg = _cfg(
        model=name, D=6, N=12, P=500, lam=0.005, trials=2, epochs=150, test_tasks=500,
        H=8, M=3, seed=2, eval_every=150,
    )  # fmt: skip
    a = train(cfg).test_error.relative
    b = train(TrainConfig.replace(cfg, dtype="float32")).test_error.relative.double()
    assert (a < 0.99).any()  # something was learned
    torch.testing.assert_close(b, a, rtol=1e-3, atol=0)


def test_exact_W_is_the_ground_state_of_the_instances():
    """The quadratic path's by-product A^{-1} h equals the core's exact solver on the same
    instances (1e-10); the prompt path and non-SLA models give None."""
    cfg = _cfg(model="sla", trials=2, epochs=3, **SMALL)
    res = train(cfg)
    gs = ground_state(res.instances).reshape(res.W.shape)
    torch.testing.assert_close(res.exact_W, gs, rtol=1e-10, atol=1e-12)
    assert train(cfg, quadratic=False).exact_W is None
    assert train(TrainConfig.replace(cfg, model="fla")).exact_W is None
    # lam = 0 with P < n: A singular, trains, no exact_W
    res0 = train(TrainConfig.replace(cfg, lam=0.0, P=5))
    assert res0.exact_W is None and bool(torch.isfinite(res0.W).all())


@pytest.mark.parametrize("name", ["mhla", "sa", "tf"])
def test_statistics_paths_train_as_the_token_formulas(name, monkeypatch):
    """50 full-batch Adam steps of MHLA (prompt Gram pairs), SA (one stacked token
    product) and TF (the tokens in two layouts, row-block products) follow the trajectory of
    the same steps through the literal token formulas (per-head eq. 41; the full attention
    mix of eq. 43-44 on one token layout) to 1e-10 (float64)."""
    from spinglass_icl import models

    cfg = _cfg(model=name, trials=2, epochs=50, seed=3, eval_every=10, **SMALL)
    fast = train(cfg)

    def literal_mhla(self, params, data):
        (Xt,) = data
        X = Xt.transpose(-1, -2)
        XX = X @ X.transpose(-1, -2)
        c = self.c / math.sqrt(self.D)
        heads = [
            (c * params["W_V"][:, h, None] @ XX @ params["W"][:, h, None] @ X)[..., -1, -1]
            for h in range(self.M)
        ]
        return (torch.stack(heads, -1) * params["W_O"][:, None]).sum(-1)

    def literal_sa(self, params, data):
        return models._attention_query(params, data[0], self.H)[..., self.D]

    def literal_tf(self, params, data):
        (Xt,) = data
        z1 = models._attention_query(params, Xt, self.H) + Xt[:, :, -1, :]
        z2 = torch.relu(z1 @ params["W_1"].transpose(1, 2) + params["b_1"][:, None])
        return (z1 + z2 @ params["W_2"].transpose(1, 2) + params["b_2"][:, None])[..., self.D]

    cls = {"mhla": models.MHLA, "sa": models.SA, "tf": models.TF}[name]
    literal = {"mhla": literal_mhla, "sa": literal_sa, "tf": literal_tf}[name]
    monkeypatch.setattr(cls, "prepare", models.Model.prepare)  # the tokens, one layout
    monkeypatch.setattr(cls, "predict", literal)
    slow = train(cfg)
    for k in fast.state:
        torch.testing.assert_close(fast.state[k], slow.state[k], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast.grad_norm, slow.grad_norm, rtol=1e-10, atol=1e-12)
    assert _rel(fast.state["W"] if name == "mhla" else fast.state["W_Q"],
                train(TrainConfig.replace(cfg, epochs=1)).state[
                    "W" if name == "mhla" else "W_Q"]) > 1e-3  # fmt: skip


def test_memory_estimate_follows_sampler_path_and_precision():
    """The pre-flight estimate counts what the run allocates: exact-law factors instead of
    prompts, no per-step prompt activations on the quadratic SLA path, 4-byte floats in
    float32 (the Fig. 4b paper chunk, 25 SLA trials at N = 200, fits in a few GB)."""
    from spinglass_icl.resources import train_bytes

    base = dict(D=20, N=200, P=10_000, trials=25, test_tasks=2000)
    prompts = train_bytes(**base)
    factors_quad = train_bytes(**base, sampler="factors", quadratic=True)
    assert factors_quad < 4 * 2**30 < prompts
    assert train_bytes(**base, quadratic=True) < prompts
    assert train_bytes(**base, itemsize=4) * 2 == prompts


# ---------------------------------------------------------- config objects
def test_config_holds_a_task_and_a_model_and_round_trips():
    """TrainConfig is a task plus a model config; to_dict / from_dict round-trip, the flat
    dicts of earlier checkpoints still load, and an unknown model names the allowed ones."""
    from spinglass_icl import TaskConfig
    from spinglass_icl.models import SAConfig

    cfg = TrainConfig(task=TaskConfig(D=3, N=5, P=64), model=SAConfig(H=4), lam=0.05)
    assert cfg == _cfg("sa", D=3, N=5, P=64, lam=0.05, H=4)
    assert TrainConfig.from_dict(cfg.to_dict()) == TrainConfig.replace(cfg, lr=cfg.learning_rate)
    flat = {"model": "sa", "D": 3, "N": 5, "P": 64, "convention": "authors", "noise": 0.0,
            "lam": 0.05, "H": 4, "M": 10, "lr": None}  # fmt: skip
    assert TrainConfig.from_dict(flat) == cfg
    assert cfg.learning_rate == 3e-3 and _cfg("sla", optimizer="sgd").learning_rate == 0.5
    assert cfg.replace(model="tf").model.H == 4  # shared hyperparameters are kept
    assert cfg.replace(N=7).task.N == 7
    assert "model=SAConfig(H=4)" in repr(cfg) and len(repr(cfg)) < 200
    with pytest.raises(ParameterError, match="model must be one of sla, fla, mhla, sa, tf"):
        TrainConfig(model="rnn")
    with pytest.raises(ParameterError, match="H is not a parameter of model 'sla'"):
        TrainConfig.of("sla", model_params={"H": 3})
    with pytest.raises(ParameterError, match="task must be a TaskConfig"):
        TrainConfig(task=(3, 5, 64))


def test_a_model_without_a_default_rate_falls_back():
    """A registered model that names no learning rate for an optimizer gets the fallback
    (no KeyError)."""
    from spinglass_icl.models import FALLBACK_LR, SLAConfig

    class Bare(SLAConfig):
        default_lr = {}

    assert Bare().learning_rate("sgd") == FALLBACK_LR["sgd"]


def test_result_repr_is_short_and_test_error_is_one_object():
    from spinglass_icl import TestError

    res = train(_cfg("sla", trials=2, epochs=3, **SMALL))
    assert isinstance(res.test_error, TestError) and res.test_error.n_tasks == 200
    r = repr(res)
    assert r.startswith("TrainResult(model=sla") and "relative_test_error=" in r and len(r) < 200


def test_restarts_keep_the_lowest_training_loss():
    """restarts=R trains R initializations of each trial on the trial's own data and keeps
    the one of lowest final loss; restart 0 is the plain run, restart r of trial k equals
    nothing else (its own seed), and restarts=1 is bit-identical to the plain run."""
    cfg = _cfg("sa", trials=2, epochs=15, seed=4, **SMALL)
    plain = train(cfg)
    res = train(cfg.replace(restarts=3))
    assert res.restart_loss.shape == (2, 3) and res.restart.shape == (2,)
    plain_loss = torch.as_tensor(plain.history.train_loss[-1].values)
    torch.testing.assert_close(res.restart_loss[:, 0], plain_loss, rtol=1e-12, atol=0)
    best = res.restart_loss.argmin(-1)
    assert torch.equal(res.restart, best)
    assert torch.allclose(
        torch.as_tensor(res.history.train_loss[-1].values), res.restart_loss.min(-1).values
    )
    assert len(set(res.restart_loss.flatten().tolist())) == 6  # six different runs
    # the kept weights are those of the chosen restart: its test error is recomputed
    Xte, yte = trial_prompts(cfg, stream=2, n=cfg.test_tasks)
    pred = res.model.predict(res.state, res.model.prepare(Xte))
    torch.testing.assert_close(((yte - pred) ** 2).mean(-1), res.test_error.absolute)
    one = train(cfg.replace(restarts=1))
    for k in plain.state:
        assert torch.equal(one.state[k], plain.state[k])
    with pytest.raises(ParameterError, match="init .* needs restarts=1"):
        train(cfg.replace(restarts=2), init=plain.state)
    with pytest.raises(ParameterError, match="restarts must be"):
        cfg.replace(restarts=0)


def test_separate_attention_steps_through_the_couplings_exactly():
    """sla-separate trained full batch through the couplings (chain rule through
    W = W_Q^T W_K, penalty on W_Q and W_K) follows the prompt-path trajectory to 1e-10."""
    cfg = _cfg("sla-separate", trials=2, epochs=40, seed=3, eval_every=10, **SMALL)
    fast = train(cfg, quadratic=True)
    slow = train(cfg)
    for k in fast.state:
        torch.testing.assert_close(fast.state[k], slow.state[k], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast.grad_norm, slow.grad_norm, rtol=1e-10, atol=1e-12)
    np_loss = fast.history.train_loss.values
    assert (np_loss[-1] < np_loss[0]).all() and fast.W is None and fast.exact_W is None
    factors = train(cfg.replace(sampler="factors"))
    assert torch.isfinite(factors.test_error.relative).all()


# ------------------------------------------------------------------- task pools
def test_training_on_a_pool_reports_e_idg_beside_e_icl():
    """With tasks=K the trials train on the pool's tasks; e_IDG (Monte Carlo on pool
    tasks) agrees with the closed form of the pool's moments at the trained W within 4
    standard errors, and e_ICL with the fresh-task one; g_task = e_ICL - e_IDG."""
    from spinglass_icl.tasks import TaskConfig
    from spinglass_icl.training import STREAM_DATA, STREAM_IDG, STREAM_TEST

    task = TaskConfig(D=3, N=6, P=96, noise=0.1, tasks=2, pool_seed=4)
    cfg = TrainConfig(task=task, model="sla", lam=1e-3, trials=2, epochs=150, seed=1,
                      test_tasks=3000)  # fmt: skip
    # the streams: training and e_IDG prompts carry pool tasks, e_ICL prompts fresh ones
    pool = task.pool
    quiet = dataclasses.replace(cfg, task=dataclasses.replace(task, noise=0.0))
    for stream, from_pool in ((STREAM_DATA, True), (STREAM_IDG, True), (STREAM_TEST, False)):
        X, _ = trial_prompts(quiet, stream, 50)
        w = _tasks_of(X, task)
        d = (w[..., None, :] - pool).abs().amax(-1).amin(-1)  # distance to the pool
        assert bool((d < 1e-9).all()) == from_pool and bool((d > 1e-6).all()) != from_pool
    res = train(cfg)
    assert res.test_error_idg is not None and res.test_error_idg.n_tasks == 3000
    icl, idg = task.exact_test_error(res.W, "icl"), task.exact_test_error(res.W, "idg")
    assert ((res.test_error_idg.absolute - idg).abs() < 4 * res.test_error_idg.stderr).all()
    assert ((res.test_error.absolute - icl).abs() < 4 * res.test_error.stderr).all()
    assert torch.equal(res.gtask, res.test_error.absolute - res.test_error_idg.absolute)
    assert (res.gtask > 0).all()  # two memorized tasks: far better on them
    rel = res.test_error_idg.absolute / task.label_variance("idg")
    assert torch.equal(res.test_error_idg.relative, rel)
    s = res.summary()
    assert s["gtask"]["per_trial"] == res.gtask.tolist()
    assert "relative_test_error_idg=" in repr(res) and "tasks=2" in repr(res)
    # without a pool: one test error, nothing else (replace takes the pool's flat names)
    assert cfg.replace(tasks=None, epochs=5).task == dataclasses.replace(task, tasks=None)
    plain = train(cfg.replace(tasks=None, epochs=5))
    assert plain.test_error_idg is None and plain.gtask is None
    assert "gtask" not in plain.summary() and "idg" not in repr(plain)


def _tasks_of(X, task):
    """The task of each noiseless prompt, solved from its N > D context examples
    (labels ``y = w.x`` in the authors' convention)."""
    ctx = X[..., : task.D, : task.N]  # (T, n, D, N)
    y = X[..., task.D, : task.N] / task.label_scale
    return torch.linalg.lstsq(ctx.transpose(-1, -2), y[..., None]).solution[..., 0]


def test_a_pool_with_equal_repetition_larger_than_p_is_refused():
    from spinglass_icl.tasks import TaskConfig

    task = TaskConfig(D=3, N=6, P=16, tasks=32, assignment="equal")
    with pytest.raises(ParameterError, match=r"tasks must be <= P = 16 .*got 32"):
        TrainConfig(task=task, model="sla")


@pytest.mark.parametrize(
    "model,quadratic,kw",
    [
        ("sla", False, {}),  # full batch, prompts
        ("sla", None, {"optimizer": "sgd", "lr": 0.2, "batch_size": 16}),  # minibatch SGD
        ("sla-separate", False, {}),  # prompts
        ("sla-separate", True, {}),  # couplings, penalty apart
    ],
)
def test_sla_like_steps_without_autograd_follow_autograd(model, quadratic, kw, monkeypatch):
    """SLA and sla-separate step with the exact gradient ``dL/dW`` of the merged W and the
    chain rule, no autograd (training._merged_step): 50 steps give autograd's weights,
    gradient norms and losses to 1e-10 (float64), on every path (prompts, couplings,
    minibatch SGD)."""
    from spinglass_icl import training

    cfg = _cfg(model=model, trials=2, epochs=50, seed=4, eval_every=10, **SMALL, **kw)
    fast = train(cfg, quadratic=quadratic)
    monkeypatch.setattr(training, "_merged_grads", lambda m: None)  # autograd on eq. 2
    slow = train(cfg, quadratic=quadratic)
    for k in fast.state:
        torch.testing.assert_close(fast.state[k], slow.state[k], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast.grad_norm, slow.grad_norm, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        fast.history["train_loss"].values, slow.history["train_loss"].values, rtol=1e-10
    )
    first = train(TrainConfig.replace(cfg, epochs=1), quadratic=quadratic).state
    assert all(_rel(fast.state[k], first[k]) > 1e-3 for k in fast.state)  # it moved


def test_a_subclass_with_its_own_predict_steps_through_autograd():
    """A subclass of the SLA that changes ``predict`` is not stepped with the SLA's exact
    gradient (that would silently train another model): it goes through autograd."""
    from dataclasses import dataclass

    from spinglass_icl import models, training

    @dataclass(frozen=True)
    class Doubled(models.SLA):
        def predict(self, params, data):
            return 2 * super().predict(params, data)

    assert training._merged_grads(models.SLA(D=3, N=5)) is not None
    assert training._merged_grads(models.SeparateSLA(D=3, N=5)) is not None
    assert training._merged_grads(Doubled(D=3, N=5)) is None
