"""``spinglass-icl theory``: the asymptotic test error of Lu et al. (2024) on a grid."""

from __future__ import annotations

import argparse
import json

import numpy as np

from .. import __version__
from ..conventions import CONVENTIONS, DEFAULT_CONVENTION
from ..errors import ParameterError, check_float, check_int, finite_derived
from ..theory import lam_prime, ridge_error, ridgeless_error
from .common import jsonable


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "theory",
        help="asymptotic relative test error (Lu et al. 2024) vs alpha = N/D, tau = P/D^2",
        description="Print the large-D relative test error E(y~-y^)^2 / E y~^2 of the "
        "ridge-trained linear attention (Lu, Letey, Zavatone-Veth, Maiti, Pehlevan, "
        "arXiv:2405.11751; every prompt has its own task) for each (alpha, tau). "
        "--lam is OUR ridge lam of eq. 2 (+ lam/2 ||W||^2), mapped to their lam' with "
        "--D, --convention and N = alpha D (authors: lam' = D lam ((N+1)/N)^2; "
        "normalized: D lam; paper-text: D^2 lam); --lam-prime gives theirs directly. "
        "lam = 0 is the ridgeless (min-norm) limit, infinite at tau = 1.",
    )
    p.add_argument("--alpha", type=float, nargs="+", required=True, help="N/D values (> 0)")
    p.add_argument("--tau", type=float, nargs="+", required=True, help="P/D^2 values (> 0)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--lam",
        type=float,
        default=0.0,
        help="our ridge lam (>= 0; default 0 = ridgeless), mapped with --D and --convention",
    )
    g.add_argument(
        "--lam-prime", type=float, default=None, help="their ridge lam' (>= 0), used as is"
    )
    p.add_argument(
        "--D", type=int, default=20, help="dimension used to map --lam and --noise (default 20)"
    )
    p.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="our label-noise std (>= 0; default 0); rho = noise^2 / (scale^2 D)",
    )
    p.add_argument(
        "--convention",
        default=DEFAULT_CONVENTION,
        choices=CONVENTIONS,
        help="normalization convention of --lam and --noise "
        "(docs/conventions.md; default: authors)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..conventions import get_convention

    alphas = [check_float("alpha", a, low=0.0, low_open=True) for a in args.alpha]
    taus = [check_float("tau", t, low=0.0, low_open=True) for t in args.tau]
    D = check_int("D", args.D)
    noise = check_float("noise", args.noise, low=0.0)
    conv = get_convention(args.convention)
    rho = finite_derived(
        "noise",
        args.noise,
        "rho = noise^2 / (scale^2 D)",
        lambda: noise**2 / (conv.label_scale(D) ** 2 * D),
    )
    if args.lam_prime is not None:
        lp_given = check_float("lam-prime", args.lam_prime, low=0.0)
        lam = None
    else:
        lam = check_float("lam", args.lam, low=0.0)
        lp_given = None
    rows = []
    for a in alphas:
        N = max(1, int(round(a * D)))
        if lp_given is not None:
            lp = lp_given
        else:
            lp = lam_prime(D, N, lam, conv.name)
        for t in taus:
            e = float(ridge_error(a, t, lp, rho)) / (1.0 + rho)
            if lp == 0 and rho == 0:
                e = float(ridgeless_error(a, t))
            rows.append(
                {
                    "alpha": a,
                    "tau": t,
                    "N": N,
                    "P": max(1, int(round(t * D * D))),
                    "lam_prime": lp,
                    "rho": rho,
                    "relative_error": e,  # null in JSON where infinite
                    "finite": bool(np.isfinite(e)),
                }
            )
    if not rows:  # pragma: no cover - argparse requires one value each
        raise ParameterError("alpha and tau must each have at least one value, got none")
    meta = {
        "D": D,
        "convention": conv.name,
        "version": __version__,
        "lam": lam,
        "lam_prime": lp_given,
        "noise": noise,
        "source": "Lu, Letey, Zavatone-Veth, Maiti, Pehlevan, arXiv:2405.11751 (kappa -> inf)",
    }
    if args.json:
        print(json.dumps(jsonable({"params": meta, "rows": rows}), indent=2))
        return 0
    lam_s = f"lam'={lp_given:g} (given)" if lp_given is not None else f"lam={lam:g} (ours)"
    print(
        f"spinglass-icl theory  D={D} convention={conv.name} {lam_s} noise={noise:g} "
        f"(relative error E(y~-y^)^2 / E y~^2, D -> inf)"
    )
    print(f"  {'alpha':>8} {'tau':>8} {'N':>6} {'P':>8} {'lam_prime':>10} {'error':>12}")
    for r in rows:
        e = r["relative_error"]
        es = "inf" if not np.isfinite(e) else f"{e:.6g}"
        print(
            f"  {r['alpha']:>8.4g} {r['tau']:>8.4g} {r['N']:>6d} {r['P']:>8d} "
            f"{r['lam_prime']:>10.4g} {es:>12}"
        )
    return 0
