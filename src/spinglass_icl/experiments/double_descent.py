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
draws it (from the stored data alone). As a figure of ``spinglass-icl reproduce``
(``double-descent``, not one of the paper's) the module also has the runner's pieces:
``TITLE``, ``CLAIM``, ``NOTES``, ``IN_PAPER``, :func:`compute` (the preset's
parameters), :func:`claims` (Lu et al.'s claims with verdicts), :func:`summarize` and
:func:`run`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from ..conventions import DEFAULT_CONVENTION, get_convention
from ..errors import ParameterError, check_float, check_int
from ..hamiltonian import make_instance
from ..observables import spins_to_W
from ..solvers import get_solver, solve
from ..theory import asymptotic_error, relative_exact_test_error, ridgeless_error, theory_params
from .claims import Claim, at_most
from .common import Context, record_attrs

__all__ = ["DEFAULT_TAUS", "double_descent_data", "plot_double_descent", "point_seed"]

#: default task diversities: 13 points from 0.1 to 10, log-spaced
DEFAULT_TAUS: tuple[float, ...] = tuple(float(t) for t in np.geomspace(0.1, 10.0, 13))


def _sizes(D: int, alpha: float, tau: float) -> tuple[int, int]:
    return max(1, int(round(alpha * D))), max(1, int(round(tau * D * D)))


def point_seed(seed: int, D: int, N: int, P: int, convention: str, noise: float = 0.0) -> int:
    """The seed of the training sets at one point: a 63-bit hash of the base seed and the
    parameters that define the data, as a sweep derives its instance seeds
    (:func:`spinglass_icl.seeds.derive`)."""
    from ..seeds import derive

    data = {"D": D, "N": N, "P": P, "convention": convention, "noise": float(noise)}
    return derive("double-descent", seed, data)


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
        Base seed; each point's ``repeats`` instances (drawn as one batch) use
        :func:`point_seed` of it and the point's (D, N, P, convention, noise).
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
        ``theory_ridgeless`` (alpha, tau); ``lam_prime`` (alpha); ``seed`` (alpha, tau).
        Attributes hold every parameter.
    """
    D, alphas, taus, lam, solvers, repeats, seed, conv, noise = _checked(
        D, alphas, taus, lam, solvers, repeats, seed, convention, noise
    )
    names = list(solvers) + (["sgd"] if sgd else [])
    if not names:
        raise ParameterError("solvers must name at least one solver (or sgd=True), got none")
    options = dict(beta=beta, damping=damping, tol=tol, max_iter=max_iter)
    arrays = _grid(
        D, alphas, taus, lam, solvers, sgd, repeats, seed, conv, noise, options, sgd_epochs,
        device, len(names),
    )  # fmt: skip
    attrs = {"D": D, "lam": lam, "convention": conv, "noise": noise, "seed": seed,
             "repeats": repeats, **options, "sgd_epochs": sgd_epochs if sgd else 0,
             "error_kind": "closed form (spinglass_icl.theory.exact_test_error)"}  # fmt: skip
    return _to_dataset(D, alphas, taus, names, repeats, arrays, attrs)


def _checked(D, alphas, taus, lam, solvers, repeats, seed, convention, noise) -> tuple:
    """:func:`double_descent_data`'s arguments, checked and normalized."""
    D = check_int("D", D)
    alphas = [check_float("alpha", a, low=0.0, low_open=True) for a in alphas]
    taus = [check_float("tau", t, low=0.0, low_open=True) for t in taus]
    if not alphas or not taus:
        raise ParameterError("alphas and taus must each hold at least one value, got none")
    lam = check_float("lam", lam, low=0.0, low_open=True)
    solvers = [get_solver(s).name for s in solvers]
    repeats = check_int("repeats", repeats)
    seed = check_int("seed", seed, minimum=0)
    conv = get_convention(convention).name
    noise = check_float("noise", noise, low=0.0)
    return D, alphas, taus, lam, solvers, repeats, seed, conv, noise


def _grid(
    D,
    alphas,
    taus,
    lam,
    solvers,
    sgd,
    repeats,
    seed,
    conv,
    noise,
    options,
    epochs,
    device,
    n_names,
) -> tuple[np.ndarray, ...]:
    """``(err, ok, theory, ridgeless, lam_prime, seeds)`` over the (alpha, tau) grid."""
    shape = (n_names, len(alphas), len(taus), repeats)
    err = np.full(shape, np.nan)
    ok = np.zeros(shape, dtype=bool)
    theory = np.zeros((len(alphas), len(taus)))
    ridgeless = np.zeros_like(theory)
    lamp = np.zeros(len(alphas))
    seeds = np.zeros((len(alphas), len(taus)), dtype=np.int64)
    for i, a in enumerate(alphas):
        for j, t in enumerate(taus):
            N, P = _sizes(D, a, t)
            pt_seed = seeds[i, j] = point_seed(seed, D, N, P, conv, noise)
            theory[i, j] = asymptotic_error(D, N, P, lam, conv, noise)
            ridgeless[i, j] = ridgeless_error(N / D, P / D**2) if noise == 0 else np.nan
            lamp[i] = theory_params(D, N, P, lam, conv, noise).lam_prime
            e, good = _point_errors(D, N, P, lam, solvers, sgd, repeats, pt_seed, conv, noise,
                                    options, epochs, device)  # fmt: skip
            err[:, i, j], ok[:, i, j] = e, good
    return err, ok, theory, ridgeless, lamp, seeds


def _to_dataset(D, alphas, taus, names, repeats, arrays, attrs) -> xr.Dataset:
    """The grid's arrays as the Dataset of :func:`double_descent_data`."""
    err, ok, theory, ridgeless, lamp, seeds = arrays
    mean, stderr, n_ok = _mean_stderr(err, ok)
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
            "seed": (("alpha", "tau"), seeds, {"long_name": "seed of the point's instances"}),
        },
        coords={
            "solver": names,
            "alpha": np.asarray(alphas, dtype=float),
            "tau": np.asarray(taus, dtype=float),
            "repeat": np.arange(repeats),
            "N": ("alpha", np.asarray(Ns)),
            "P": ("tau", np.asarray(Ps)),
        },
        attrs=attrs,
    )


def _point_errors(
    D, N, P, lam, solvers, sgd, repeats, seed, conv, noise, options, epochs, device
) -> tuple[np.ndarray, np.ndarray]:
    """Relative test errors (solvers [+ sgd], repeats) at one point, NaN where a solver
    did not converge, and the converged flags."""
    names = list(solvers) + (["sgd"] if sgd else [])
    err = np.full((len(names), repeats), np.nan)
    ok = np.zeros((len(names), repeats), dtype=bool)
    if sgd:  # train first: the solvers then solve the very same training sets
        from ..training import TrainConfig, train

        cfg = TrainConfig.of(model="sla", D=D, N=N, P=P, lam=lam, trials=repeats, epochs=epochs,
                          convention=conv, noise=noise, seed=seed, test_tasks=1,
                          device=str(device or "cpu"))  # fmt: skip
        trained = train(cfg)
        inst = trained.instances.to(device=trained.W.device, dtype=torch.float64)
        e = relative_exact_test_error(trained.W, N, conv, noise).cpu().numpy()
        ok[-1] = np.isfinite(e)
        err[-1] = np.where(ok[-1], e, np.nan)
    else:
        inst = make_instance(D, N, P, lam, convention=conv, noise=noise, seed=seed,
                             batch_shape=(repeats,), device=device)  # fmt: skip
    for k, name in enumerate(solvers):
        res = solve(inst, name, warn=False, **options)
        conv_k = torch.as_tensor(res.converged).reshape(repeats).cpu().numpy()
        e = relative_exact_test_error(spins_to_W(res.m), N, conv, noise).cpu().numpy()
        ok[k] = conv_k & np.isfinite(e)
        err[k] = np.where(ok[k], e, np.nan)
    return err, ok


def _mean_stderr(err: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard error over the last axis, converged entries only; their count."""
    n_ok = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_ok > 0, np.nansum(err, -1) / np.maximum(n_ok, 1), np.nan)
        dev = np.where(ok, err - mean[..., None], 0.0)
        var = (dev**2).sum(-1) / np.maximum(n_ok - 1, 1)
        stderr = np.where(n_ok > 1, np.sqrt(var / np.maximum(n_ok, 1)), np.nan)
    return mean, stderr, n_ok


_STYLE = {
    "exact": dict(marker="o", color="k"),
    "amp": dict(marker="s", color="tab:blue"),
    "amp-paper": dict(marker="^", color="tab:orange"),
    "rbp": dict(marker="D", color="tab:purple"),
    "sgd": dict(marker="x", color="tab:green"),
}


#: where each message-passing solver writes its "converged/repeats" label (points)
_OFFSET = {"amp": (4, 4), "amp-paper": (4, -11), "rbp": (-22, 4)}


def _label_converged(ax, taus, mean, n_ok, repeats: int, offset, color, solver: str) -> None:
    """Write ``n_ok/repeats`` next to each point where only some runs converged (a point
    without a label: all converged); the taus where none converged are summed up in one
    line at the bottom, so labels never run together."""
    none = 0
    for t, y, k in zip(taus, mean, n_ok):
        if not np.isfinite(y):
            none += 1
        elif int(k) < repeats:
            last = t == taus[-1]  # keep the last label inside the axes
            ax.annotate(f"{int(k)}/{repeats}", (t, y), textcoords="offset points",
                        xytext=(-offset[0] if last else offset[0], offset[1]), fontsize=8,
                        color=color, ha="right" if last else "left")  # fmt: skip
    if none:
        row = 0 if offset[1] < 0 else 1
        ax.annotate(f"{solver}: no run converged at {none} of {len(taus)} tau",
                    (0.02, 0.02 + 0.06 * row), xycoords="axes fraction", fontsize=8,
                    color=color)  # fmt: skip


def plot_double_descent(ds: xr.Dataset, *, title: str | None = None):
    """Draw :func:`double_descent_data` output: one panel per alpha, error vs tau (log-log).

    Points with error bars (standard error over converged repeats) per solver; next to
    a point of a message-passing solver where only some runs converged, their number out
    of the repeats, and per panel the number of tau where none did; a solver with no
    converged run at all gets no legend entry (the panel says so instead). The solid line
    is the large-D ridge theory at the mapped lam' (in each panel's title), the dashed
    line its ridgeless limit; a dotted vertical at ``tau = 1`` and a dash-dotted one at
    the interpolation threshold ``P = D (D+1)`` (``tau = 1 + 1/D``). One legend, below
    the panels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas on save

    D, R, n = int(ds.attrs["D"]), int(ds.attrs["repeats"]), ds.sizes["alpha"]
    fig = Figure(figsize=(max(5.5, 4.8 * n), 4.4), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False, sharey=True)
    for i in range(n):
        _panel(axes[0, i], ds, i)
    axes[0, 0].set_ylabel(r"relative test error $E(\tilde y-\hat y)^2/E\tilde y^2$")
    handles: dict = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center",
               ncols=min(len(handles), 3 * n), frameon=False)  # fmt: skip
    mp = set(map(str, ds["solver"].values)) & set(_OFFSET)
    fig.suptitle(
        title
        or f"Double descent in task diversity: D = {D}, lam = {ds.attrs['lam']:g} "
        f"({ds.attrs['convention']}), {R} repeats"
        + (f"; n/{R}: runs converged (unlabelled: all)" if mp else ""),
    )
    return fig


def _panel(ax, ds: xr.Dataset, i: int) -> None:
    """Panel ``i`` (alpha index) of :func:`plot_double_descent`."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from ..theory import ridge_error
    from .common import nice_log_ticks, plain_log_ticks

    taus = ds["tau"].values
    a = ds["alpha"].values[i]
    D, R = int(ds.attrs["D"]), int(ds.attrs["repeats"])
    fine = np.geomspace(taus.min(), taus.max(), 400)
    lp = float(ds["lam_prime"].values[i])
    rho = float(ds.attrs.get("noise", 0.0)) ** 2 / (
        get_convention(ds.attrs["convention"]).label_scale(D) ** 2 * D
    )
    ax.plot(fine, np.asarray(ridge_error(a, fine, lp, rho)) / (1 + rho), "-", color="0.4",
            label="theory (large D) at lam'")  # fmt: skip
    if rho == 0:
        rl = np.asarray(ridgeless_error(a, fine))
        ax.plot(fine, np.where(rl < 1e3, rl, np.nan), "--", color="0.6", lw=1,
                label="theory, ridgeless")  # fmt: skip
    empty = []
    for s in map(str, ds["solver"].values):
        d = ds.sel(solver=s, alpha=a)
        m = d["error_mean"].values
        if not np.isfinite(m).any():
            empty.append(s)
            continue
        st = _STYLE[s] if s in _STYLE else get_solver(s).plot_style
        ax.errorbar(taus, m, yerr=np.nan_to_num(d["error_stderr"].values), ls="none", ms=6,
                    mfc="none", capsize=2, label=s, **st)  # fmt: skip
        if s in _OFFSET:
            _label_converged(ax, taus, m, d["n_converged"].values, R, _OFFSET[s],
                             st.get("color", "k"), s)  # fmt: skip
    if empty:
        ax.text(0.02, 0.97, "no converged run: " + ", ".join(empty), transform=ax.transAxes,
                va="top", fontsize=9, color="0.3")  # fmt: skip
    ax.axvline(1.0, color="0.6", ls=":", label="tau = 1")
    ax.axvline((D + 1) / D, color="0.6", ls="-.", lw=0.8, label="P = D(D+1): tau = 1 + 1/D")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax, "x", nice_log_ticks(taus.min(), taus.max()))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.3g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"task diversity $\tau = P/D^2$")
    ax.set_title(f"alpha = N/D = {a:g} (N = {int(ds['N'].values[i])}), lam' = {lp:.3g}")


# --------------------------------------------------------------- the reproduce figure
TITLE = "Double descent in task diversity, with the large-D theory"
CLAIM = (
    "(Not in the paper; Lu et al. 2024.) Without ridge the test error vs task diversity "
    "tau = P/D^2 peaks at the interpolation threshold P = D(D+1) (tau ~ 1); a ridge lam "
    "tames the peak; the spin-glass ground state follows the large-D theory."
)
NOTES = [
    "The SLA's trainable weights number D(D+1) (W's last column is inert), so the "
    "interpolation peak sits at P = D(D+1), i.e. tau = 1 + 1/D at finite D.",
]
#: not a figure of the paper: its verdicts judge Lu et al.'s theory, not the paper
IN_PAPER = False


def compute(ctx: Context) -> xr.Dataset:
    """:func:`double_descent_data` at the preset's parameters."""
    p = ctx.params
    ds = double_descent_data(
        D=p.D,
        alphas=p.alphas,
        taus=np.geomspace(p.tau_range[0], p.tau_range[1], p.taus),
        lam=p.lam,
        solvers=p.solvers,
        sgd=False,
        repeats=p.repeats,
        seed=ctx.seed,
        convention=ctx.convention,
        device=ctx.device,
    )
    seeds = {"base": ctx.seed, "points": "double_descent.point_seed(seed, D, N, P, ...)"}
    return record_attrs(ds, seeds=seeds)


def draw(ds: xr.Dataset):
    """:func:`plot_double_descent` of the figure's Dataset."""
    return plot_double_descent(ds)


def claims(ds: xr.Dataset) -> list[Claim]:
    """The peak sits at the interpolation threshold; the ground state follows the theory
    (both claims of Lu et al., not of the paper)."""
    ex = ds["error_mean"].sel(solver="exact")
    taus = ds["tau"].values
    D = int(ds.attrs["D"])
    # distance of each alpha's peak from P = D(D+1), in factors of tau (log10)
    off = max(abs(np.log10(taus[int(np.nanargmax(ex.sel(alpha=a).values))] / (1 + 1 / D)))
              for a in ds["alpha"].values)  # fmt: skip
    rel = np.abs(ex.values / ds["theory"].transpose(*ex.dims).values - 1)
    return [
        at_most(
            "(Lu et al. 2024, arXiv:2405.11751, the paper's ref. [21]; not a claim of the "
            "paper) At small ridge the test error peaks at the interpolation threshold "
            "P = D(D+1) (tau ~ 1).",
            "largest |log10(tau_peak / (1 + 1/D))| over alpha (grid resolution: "
            f"{np.log10(taus[1] / taus[0]):.2g})",
            float(off),
            agree=float(np.log10(taus[1] / taus[0])) * 1.01,
            partly=0.3,
        ),
        at_most(
            "(Lu et al. 2024, arXiv:2405.11751; not a claim of the paper) The finite-D ground "
            "state follows the large-D theory.",
            "median relative difference of the exact solution's error from the theory",
            float(np.nanmedian(rel)),
            agree=0.2,
            partly=0.5,
        ),
    ]


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    ex = ds["error_mean"].sel(solver="exact")
    taus = ds["tau"].values
    numbers: dict = {"taus": taus.tolist()}
    peaks = []
    for a in ds["alpha"].values:
        e = ex.sel(alpha=a).values
        peaks.append(float(taus[int(np.nanargmax(e))]))
        numbers[f"alpha{a:g}_exact_error"] = e.tolist()
        numbers[f"alpha{a:g}_peak_tau"] = peaks[-1]
    for s in ds["solver"].values:
        numbers[f"{s}_converged_fraction"] = float(ds["converged"].sel(solver=s).mean())
    summary = (
        "Exact-solution error peaks at tau = "
        + ", ".join(f"{t:.2g}" for t in peaks)
        + f" (alpha = {', '.join(f'{a:g}' for a in ds['alpha'].values)}), "
        f"lam = {ds.attrs['lam']:g}."
    )
    return numbers, summary
