"""A new task distribution in one file: Rademacher tasks ``w in {-1, +1}^D``.

Registering a subclass of :class:`spinglass_icl.TaskConfig` that says how to draw one
task (``_fresh``) and what its moments are (``fresh_moments``) is all it takes: sampling
prompts and factors, the spin-glass instance, the exact and AMP solutions, the Monte Carlo
and closed-form test errors (in-context and, with a pool, in-distribution), sweeps and
the key that seeds and stores hash all follow. Run it::

    python examples/extending/new_task.py [--quick] [--json]

The sweep's local workers are fresh processes that re-run this file's top level, so
they know the registered distribution; in a package, register it at import time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import torch

from spinglass_icl import TaskConfig, build_instance, contrast, ground_state, solve, spins_to_W
from spinglass_icl.models import build_model
from spinglass_icl.sweep import SweepSpec, run_sweep
from spinglass_icl.tasks import TaskMoments, register_task


@register_task
@dataclasses.dataclass(frozen=True, repr=False)
class RademacherTasks(TaskConfig):
    """Tasks with i.i.d. entries +-1 (norm sqrt(D) exactly)."""

    name = "rademacher"

    @classmethod
    def _fresh(cls, D, task_norm, shape, g):
        return torch.randint(0, 2, (*shape, D), generator=g).to(torch.float64) * 2 - 1

    def fresh_moments(self) -> TaskMoments:
        D = self.D
        zero = torch.zeros(D, dtype=torch.float64)
        # E w = 0, E w w^T = I, E |w|^2 w = D E w = 0, E |w|^4 = D^2
        return TaskMoments(zero, torch.eye(D, dtype=torch.float64), zero.clone(), float(D * D))


def train_sla(task: TaskConfig, lam: float, epochs: int, seed: int = 0) -> torch.Tensor:
    """Full-batch Adam on eq. 2 for the SLA on prompts of ``task``; returns its W."""
    model = build_model("sla", task.D, task.N, convention=task.convention)
    prompts = task.sample_prompts(seed=seed)
    data = model.prepare(prompts.X)
    gens = [torch.Generator().manual_seed(seed + 1)]
    params = {k: v.requires_grad_() for k, v in model.init_params(gens).items()}
    opt = torch.optim.Adam(params.values(), lr=0.02)
    for _ in range(epochs):
        opt.zero_grad()
        pred = model.predict(params, data)
        penalty = sum((v * v).sum() for v in params.values())
        loss = ((prompts.y - pred) ** 2).mean() / 2 + lam / 2 * penalty
        loss.backward()
        opt.step()
    (W,) = (v.detach() for v in params.values())
    return W.reshape(task.D + 1, task.D + 1)


def main(quick: bool = False) -> dict:
    D, N, P, lam = (4, 8, 160, 0.2) if quick else (8, 16, 640, 0.2)
    out = {}
    # 1. sampling: the prompts carry Rademacher tasks
    task = RademacherTasks(D, N, P, convention="normalized", noise=0.1)
    prompts = task.sample_prompts(seed=0)
    assert set(prompts.w.unique().tolist()) == {-1.0, 1.0}
    print(f"{task!r}: key {task.key()}")
    # 2. the spin-glass instance, its exact ground state and AMP
    inst = build_instance(prompts, lam=lam)
    W_exact = spins_to_W(ground_state(inst))
    res = solve(inst, "amp", beta=1e4, damping=0.5, tol=1e-10, max_iter=5000, warn=False)
    W_amp = spins_to_W(res.m)
    out["amp_vs_exact"] = float((W_amp - W_exact).abs().max() / W_exact.abs().max())
    print(f"AMP {res.status.item()}: max |W_amp - W_exact| / max |W| = {out['amp_vs_exact']:.1e}")
    # 3. test errors: Monte Carlo against the closed form over fresh Rademacher tasks
    mc = task.test_error(W_exact, n_tasks=50_000, seed=1)
    ex = task.test_error(W_exact, exact=True)
    out["mc"], out["mc_se"], out["exact"] = float(mc.absolute), float(mc.stderr), float(ex.absolute)
    print(f"e_ICL: Monte Carlo {mc}, closed form {float(ex.absolute):.4g}")
    # ... and with a pool of 3 Rademacher tasks: in-distribution versus in-context
    pooled = dataclasses.replace(task, tasks=3, pool_seed=7)
    W_pool = spins_to_W(ground_state(build_instance(pooled.sample_prompts(seed=0), lam)))
    icl, idg = (float(pooled.exact_test_error(W_pool, k)) for k in ("icl", "idg"))
    out["pool_icl"], out["pool_idg"] = icl, idg
    print(f"pool of 3: e_ICL {icl:.4g}, e_IDG {idg:.4g}, g_task {icl - idg:.4g}")
    # 4. a two-row sweep through the local executor, prompts from the registered law
    spec = SweepSpec(
        grid={"P": [P // 2, P]},
        fixed={"D": D, "N": N, "lam": lam, "convention": "normalized", "noise": 0.1,
               "solver": "exact"},
        distribution="rademacher",
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        store = run_sweep(spec, Path(tmp) / "sweep.sqlite", executor="local", workers=2)
        rows = sorted(store.rows(), key=lambda r: r["P"])
    out["sweep"] = [(r["P"], r["test_error"]) for r in rows]
    print("sweep:", ", ".join(f"P={p}: {e:.4g}" for p, e in out["sweep"]))
    # 5. a trained SLA on the same law approaches the ground state
    W_sla = train_sla(task, lam, epochs=300 if quick else 1500)
    out["sla"] = float(task.exact_test_error(W_sla))
    out["sla_contrast"] = float(contrast(W_sla))
    print(f"trained SLA: e_ICL {out['sla']:.4g} (ground state {out['exact']:.4g}), "
          f"contrast {out['sla_contrast']:.3f}")  # fmt: skip
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--json", action="store_true", help="end with the numbers as JSON")
    args = ap.parse_args()
    numbers = main(args.quick)
    if args.json:
        print(json.dumps(numbers))
