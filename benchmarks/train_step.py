"""One full-batch training step of SA, TF, SLA and sla-separate: before and after.

Usage::

    python benchmarks/train_step.py [--N 50,200] [--P 10000] [--rounds 5] [--threads 1]
                                    [--dtype float32] [--models sa,tf] [--trials 1]

For each model and context length N (D = 20, H = 32, ``--trials`` trials, the Fig. 6 /
Fig. S8 setting; Fig. S1's is ``--models sla-separate --N 100 --P 800 --trials 10
--dtype float64``) this times the gradient of eq. (2) (forward and backward, no optimizer update)
through two implementations on the same data and weights, interleaved (before, after,
before, after, ...) ``--rounds`` times, and prints the minimum wall and thread-CPU
milliseconds of each beside the largest relative difference of the gradients:

* before: the tokens in one layout (T, B, N+1, D+1); the scores ``X_i . r`` and the mix
  ``sum_i alpha_i X_i`` as batched products with one column on the right (one tiny GEMM
  per prompt), the softmax over a strided axis (the package's code until this benchmark);
* after: :func:`spinglass_icl.models._query_scores_and_mix`, the tokens held in both
  layouts so that every pass (two forward, two backward) is a product with the rows on
  the left, and the softmax over a contiguous last axis;
* sla, sla-separate: before, autograd on eq. (2); after, ``training._merged_step``, the
  exact gradient of the merged W, ``(c/P) sum_mu (y^ - y) u q^T``, and the chain rule
  (``merged_grads``), no autograd graph.

The minimum over rounds is reported because the development machine is shared: the
minimum is the least disturbed measurement (say the load average when quoting).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch

from spinglass_icl.training import (
    TrainConfig,
    _device_data,
    _initial_params,
    _loss,
    _merged_step,
)


def _before_sa(model, params, data):
    """SA.predict before (one token layout; scores and values as one bmm with 2 columns)."""
    Xt = data[0]
    T, B, n, d = Xt.shape
    r = Xt[:, :, -1, :] @ (params["W_Q"].transpose(1, 2) @ params["W_K"])
    u = (params["W_O"] @ params["W_V"])[:, model.D, :]
    ru = torch.stack([r / math.sqrt(model.H), u[:, None].expand(T, B, d)], -1)
    sz = Xt.reshape(T * B, n, d) @ ru.reshape(T * B, d, 2)
    alpha = torch.softmax(sz[..., 0], dim=-1)
    return (alpha * sz[..., 1]).sum(-1).reshape(T, B)


def _before_tf(model, params, data):
    """TF.predict before (``_attention_query`` on one token layout)."""
    from spinglass_icl.models import _attention_query

    Xt = data[0]
    z1 = _attention_query(params, Xt, model.H) + Xt[:, :, -1, :]
    z2 = torch.relu(z1 @ params["W_1"].transpose(1, 2) + params["b_1"][:, None])
    z3 = z2 @ params["W_2"].transpose(1, 2) + params["b_2"][:, None]
    return (z1 + z3)[..., model.D]


BEFORE = {"sa": _before_sa, "tf": _before_tf}
#: models whose "after" is training._merged_step (no autograd) and "before" autograd on
#: the same predict (the package's code until this benchmark)
MERGED = ("sla", "sla-separate")


class _Wrap:
    """A model whose predict is ``fn`` (the loss of eq. 2 calls ``model.predict``)."""

    def __init__(self, model, fn):
        self.model, self.fn = model, fn

    def predict(self, params, data):
        return self.fn(self.model, params, data)


def _grad(model, params, data, y, lam):
    if isinstance(model, tuple):  # ("merged", model, cfg): the step without autograd
        _, m, cfg = model
        return _merged_step(cfg, m, params, data, y, None, m.merged_grads)[1]
    loss = _loss(model, params, data, y, lam)
    return torch.autograd.grad(loss.sum(), list(params.values()))


def _timed(*args) -> tuple[float, float, tuple]:
    w, c = time.perf_counter(), time.thread_time()
    out = _grad(*args)
    return 1e3 * (time.perf_counter() - w), 1e3 * (time.thread_time() - c), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", default="50,200")
    ap.add_argument("--P", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--models", default="sa,tf")
    ap.add_argument("--trials", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# one full-batch gradient step, D=20, H=32, P={args.P}, {args.trials} trial(s), "
          f"{args.dtype}, "
          f"threads {args.threads}, min of {args.rounds} interleaved rounds, "
          f"load average {os.getloadavg()[0]:.1f} at start")  # fmt: skip
    print("| model | N | before ms (wall / cpu) | after ms (wall / cpu) | cpu ratio | "
          "max rel. grad diff |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    dev = torch.device("cpu")
    for m in args.models.split(","):
        for N in (int(x) for x in args.N.split(",")):
            cfg = TrainConfig.of(model=m, D=20, N=N, P=args.P, lam=0.005, trials=args.trials,
                                 epochs=1, dtype=args.dtype, test_tasks=2)  # fmt: skip
            model = cfg.build_model()
            dtype = getattr(torch, args.dtype)
            data, y, _, _ = _device_data(cfg, model, dev, dtype)
            params = _initial_params(cfg, model, None, dev, dtype)
            for p in params.values():
                p.requires_grad_(True)
            if m in MERGED:  # before: autograd; after: the exact gradient of the merged W
                old, model = model, ("merged", model, cfg)
            else:
                old = _Wrap(model, BEFORE[m])
            runs = {"before": [], "after": []}
            grads = {}
            for _ in range(args.rounds):
                for name, mod in (("before", old), ("after", model)):
                    w, c, g = _timed(mod, params, data, y, cfg.lam)
                    runs[name].append((w, c))
                    grads[name] = g
            diff = max(
                float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
                for a, b in zip(grads["after"], grads["before"])
            )
            bw, bc = (min(x[i] for x in runs["before"]) for i in (0, 1))
            aw, ac = (min(x[i] for x in runs["after"]) for i in (0, 1))
            print(f"| {m} | {N} | {bw:.1f} / {bc:.1f} | {aw:.1f} / {ac:.1f} | "
                  f"{bc / ac:.2f} | {diff:.1e} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
