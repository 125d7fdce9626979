"""Seconds per training epoch, 100 trials of each model, the Fig. 6 setting (D=20, N=20, P=10 000).

Usage::

    python benchmarks/train.py [--trials 100] [--P 10000] [--epochs 3] [--chunk 0]
                               [--devices cpu,cuda] [--dtype float64] [--threads 0]

Each row trains ``--epochs`` full-batch Adam epochs of ``--trials`` independent trials in
one batched computation and reports the optimization time per epoch
(``TrainResult.step_seconds``: forward, backward and update; data generation and
evaluation excluded). ``--chunk K`` trains the trials
in chunks of K (``first_trial`` offsets) when the full batch does not fit in memory;
seconds are then summed over chunks. CUDA rows appear when CUDA is available.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from spinglass_icl.models import MODELS
from spinglass_icl.training import TrainConfig, train


def seconds_per_epoch(cfg: TrainConfig, epochs: int, chunk: int) -> float:
    """Optimization-step seconds per epoch (``TrainResult.step_seconds`` / epochs run, after a
    1-trial warm-up run), summed over chunks of trials."""
    total = 0.0
    size = chunk or cfg.trials
    for start in range(0, cfg.trials, size):
        n = min(size, cfg.trials - start)
        c = dataclasses.replace(
            cfg, trials=n, first_trial=start, epochs=epochs + 1, eval_every=epochs + 1
        )
        train(dataclasses.replace(c, trials=1, epochs=1, test_tasks=2))  # warm-up
        total += train(c).step_seconds / (epochs + 1)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--P", type=int, default=10_000)
    ap.add_argument("--D", type=int, default=20)
    ap.add_argument("--N", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=0, help="trials per chunk (0: all at once)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [d for d in args.devices.split(",") if d == "cpu" or torch.cuda.is_available()]
    print(
        f"# D={args.D} N={args.N} P={args.P} trials={args.trials} dtype={args.dtype} "
        f"epochs={args.epochs} chunk={args.chunk or args.trials} "
        f"threads={torch.get_num_threads()} torch={torch.__version__}"
    )
    print(f"| model | device | s/epoch ({args.trials} trials) | ms/epoch per trial |")
    print("|---|---|---|---|")
    for dev in devices:
        for m in args.models.split(","):
            cfg = TrainConfig(
                model=m,
                D=args.D,
                N=args.N,
                P=args.P,
                lam=0.01,
                trials=args.trials,
                optimizer="adam",
                device=dev,
                dtype=args.dtype,
            )
            s = seconds_per_epoch(cfg, args.epochs, args.chunk)
            print(f"| {m} | {dev} | {s:.3f} | {1e3 * s / args.trials:.2f} |", flush=True)


if __name__ == "__main__":
    main()
