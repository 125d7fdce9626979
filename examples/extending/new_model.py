"""A new model in one file: tied query-key linear attention, registered and trained.

The paper's simplified linear attention (SLA, eq. 40) reads out ``y^ = c u^T W q`` with
``u = X X^T[D, :]`` (row D of the prompt's Gram matrix) and ``q`` the query token. Before
merging, ``W = W_Q^T W_K`` (the package's ``sla-separate`` model, supplement Fig. S1). Here
the query and key maps are *tied*, ``W_Q = W_K = V``, so that ``W = V^T V`` is positive
semi-definite: a model that can represent the ground state of eq. 5 only where that is
itself positive semi-definite. Nothing else in the package changes:

1. write the model (a frozen dataclass: ``init_params``, ``prepare``, ``predict``);
2. write its config (the registered object: name, model class, default learning rates,
   hyperparameters with their checks) and register it with ``@register_model``;
3. train it with the public training API, beside the built-in SLA and ``sla-separate``.

Run: ``python examples/extending/new_model.py`` (seconds on one CPU core).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spinglass_icl import ParameterError, TaskConfig
from spinglass_icl.errors import Int
from spinglass_icl.models import (
    SLA,
    Model,
    ModelConfig,
    model_config,
    model_names,
    register_model,
)
from spinglass_icl.training import TrainConfig, train


@dataclass(frozen=True)
class TiedSLA(Model):
    """``y^ = c (V u) . (V q)``: SLA with ``W = V^T V`` (tied W_Q = W_K = V, rank <= r).

    ``V``: r x (D+1), initialized ``N(0, 1/(D+1))`` like the SLA's W (LeCun normal).
    """

    r: int = 8
    name = "sla-tied"

    prepare = SLA.prepare  # (u, q): all an SLA-like read-out needs

    def init_params(self, generators, *, device=None, dtype=torch.float64):
        d1 = self.D + 1
        V = torch.stack(
            [torch.randn(self.r, d1, generator=g, dtype=torch.float64) for g in generators]
        )
        return {"V": (V / math.sqrt(d1)).to(device=device, dtype=dtype)}

    def predict(self, params, data):
        u, q = data  # (T, B, D+1) each
        Vt = params["V"].transpose(1, 2)  # (T, D+1, r)
        return self.c * ((u @ Vt) * (q @ Vt)).sum(-1)  # (T, B)


@register_model
@dataclass(frozen=True)
class TiedSLAConfig(ModelConfig):
    """The registered object: the name, the model it builds, its own hyperparameter ``r``
    (checked on construction) and its default learning rates (an optimizer it does not
    name falls back to the package's)."""

    r: int = 8
    name = "sla-tied"
    model_class = TiedSLA
    default_lr = {"adam": 1e-2}
    _parameter_constraints = {"r": Int(1)}

    def prompt_items(self, D: int, N: int) -> int:
        return 2 * (D + 1)  # what prepare keeps per prompt: (u, q)


def main() -> None:
    assert "sla-tied" in model_names()
    task = TaskConfig(D=5, N=20, P=200)
    print(f"registered models: {', '.join(model_names())}")
    print(f"task: D={task.D} N={task.N} P={task.P}; full-batch Adam, lam = 0.01, 3 trials")
    print("| model | lr | relative test error (mean over trials) | epochs |")
    print("|---|---|---|---|")
    results = {}
    for name, params in (("sla", {}), ("sla-separate", {}), ("sla-tied", {"r": 6})):
        cfg = TrainConfig(
            task=task,
            model=model_config(name, **params),
            lam=0.01,
            trials=3,
            epochs=300,
            test_tasks=1000,
            seed=1,
        )
        res = train(cfg)
        results[name] = res
        rel = float(res.test_error.relative.mean())
        print(f"| {name} | {cfg.learning_rate:g} | {rel:.4f} | {int(res.epochs_run.max())} |")
    # the tied model's weights give an SLA with W = V^T V: the same predictions
    tied = results["sla-tied"]
    V = tied.state["V"]
    W = V.transpose(1, 2) @ V
    sla = SLA(task.D, task.N)
    u, q = (
        torch.randn(3, 7, task.D + 1, dtype=torch.float64),
        torch.randn(3, 7, task.D + 1, dtype=torch.float64),
    )
    gap = (tied.model.predict(tied.state, (u, q)) - sla.predict({"W": W}, (u, q))).abs().max()
    print(f"tied model vs SLA with W = V^T V: max |difference| = {float(gap):.1e}")
    print(f"smallest eigenvalue of W = V^T V: {float(torch.linalg.eigvalsh(W).min()):.1e} (>= 0)")
    print(repr(tied))
    for bad in (lambda: model_config("sla-tyed"), lambda: model_config("sla-tied", r=0)):
        try:
            bad()
        except ParameterError as exc:
            print(f"refused: {exc}")


if __name__ == "__main__":
    main()
