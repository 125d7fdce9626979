"""Double descent in task diversity: relative test error vs ``tau = P / D^2`` beside theory.

For each context length ``alpha = N / D`` and task diversity ``tau = P / D^2`` we draw
``repeats`` training sets (each prompt with its own task), solve the spin glass with each
solver (the exact ground state, AMP with the reaction term, AMP as printed in eq. 34)
and, optionally, train the SLA by gradient descent (:mod:`spinglass_icl.training`). The
test error of every weight matrix is the closed form
:func:`spinglass_icl.theory.exact_test_error` (no sampling noise), divided by ``E y~^2``.
Beside it: the large-D theory of Lu et al. (2024) at the mapped ridge lam'
(:func:`spinglass_icl.theory.asymptotic_error`) and its ridgeless limit, which diverges
at ``tau = 1`` (``P = D (D + 1)`` trainable weights interpolate the P prompts).

:func:`double_descent_data` returns an ``xarray.Dataset``; :func:`plot_double_descent`
draws it (from the stored data alone).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from ..conventions import DEFAULT_CONVENTION, get_convention
from ..errors import ParameterError, check_choice, check_float, check_int
from ..hamiltonian import make_instance
from ..observables import spins_to_W
from ..solvers import SOLVERS, solve
from ..theory import asymptotic_error, relative_exact_test_error, ridgeless_error, theory_params

__all__ = ["DEFAULT_TAUS", "double_descent_data", "plot_double_descent"]

#: default task diversities: 13 points from 0.1 to 10, log-spaced
DEFAULT_TAUS: tuple[float, ...] = tuple(float(t) for t in np.geomspace(0.1, 10.0, 13))


def _sizes(D: int, alpha: float, tau: float) -> tuple[int, int]:
    return max(1, int(round(alpha * D))), max(1, int(round(tau * D * D)))


def double_descent_data(
    D: int = 10,
    alphas: Sequence[float] = (1.0, 2.0),
    taus: Sequence[float] | np.ndarray = DEFAULT_TAUS,
    lam: float = 0.01,
    solvers: Sequence[str] = ("exact", "amp", "amp-paper"),
    sgd: bool = False,
    repeats: int = 3,
    seed: int = 0,
    convention: str = DEFAULT_CONVENTION,
    *,
    noise: float = 0.0,
    beta: float = 100.0,
    damping: float = 0.5,
    tol: float = 1e-8,
    max_iter: int = 2000,
    sgd_epochs: int = 2000,
    device: str | None = None,
) -> xr.Dataset:
    """Relative test error vs task diversity for several solvers, with the theory curve.

    Parameters
    ----------
    D : int
        Input dimension (>= 1).
    alphas : sequence of float
        ``N / D`` values (> 0); ``N = round(alpha D)``.
    taus : sequence of float
        ``P / D^2`` values (> 0); ``P = max(1, round(tau D^2))``.
    lam : float
        Our ridge lam (> 0; eq. 2), the same for every solver and for SGD.
    solvers : sequence of str
        Any of ``exact, amp, amp-paper, rbp``.
    sgd : bool
        Also train the SLA with full-batch Adam (:func:`spinglass_icl.training.train`,
        ``sgd_epochs`` epochs, default learning rate) as solver ``"sgd"``. The solvers
        then solve the trained trials' own training sets (``TrainResult.instances``), so
        the comparison is paired; the training sets come from the training module's
        seed streams (``seed`` as below) instead of :func:`make_instance`.
    repeats : int
        Independent training sets per point (>= 1).
    seed : int
        Base seed; point ``(alpha_i, tau_j)`` uses seed ``seed + 1000 (i * len(taus) + j)``
        for its ``repeats`` instances (drawn as one batch).
    convention : str
        Normalization convention (docs/conventions.md).
    noise : float
        Label-noise standard deviation (>= 0).
    beta, damping, tol, max_iter
        Message-passing settings (:func:`spinglass_icl.solvers.solve`).

    Returns
    -------
    xarray.Dataset
        Coordinates ``solver``, ``alpha``, ``tau``, ``repeat`` (and ``N(alpha)``,
        ``P(tau)``). Variables: ``error`` (solver, alpha, tau, repeat) relative test error,
        NaN where the solver did not converge; ``converged`` (same dims, bool);
        ``error_mean``, ``error_stderr`` (solver, alpha, tau) over converged repeats;
        ``n_converged``; ``theory`` (alpha, tau) :func:`asymptotic_error` at our lam;
        ``theory_ridgeless`` (alpha, tau); ``lam_prime`` (alpha). Attributes hold every
        parameter.
    """
    D = check_int("D", D)
    alphas = [check_float("alpha", a, low=0.0, low_open=True) for a in alphas]
    taus = [check_float("tau", t, low=0.0, low_open=True) for t in taus]
    if not alphas or not taus:
        raise ParameterError("alphas and taus must each hold at least one value, got none")
    lam = check_float("lam", lam, low=0.0, low_open=True)
    solvers = [check_choice("solver", s, SOLVERS) for s in solvers]
    repeats = check_int("repeats", repeats)
    seed = check_int("seed", seed, minimum=0)
    conv = get_convention(convention).name
    noise = check_float("noise", noise, low=0.0)
    names = list(solvers) + (["sgd"] if sgd else [])
    if not names:
        raise ParameterError("solvers must name at least one solver (or sgd=True), got none")
    shape = (len(names), len(alphas), len(taus), repeats)
    err = np.full(shape, np.nan)
    ok = np.zeros(shape, dtype=bool)
    theory = np.zeros((len(alphas), len(taus)))
    ridgeless = np.zeros_like(theory)
    lamp = np.zeros(len(alphas))
    for i, a in enumerate(alphas):
        for j, t in enumerate(taus):
            N, P = _sizes(D, a, t)
            pt_seed = seed + 1000 * (i * len(taus) + j)
            theory[i, j] = asymptotic_error(D, N, P, lam, conv, noise)
            ridgeless[i, j] = ridgeless_error(N / D, P / D**2) if noise == 0 else np.nan
            lamp[i] = theory_params(D, N, P, lam, conv, noise).lam_prime
            W_sgd = None
            if sgd:  # train first: the solvers then solve the very same training sets
                from ..training import TrainConfig, train

                cfg = TrainConfig(
                    model="sla", D=D, N=N, P=P, lam=lam, trials=repeats, epochs=sgd_epochs,
                    convention=conv, noise=noise, seed=pt_seed, test_tasks=1,
                    device=str(device or "cpu"),
                )  # fmt: skip
                trained = train(cfg)
                W_sgd = trained.W
                inst = trained.instances.to(device=W_sgd.device, dtype=torch.float64)
            else:
                inst = make_instance(
                    D, N, P, lam, convention=conv, noise=noise, seed=pt_seed,
                    batch_shape=(repeats,), device=device,
                )  # fmt: skip
            for k, name in enumerate(solvers):
                res = solve(
                    inst, name, beta=beta, damping=damping, tol=tol, max_iter=max_iter, warn=False
                )
                conv_k = torch.as_tensor(res.converged).reshape(repeats).cpu().numpy()
                e = relative_exact_test_error(spins_to_W(res.m), N, conv, noise).cpu().numpy()
                good = conv_k & np.isfinite(e)
                ok[k, i, j] = good
                err[k, i, j] = np.where(good, e, np.nan)
            if W_sgd is not None:
                e = relative_exact_test_error(W_sgd, N, conv, noise).cpu().numpy()
                good = np.isfinite(e)
                ok[-1, i, j] = good
                err[-1, i, j] = np.where(good, e, np.nan)
    n_ok = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_ok > 0, np.nansum(err, -1) / np.maximum(n_ok, 1), np.nan)
        dev = np.where(ok, err - mean[..., None], 0.0)
        var = (dev**2).sum(-1) / np.maximum(n_ok - 1, 1)
        stderr = np.where(n_ok > 1, np.sqrt(var / np.maximum(n_ok, 1)), np.nan)
    Ns = [_sizes(D, a, 1.0)[0] for a in alphas]
    Ps = [_sizes(D, 1.0, t)[1] for t in taus]
    dims4 = ("solver", "alpha", "tau", "repeat")
    return xr.Dataset(
        {
            "error": (dims4, err, {"long_name": "relative test error E(y~-y^)^2 / E y~^2"}),
            "converged": (dims4, ok),
            "error_mean": (dims4[:3], mean),
            "error_stderr": (dims4[:3], stderr),
            "n_converged": (dims4[:3], n_ok),
            "theory": (("alpha", "tau"), theory, {"long_name": "Lu et al. ridge, mapped lam'"}),
            "theory_ridgeless": (("alpha", "tau"), ridgeless),
            "lam_prime": (("alpha",), lamp),
        },
        coords={
            "solver": names,
            "alpha": np.asarray(alphas, dtype=float),
            "tau": np.asarray(taus, dtype=float),
            "repeat": np.arange(repeats),
            "N": ("alpha", np.asarray(Ns)),
            "P": ("tau", np.asarray(Ps)),
        },
        attrs={
            "D": D,
            "lam": lam,
            "convention": conv,
            "noise": noise,
            "seed": seed,
            "repeats": repeats,
            "beta": beta,
            "damping": damping,
            "tol": tol,
            "max_iter": max_iter,
            "sgd_epochs": sgd_epochs if sgd else 0,
            "error_kind": "closed form (spinglass_icl.theory.exact_test_error)",
        },
    )


_STYLE = {
    "exact": dict(marker="o", color="k"),
    "amp": dict(marker="s", color="tab:blue"),
    "amp-paper": dict(marker="^", color="tab:orange"),
    "rbp": dict(marker="D", color="tab:purple"),
    "sgd": dict(marker="x", color="tab:green"),
}


def plot_double_descent(ds: xr.Dataset, *, title: str | None = None):
    """Draw :func:`double_descent_data` output: one panel per alpha, error vs tau (log-log).

    Points with error bars (standard error over converged repeats) per solver; the solid
    line is the large-D ridge theory at the mapped lam', the dashed line its ridgeless
    limit; dotted verticals at ``tau = 1`` and at ``P = D (D+1)``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas on save

    from ..theory import ridge_error

    alphas = ds["alpha"].values
    taus = ds["tau"].values
    D = int(ds.attrs["D"])
    n = len(alphas)
    fig = Figure(figsize=(4.2 * n, 3.6))
    axes = fig.subplots(1, n, squeeze=False, sharey=True)
    fine = np.geomspace(taus.min(), taus.max(), 400)
    for i, a in enumerate(alphas):
        ax = axes[0, i]
        lp = float(ds["lam_prime"].values[i])
        rho = float(ds.attrs.get("noise", 0.0)) ** 2 / (
            get_convention(ds.attrs["convention"]).label_scale(D) ** 2 * D
        )
        ax.plot(fine, np.asarray(ridge_error(a, fine, lp, rho)) / (1 + rho), "-", color="0.4",
                label=f"theory, lam'={lp:.3g}")  # fmt: skip
        if rho == 0:
            rl = np.asarray(ridgeless_error(a, fine))
            ax.plot(fine, np.where(rl < 1e3, rl, np.nan), "--", color="0.6", lw=1,
                    label="theory, ridgeless")  # fmt: skip
        for s in ds["solver"].values:
            m = ds["error_mean"].sel(solver=s, alpha=a).values
            se = ds["error_stderr"].sel(solver=s, alpha=a).values
            st = _STYLE.get(str(s), dict(marker="."))
            ax.errorbar(taus, m, yerr=np.nan_to_num(se), ls="none", ms=5, mfc="none",
                        capsize=2, label=str(s), **st)  # fmt: skip
        ax.axvline(1.0, color="0.8", ls=":")
        ax.axvline((D + 1) / D, color="0.8", ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"task diversity $\tau = P/D^2$")
        ax.set_title(f"alpha = N/D = {a:g} (N = {int(ds['N'].values[i])})")
        if i == 0:
            ax.set_ylabel(r"relative test error $E(\tilde y-\hat y)^2/E\tilde y^2$")
            ax.legend(fontsize=7)
    fig.suptitle(
        title
        or f"Double descent in task diversity: D = {D}, lam = {ds.attrs['lam']:g} "
        f"({ds.attrs['convention']}), {ds.attrs['repeats']} repeats",
        fontsize=10,
    )
    fig.tight_layout()
    return fig
