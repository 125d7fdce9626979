"""The AMP stability prediction (docs/amp-stability.md) against the solvers themselves."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

import spinglass_icl as sg
from spinglass_icl.cli import main
from spinglass_icl.solvers import DenseOperators
from spinglass_icl.solvers.stability import AUTO_DAMPING_GRID, damped_radius

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BETA, TOL, MAX_ITER = 100.0, 1e-6, 500
#: a prediction that disagrees with the solver must be this close to the boundary
RADIUS_BAND = 0.05  # |radius - 1| < 0.05
ITER_BAND = 3.0  # predicted iterations within a factor 3 of max_iter
VRATE_BAND = 0.95  # variance map's Perron root > 0.95 (fixed point about to vanish)


def near_boundary(st, k: int) -> bool:
    r, n, vr = float(st.radius[k]), float(st.iterations[k]), float(st.variance_rate[k])
    return (
        abs(r - 1) < RADIUS_BAND
        or MAX_ITER / ITER_BAND <= n <= MAX_ITER * ITER_BAND
        or (math.isfinite(vr) and vr > VRATE_BAND)
        or st.variance_status[k] == "max_iter"
    )


def boundary_grid():
    """D = 6 instances straddling both boundaries (variance and mean), 4 per point."""
    for lam in (0.5, 2.0):
        for P in (24, 48, 96, 192):
            for N in (2, 6, 18):
                yield sg.make_instance(6, N, P, lam, seed=100 * P + N, batch_shape=(4,))


@pytest.mark.parametrize("damping", [0.0, 0.5])
@pytest.mark.parametrize("solver", ["amp-paper", "amp"])
def test_prediction_agrees_with_the_solver(solver, damping):
    kinds = {"converged": 0, "no_fixed_point": 0, "unstable": 0}
    agree = total = 0
    far = []
    for inst in boundary_grid():
        st = sg.amp_stability(
            inst, BETA, solver=solver, damping=damping, tol=TOL, max_iter=MAX_ITER
        )
        res = sg.solve(
            inst, solver, beta=BETA, damping=damping, tol=TOL, max_iter=MAX_ITER, warn=False
        )
        for k in range(4):
            total += 1
            ok = bool(st.converges[k]) == bool(res.converged[k])
            agree += ok
            if not ok and not near_boundary(st, k):
                far.append((inst.P, inst.N, inst.lam, k, res.status[k], st.reason[k]))
            if not bool(st.has_fixed_point[k]):
                kinds["no_fixed_point"] += 1
            elif float(st.radius[k]) >= 1:
                kinds["unstable"] += 1
            elif bool(st.converges[k]):
                kinds["converged"] += 1
    assert agree >= 0.95 * total, f"{agree}/{total}"
    assert not far, far
    # the grid really straddles the boundary: every kind of outcome occurs
    assert kinds["converged"] >= 10 and kinds["no_fixed_point"] >= 10, kinds
    if damping == 0.0:
        assert kinds["unstable"] >= 5, kinds


def _instance():
    return sg.make_instance(6, 18, 96, 2.0, seed=3)


@pytest.mark.parametrize("solver", ["amp-paper", "amp"])
def test_spectrum_is_that_of_the_explicit_jacobian(solver):
    """Eigenvalues of A(v*) built entry by entry (eq. 34a) are 1 - mu, all real."""
    inst = _instance()
    st = sg.amp_stability(inst, BETA, solver=solver, damping=0.0, tol=1e-12, max_iter=5000)
    res = sg.solve(inst, solver, beta=BETA, damping=0.3, tol=1e-12, max_iter=5000, warn=False)
    assert res.converged
    v = res.v
    ops = DenseOperators.of(inst)
    G, gd, J2 = ops.gram, ops.gram_diag, ops.j2
    J = torch.diag(gd) - G  # J m = gd m - G m
    V = BETA**2 * J2 @ v
    d = BETA * inst.lam_i - V
    A = BETA * J / d[:, None]
    if solver == "amp":
        A = A - torch.diag(V / d)
    ev = torch.linalg.eigvals(A)
    assert float(ev.imag.abs().max()) < 1e-8
    mu = 1 - ev.real
    assert float(mu.min()) == pytest.approx(float(st.mu_min), rel=1e-7, abs=1e-9)
    assert float(mu.max()) == pytest.approx(float(st.mu_max), rel=1e-7)
    assert float(st.margin) == pytest.approx(float(d.min()), rel=1e-7)


def test_radius_is_the_observed_contraction_rate():
    """The undamped residual decays like radius^t in the mean-only tail."""
    inst = _instance()
    for damping in (0.0, 0.5):
        st = sg.amp_stability(inst, BETA, solver="amp", damping=damping)
        res = sg.solve(inst, "amp", beta=BETA, damping=damping, tol=1e-13, max_iter=5000)
        r = res.residuals[~torch.isnan(res.residuals)]
        n = len(r)
        rate = float((r[n - 5] / r[n // 2]) ** (1 / (n - 5 - n // 2)))
        assert rate == pytest.approx(float(st.radius), abs=0.02)


def test_damping_thresholds():
    """damping_min is where the radius crosses 1; damping_opt minimizes it."""
    inst = sg.make_instance(6, 2, 192, 0.5, seed=1)
    st = sg.amp_stability(inst, BETA, solver="amp", damping=0.0)
    assert bool(st.can_converge) and float(st.damping_min) > 0  # undamped is unstable here
    d0 = float(st.damping_min)
    assert float(st.radius_at(d0 - 0.01)) > 1 > float(st.radius_at(d0 + 0.01))
    grid = torch.linspace(0, 0.99, 200, dtype=torch.float64)
    r = damped_radius(st.mu_min, st.mu_max, grid)
    assert float(r.min()) >= float(st.radius_opt) - 1e-12
    assert float(st.radius_opt) == pytest.approx(float(r.min()), abs=0.01)
    auto = float(sg.auto_damping(st))
    assert auto in AUTO_DAMPING_GRID and auto > d0
    # and the solver agrees: diverges below damping_min, converges at auto
    lo = sg.solve(inst, "amp", beta=BETA, damping=max(0.0, d0 - 0.05), max_iter=2000, warn=False)
    hi = sg.solve(inst, "amp", beta=BETA, damping=auto, max_iter=2000, warn=False)
    assert not lo.converged and hi.converged


def test_beta_cancels():
    inst = _instance()
    a = sg.amp_stability(inst, 100.0, solver="amp-paper")
    b = sg.amp_stability(inst, 3.0, solver="amp-paper")
    assert float(a.mu_max) == pytest.approx(float(b.mu_max), rel=1e-9)
    assert float(a.radius) == pytest.approx(float(b.radius), rel=1e-9)
    assert float(a.margin) == pytest.approx(100.0 / 3.0 * float(b.margin), rel=1e-9)


def test_degenerate_instances_say_so_without_nan():
    for inst in (sg.make_instance(4, 2, 4, 0.0, seed=0), sg.make_instance(6, 2, 6, 0.1, seed=0)):
        st = sg.amp_stability(inst, BETA, solver="amp-paper")
        assert not bool(st.converges) and not bool(st.has_fixed_point)
        assert not bool(st.can_converge)
        for name in ("margin", "mu_min", "mu_max", "radius", "damping_min", "variance_rate"):
            assert not math.isnan(float(getattr(st, name))), name
        assert st.variance_status == "no_fixed_point" and st.variance_status.shape == ()
        assert "no" in str(st.reason)
        assert math.isnan(float(sg.auto_damping(st)))


def test_batched_equals_one_by_one():
    batch = sg.make_instance(6, 6, 48, 2.0, seed=5, batch_shape=(3,))
    st = sg.amp_stability(batch, BETA, solver="amp")
    assert st.converges.shape == (3,) and len(st.reason) == 3
    for k in range(3):
        inst_k = batch[k]
        sk = sg.amp_stability(inst_k, BETA, solver="amp")
        assert bool(sk.converges) == bool(st.converges[k])
        if bool(sk.has_fixed_point):
            assert float(sk.radius) == pytest.approx(float(st.radius[k]), rel=1e-9)


@pytest.mark.parametrize(
    "kw, name",
    [({"solver": "exact"}, "solver"), ({"damping": 1.0}, "damping"), ({"beta": 0.0}, "beta")],
)
def test_bad_arguments(kw, name):
    with pytest.raises(sg.ParameterError, match=name):
        sg.amp_stability(_instance(), **kw)


def run_cli(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_cli_json(capsys):
    base = ["stability", "--D", "6", "--N", "18", "--P", "96", "--lam", "2", "--seed", "3"]
    assert run_cli(base + ["--json", "--solver", "amp"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["converges"] is True and isinstance(out["converges"], bool)
    inst = _instance()
    st = sg.amp_stability(inst, BETA, solver="amp", damping=0.5)
    assert out["radius"] == pytest.approx(float(st.radius), rel=1e-9)
    assert out["config"]["seed"] == 3
    assert run_cli(["stability", "--D", "4", "--N", "2", "--P", "4", "--lam", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["converges"] is False and out["radius"] is None  # inf -> null, never NaN
    assert run_cli(base) == 0
    assert "converges       yes" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, name",
    [(["--D", "0"], "D"), (["--solver", "rbp"], "solver"), (["--damping", "1.5"], "damping")],
)
def test_cli_one_line_errors(extra, name, capsys):
    assert run_cli(["stability", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and name in err and "Traceback" not in err


def test_solve_damping_auto(tmp_path, capsys):
    argv = ["solve", "--D", "6", "--N", "2", "--P", "192", "--lam", "0.5", "--seed", "1"]
    argv += ["--solver", "amp", "--damping", "auto", "--test-tasks", "100", "--out", str(tmp_path)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_cli(argv) == 0
    out = capsys.readouterr().out
    assert "damping auto" in out and "converged" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["converged"] is True
    assert summary["config"]["damping"] in AUTO_DAMPING_GRID
    assert run_cli(argv[:-2] + ["--damping", "nope", "--out", str(tmp_path)]) == 2
    assert "damping" in capsys.readouterr().err


def test_sweep_damping_auto(tmp_path):
    """A sweep with damping auto converges where undamped AMP diverges (same instances)."""
    from spinglass_icl import sweep

    def run(damping, name):
        spec = sweep.SweepSpec(
            grid={"P": [48, 192], "N": [2, 18], "solver": ["amp", "exact"]},
            fixed={"D": 6, "lam": 2.0, "beta": 100.0},
            repeats=2,
            solver_options={"damping": damping, "tol": 1e-6, "max_iter": 2000},
            observables=("contrast",),
        )
        store = sweep.run_sweep(spec, tmp_path / name, executor="serial", progress=False)
        return store.to_xarray(spec)["converged"].sel(solver="amp").values

    c0, ca = run(0.0, "d0.sqlite"), run("auto", "auto.sqlite")
    assert ca.sum() > c0.sum()  # undamped fails somewhere that auto rescues
    assert (ca >= c0).all()
    with pytest.raises(sg.ParameterError, match="damping auto"):
        sweep.SweepSpec(
            grid={"P": [24]}, fixed={"D": 6, "N": 2, "lam": 0.5, "solver": "rbp"},
            solver_options={"damping": "auto"},
        )  # fmt: skip


def test_reproduce_damping_flag(tmp_path, capsys):
    base = ["reproduce", "fig4a", "--preset", "tiny", "--out", str(tmp_path), "--no-progress"]
    assert run_cli(base + ["--damping", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "damping" in err and "\n" not in err


@pytest.mark.parametrize("convention", ["authors", "paper-text", "normalized"])
def test_closed_form_tends_to_the_asymptotic_boundary(convention):
    from spinglass_icl.solvers.stability import asymptotic_boundary, closed_form_boundary

    for lam in (0.3, 1.0):
        limit = asymptotic_boundary(1.0, lam, convention)
        ratios = [closed_form_boundary(D, D, lam, convention) / D / limit for D in (40, 640, 5120)]
        assert ratios[0] > ratios[1] > ratios[2] > 1  # approached from above, like 1/D
        assert ratios[2] == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("convention", ["authors", "paper-text"])
def test_block_moments_against_sampled_couplings(convention):
    """g_A, g_B and the mean row sums of J^2 against 16 sampled instances (exact moments;
    the tolerance is the sampling error of heavy-tailed fourth moments)."""
    from spinglass_icl.solvers.stability import block_moments

    D, N, P = 6, 6, 4000
    inst = sg.make_instance(D, N, P, 0.0, convention=convention, seed=3, batch_shape=(16,))
    G, J2 = DenseOperators.of(inst).gram, DenseOperators.of(inst).j2
    g = G.diagonal(dim1=-2, dim2=-1).reshape(16, D + 1, D + 1)
    R = J2.sum(-1).reshape(16, D + 1, D + 1)
    bm = block_moments(D, N, convention)
    assert float(g[:, :D, :D].mean()) == pytest.approx(bm["g_A"], rel=0.03)
    assert float(g[:, D, :D].mean()) == pytest.approx(bm["g_B"], rel=0.05)
    assert float(R[:, :D, :D].mean()) == pytest.approx((bm["a_AA"] + bm["a_AB"]) / P, rel=0.06)
    assert float(R[:, D, :D].mean()) == pytest.approx((bm["a_BA"] + bm["a_BB"]) / P, rel=0.1)
    assert float(g[:, :, D].abs().max()) == 0.0  # the last column has no couplings


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    inst = sg.make_instance(6, 6, 48, 2.0, seed=5, batch_shape=(3,))
    cpu = sg.amp_stability(inst, BETA, solver="amp-paper", damping=0.5)
    gpu = sg.amp_stability(inst.to("cuda"), BETA, solver="amp-paper", damping=0.5)
    assert gpu.radius.is_cuda
    assert torch.equal(gpu.converges.cpu(), cpu.converges)
    ok = cpu.has_fixed_point
    torch.testing.assert_close(gpu.mu_max.cpu()[ok], cpu.mu_max[ok], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(sg.auto_damping(gpu), sg.auto_damping(cpu), equal_nan=True)


@pytest.mark.slow
@pytest.mark.parametrize("damping", [0.5, 0.9])
@pytest.mark.parametrize("solver", ["amp-paper", "amp"])
def test_prediction_agrees_at_D10(solver, damping):
    """The larger boundary grid (D = 10, tol 1e-6, max_iter 2000): >= 95% agreement."""
    agree = total = 0
    for lam in (0.3, 1.0, 3.0):
        for P in (10, 20, 40, 80, 160, 320):
            for N in (2, 10, 40):
                inst = sg.make_instance(10, N, P, lam, seed=P + N, batch_shape=(3,))
                st = sg.amp_stability(inst, BETA, solver=solver, damping=damping, tol=TOL)
                res = sg.solve(inst, solver, beta=BETA, damping=damping, tol=TOL, warn=False)
                agree += int((st.converges.cpu() == torch.as_tensor(res.converged)).sum())
                total += 3
    assert agree >= 0.95 * total, f"{agree}/{total}"


def test_variance_rate_is_the_perron_root():
    """The early-stopped power iteration gives the Perron root of the variance map's
    Jacobian ``diag(w^2) J^2`` (similar to the symmetric ``diag(w) J^2 diag(w)``) to
    1e-10 relative, on random instances with a fixed point."""
    from spinglass_icl.solvers.stability import _variance_fixed_point

    n_fp = 0
    for D, N, P, lam, seed in [(4, 2, 12, 0.5, 1), (6, 6, 48, 2.0, 2), (8, 16, 64, 1.0, 3)]:
        inst = sg.make_instance(D, N, P, lam, seed=seed, batch_shape=(6,))
        J2 = DenseOperators.of(inst).j2
        v, conv, _, _, _, rate = _variance_fixed_point(J2, inst.lam_i, BETA, TOL, MAX_ITER)
        w = BETA * v
        ref = torch.linalg.eigvalsh(w.unsqueeze(-1) * J2 * w.unsqueeze(-2))[..., -1]
        torch.testing.assert_close(rate[conv], ref[conv], rtol=1e-10, atol=0.0)
        n_fp += int(conv.sum())
    assert n_fp >= 8, n_fp


@pytest.mark.parametrize("solver", ["amp-paper", "amp"])
def test_lanczos_path_matches_eigvalsh(solver, monkeypatch):
    """The Lanczos extreme eigenvalues (forced on small instances) against eigvalsh, on
    random instances on both sides of the boundary: the verdict is identical and the
    radius agrees to 1e-8 relative; with a tiny step budget the fallback is eigvalsh."""
    from spinglass_icl.solvers import stability as stab

    def run(inst, damping, min_n, steps=None):
        with monkeypatch.context() as mp:
            mp.setattr(stab, "LANCZOS_MIN_N", min_n)
            if steps is not None:
                mp.setattr(stab, "lanczos_max_steps", lambda n: steps)
            return sg.amp_stability(inst, BETA, solver=solver, damping=damping, tol=TOL)

    n_conv = n_fail = 0
    for D, N, P, lam, seed in [(4, 2, 12, 0.5, 1), (6, 6, 48, 2.0, 2), (8, 16, 64, 1.0, 3)]:
        inst = sg.make_instance(D, N, P, lam, seed=seed, batch_shape=(6,))
        for damping in (0.0, 0.5, 0.9):
            ref = run(inst, damping, 10**9)
            fast = run(inst, damping, 1)
            assert torch.equal(fast.converges, ref.converges)
            assert torch.equal(fast.can_converge, ref.can_converge)
            ok = ref.has_fixed_point
            scale = ref.mu_max[ok]
            for name in ("mu_min", "mu_max"):
                err = (getattr(fast, name)[ok] - getattr(ref, name)[ok]).abs() / scale
                assert bool((err < 1e-10).all()), name
            for name in ("radius", "radius_opt"):
                torch.testing.assert_close(
                    getattr(fast, name)[ok], getattr(ref, name)[ok], rtol=1e-8, atol=0.0
                )
            fb = run(inst, damping, 1, steps=2)  # never converges: all fall back
            assert torch.equal(fb.mu_max, ref.mu_max) and torch.equal(fb.mu_min, ref.mu_min)
            n_conv += int(ref.converges.sum())
            n_fail += int((~ref.converges).sum())
    assert n_conv >= 10 and n_fail >= 10, (n_conv, n_fail)  # both outcomes are tested


def test_extreme_eigenvalues_of_a_known_spectrum():
    """The default path at n = 1000 (Lanczos) on Q diag(ev) Q^T with a known spectrum."""
    from spinglass_icl.solvers.stability import LANCZOS_MIN_N, extreme_eigenvalues

    n = LANCZOS_MIN_N
    g = torch.Generator().manual_seed(4)
    Q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))
    ev = torch.rand(n, dtype=torch.float64, generator=g) * 2 + 0.5  # bulk in [0.5, 2.5]
    ev[:2] = torch.tensor([0.2, 9.0], dtype=torch.float64)  # separated extremes
    M = (Q * ev) @ Q.T
    M = (M + M.T) / 2
    lo, hi = extreme_eigenvalues(torch.stack([M, 2 * M]))
    torch.testing.assert_close(
        lo, torch.tensor([0.2, 0.4], dtype=torch.float64), rtol=1e-10, atol=0
    )
    torch.testing.assert_close(
        hi, torch.tensor([9.0, 18.0], dtype=torch.float64), rtol=1e-10, atol=0
    )
