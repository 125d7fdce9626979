"""What moves a softmax-attention trial between basins (Fig. 6's SA spread), at a reduced size.

Usage::

    python benchmarks/sa_basins.py [--D 10] [--N 25] [--P 2000] [--trials 8] [--epochs 600]
                                   [--threads 1]

Full-batch Adam on eq. 2 (lam = 0.005, the Fig. 6 training lam; H = 16), relative test
error on 1000 fresh prompts per trial, every trial shown. Rows:

* ``data k, init j``: trial k's training data from trial j's initial weights (the same data
  with other initializations, and the same initialization on other data): does the
  initialization or the data set the basin?
* ``init x s``: the LeCun initialization of W_Q and W_K scaled by s;
* ``lr``: Adam learning rates around the default 3e-3;
* ``no query key``: the softmax over the N context tokens only (the query token is not a
  key): a model variant registered here through :func:`spinglass_icl.models.register_model`;
* ``restarts 4``: ``TrainConfig.restarts = 4`` (lowest training loss of 4 initializations).

Basins as in Fig. 6: trivial (relative error >= 0.9), good (within 10% of the best trial of
the whole table), worse.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np
import torch

from spinglass_icl import TaskConfig
from spinglass_icl.models import SA, SAConfig, model_config, register_model
from spinglass_icl.tasks import make_generator
from spinglass_icl.training import STREAM_INIT, TrainConfig, train, trial_seed


@dataclass(frozen=True)
class SANoQueryKey(SA):
    """SA with the softmax over the N context tokens only (the query is not a key)."""

    name = "sa-noquery"

    def predict(self, params, data):
        Xt = data[0]  # the token-major layout (SA.prepare also returns the feature-major)
        T, B, n, d = Xt.shape
        r = Xt[:, :, -1, :] @ (params["W_Q"].transpose(1, 2) @ params["W_K"])
        u = (params["W_O"] @ params["W_V"])[:, self.D, :]
        ru = torch.stack([r / math.sqrt(self.H), u[:, None].expand(T, B, d)], -1)
        sz = Xt[:, :, :-1].reshape(T * B, n - 1, d) @ ru.reshape(T * B, d, 2)
        alpha = torch.softmax(sz[..., 0], dim=-1)
        return (alpha * sz[..., 1]).sum(-1).reshape(T, B)


@register_model
@dataclass(frozen=True)
class SANoQueryKeyConfig(SAConfig):
    name = "sa-noquery"
    model_class = SANoQueryKey


def _init(cfg: TrainConfig, seeds: list[int], scale: float = 1.0) -> dict:
    """Initial weights of cfg's model from the INIT streams of trials ``seeds``, W_Q and
    W_K scaled by ``scale``."""
    gens = [make_generator(trial_seed(cfg.seed, k, STREAM_INIT)) for k in seeds]
    p = cfg.build_model().init_params(gens)
    return {k: v * (scale if k in ("W_Q", "W_K") else 1.0) for k, v in p.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--D", type=int, default=10)
    ap.add_argument("--N", type=int, default=25)
    ap.add_argument("--P", type=int, default=2000)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=600)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    T = args.trials
    base = TrainConfig(
        task=TaskConfig(D=args.D, N=args.N, P=args.P), model=model_config("sa", H=16),
        lam=0.005, trials=T, epochs=args.epochs, test_tasks=1000, seed=0,
    )  # fmt: skip
    print(f"# SA, D={args.D} N={args.N} P={args.P} H=16 lam=0.005, full-batch Adam, "
          f"{args.epochs} epochs, {T} trials, threads={torch.get_num_threads()}")  # fmt: skip
    rows: list[tuple[str, np.ndarray]] = []

    def run(label: str, cfg: TrainConfig, init=None) -> np.ndarray:
        res = train(cfg, init=init)
        x = res.test_error.relative.double().numpy()
        rows.append((label, x))
        print(f"{label}: {', '.join(f'{v:.3f}' for v in x)}", flush=True)
        return x

    run("data k, init k (plain)", base)
    shifted = [(k + 1) % T for k in range(T)]
    run("data k, init k+1", base, init=_init(base, shifted))
    one = base.replace(trials=1)
    same_data = [train(one, init=_init(one, [j])) for j in range(T)]
    rows.append(("data 0, init j", np.array([float(r.test_error.relative[0]) for r in same_data])))
    print(f"data 0, init j: {', '.join(f'{v:.3f}' for v in rows[-1][1])}", flush=True)
    for s in (0.3, 3.0):
        run(f"init x {s:g}", base, init=_init(base, list(range(T)), s))
    for lr in (1e-3, 1e-2):
        run(f"lr {lr:g}", base.replace(lr=lr))
    run("no query key", base.replace(model="sa-noquery"))
    run("restarts 4", base.replace(restarts=4))
    best = min(float(x.min()) for _, x in rows)
    print()
    print(f"basins: trivial >= 0.9, good <= 1.1 x {best:.3f} (best trial of the table)")
    print("| setting | median | good | worse | trivial | trials |")
    print("|---|---|---|---|---|---|")
    for label, x in rows:
        triv = x >= 0.9
        good = ~triv & (x <= 1.1 * best)
        n = len(x)
        print(f"| {label} | {np.median(x):.3f} | {good.sum()}/{n} | {(~triv & ~good).sum()}/{n} "
              f"| {triv.sum()}/{n} | {', '.join(f'{v:.3f}' for v in x)} |")  # fmt: skip


if __name__ == "__main__":
    main()
