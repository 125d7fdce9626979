"""Fig. 6: SA and TF as distributions (basins, median, restarts) and AMP scored on each
trial's own test prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinglass_icl.experiments import fig6
from spinglass_icl.experiments.runner import run_figure
from spinglass_icl.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_basins_follow_the_stated_thresholds():
    b = fig6.basins(np.array([0.56, 0.60, 0.616, 0.62, 0.69, 0.93, 1.0, np.nan]))
    # trivial: >= 0.9 (2 of 7 finite); good: <= 1.1 x 0.56 = 0.616 (3); worse: 2
    assert b == pytest.approx({"trivial": 2 / 7, "good": 3 / 7, "worse": 2 / 7})
    assert fig6.basins(np.array([0.95, 1.0])) == {"trivial": 1.0, "worse": 0.0, "good": 0.0}


def test_amp_is_scored_on_the_sla_trials_own_test_prompts():
    """_own_test_error of the trained SLA's W reproduces the SLA's own relative test error
    (1e-12): the AMP solution of trial k meets exactly trial k's test prompts."""
    cfg = TrainConfig.of("sla", 3, 6, 50, lam=0.05, trials=3, epochs=5, test_tasks=40, seed=2)
    res = train(cfg)
    own = fig6._own_test_error(cfg, res.W)
    np.testing.assert_allclose(own, res.test_error.relative.numpy(), rtol=1e-12, atol=0)


def test_tiny_fig6_reports_points_basins_medians_and_restarts(tmp_path):
    opts = dict(preset="tiny", progress=False, executor="serial", workers=1)
    params = {"models": ["sla", "sa"], "epochs": 20}
    r = run_figure("fig6", tmp_path / "a", params=params, **opts)
    n = r["numbers"]
    for m in ("sla", "sa"):
        fr = [n[f"{m}_basin_{b}"] for b in ("trivial", "worse", "good")]
        assert sum(fr) == pytest.approx(1.0) and all(0 <= f <= 1 for f in fr)
        assert np.isfinite(n[f"{m}_median"])
    assert n["restarts"] == 1 and np.isfinite(n["amp_minus_sla_mean"])
    texts = [c["claim"] for c in r["claims"]]
    assert any("SA and TF display a higher test error" in t for t in texts)
    assert all("comparable to the SLA" not in t for t in texts)
    r3 = run_figure("fig6", tmp_path / "b", params={**params, "restarts": 3}, **opts)
    n3 = r3["numbers"]
    assert n3["restarts"] == 3
    assert r3["params"]["restarts"] == 3
    assert n3["sla_relative_error"] != n["sla_relative_error"]  # other runs were kept
    with pytest.raises(Exception, match="restarts must be"):
        run_figure("fig6", tmp_path / "c", params={**params, "restarts": 0}, **opts)
    assert torch.get_num_threads() == 1


def test_reproduce_restarts_flag_is_checked(tmp_path, capsys):
    from spinglass_icl.cli import main

    rc = main(["reproduce", "fig2", "--preset", "tiny", "--restarts", "2",
               "--out", str(tmp_path / "x")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "restarts: figure fig2 does not train from several" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "x").exists()
    rc = main(["reproduce", "fig6", "--preset", "tiny", "--restarts", "0",
               "--out", str(tmp_path / "y")])  # fmt: skip
    assert rc == 2 and "restarts must be" in capsys.readouterr().err


def test_cpu_model_trials_scale_only_the_named_models_on_a_cpu():
    """The paper preset on a CPU runs SA, TF and MHLA on their first 50 trials (the main
    figures' 2-hour budget), SLA and FLA on all 100; CUDA, ``--trials`` (also at
    100) and a changed trial count run every model on all."""
    import dataclasses
    from pathlib import Path

    from spinglass_icl.experiments.common import Context
    from spinglass_icl.experiments.presets import get_preset

    p = get_preset("paper", "fig6")
    ctx = Context(figure="fig6", out=Path("."), preset="paper", params=p)
    assert fig6.model_trials(ctx) == {"sla": 100, "fla": 100, "sa": 50, "tf": 50, "mhla": 50}
    assert "SA 50, TF 50, MHLA 50 of the authors' 100 on this CPU" in fig6.budget_note(ctx)
    for other in (
        dataclasses.replace(ctx, device="cuda"),
        dataclasses.replace(ctx, trials_override=100),
        dataclasses.replace(ctx, params=p.replace(trials=60)),
    ):
        assert set(fig6.model_trials(other).values()) == {other.params.trials}
        assert fig6.budget_note(other) == ""


def test_a_model_on_fewer_trials_is_its_first_trials_of_the_full_run(tmp_path):
    """A model scaled down by ``cpu_model_trials`` trains exactly the first trials of a run
    of all (same data, same numbers), NaN for the rest; the statistics skip the NaN."""
    import dataclasses

    from spinglass_icl.experiments.common import Context
    from spinglass_icl.experiments.presets import Fig6Preset

    @dataclasses.dataclass(frozen=True)
    class Small(Fig6Preset):  # the preset class's own trial count is what a CPU scales
        trials: int = 4

    p = Small(D=3, N=4, P=20, epochs=6, test_tasks=30, models=("sla", "sa"), chunk=2,
              dtype={}, cpu_model_trials={"sa": 2})  # fmt: skip
    ctx = Context(figure="fig6", out=tmp_path / "cpu", preset="paper", params=p,
                  progress=False)  # fmt: skip
    full = dataclasses.replace(ctx, out=tmp_path / "all", trials_override=4)
    for c in (ctx, full):
        c.out.mkdir()
    ds, ds_all = fig6.compute(ctx), fig6.compute(full)
    sa, sa_all = (d["relative_test_error"].sel(model="sa").values for d in (ds, ds_all))
    assert np.isnan(sa[2:]).all() and np.isfinite(sa_all).all()
    np.testing.assert_allclose(sa[:2], sa_all[:2], rtol=1e-12)
    sla = ds["relative_test_error"].sel(model="sla").values
    np.testing.assert_allclose(sla, ds_all["relative_test_error"].sel(model="sla").values)
    numbers, summary = fig6.summarize(ds)
    assert numbers["sa_trials"] == 2 and numbers["sla_trials"] == 4
    assert numbers["sa_relative_error"] == pytest.approx(sa[:2].mean())
    assert "SA 2 of the authors' 4 on this CPU" in ds.attrs["budget_note"]
    assert np.isfinite(numbers["sa_relative_error"]) and "SA: median" in summary
    fig6.draw(ds)
