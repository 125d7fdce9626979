"""``spinglass-icl stability``: predict whether damped AMP converges, without iterating m."""

from __future__ import annotations

import argparse
import json
import time

from .. import __version__
from ..hamiltonian import make_instance
from ..resources import check_memory, dense_solve_bytes, memory_check
from ..solvers import DEFAULT_SOLVER, solver_names
from ..solvers.stability import amp_stability, auto_damping
from ..tasks import TaskConfig, resolve_device
from .common import add_common, add_safety, add_solver_settings, jsonable


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stability",
        help="predict whether damped AMP converges on an instance (no mean iteration)",
        description="Sample one instance and predict the AMP solver's outcome from the "
        "variance fixed point (eq. 34b) and the spectrum of the damped mean iteration "
        "(docs/amp-stability.md).",
    )
    p.add_argument("--D", type=int, default=10, help="input dimension (>= 1; default 10)")
    p.add_argument("--N", type=int, default=100, help="context length (>= 1; default 100)")
    p.add_argument("--P", type=int, default=1000, help="task diversity (>= 1; default 1000)")
    p.add_argument("--lam", type=float, default=0.01, help="ridge lam (default 0.01)")
    p.add_argument(
        "--beta", type=float, default=100.0, help="inverse temperature (> 0; default 100)"
    )
    p.add_argument(
        "--solver",
        default=DEFAULT_SOLVER,
        help=f"one of {', '.join(solver_names(stability=True))} (default {DEFAULT_SOLVER}, "
        "as for solve)",
    )
    add_solver_settings(p, damping_type=float, auto=False)
    p.add_argument("--noise", type=float, default=0.0, help="label-noise std (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_common(p)
    add_safety(p, force=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task = TaskConfig(D=args.D, N=args.N, P=args.P, convention=args.convention, noise=args.noise)
    D, N, P = task.D, task.N, task.P
    device = resolve_device(args.device)
    with memory_check(not args.no_memory_check):
        check_memory(
            dense_solve_bytes(D, N, P, args.solver),
            f"stability D={D} N={N} P={P} ({(D + 1) ** 2} spins, dense n^2 couplings)",
            "use a smaller D or P",
            device=device,
        )
    t0 = time.perf_counter()
    inst = make_instance(task, lam=args.lam, seed=args.seed, device=device)  # checks lam, seed
    lam = inst.lam
    st = amp_stability(
        inst,
        args.beta,
        solver=args.solver,
        damping=args.damping,
        tol=args.tol,
        max_iter=args.max_iter,
    )
    auto = float(auto_damping(st))
    seconds = time.perf_counter() - t0
    out = st.summary()
    out["damping_auto"] = auto  # NaN -> null: no damping on the grid converges
    out["seconds"] = seconds
    out["config"] = {
        "D": D, "N": N, "P": P, "lam": lam, "noise": task.noise,
        "convention": args.convention, "version": __version__, "seed": args.seed,
    }  # fmt: skip
    if args.json:
        print(json.dumps(jsonable(out), allow_nan=False))
        return 0
    fmt = lambda x: "inf" if x == float("inf") else f"{x:.6g}"  # noqa: E731
    print(
        f"spinglass-icl stability  D={D} N={N} P={P} lam={lam:g} beta={st.beta:g} "
        f"solver={st.solver} damping={st.damping:g} convention={args.convention} seed={args.seed}"
    )
    print(f"  converges       {'yes' if out['converges'] else 'no'}  ({out['reason']})")
    print(
        f"  variance        {out['variance_status']} after {out['variance_iterations']} "
        f"iterations; margin min(beta lam_i - V_i) = {fmt(out['margin'])}"
    )
    print(f"  spectrum of M   mu in [{fmt(out['mu_min'])}, {fmt(out['mu_max'])}]  (A = I - M)")
    print(f"  radius          {fmt(out['radius'])}  (damped mean Jacobian)")
    if out["can_converge"]:
        print(
            f"  damping         converges for damping > {out['damping_min']:.4g}; "
            f"fastest {out['damping_opt']:.4g} (radius {out['radius_opt']:.4g}); "
            f"auto {auto:g}"
            if auto == auto
            else "auto: none on the grid within max_iter/2"
        )
    else:
        print("  damping         no damping can converge")
    print(f"  time            {seconds:.3f} s")
    return 0
