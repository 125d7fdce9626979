"""Fig. S1 (separate vs merged attention) and Fig. S8 (every model against N) at the tiny
preset: the numbers result.json promises, claims with verdicts, resumable chunks."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from spinglass_icl.experiments.presets import get_preset
from spinglass_icl.experiments.runner import run_figure

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPTS = dict(preset="tiny", progress=False, executor="serial", workers=1)


def test_figS1_numbers_claims_and_paired_data(tmp_path):
    r = run_figure("figS1", tmp_path, **OPTS)
    n = r["numbers"]
    p = get_preset("tiny", "figS1")
    assert n["alpha"] == list(p.alphas)
    assert n["P"] == [round(a * p.D**2) for a in p.alphas]
    for k in ("merged", "separate", "merged_sd", "separate_sd"):
        assert len(n[k]) == len(p.alphas) and all(np.isfinite(n[k])), k
    assert n["threshold_alpha"] == pytest.approx((p.D + 1) / p.D)
    assert n["merged_peak_alpha"] in n["alpha"] and n["repeats"] == p.repeats
    verdicts = {c["verdict"] for c in r["claims"]}
    assert len(r["claims"]) == 3 and verdicts <= {"agrees", "partly", "disagrees"}
    assert all(c["claim"].startswith("Fig. S1 (supplement)") for c in r["claims"])
    # a second run reads every trained chunk back (nothing retrained, same numbers)
    again = run_figure("figS1", tmp_path, force=True, **OPTS)
    assert again["numbers"]["merged"] == n["merged"]
    assert (tmp_path / "figS1" / "figure.png").stat().st_size > 1000


def test_figS8_every_model_on_its_own_N_grid(tmp_path):
    r = run_figure("figS8", tmp_path, **OPTS)
    n = r["numbers"]
    p = get_preset("tiny", "figS8")
    for m in ("amp", "sla", "fla", "mhla", "sa", "tf"):
        grid = list(getattr(p, f"N_{'sla' if m == 'amp' else m}"))
        assert set(n[f"N_{m}"]) <= set(grid), m
        assert len(n[m]) == len(n[f"N_{m}"]) == len(n[f"{m}_sd"]), m
        if m != "amp":  # trained models have every point of their grid
            assert n[f"N_{m}"] == grid
            assert all(0 < x < 2 for x in n[m]), (m, n[m])
    assert len(n["amp_converged_fraction"]) == len(p.N_sla)
    names = [c["claim"] for c in r["claims"]]
    assert any("AMP follows the trained SLA" in c for c in names)
    rec = json.loads((tmp_path / "figS8" / "result.json").read_text())
    assert rec["params"]["N_sa"] == list(p.N_sa)


@pytest.mark.parametrize(
    "fig,key,cap,authors",
    [("figS1", "repeats", "cpu_repeats", 50), ("figS8", "trials", "cpu_trials", 10)],
)
def test_paper_counts_are_the_authors_on_a_gpu_and_scaled_on_a_cpu(fig, key, cap, authors):
    """The paper presets hold the authors' count (figS1: 50 repeats, figS8: at least 10
    trials per point); a CPU runs the smaller CPU count and says so, CUDA or an explicit
    count runs as given (experiments.supp.budget_count)."""
    from pathlib import Path

    from spinglass_icl.experiments.common import Context
    from spinglass_icl.experiments.supp import budget_count

    p = get_preset("paper", fig)
    assert p[key] == authors and 1 <= p[cap] < authors
    ctx = Context(figure=fig, out=Path("."), preset="paper", params=p)
    n, notes = budget_count(ctx, key, cap)
    assert n == p[cap] and f"{p[cap]} of the authors' {authors}" in notes[0]
    cuda = Context(figure=fig, out=Path("."), preset="paper", params=p, device="cuda")
    assert budget_count(cuda, key, cap) == (authors, [])
    asked = dataclasses.replace(ctx, params=p.replace(**{key: 7}))
    assert budget_count(asked, key, cap) == (7, [])
    # --trials K at the authors' own count runs K: asked for, not the preset's default
    at_authors = dataclasses.replace(ctx, trials_override=authors)
    assert budget_count(at_authors, key, cap) == (authors, [])


@pytest.mark.parametrize(
    "fig,key,authors", [("figS1", "repeats", 50), ("figS8", "trials", 10), ("fig6", "trials", 100)]
)
def test_the_record_states_the_count_that_ran(fig, key, authors):
    """``result.json``'s ``trials`` is the count that ran: the CPU count where it replaced
    the authors' (runner._trials_run), the preset's own elsewhere and on CUDA."""
    from pathlib import Path

    from spinglass_icl.experiments.common import Context
    from spinglass_icl.experiments.runner import _trials_run

    p = get_preset("paper", fig)
    ctx = Context(figure=fig, out=Path("."), preset="paper", params=p)
    cap = p.get(f"cpu_{key}")
    assert _trials_run(fig, ctx) == (cap if cap is not None else authors)
    cuda = Context(figure=fig, out=Path("."), preset="paper", params=p, device="cuda")
    assert _trials_run(fig, cuda) == authors


def test_trials_at_the_authors_count_is_run_and_not_skipped(tmp_path, monkeypatch):
    """``reproduce figS8 --preset paper --trials 10`` on a CPU runs 10 trials per point,
    though 10 is the preset's own value, and a figure made with the CPU count (4) is
    redone for it, not skipped; the record states the count run (a figure module that
    only records the count it is given stands in for the training)."""
    import spinglass_icl.experiments.runner as runner
    from figure_checks import fake_figure
    from spinglass_icl.experiments.supp import budget_count

    mod, calls = fake_figure()
    counts = []
    compute = mod.compute
    mod.compute = lambda ctx: (
        counts.append(budget_count(ctx, "trials", "cpu_trials")[0]) or (compute(ctx))
    )
    real = runner.figure_module
    monkeypatch.setattr(runner, "figure_module", lambda n: mod if n == "figS8" else real(n))
    p = get_preset("paper", "figS8")

    def run(trials=None):
        return run_figure("figS8", tmp_path, preset="paper", progress=False, trials=trials)

    r = run()
    assert counts == [p.cpu_trials] and r["trials"] == p.cpu_trials
    assert run()["skipped"] and len(calls) == 1  # the same count: skipped
    r = run(trials=p.trials)
    assert not r["skipped"] and counts == [p.cpu_trials, p.trials]
    assert r["trials"] == p.trials and r["trials_override"] == p.trials
    assert run(trials=p.trials)["skipped"] and len(calls) == 2
    r = run()  # back to the CPU count: redone again
    assert not r["skipped"] and r["trials"] == p.cpu_trials and len(calls) == 3
