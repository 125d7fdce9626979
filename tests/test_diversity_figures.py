"""The task-diversity figures (``task-diversity``, ``context-length``, ``spin-glass-pool``)
at the tiny preset, end to end: records, claims recomputed from the data, figures drawn
and readable; the pieces checked against exact answers; training on a task pool."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from spinglass_icl.experiments import DIVERSITY, FIGURES
from spinglass_icl.experiments.runner import figure_module, run_figure, verify_figure

DRAWN: dict = {}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from figure_checks import keeping_drawn

    out = tmp_path_factory.mktemp("diversity_tiny")
    with keeping_drawn(DRAWN, threads=1):
        for name in DIVERSITY:
            run_figure(name, out, preset="tiny", progress=False)
    return out


def rec(out: Path, name: str) -> dict:
    return json.loads((out / name / "result.json").read_text())


def data(out: Path, name: str) -> xr.Dataset:
    with xr.open_dataset(out / name / "data.nc") as ds:
        return ds.load()


def test_registered_grouped_and_outside_main():
    from spinglass_icl.cli.reproduce import _NAMES, _group

    assert set(DIVERSITY) <= set(FIGURES) and "diversity" in _NAMES
    assert _group("diversity") == list(DIVERSITY)
    assert not set(DIVERSITY) & set(_group("main"))
    assert set(DIVERSITY) <= set(_group("all"))
    for name in DIVERSITY:
        assert figure_module(name).IN_PAPER is False  # not the paper's verdicts


@pytest.mark.parametrize("name", DIVERSITY)
def test_record_files_claims_and_readable_figure(tiny, name):
    from figure_checks import figure_problems
    from spinglass_icl.experiments.claims import VERDICTS, overall
    from spinglass_icl.experiments.common import plot_style

    r = rec(tiny, name)
    ok, problem = verify_figure(tiny, name)
    assert problem is None and ok is not None
    assert r["preset"] == "tiny" and r["claims"] and r["in_paper"] is False
    for c in r["claims"]:
        assert c["verdict"] in VERDICTS and c["criterion"] and c["quantity"]
    assert r["verdict"] == overall(r["claims"])
    assert {"figure.png", "figure.pdf", "data.nc", "trials.sqlite"} <= set(r["files"])
    # the claims are recomputed from the stored data alone
    mod = figure_module(name)
    again = [c.to_dict() for c in mod.claims(data(tiny, name))]
    assert again == r["claims"]
    with plot_style():
        assert figure_problems(DRAWN[name]) == []


def test_claims_say_whose_they_are(tiny):
    """Lu et al.'s claims name Lu et al.; the paper's own caveat is quoted."""
    td = rec(tiny, "task-diversity")
    assert all("Lu et al. (2024)" in c["claim"] for c in td["claims"])
    assert "a bit different from that in recent works [19, 21]" in td["claims"][0]["claim"]
    cl = rec(tiny, "context-length")["claims"]
    assert all("Lu et al. (2024), Fig. 2" in c["claim"] for c in cl)


def test_task_diversity_numbers(tiny):
    """g_task falls with kappa (exact and theory); AMP equals the exact solution where it
    converges (same instances); the trained SLA reaches its own ground state."""
    ds = data(tiny, "task-diversity")
    n = rec(tiny, "task-diversity")["numbers"]
    Dmax = n["D"][-1]
    g = np.array(n[f"D{Dmax}_exact_gtask"])
    assert g[0] > 10 * g[-1] > 0
    th = ds["theory_line_gtask"].values
    assert (np.diff(th) < 0).all()  # the theory's gap falls monotonically in kappa
    # the finite-D theory rows are pool_theory at K = round(kappa D): the line at those kappa
    from spinglass_icl.experiments.task_diversity import theory_curve

    p = rec(tiny, "task-diversity")["params"]
    for D in n["D"]:
        Ks = [max(1, round(k * D)) for k in p["kappa_list"]]
        icl, idg = theory_curve(p["alpha"], np.array(Ks) / D, p["tau"], p["lam_prime"], p["rho"])
        np.testing.assert_allclose(n[f"D{D}_theory_gtask"], icl - idg, rtol=1e-9, atol=1e-12)
    if "D4_amp_minus_exact_max" in n:
        assert n["D4_amp_minus_exact_max"] < 1e-6
    sla, ex = np.array(n["sla_gtask"]), np.array(n["sla_exact_gtask"])
    assert np.abs(sla - ex).max() < 0.05 * np.abs(ex).max()


def test_context_length_theory_is_non_monotonic_where_lu_et_al_say():
    """At tau = 0.5, rho = 0.5 and kappa = 0.5 Lu et al.'s e_ICL has an interior minimum
    in alpha (a rise of over 20 % by alpha = 20); without a pool it falls monotonically."""
    from spinglass_icl.experiments.context_length import _rise
    from spinglass_icl.experiments.task_diversity import theory_curve

    a = np.geomspace(0.1, 20, 200)
    icl, _ = theory_curve(a, 0.5, 0.5, 1e-4, 0.5)
    rise, m = _rise(icl)
    assert 0 < m < len(a) - 1 and rise > 0.2
    icl_inf, _ = theory_curve(a, math.inf, 0.5, 1e-4, 0.5)
    assert _rise(icl_inf)[0] == 0.0
    assert _rise(np.array([3.0, 2.0, 1.0]))[0] == 0.0
    assert _rise(np.array([3.0, 1.0, 1.5]))[0] == pytest.approx(0.5)


def test_context_length_points_and_lines(tiny):
    ds = data(tiny, "context-length")
    p = rec(tiny, "context-length")["params"]
    assert ds["icl_mean"].shape == (len(p["settings"]), len(p["kappa_list"]), len(p["alpha_list"]))
    assert np.isfinite(ds["icl_mean"].values).all() and np.isfinite(ds["theory_icl"].values).all()
    # no pool: e_IDG is e_ICL (the same test tasks), for the points and the theory
    j = list(ds["kappa"].values).index(0.0)
    np.testing.assert_allclose(ds["idg_mean"][:, j], ds["icl_mean"][:, j], rtol=1e-12)
    np.testing.assert_allclose(ds["theory_idg"][:, j], ds["theory_icl"][:, j], rtol=1e-12)


def test_spin_glass_pool_numbers(tiny):
    """A pool of one task: e_IDG far below e_ICL and a low contrast; no pool: e_IDG = e_ICL;
    the KL of the no-pool row is the noise floor itself."""
    n = rec(tiny, "spin-glass-pool")["numbers"]
    K = n["K"]
    i1, i0 = K.index(1), K.index(0)
    assert n["idg_mean"][i1] < 0.5 * n["icl_mean"][i1]
    assert n["idg_mean"][i0] == pytest.approx(n["icl_mean"][i0], rel=1e-12)
    assert n["contrast_mean"][i1] < 0.5 < n["contrast_mean"][i0]
    for b in "ABCDE":
        assert n[f"kl_{b}"][i0] == pytest.approx(n[f"floor_{b}"], rel=1e-12)


def test_spin_glass_pool_resumes_from_its_store(tiny, tmp_path, monkeypatch):
    """A rerun reads every chunk back from trials.sqlite: no ground state is recomputed
    (the pilot sample that fixes the bins is redrawn, as in Fig. S2)."""
    from spinglass_icl.experiments import spin_glass_pool

    shutil.copytree(tiny / "spin-glass-pool", tmp_path / "spin-glass-pool")
    (tmp_path / "spin-glass-pool" / "result.json").unlink()

    def boom(*a, **k):
        raise AssertionError("recomputed a stored chunk")

    monkeypatch.setattr(spin_glass_pool, "exact_weights", boom)
    r = run_figure("spin-glass-pool", tmp_path, preset="tiny", progress=False)
    assert r["numbers"] == rec(tiny, "spin-glass-pool")["numbers"]


def test_lu_setting_maps_back_to_lu_et_al_units():
    """(alpha, tau, rho, lam') -> (N, P, lam, noise) -> theory_params gives them back."""
    from spinglass_icl.experiments.task_diversity import lu_setting
    from spinglass_icl.theory import theory_params

    for conv in ("authors", "normalized", "paper-text"):
        N, P, lam, noise, sig = lu_setting(10, 10, 10, 0.01, 1e-4, conv)
        assert (N, P) == (100, 1000)
        tp = theory_params(10, N, P, lam, conv, noise)
        assert tp.lam_prime == pytest.approx(1e-4, rel=1e-12)
        assert tp.rho == pytest.approx(0.01, rel=1e-12)


def test_training_on_a_pool_uses_the_pool():
    """TrainConfig with a pool task trains on the pool's tasks (its training data's
    ground state has e_IDG below e_ICL at K = 1) and tests on fresh tasks; without a
    pool the data are the draws of (D, N, P, convention, noise) as before."""
    from spinglass_icl.tasks import TaskConfig, make_generator, sample_prompts
    from spinglass_icl.training import (
        STREAM_DATA,
        STREAM_TEST,
        TrainConfig,
        trial_prompts,
        trial_seed,
    )

    pool = TaskConfig(3, 8, 40, noise=0.1, tasks=1, pool_seed=4)
    cfg = TrainConfig(task=pool, trials=1, test_tasks=5, seed=2)
    X, y = trial_prompts(cfg, STREAM_DATA)
    w = pool.pool[0]
    s = pool.label_scale
    # every training prompt's clean query label is s w.x~ (noise 0.1 on top)
    resid = y[0] - s * (X[0, :, :-1, -1] @ w)
    assert resid.abs().max() < 0.6 and resid.std() == pytest.approx(0.1, rel=0.5)
    Xt, yt = trial_prompts(cfg, STREAM_TEST)
    assert (yt[0] - s * (Xt[0, :, :-1, -1] @ w)).std() > 1.0  # fresh test tasks
    plain = TrainConfig(task=TaskConfig(3, 8, 40, noise=0.1), trials=1, seed=2)

    X2, y2 = trial_prompts(plain, STREAM_DATA)
    g = make_generator(trial_seed(2, 0, STREAM_DATA))
    old = sample_prompts(3, 8, 40, noise=0.1, generator=g)
    assert torch.equal(X2[0], old.X) and torch.equal(y2[0], old.y)
