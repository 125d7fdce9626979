"""``spinglass-icl train``: train the paper's transformers (many trials at once), results on disk.

Writes into ``--out``:

* ``summary.json``: test error and relative test error per trial, their mean and standard
  error over trials, epochs run, seconds, and the full config;
* ``history.csv``: tidy learning curves, one row per (epoch, trial) with ``train_loss``
  (eq. 2), ``test_error`` and ``relative_test_error``;
* ``weights.pt``: ``{"format", "config", "state"}`` with every trial's weights (leading
  trial dimension) and the config that made them (``torch.load``;
  ``TrainConfig.from_dict(config)`` rebuilds it);
* for ``--model sla --trials 1`` also ``instance.npz`` (the same contract as ``solve``:
  ``S`` (P x (D+1)^2), ``y``, scalars ``D, N, P, lam, beta``, plus ``convention``; ``beta``
  is the ``--beta`` flag, default 100, used only by a solver that reads the file) and
  ``weights.npz`` with ``W`` ((D+1) x (D+1), row-major spins).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..models import get_model, model_names
from ..resources import memory_check
from ..safeio import atomic_path, check_output_dir
from ..solvers import SolverConfig
from ..training import OPTIMIZERS, TrainConfig, TrainResult, train
from .common import add_common, add_pool, add_safety, pool_fields, write_json

#: v2: ``config`` is :meth:`TrainConfig.to_dict` with nested ``task`` and ``model``
WEIGHTS_FORMAT = "spinglass-icl train weights v2"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train SLA / FLA / MHLA / SA / TF by gradient descent (eq. 2, 40-45)",
        description="Train --trials independent models in one batched computation and write "
        "summary.json, history.csv, weights.pt (and instance.npz, weights.npz for one SLA "
        "trial) into --out.",
    )
    p.add_argument(
        "--model",
        default="sla",
        help="a registered model: " + ", ".join(model_names()) + " (default sla)",
    )
    p.add_argument("--D", type=int, default=20, help="input dimension (>= 1; default 20)")
    p.add_argument("--N", type=int, default=20, help="context length (>= 1; default 20)")
    p.add_argument("--P", type=int, default=1000, help="training prompts per trial (default 1000)")
    p.add_argument("--lam", type=float, default=0.01, help="ridge lam >= 0 of eq. 2 (default 0.01)")
    p.add_argument("--trials", type=int, default=1, help="independent trials (default 1)")
    p.add_argument("--epochs", type=int, default=200, help="maximum epochs (default 200)")
    p.add_argument(
        "--lr", type=float, default=None, help="learning rate (> 0; default: per model/optimizer)"
    )
    p.add_argument(
        "--optimizer", default="adam", help=f"one of {', '.join(OPTIMIZERS)} (default adam)"
    )
    p.add_argument(
        "--batch-size", type=int, default=None, help="prompts per step (default: full batch)"
    )
    p.add_argument("--H", type=int, default=None, help="SA/TF inner size (default 32)")
    p.add_argument("--M", type=int, default=None, help="MHLA heads (default 10)")
    p.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="initializations per trial; the lowest training loss is kept (default 1)",
    )
    p.add_argument("--noise", type=float, default=0.0, help="label-noise std (default 0)")
    p.add_argument(
        "--test-tasks", type=int, default=2000, help="fresh test prompts per trial (default 2000)"
    )
    add_pool(p)
    p.add_argument(
        "--tol", type=float, default=None, help="stop a trial when its loss changes less (rel.)"
    )
    p.add_argument("--eval-every", type=int, default=None, help="epochs between history records")
    p.add_argument("--dtype", default="float64", help="float64 (default) or float32")
    p.add_argument(
        "--beta", type=float, default=100.0, help="beta written to instance.npz (default 100)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(p)
    add_safety(p)
    p.add_argument("--out", type=Path, default=Path("out/train"), help="output folder")
    p.set_defaults(func=run)


def _savez(path: Path, **arrays) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def run(args: argparse.Namespace) -> int:
    with memory_check(not args.no_memory_check):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """``spinglass-icl train``: train, write the outputs into ``--out``, print the summary."""
    beta = SolverConfig(beta=args.beta).beta  # instance.npz's solver beta, checked there
    get_model(args.model)  # an unknown name is refused before anything else
    cfg = _config(args)
    outputs = ("summary.json", "history.csv", "weights.pt", "instance.npz", "weights.npz")
    out: Path = check_output_dir(args.out, create=False, outputs=outputs)
    res = train(cfg, progress=not args.quiet)  # checks its memory estimate first
    check_output_dir(out)
    summary = res.summary()
    written = _write_outputs(out, cfg, res, summary, beta)
    _print_report(cfg, res, summary)
    print(f"  wrote           {out}/{', '.join(written)}")
    return 0


def _config(args: argparse.Namespace) -> TrainConfig:
    """The run's :class:`TrainConfig` from the command line (validated on construction),
    with the task pool options where any differs from its default."""
    params = {k: getattr(args, k) for k in ("H", "M") if getattr(args, k) is not None}
    cfg = TrainConfig.of(
        args.model,
        args.D,
        args.N,
        args.P,
        convention=args.convention,
        noise=args.noise,
        model_params=params,
        lam=args.lam,
        trials=args.trials,
        epochs=args.epochs,
        lr=args.lr,
        optimizer=args.optimizer,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        test_tasks=args.test_tasks,
        tol=args.tol,
        eval_every=args.eval_every,
        dtype=args.dtype,
        restarts=args.restarts,
    )
    pool = pool_fields(args)
    if pool != {"tasks": None, "pool_seed": 0, "assignment": "uniform", "task_norm": "gaussian"}:
        cfg = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, **pool))
    return cfg


def _write_outputs(
    out: Path, cfg: TrainConfig, res: TrainResult, summary: dict, beta: float
) -> list[str]:
    """Write ``summary.json``, ``history.csv``, ``weights.pt`` and, for a single trial of a
    spin model, its spin-glass instance (``instance.npz``) and its weights (``weights.npz``),
    each atomically; return the names written."""
    task = cfg.task
    summary["config"]["version"] = __version__  # beside its convention
    write_json(out / "summary.json", summary)
    with atomic_path(out / "history.csv") as tmp:
        res.history.to_dataframe().reset_index().to_csv(tmp, index=False)
    with atomic_path(out / "weights.pt") as tmp:
        torch.save(
            {
                "format": WEIGHTS_FORMAT,
                "config": cfg.to_dict(),
                "version": __version__,
                "state": res.state,
            },
            tmp,
        )
    written = ["summary.json", "history.csv", "weights.pt"]
    if cfg.model.spins and cfg.trials == 1:
        inst = res.instances[0]
        _savez(
            out / "instance.npz",
            S=inst.s.cpu().numpy(),
            y=inst.y.cpu().numpy(),
            D=task.D,
            N=task.N,
            P=task.P,
            lam=cfg.lam,
            beta=beta,
            convention=task.convention,
            version=__version__,
        )
        _savez(out / "weights.npz", W=res.W[0].cpu().numpy())
        written += ["instance.npz", "weights.npz"]
    return written


def _print_report(cfg: TrainConfig, res: TrainResult, summary: dict) -> None:
    """The run's summary on stdout: configuration, epochs, the training loss (eq. 2) and
    the test errors (with e_IDG and g_task for a task pool)."""
    task = cfg.task
    te, rte = summary["test_error"], summary["relative_test_error"]
    pm = (
        (lambda d: f"{d['mean']:.6g} ± {d['stderr']:.2g}")
        if cfg.trials > 1
        else (lambda d: f"{d['mean']:.6g}")
    )
    print(
        f"spinglass-icl train  model={cfg.model.name} D={task.D} N={task.N} P={task.P} "
        + (f"tasks={task.tasks} " if task.tasks is not None else "")
        + f"lam={cfg.lam:g} "
        f"trials={cfg.trials} optimizer={cfg.optimizer} lr={cfg.learning_rate:g} "
        f"convention={task.convention} seed={cfg.seed}"
        + (f" restarts={cfg.restarts}" if cfg.restarts > 1 else "")
    )
    print(f"  epochs run      {int(res.epochs_run.max())} ({res.seconds:.2f} s)")
    print(f"  train loss      {float(res.history.train_loss[-1].mean()):.6g}  (eq. 2, mean)")
    print(f"  test error      {pm(te)}")
    print(f"  relative error  {pm(rte)}")
    if res.test_error_idg is not None:  # a task pool: the test error above is e_ICL
        print(f"  e_IDG (pool)    {pm(summary['test_error_idg'])}  (tasks from the pool)")
        print(f"  relative e_IDG  {pm(summary['relative_test_error_idg'])}")
        print(f"  g_task          {pm(summary['gtask'])}  (e_ICL - e_IDG; e_ICL: fresh tasks)")
