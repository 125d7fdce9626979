"""``spinglass-icl solve``: one instance, one solver, results on disk."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from ..errors import SEED_MAX, check_float, check_int, check_seed
from ..hamiltonian import make_instance
from ..observables import contrast, spins_to_W, test_error
from ..resources import check_memory, dense_solve_bytes, memory_check
from ..safeio import atomic_path, check_output_dir
from ..solvers import SOLVERS, SolverConfig, solve
from ..solvers.stability import parse_damping, resolve_auto_damping
from ..tasks import resolve_device
from .common import add_common, add_safety, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "solve",
        help="solve one spin-glass instance (exact, AMP, AMP-paper or r-BP)",
        description="Sample one instance, solve it, print a summary and write "
        "instance.npz, solution.npz and summary.json into --out.",
    )
    p.add_argument("--D", type=int, default=10, help="input dimension (>= 1; default 10)")
    p.add_argument("--N", type=int, default=100, help="context length (>= 1; default 100)")
    p.add_argument("--P", type=int, default=1000, help="task diversity (>= 1; default 1000)")
    p.add_argument(
        "--lam", type=float, default=0.01, help="ridge lam (> 0 for the solvers; default 0.01)"
    )
    p.add_argument(
        "--beta", type=float, default=100.0, help="inverse temperature (> 0; default 100)"
    )
    p.add_argument("--solver", default="amp", help=f"one of {', '.join(SOLVERS)} (default amp)")
    p.add_argument(
        "--damping",
        type=parse_damping,
        default=0.5,
        help="damping in [0, 1) (default 0.5), or auto: the smallest predicted to converge "
        "(amp, amp-paper; docs/amp-stability.md)",
    )
    p.add_argument("--tol", type=float, default=1e-8, help="tolerance on the undamped residual")
    p.add_argument("--max-iter", type=int, default=2000, help="iteration cap (default 2000)")
    p.add_argument("--noise", type=float, default=0.0, help="label-noise std (default 0)")
    p.add_argument(
        "--test-tasks", type=int, default=10_000, help="fresh prompts for the test error"
    )
    add_common(p)
    add_safety(p, force=False)
    p.add_argument("--out", type=Path, default=Path("out/solve"), help="output folder")
    p.set_defaults(func=run)


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


def _savez(path: Path, **arrays) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def run(args: argparse.Namespace) -> int:
    with memory_check(not args.no_memory_check):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    D = check_int("D", args.D)
    N = check_int("N", args.N)
    P = check_int("P", args.P)
    lam = check_float("lam", args.lam, low=0.0)
    noise = check_float("noise", args.noise, low=0.0)
    test_tasks = check_int("test_tasks", args.test_tasks)
    cfg = SolverConfig(
        solver=args.solver,
        beta=args.beta,
        damping=0.5 if args.damping == "auto" else args.damping,
        tol=args.tol,
        max_iter=args.max_iter,
    )
    seed = check_seed(args.seed)
    device = resolve_device(args.device)
    out: Path = check_output_dir(args.out, create=False)
    check_memory(
        dense_solve_bytes(D, N, P, cfg.solver, test_tasks),
        f"solve D={D} N={N} P={P} ({(D + 1) ** 2} spins, dense n^2 Gram)",
        "use a smaller D or P, or a sweep spec with matfree = true (matrix-free solvers)",
        device=device,
    )
    t0 = time.perf_counter()
    inst = make_instance(
        D, N, P, lam, convention=args.convention, noise=noise, seed=seed, device=device
    )
    auto_note = None
    if args.damping == "auto":
        damping, auto_note = resolve_auto_damping(
            inst, cfg.solver, beta=cfg.beta, tol=cfg.tol, max_iter=cfg.max_iter
        )
        cfg = dataclasses.replace(cfg, damping=damping)
    res = solve(inst, cfg, warn=False)
    seconds = time.perf_counter() - t0
    W = spins_to_W(res.m)
    if res.converged:
        err = test_error(
            W,
            N,
            convention=args.convention,
            noise=noise,
            n_tasks=test_tasks,
            seed=(seed + 1) % (SEED_MAX + 1),
        )
        c = _finite(float(contrast(W)))
        te, rte, te_se = (_finite(float(x)) for x in (err.absolute, err.relative, err.stderr))
        energy = _finite(float(inst.energy(res.m)))
    else:  # a physics result: report it, but hand no meaningless numbers downstream
        c = te = rte = te_se = energy = None
    undefined = res.converged and None in (c, te, rte, te_se, energy)
    check_output_dir(out)
    _savez(
        out / "instance.npz",
        S=inst.s.cpu().numpy(),
        y=inst.y.cpu().numpy(),
        D=D,
        N=N,
        P=P,
        lam=lam,
        beta=cfg.beta,
        convention=args.convention,
    )
    _savez(
        out / "solution.npz",
        m=res.m.cpu().numpy(),
        v=res.v.cpu().numpy(),
        converged=res.converged,
        iterations=res.n_iter,
        residuals=res.residuals.cpu().numpy(),
    )
    summary = {
        "contrast": c,
        "test_error": te,
        "test_error_stderr": te_se,
        "relative_test_error": rte,
        "energy": energy,
        "converged": res.converged,
        "status": res.status,
        "iterations": res.n_iter,
        "seconds": seconds,
        "config": {
            "D": D,
            "N": N,
            "P": P,
            "lam": lam,
            "noise": noise,
            "convention": args.convention,
            "seed": seed,
            "device": str(device),
            "dtype": "float64",
            **vars(cfg),
            **({"damping_auto": auto_note} if auto_note is not None else {}),
        },
    }
    write_json(out / "summary.json", summary)
    fmt = lambda x: "n/a" if x is None else f"{x:.6g}"  # noqa: E731
    print(
        f"spinglass-icl solve  D={D} N={N} P={P} lam={lam:g} beta={cfg.beta:g} "
        f"solver={cfg.solver} convention={args.convention} seed={seed}"
    )
    print(f"  spins           {(D + 1) ** 2}")
    if auto_note is not None:
        print(f"  damping auto    {auto_note}")
    print(f"  status          {res.status} ({res.n_iter} iterations, {seconds:.2f} s)")
    print(f"  contrast C      {fmt(c)}")
    print(f"  test error      {fmt(te)}  (relative {fmt(rte)})")
    print(f"  energy H        {fmt(energy)}")
    print(f"  wrote           {out}/instance.npz, solution.npz, summary.json")
    if not res.converged:
        print(
            "  note: the solver did not converge; observables are not reported"
            " (null in summary.json)"
        )
    if undefined:
        print(
            "  note: some observables are not finite at these parameters (e.g. W = 0 to"
            " float64 precision at a huge lam); they are n/a here and null in summary.json"
        )
    return 0
