"""The supplementary figures (``figS2`` ... ``figS7``) at the tiny preset, and the pieces
they are built from checked against exact answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from spinglass_icl.experiments import FIGURES, SUPPLEMENTARY
from spinglass_icl.experiments.runner import run_figure, verify_figure

MINE = ("figS7", "figS5", "figS2", "figS6", "figS3", "figS4")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("supp_tiny")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in MINE:
            run_figure(name, out, preset="tiny", progress=False)
    finally:
        torch.set_num_threads(threads)
    return out


def rec(out: Path, name: str) -> dict:
    return json.loads((out / name / "result.json").read_text())


def test_supplementary_group_is_the_registered_figS_figures():
    from spinglass_icl.cli.reproduce import _NAMES, _group

    assert "supplementary" in _NAMES and all(n in _NAMES for n in MINE)
    got = _group("supplementary")
    assert got == [n for n in SUPPLEMENTARY if n in FIGURES]
    assert set(MINE) <= set(got)


def test_reproduce_supplementary_runs_the_group(tiny, tmp_path, capsys):
    """``reproduce supplementary`` goes through every registered figS figure (here all
    already made, so each is skipped) and rebuilds the report with their sections."""
    from spinglass_icl.cli import main

    out = tmp_path / "supp"
    shutil.copytree(tiny, out)
    threads = torch.get_num_threads()
    try:
        assert main(["reproduce", "supplementary", "--preset", "tiny", "--out", str(out),
                     "--no-progress"]) == 0  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    for name in MINE:
        assert f"  {name}" in printed and f"## {name}:" in md


@pytest.mark.parametrize("name", MINE)
def test_figure_record_files_and_claims(tiny, name):
    r = rec(tiny, name)
    rec_ok, problem = verify_figure(tiny, name)
    assert problem is None and rec_ok is not None
    assert r["preset"] == "tiny" and r["claims"]
    for c in r["claims"]:
        assert c["verdict"] in ("agrees", "partly", "disagrees", "not comparable")
        assert c["criterion"] and c["quantity"]
    assert (tiny / name / "figure.png").stat().st_size > 1000


# ---------------------------------------------------------------- figS7


@pytest.mark.parametrize("D, P", [(3, 5), (3, 12), (3, 14), (3, 30), (5, 29), (5, 31), (5, 60)])
def test_hessian_zero_count_is_n_minus_rank(D, P):
    """rank G = min(P, D (D+1)) exactly, on both sides of D(D+1) and of n = (D+1)^2
    (the kernel path for P < n, the dense one above)."""
    from spinglass_icl.experiments.figS7 import hessian_spectrum, identity_ratio

    n = (D + 1) ** 2
    ev, zeros = hessian_spectrum(D, 12, P, 3, "authors", seed=7)
    assert ev.shape == (3, n)
    assert (zeros == n - min(P, D * (D + 1))).all()
    assert zeros.mean() / n == pytest.approx(identity_ratio(D, P), abs=1e-15)


def test_hessian_kernel_spectrum_equals_the_dense_one():
    """Below n prompts the P x P kernel gives G's nonzero eigenvalues to rounding."""
    from spinglass_icl.experiments.figS7 import hessian_spectrum
    from spinglass_icl.hamiltonian import make_instance

    D, N, P = 4, 10, 17
    ev, _ = hessian_spectrum(D, N, P, 2, "authors", seed=3)
    inst = make_instance(D, N, P, 0.0, seed=3, batch_shape=(2,))
    dense = np.sort(torch.linalg.eigvalsh(inst.gram).numpy(), -1)
    np.testing.assert_allclose(ev[:, -P:], dense[:, -P:], rtol=1e-9, atol=1e-14)
    assert np.abs(dense[:, :-P]).max() < 1e-12 * dense.max()


def test_figS7_zero_ratio_equals_the_identity(tiny):
    n = rec(tiny, "figS7")["numbers"]
    p = rec(tiny, "figS7")["params"]
    assert n["D"] == p["map_D"] and n["P"] == p["map_P"]
    z = np.array(n["zero_ratio"])
    assert z.shape == (len(p["map_D"]), len(p["map_P"]))
    for i, D in enumerate(n["D"]):
        for j, P in enumerate(n["P"]):
            m = (D + 1) ** 2
            assert z[i, j] == pytest.approx((m - min(P, D * (D + 1))) / m, abs=1e-12)
    assert rec(tiny, "figS7")["verdict"] == "agrees"


def test_figS7_resumes_from_its_store(tiny, tmp_path, monkeypatch):
    """A rerun reads every chunk back from trials.sqlite: no spectrum is recomputed."""
    from spinglass_icl.experiments import figS7

    shutil.copytree(tiny / "figS7", tmp_path / "figS7")
    (tmp_path / "figS7" / "result.json").unlink()

    def boom(*a, **k):
        raise AssertionError("recomputed a stored chunk")

    monkeypatch.setattr(figS7, "hessian_spectrum", boom)
    r = run_figure("figS7", tmp_path, preset="tiny", progress=False)
    assert r["numbers"] == rec(tiny, "figS7")["numbers"]


# ---------------------------------------------------------------- figS5


@pytest.mark.parametrize("q", [1.0, 0.25, 0.01])
def test_marchenko_pastur_density_and_cdf(q):
    """The density integrates to 1 with mean 1 and variance q; the CDF equals its
    integral (scipy quad) to 1e-6."""
    from scipy.integrate import quad

    from spinglass_icl.experiments.figS5 import mp_cdf, mp_density, mp_edges

    a, b = mp_edges(q)
    f = lambda x: float(mp_density(np.array([x]), q)[0])  # noqa: E731
    assert quad(f, a, b, limit=200)[0] == pytest.approx(1.0, abs=1e-6)
    assert quad(lambda x: x * f(x), a, b, limit=200)[0] == pytest.approx(1.0, abs=1e-6)
    assert quad(lambda x: (x - 1) ** 2 * f(x), a, b, limit=200)[0] == pytest.approx(q, abs=1e-6)
    for x in np.linspace(a, b, 7)[1:-1]:
        assert mp_cdf(np.array([x]), q)[0] == pytest.approx(quad(f, a, x, limit=200)[0], abs=1e-6)
    assert mp_cdf(np.array([a - 0.1, b + 0.1]), q).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("sampler", ["bartlett", "tokens"])
def test_wishart_moments_are_exact(sampler):
    """E tr(W)/(D N) = 1 and E tr(W^2)/(D N^2) = 1 + (D + 1)/N for W = X X^T, X D x N
    Gaussian: both samplers within 5 standard errors over 400 matrices."""
    from spinglass_icl.experiments.figS5 import wishart_eigs

    D, N, k = 8, 30, 400
    ev = wishart_eigs(D, N, k, seed=11, sampler=sampler)
    m1, m2 = ev.mean(-1), (ev**2).mean(-1)
    se1, se2 = m1.std() / np.sqrt(k), m2.std() / np.sqrt(k)
    assert abs(m1.mean() - 1.0) < 5 * se1
    assert abs(m2.mean() - (1 + (D + 1) / N)) < 5 * se2


@pytest.mark.parametrize("sampler, k", [("bartlett", 200), ("tokens", 40)])
def test_spectrum_matches_marchenko_pastur(sampler, k):
    """Kolmogorov-Smirnov distance between the pooled eigenvalues of X X^T / N
    (D = 100, N = 400) and the Marchenko-Pastur CDF below 0.01 (measured: about 0.003;
    the finite-D bias is O(1/D))."""
    from spinglass_icl.experiments.figS5 import mp_cdf, wishart_eigs

    D, N = 100, 400
    ev = np.sort(wishart_eigs(D, N, k, seed=5, sampler=sampler).ravel())
    F = mp_cdf(ev, D / N)
    i = np.arange(1, ev.size + 1) / ev.size
    ks = max(np.abs(F - i).max(), np.abs(F - (i - 1 / ev.size)).max())
    assert ks < 0.01


def test_figS5_record(tiny):
    r = rec(tiny, "figS5")
    n, p = r["numbers"], r["params"]
    assert n["N"] == p["N_list"] and len(n["ks"]) == len(n["N"])
    np.testing.assert_allclose(n["eig_mean"], 1.0, atol=0.05)
    np.testing.assert_allclose(np.array(n["eig_std"]) / np.array(n["mp_std"]), 1.0, atol=0.1)
    assert max(n["ks"]) < 0.05  # D = 20: finite-D bias of a few 1e-2


def test_figS5_refuses_N_below_D():
    from spinglass_icl.errors import ParameterError
    from spinglass_icl.experiments.presets import get_preset

    with pytest.raises(ParameterError, match="N_list must hold"):
        get_preset("tiny", "figS5").replace(N_list=(10, 40))


# ---------------------------------------------------------------- figS2


def test_kl_bits_of_counts():
    from spinglass_icl.experiments.figS2 import kl_bits

    a = np.array([10.0, 30.0, 60.0])
    assert kl_bits(a, a) == 0.0
    p, q = (a + 0.5) / (a + 0.5).sum(), (a[::-1] + 0.5) / (a + 0.5).sum()
    assert kl_bits(a, a[::-1]) == pytest.approx(float(np.sum(p * np.log2(p / q))), rel=1e-12)


def test_figS2_record(tiny):
    r = rec(tiny, "figS2")
    n, p = r["numbers"], r["params"]
    assert n["N"] == p["N_list"] and n["base_N"] == p["base_N"]
    i0 = n["N"].index(p["base_N"])
    for b in "ABCDE":
        assert len(n[f"kl_{b}"]) == len(n["N"])
        assert n[f"kl_{b}"][i0] == pytest.approx(n[f"floor_{b}"])  # N = base: the floor
        assert min(n[f"kl_{b}"]) >= 0
    # block C moves with N: its KL at the longest prompt is far above its floor
    assert n["kl_C"][-1] > 3 * n["floor_C"]


# ---------------------------------------------------------------- figS6


def test_eq39_fit_reaches_the_unique_solution_only_for_P_above_1():
    """P = 6: Adam ends at W11 = C^-1, W21 = 0 (to 1e-10 in MSE); P = 1: the loss
    vanishes too, but on another member of the family of solutions."""
    from spinglass_icl.experiments.figS6 import fit_eq39

    r = fit_eq39(3, 30, 6, 3, 800, 3e-2, seed=0)
    assert (r["loss"][:, -1] < 1e-10).all() and (r["dist_solution"][:, -1] < 1e-10).all()
    # the distance to W11 = 1 ends at MSE(C^-1, 1), not at 0
    np.testing.assert_allclose(r["dist_identity"][:, -1], r["floor"], rtol=1e-4)
    assert (r["floor"] > 1e-3).all()
    r1 = fit_eq39(3, 30, 1, 3, 800, 3e-2, seed=0)
    assert (r1["loss"][:, -1] < 1e-10).all() and (r1["dist_solution"][:, -1] > 1e-2).all()


def test_eq39_forward_equals_the_literal_product():
    from spinglass_icl.experiments.figS6 import forward

    g = torch.Generator().manual_seed(0)
    R, P, D = 3, 5, 4
    w = torch.randn(R, P, D, 1, generator=g, dtype=torch.float64)
    W11 = torch.randn(R, D, D, generator=g, dtype=torch.float64)
    W21 = torch.randn(R, 1, D, generator=g, dtype=torch.float64)
    C = torch.randn(R, D, D, generator=g, dtype=torch.float64)
    literal = (w @ W21[:, None] / D**0.5 + W11[:, None]) @ C[:, None]
    torch.testing.assert_close(forward(w, W11, W21, C), literal, rtol=1e-12, atol=1e-12)
    from spinglass_icl.experiments.figS6 import eq39_mse

    eye = torch.eye(D, dtype=torch.float64)
    mse = ((literal - eye) ** 2).mean((-3, -2, -1))
    got = eq39_mse((w * w).sum((-3, -2, -1)), w.sum(-3), P, W11, W21, C, eye)
    torch.testing.assert_close(got, mse, rtol=1e-12, atol=1e-12)


def test_figS6_record(tiny):
    r = rec(tiny, "figS6")
    n, p = r["numbers"], r["params"]
    assert n["P"] == p["P_list"] and n["epoch"][-1] == p["epochs"]
    for P in n["P"]:
        curve = n[f"loss_median_P{P}"]
        assert len(curve) == len(n["epoch"]) and curve[-1] < 0.5 * curve[0]


# ---------------------------------------------------------------- figS3


def test_synthetic_laws_and_instance():
    """The script's unnormalized C density confines C below -0.43 sigma; the normalized
    laws have the truncated-normal moments; J is symmetric with a zero diagonal."""
    from scipy.stats import truncnorm

    from spinglass_icl.experiments.figS3 import LAWS, draw_block, law_range, synthetic_instance

    lo, hi = law_range("C", "script")
    assert lo == -0.1 and hi == pytest.approx(0.024 * -0.4307, abs=2e-4)
    assert law_range("C", "normalized") == (-0.1, 0.1)
    rng = np.random.default_rng(0)
    assert draw_block("C", "script", 10000, rng).max() <= hi
    for b in ("A_diag", "B", "E"):
        mu, sd, lo, hi, _ = LAWS[b]
        x = draw_block(b, "normalized", 200_000, rng)
        ref = truncnorm((lo - mu) / sd, (hi - mu) / sd, loc=mu, scale=sd)
        assert x.mean() == pytest.approx(ref.mean(), abs=5 * ref.std() / np.sqrt(x.size))
        assert x.std() == pytest.approx(ref.std(), rel=0.01)
    J, h = synthetic_instance(3, "script", rng)
    assert J.shape == (16, 16) and np.array_equal(J, J.T) and (np.diag(J) == 0).all()
    H = h.reshape(4, 4)
    assert (H[:, 3] == 0).all() and (np.diag(H)[:3] > 0.1).all()


def test_synthetic_amp_with_onsager_is_the_exact_mean():
    """With the Onsager term AMP's fixed point solves (lam - J) m = h: the wrapper hands
    the solver the synthetic J with the right sign."""
    from spinglass_icl.experiments.figS3 import solve, synthetic_instance
    from spinglass_icl.experiments.presets import get_preset

    p = get_preset("tiny", "figS3").replace(tol=1e-10, max_iter=5000)
    J, h = synthetic_instance(4, "normalized", np.random.default_rng(1))
    r = solve(J, h, p, onsager=True)
    assert bool(r.converged)
    exact = np.linalg.solve(p.lam * np.eye(J.shape[0]) - J, h)
    np.testing.assert_allclose(r.m.numpy(), exact, rtol=1e-7, atol=1e-9)


def test_contrast():
    from spinglass_icl.experiments.figS3 import contrast

    assert contrast(np.eye(4)) == 1.0
    assert contrast(np.ones((4, 4))) == 0.0


def test_figS3_record(tiny):
    n = rec(tiny, "figS3")["numbers"]
    for law in n["laws"]:
        assert 0 < n[f"contrast_m_{law}"] <= 1 and n[f"converged_fraction_{law}"] == 1.0
    assert n["C_max_script"] < -0.009  # the script's C: all entries negative
    assert 0 < n["reference_contrast"] <= 1


# ---------------------------------------------------------------- figS4


@pytest.mark.parametrize("c", [0.0, 0.3, 0.9])
def test_correlated_tokens_have_the_asked_covariance(c):
    """Sample covariance of the tokens across the N + 1 positions (pooled over features
    and prompts) equals (1 - c) I + c 1 1^T within 5 standard errors; labels are
    scale * w.x and the query label is hidden."""
    from spinglass_icl.correlated import sample_correlated_prompts, token_covariance

    D, N, P = 6, 7, 20000
    pr = sample_correlated_prompts(D, N, P, c=c, seed=3)
    x = pr.X[:, :D, :].reshape(-1, N + 1)  # every (prompt, feature) row: one draw
    emp = x.T @ x / x.shape[0]
    target = token_covariance(N, c)
    se = torch.sqrt((1 + target**2) / x.shape[0])  # sd of a Gaussian product mean
    assert ((emp - target).abs() <= 5 * se).all()
    scale = pr.config.conv.label_scale(D)
    y_all = scale * torch.einsum("pd,pdn->pn", pr.w, pr.X[:, :D, :])
    torch.testing.assert_close(pr.X[:, D, :N], y_all[:, :N])
    torch.testing.assert_close(pr.y, y_all[:, N])
    assert (pr.X[:, D, N] == 0).all()


def test_correlated_config_checks_c():
    from spinglass_icl.correlated import CorrelatedTaskConfig, sample_correlated_prompts
    from spinglass_icl.errors import ParameterError

    with pytest.raises(ParameterError, match="c"):
        CorrelatedTaskConfig(D=3, N=4, P=5, c=1.0)
    with pytest.raises(ParameterError, match="c"):
        sample_correlated_prompts(3, 4, 5, c=-0.1)
    cfg = CorrelatedTaskConfig(D=3, N=4, P=5, c=0.2)
    a = sample_correlated_prompts(cfg, seed=1)
    b = sample_correlated_prompts(3, 4, 5, c=0.2, seed=1)
    torch.testing.assert_close(a.X, b.X)  # seeded, either form
    with pytest.raises(ParameterError, match="must not be given"):
        sample_correlated_prompts(cfg, N=4)


def test_sla_adam_reaches_the_ridge_solution():
    """The script's Adam (L2 weight decay wd on the MSE) converges to the minimizer of
    eq. 2 at lam = wd / 2: sigma = (G + wd/2 I)^-1 h (on the active spins)."""
    from spinglass_icl.correlated import sample_correlated_prompts
    from spinglass_icl.experiments.figS4 import train_sla
    from spinglass_icl.hamiltonian import build_instance
    from spinglass_icl.tasks import make_generator

    wd = 0.05
    inst = build_instance(sample_correlated_prompts(3, 8, 400, c=0.4, seed=2), wd)
    sigma = train_sla(inst, wd, 1e-2, 6000, make_generator(0))
    n = inst.fields.shape[-1]
    ref = torch.linalg.solve(inst.gram + wd / 2 * torch.eye(n, dtype=torch.float64), inst.fields)
    torch.testing.assert_close(sigma, ref, rtol=1e-4, atol=1e-5)


def test_figS4_record(tiny):
    r = rec(tiny, "figS4")
    n, p = r["numbers"], r["params"]
    assert n["c"] == p["c_list"]
    for k in ("sgd", "exact", "amp", "amp_onsager", "amp_converged_fraction"):
        assert len(n[k]) == len(n["c"])
    assert all(v > 0 for v in n["sgd"]) and all(v > 0 for v in n["exact"])
    # SGD at lam = wd/2 and the exact mean at lam = wd: close, not equal
    np.testing.assert_allclose(n["sgd"], n["exact"], rtol=0.3)


def test_budget_count_scales_only_the_authors_count_on_cpu():
    from spinglass_icl.experiments.common import Context
    from spinglass_icl.experiments.presets import get_preset
    from spinglass_icl.experiments.supp import budget_count

    p = get_preset("paper", "figS4")
    ctx = Context(figure="figS4", out=Path("."), preset="paper", params=p)
    assert budget_count(ctx)[0] == p.cpu_repeats and budget_count(ctx)[1]
    cuda = Context(figure="figS4", out=Path("."), preset="paper", params=p, device="cuda")
    assert budget_count(cuda) == (p.repeats, [])
    asked = Context(figure="figS4", out=Path("."), preset="paper", params=p.replace(repeats=7))
    assert budget_count(asked) == (7, [])
