"""Seconds per training epoch, 100 trials of each model, the Fig. 6 setting (D=20, N=20, P=10 000).

Usage::

    python benchmarks/train.py [--trials 100] [--P 10000] [--epochs 3] [--chunk 0]
                               [--devices cpu,cuda] [--dtype float64] [--threads 0]
                               [--sla-prompt-path] [--study sa-d20|p-scaling|stop|chunks]
                               [--lr 0.1,0.03] [--rounds 2]

Each row trains ``--epochs`` full-batch Adam epochs of ``--trials`` independent trials in
one batched computation and reports the optimization time per epoch
(``TrainResult.step_seconds``: forward, backward and update; data generation and
evaluation excluded). ``--chunk K`` trains the trials
in chunks of K (``first_trial`` offsets) when the full batch does not fit in memory;
seconds are then summed over chunks. CUDA rows appear when CUDA is available.

``--study sa-d20`` instead prints what SA and TF learn at D = 20 (the open problem of
Fig. 6, docs/experiments.md#fig-6; benchmarks/RESULTS.md, "## train"): relative test errors of 2
trials of full-batch Adam (default lr: 3e-3 since the study, which ran at 1e-2; 300 epochs, float32)
at N = 20, P = 10 000 under several lam, conventions and initializations, and warm starts from a
learned solution (``train(init=...)``).

``--study stop`` trains ``--trials`` trials of each of ``--models`` at the ``paper`` Fig. 6
setting (D = 20, N = 50, P = 10 000, lam = 0.005, convergence stop 1e-7 over 50 epochs,
2000-epoch cap) for each learning rate of ``--lr`` and prints epochs to the stop, final
gradient norm, test error and loss per trial.

``--study chunks`` trains ``--trials`` (default 4) trials of each of ``--models`` (default
sa,tf,mhla) as the paper presets train Fig. 6 and Fig. S8 (D = 20, ``--N`` (default 50),
P = 10 000, each trial to its own stop; the presets' dtypes), one trial per chunk against
four per chunk, interleaved ``--rounds`` times, and prints the wall time per trial-epoch
(a chunk of four steps only the trials still training once one stops).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from spinglass_icl.models import get_model, model_config, model_names
from spinglass_icl.tasks import make_generator
from spinglass_icl.training import (
    STREAM_INIT,
    TrainConfig,
    TrainResult,
    train,
    trial_seed,
)


def seconds_per_epoch(
    cfg: TrainConfig, epochs: int, chunk: int, quadratic: bool | None = None
) -> float:
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
        total += train(c, quadratic=quadratic).step_seconds / (epochs + 1)
    return total


def p_scaling(D: int = 10, N: int = 20, trials: int = 10, epochs: int = 3000) -> None:
    """Full-batch SLA (Adam): wall time of ``train()`` (data, G and h, steps, evaluation) at
    P = 2000 and 20 000, quadratic path vs prompt path, interleaved (A, B, A, B)."""
    print(f"# full-batch SLA, D={D} N={N} {trials} trials {epochs} epochs, Adam, float64")
    print("| path | P | train() s | step s | s at P=20000 / s at P=2000 |")
    print("|---|---|---|---|---|")
    for quad in (True, False):
        t = {}
        for P in (2000, 20_000):
            cfg = TrainConfig.of(
                model="sla", D=D, N=N, P=P, lam=0.01, trials=trials, epochs=epochs,
                eval_every=epochs // 10,
            )  # fmt: skip
            res = train(cfg, quadratic=quad)
            t[P] = res.seconds
            ratio = f"{t[20_000] / t[2000]:.2f}" if P == 20_000 else ""
            name = "quadratic" if quad else "prompts"
            print(f"| {name} | {P} | {res.seconds:.2f} | {res.step_seconds:.2f} | {ratio} |",
                  flush=True)  # fmt: skip


def _study_row(label: str, cfg: TrainConfig, init=None) -> TrainResult:
    res = train(cfg, init=init)
    h = res.history.relative_test_error.mean("trial").values
    per = ", ".join(f"{x:.3f}" for x in res.test_error.relative.tolist())
    qk = sum(float((res.state[k] ** 2).sum()) for k in ("W_Q", "W_K")) / cfg.trials
    print(
        f"| {label} | {cfg.model.name} | {cfg.task.convention} | {cfg.lam:g} | {cfg.task.P} "
        f"| {cfg.task.N} "
        f"| {cfg.epochs} | {float(res.test_error.relative.mean()):.3f} ({per}) "
        f"| {h.min():.3f} | {qk:.1f} |",
        flush=True,
    )
    return res


def kernel_smoother_table(D: int = 20, H: int = 32, n: int = 50_000) -> None:
    """Reduced model of SA at infinite P: ``y^ = v sum_i alpha_i y_i``, softmax scores
    ``b x_i.x~`` (``W_K^T W_Q / sqrt(H) = b I`` on k of the D input directions), with or
    without the query token itself in the softmax (its score ``b |x~|^2``). The cheapest
    weights giving it cost ``lam (b sqrt(H) k + |v|)`` in eq. (2) (nuclear norm of
    ``W_K^T W_Q``, and ``|v| <= (|w_O|^2 + |w_V|^2) / 2``); objective = ``0.5 rel + cost``,
    against 0.5 for the trivial predictor. Monte Carlo over n fresh prompts (seed 0)."""
    g = torch.Generator().manual_seed(0)
    print(f"# kernel-smoother model of SA, D={D}, H={H}, {n} prompts, authors labels")
    print(
        "| N | lam | best objective, query token in the softmax (B = bI) | same, without it "
        "(optimistic) |"
    )
    print("|---|---|---|---|")
    for N in (20, 50):
        w, x, xq = (torch.randn(n, *s, generator=g) for s in ((D,), (N, D), (D,)))
        y, yq = (x @ w[:, :, None])[..., 0] / D**0.5, (xq * w).sum(-1) / D**0.5
        cand: dict[str, list] = {"with": [], "without": []}
        for k in (1, 2, 5, 10, 15, 20):
            dot, own = (x[..., :k] @ xq[:, :k, None])[..., 0], (xq[:, :k] ** 2).sum(-1)
            for b in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6):
                for q in cand:
                    sc = b * dot if q == "without" else torch.cat([b * dot, b * own[:, None]], 1)
                    f = (torch.softmax(sc, 1)[:, :N] * y).sum(-1)
                    v = float((f * yq).sum() / (f * f).sum())
                    rel = float(((yq - v * f) ** 2).mean() / yq.var())
                    cand[q].append((rel, b, k, v))
        for lam in (0.0, 0.001, 0.002, 0.005, 0.01):
            cells = []
            for q in ("with", "without"):
                obj, (rel, b, k, v) = min(
                    (0.5 * c[0] + lam * (c[1] * H**0.5 * c[2] + abs(c[3])), c) for c in cand[q]
                )
                cells.append(
                    "0.5: trivial (rel. error 1)"
                    if obj >= 0.5
                    else f"{obj:.4f}: rel. error {rel:.3f} (b={b:g}, k={k})"
                )
            print(f"| {N} | {lam:g} | {cells[0]} | {cells[1]} |", flush=True)
    print()


def study_sa_d20() -> None:
    """SA / TF at D = 20: which settings learn (relative test error < 1)."""
    kernel_smoother_table()
    base = TrainConfig.of(
        model="sa", D=20, N=20, P=10_000, lam=0.01, trials=2, epochs=300, test_tasks=2000,
        dtype="float32",
    )  # fmt: skip
    r = TrainConfig.replace
    lr = get_model("sa")().learning_rate("adam")
    print(f"# D=20, 2 trials (seed 0), full-batch Adam, lr {lr:g}, float32, 2000 test prompts")
    print(
        "| setting | model | convention | lam | P | N | epochs | rel. test error (per trial) "
        "| min along run | (|W_Q|^2+|W_K|^2)/trial |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in ("sa", "tf"):
        c = r(base, model=m)
        _study_row("LeCun init", c)
        _study_row("LeCun init", r(c, lam=0.005))
        learned = _study_row("LeCun init", r(c, lam=0.001))
        _study_row("LeCun init", r(c, convention="paper-text"))
        _study_row("warm start from the lam=0.001 run", r(c, epochs=1000), init=learned.state)
    _study_row("LeCun init", r(base, epochs=1000))
    _study_row("LeCun init", r(base, lam=0.002))
    _study_row("LeCun init", r(base, lam=0.0))
    small = base.build_model().init_params(
        [make_generator(trial_seed(0, k, STREAM_INIT)) for k in base.trial_indices]
    )
    small = {k: v * (0.1 if k in ("W_Q", "W_K") else 1.0) for k, v in small.items()}
    _study_row("W_Q, W_K init x0.1", r(base, lam=0.001), init=small)
    _study_row("W_Q, W_K init x0.1", base, init=small)
    _study_row("LeCun init", r(base, lam=0.001, P=2000))
    _study_row("LeCun init", r(base, N=50))
    _study_row("LeCun init", r(base, N=50, lam=0.005))
    _study_row("LeCun init", r(base, model="tf", N=50, lam=0.005))


def _fig6_params(name: str) -> dict:
    """The Fig. 6 H = 32, M = 10 that model ``name`` has."""
    return model_config(name, strict=False, H=32, M=10).params()


def stop_study(models: list[str], lrs: list[float | None], trials: int, dtype: str) -> None:
    """Epochs to the convergence stop of the ``paper`` Fig. 6 preset (D = 20, N = 50,
    P = 10 000, lam = 0.005, relative loss change < 1e-7 over 50 epochs, 2000-epoch cap,
    H = 32, M = 10, full-batch Adam) per learning rate: epochs run, stopped or not, final
    gradient norm, relative test error (2000 fresh prompts) and final eq. (2) loss per trial."""
    print(f"# Fig. 6 paper stop, {trials} trials, {dtype}, threads={torch.get_num_threads()}")
    print("| model | lr | epochs (per trial) | stopped | grad norm | rel. test error | "
          "final loss | step s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for m in models:
        for lr in lrs:
            cfg = TrainConfig.of(
                model=m, D=20, N=50, P=10_000, lam=0.005, trials=trials, epochs=2000, lr=lr,
                tol=1e-7, window=50, test_tasks=2000, dtype=dtype,
                model_params=_fig6_params(m),
            )  # fmt: skip
            r = train(cfg)
            f = lambda xs, fmt: ", ".join(format(x, fmt) for x in xs)  # noqa: E731
            print(
                f"| {m} | {cfg.learning_rate:g} | {f(r.epochs_run.tolist(), 'd')} "
                f"| {sum(r.converged.tolist())}/{trials} | {f(r.grad_norm.tolist(), '.1e')} "
                f"| {f(r.test_error.relative.tolist(), '.5f')} "
                f"| {f(r.history.train_loss.values[-1].tolist(), '.7f')} "
                f"| {r.step_seconds:.1f} |",
                flush=True,
            )


def study_chunks(models: list[str], N: int, trials: int, rounds: int, seed: int) -> None:
    """``--study chunks``: ms per trial-epoch of one trial per chunk against four, each trial
    to the stop of the paper presets' Fig. 6 and Fig. S8 training (lam 0.005, a relative
    change below 1e-7 over 50 epochs, cap 2000; the models' default learning rates and the
    presets' dtypes; no evaluation on the way)."""
    from spinglass_icl.experiments.presets import get_preset

    p = get_preset("paper", "fig6")
    print(f"# D={p.D} N={N} P={p.P} lam={p.train_lam} trials={trials} seed={seed} "
          f"stop={p.train_tol}/{p.train_window} cap={p.epochs} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}")  # fmt: skip
    print("| model, dtype | round | chunk | wall s | step s | trial-epochs | ms per trial-epoch "
          "(wall) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for m in models:
        hyper = {"H": p.H} if m in ("sa", "tf") else {"M": p.M} if m == "mhla" else {}
        cfg = TrainConfig.of(model=m, D=p.D, N=N, P=p.P, lam=p.train_lam, model_params=hyper,
                             trials=trials, epochs=p.epochs, tol=p.train_tol,
                             window=p.train_window, eval_every=p.epochs, seed=seed,
                             dtype=p.dtype.get(m, "float64"), test_tasks=p.test_tasks)  # fmt: skip
        for r in range(rounds):
            for chunk in (1, 4):
                t0, step, epochs = time.perf_counter(), 0.0, 0
                for start in range(0, trials, chunk):
                    n = min(chunk, trials - start)
                    res = train(dataclasses.replace(cfg, trials=n, first_trial=start))
                    step += res.step_seconds
                    epochs += int(res.epochs_run.sum())
                wall = time.perf_counter() - t0
                print(f"| {m}, {cfg.dtype} | {r + 1} | {chunk} | {wall:.1f} | {step:.1f} | "
                      f"{epochs} | {1e3 * wall / epochs:.2f} |", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, help="default 100 (--study chunks: 4)")
    ap.add_argument("--P", type=int, default=10_000)
    ap.add_argument("--D", type=int, default=20)
    ap.add_argument("--N", type=int, help="default 20 (--study chunks: 50)")
    ap.add_argument("--epochs", type=int, help="default 3")
    ap.add_argument("--chunk", type=int, default=0, help="trials per chunk (0: all at once)")
    ap.add_argument("--models", help="default: the first five models (--study chunks: sa,tf,mhla)")
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument(
        "--sla-prompt-path",
        action="store_true",
        help="full-batch SLA through the prompts (as before the quadratic path)",
    )
    ap.add_argument(
        "--study",
        choices=["sa-d20", "p-scaling", "stop", "chunks"],
        help="sa-d20: a learning study; p-scaling: full-batch SLA time at P = 2000 vs 20 000; "
        "stop: epochs to the Fig. 6 paper stop per --lr (--models, --trials, --dtype); "
        "chunks: ms per trial-epoch, one trial per chunk against four",
    )
    ap.add_argument("--rounds", type=int, default=2, help="--study chunks: interleaved rounds")
    ap.add_argument("--seed", type=int, default=0, help="--study chunks: the trials' seed")
    ap.add_argument("--lr", default="", help="--study stop: comma-separated learning rates")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.study == "sa-d20":
        study_sa_d20()
        return
    if args.study == "p-scaling":
        p_scaling()
        return
    if args.study == "chunks":
        study_chunks((args.models or "sa,tf,mhla").split(","), args.N or 50, args.trials or 4,
                     args.rounds, args.seed)  # fmt: skip
        return
    # the defaults of the other modes
    args.trials, args.N, args.epochs = args.trials or 100, args.N or 20, args.epochs or 3
    args.models = args.models or ",".join(model_names()[:5])
    if args.study == "stop":
        lrs = [float(x) for x in args.lr.split(",")] if args.lr else [None]
        stop_study(args.models.split(","), lrs, args.trials, args.dtype)
        return
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
            cfg = TrainConfig.of(
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
            quad = False if (args.sla_prompt_path and m == "sla") else None
            s = seconds_per_epoch(cfg, args.epochs, args.chunk, quad)
            print(f"| {m} | {dev} | {s:.3f} | {1e3 * s / args.trials:.2f} |", flush=True)


if __name__ == "__main__":
    main()
