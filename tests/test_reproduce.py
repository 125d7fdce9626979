"""``spinglass-icl reproduce``: every figure at the tiny preset, checked on its physics.

One module-scoped run of ``reproduce all --preset tiny`` feeds the tests; each test reads
the figure's ``result.json`` / data and checks a trend of the paper (or, where our data
contradict the paper, what is true), not just that files exist.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spinglass_icl.cli import main
from spinglass_icl.experiments import DIVERSITY, FIGURES, SUPPLEMENTARY

ALL = list(FIGURES)


#: the matplotlib figures the tiny run drew, by figure name (for the readability checks)
DRAWN: dict = {}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from figure_checks import keeping_drawn

    out = tmp_path_factory.mktemp("reproduce_tiny")
    with keeping_drawn(DRAWN):  # the CLI sets 1 thread for tiny presets; restored after
        rc = main(
            ["reproduce", "all", "--preset", "tiny", "--out", str(out), "--executor",
             "serial", "--no-progress"]
        )  # fmt: skip
    assert rc == 0
    return out


@pytest.mark.parametrize("name", ALL)
def test_figure_is_readable(tiny, name):
    """Every registered figure, as drawn at the tiny preset: no two text elements overlap
    and no legend covers a data point (renderer bounding boxes, tests/figure_checks.py)."""
    from figure_checks import figure_problems
    from spinglass_icl.experiments.common import plot_style

    assert name in DRAWN, f"{name} drew no figure through save_figure"
    with plot_style():
        assert figure_problems(DRAWN[name]) == []


def rec(out: Path, name: str) -> dict:
    return json.loads((out / name / "result.json").read_text())


def test_every_figure_has_png_pdf_data_and_record(tiny):
    for name in ALL:
        r = rec(tiny, name)
        folder = tiny / name
        assert (folder / "figure.png").stat().st_size > 1000
        assert (folder / "figure.pdf").stat().st_size > 1000
        assert (folder / "data.nc").exists(), name
        assert r["preset"] == "tiny" and r["convention"] == "authors" and r["seed"] == 0
        assert r["seconds"] > 0
        assert set(r["files"]) >= {"figure.png", "figure.pdf"}


def test_fig1_fat_tails_and_block_law_scales(tiny):
    n = rec(tiny, "fig1")["numbers"]
    for b in "ABCDE":
        assert n[f"{b}_excess_kurtosis"] > 1.0, b  # fat tails (a Gaussian gives 0)
    # theta is exactly the law of block B (same sums, same scale factor)
    assert n["B_std_ratio"] == pytest.approx(1.0, abs=0.08)
    # z misses the coherent part N w_m of block A: std ratio sqrt((N+D+1)/D)
    assert n["A_std_ratio"] == pytest.approx(n["A_std_ratio_expected"], rel=0.1)


def test_fig2_error_falls_and_contrast_rises_with_P_and_amp_structure(tiny):
    r = rec(tiny, "fig2")
    n, p = r["numbers"], r["params"]
    Pl, Ph = min(p["P_list"]), max(p["P_list"])
    assert n[f"P{Ph}_relative_test_error"] < 0.5 * n[f"P{Pl}_relative_test_error"]
    assert n[f"P{Ph}_contrast"] > 0.95 > n[f"P{Pl}_contrast"]
    assert n["amp_status"] == "converged"
    # last column of W: no field, no coupling -> m = 0 and v = 1/(beta lam) exactly
    assert n["amp_last_column_max_abs_m"] < 1e-12
    assert n["amp_last_column_v_mean"] == pytest.approx(n["one_over_beta_lam"], rel=1e-9)
    assert n["amp_contrast"] > 0.95


def test_hessian_has_n_minus_P_eigenvalues_at_lam(tiny):
    r = rec(tiny, "hessian")
    n = r["numbers"]
    D = r["params"]["D"]
    assert n["P10_near_lam_mean"] == (D + 1) ** 2 - 10
    Ph = max(r["params"]["P_list"])
    assert n[f"P{Ph}_near_lam_mean"] == D + 1  # only W's inert last column stays flat
    assert r["verdict"] == "agrees"


def test_fig3_one_minimum_bowl_sharper_at_large_P(tiny):
    r = rec(tiny, "fig3")
    n = r["numbers"]
    Pl, Ph = min(r["params"]["P_list"]), max(r["params"]["P_list"])
    for P in (Pl, Ph):
        assert n[f"P{P}_min_energy_random"] > n[f"P{P}_energy_target"]
    assert n[f"P{Ph}_spearman_energy_distance"] > n[f"P{Pl}_spearman_energy_distance"]
    import xarray as xr

    with xr.open_dataset(tiny / "fig3" / "data.nc") as ds:
        assert ds["tsne"].sel(P=Pl).shape == (r["params"]["points"] + 1, 2)
        assert np.isfinite(ds["tsne"].values).all()
    # H is convex: the paper's "multiple local minima" at small P is refuted, not confirmed
    small = [c for c in r["claims"] if "multiple local minima" in c["claim"]]
    assert len(small) == 1 and small[0]["verdict"] == "disagrees"
    assert small[0]["measured"] == pytest.approx(r["params"]["lam"], rel=1e-6)


def test_fig4a_contrast_rises_with_P_and_store_resumes(tiny):
    r = rec(tiny, "fig4a")
    n = r["numbers"]
    c = n["exact_C_vs_P"]
    assert c[-1] > 0.9 and c[-1] > c[0] + 0.5
    assert all(b > a - 0.05 for a, b in zip(c, c[1:]))
    assert 0 < n["amp_nonconverged_fraction"] < 1  # AMP fails somewhere, not everywhere
    from spinglass_icl.sweep import open_store

    ds = open_store(tiny / "fig4a" / "sweep.sqlite").to_xarray()
    assert set(ds["solver"].values) == {"amp-paper", "exact"}
    assert bool(ds["converged"].sel(solver="exact").all())
    # non-converged AMP rows stay in the table as missing values
    amp = ds.sel(solver="amp-paper")
    assert bool(np.isnan(amp["contrast"].values[~amp["converged"].values]).all())


def test_fig4a_rerun_resumes_from_store(tiny, tmp_path):
    import shutil

    from spinglass_icl.experiments.runner import run_figure

    shutil.copytree(tiny / "fig4a", tmp_path / "fig4a")
    r = run_figure("fig4a", tmp_path, preset="tiny", executor="serial", progress=False,
                   force=True)  # fmt: skip
    assert r["numbers"] == rec(tiny, "fig4a")["numbers"]


def test_fig4b_error_falls_with_N_and_sgd_matches_exact(tiny):
    n = rec(tiny, "fig4b")["numbers"]
    ex = n["exact_relative_error"]
    assert ex[-1] < 0.5 * ex[0]
    assert all(b < a for a, b in zip(ex, ex[1:]))
    # SGD reaches the exact ridge minimizer of its own training set
    assert n["sgd_over_exact_max"] < 1.05
    # the large-D theory is in the right range at finite D
    for t, e in zip(n["theory_at_N"], ex):
        assert 0.5 * e < t < 1.5 * e
    assert n["exact_converged_fraction"] == [1.0] * len(ex)


def test_fig5_block_C_most_sensitive_to_prompt_length(tiny):
    n = rec(tiny, "fig5")["numbers"]
    ratios = {b: n[f"KL_over_floor_{b}_dNmax"] for b in "ABCDE"}
    assert max(ratios, key=ratios.get) == "C"
    assert ratios["C"] > 3.0
    assert ratios["C"] > ratios["A"] and ratios["C"] > ratios["B"]


def test_fig6_all_architectures_and_amp(tiny):
    n = rec(tiny, "fig6")["numbers"]
    for m in ("sla", "fla", "sa", "tf", "mhla", "amp"):
        assert math.isfinite(n[f"{m}_relative_error"]) and n[f"{m}_relative_error"] < 2.0
    assert n["amp_converged"] == rec(tiny, "fig6")["params"]["trials"]
    # AMP is the ridge minimizer of the SLA's own data: no worse than the trained SLA
    assert n["amp_relative_error"] < 1.05 * n["sla_relative_error"]


def test_double_descent_peaks_at_interpolation(tiny):
    n = rec(tiny, "double-descent")["numbers"]
    peaks = [v for k, v in n.items() if k.endswith("_peak_tau")]
    assert peaks and all(0.6 < t < 1.7 for t in peaks)


def test_every_figure_has_claims_with_verdicts(tiny):
    from spinglass_icl.experiments.claims import VERDICTS, overall

    for name in ALL:
        r = rec(tiny, name)
        assert r["claims"], name
        for c in r["claims"]:
            assert set(c) == {"claim", "quantity", "measured", "criterion", "verdict"}
            assert c["verdict"] in VERDICTS and c["criterion"]
        assert r["verdict"] == overall(r["claims"])
        if any(c["verdict"] == "disagrees" for c in r["claims"]):
            assert r["verdict"] != "agrees"
    # block A's law misses the coherent part N w_m: off in scale by sqrt((N+D+1)/D)
    a = next(c for c in rec(tiny, "fig1")["claims"] if c["claim"].startswith('"P(A)'))
    assert a["verdict"] == "disagrees"


def test_readme_block_is_generated_from_the_report(tiny, tmp_path):
    from spinglass_icl.experiments.report import (
        ERRATA,
        README_END,
        README_START,
        collect,
        findings_markdown,
        update_readme,
    )

    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    assert README_START in text and README_END in text
    block = text.split(README_START, 1)[1].split(README_END, 1)[0]
    assert all(e.split("{solvers}")[0] in block for e in ERRATA)
    copy = tmp_path / "README.md"
    copy.write_text(text)
    recs = collect(tiny)
    update_readme(copy, recs)
    assert update_readme(copy, recs, check=True)
    assert findings_markdown(recs, tmp_path) in copy.read_text()
    assert "(tiny preset, overall" in copy.read_text()  # each verdict names its preset
    md = (tiny / "report.md").read_text()
    assert findings_markdown(recs, tiny) in md  # the report says the same


def test_report_has_every_section_and_results_json(tiny):
    md = (tiny / "report.md").read_text()
    html = (tiny / "report.html").read_text()
    res = json.loads((tiny / "results.json").read_text())
    assert set(res["figures"]) == set(ALL)
    for name in ALL:
        assert f"## {name}:" in md and f'<a id="{name}"></a>' in md
        assert f'id="{name}"' in html
        assert res["figures"][name]["seconds"] > 0
    assert html.count("data:image/png;base64,") == len(ALL)
    assert "Onsager" in md and "convex" in md  # the notes are carried into the report
    assert md.count("| claim | measured | criterion | verdict |") == len(ALL)
    assert html.count('<table class="claims">') == len(ALL)
    assert res["figures"]["fig3"]["verdict"] != "agrees"
    assert 'src="http' not in html and "src='http" not in html  # self-contained


def test_single_figure_rerun_keeps_other_sections(tiny, tmp_path, capsys):
    import shutil

    out = tmp_path / "r"
    shutil.copytree(tiny, out)
    threads = torch.get_num_threads()
    try:
        assert main(["reproduce", "hessian", "--preset", "tiny", "--out", str(out),
                     "--no-progress"]) == 0  # fmt: skip
        assert "skipped" in capsys.readouterr().out  # same preset/seed: not redone
        assert main(["reproduce", "hessian", "--preset", "tiny", "--out", str(out), "--force",
                     "--no-progress"]) == 0  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    md = (out / "report.md").read_text()
    assert all(f"## {name}:" in md for name in ALL)


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["reproduce", "fig1", "--preset", "tiny", "--seed", "-1",
                 "--out", str(tmp_path)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("spinglass-icl: error: seed must be") and "\n" not in err
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "fig9", "--out", str(tmp_path)])
    assert exc.value.code == 2
    from spinglass_icl.errors import ParameterError
    from spinglass_icl.experiments.runner import run_figure

    with pytest.raises(ParameterError, match="params must be keys"):
        run_figure("fig1", tmp_path, preset="tiny", params={"nonsense": 1})
    with pytest.raises(ParameterError, match="preset must be one of"):
        run_figure("fig1", tmp_path, preset="huge")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_figures_run_on_cuda(tmp_path):
    """Device-agnostic: the solver, sweep and training figures run on CUDA, same trends."""
    threads = torch.get_num_threads()
    try:
        for fig in ("fig2", "fig4b", "fig6", "hessian"):
            args = ["reproduce", fig, "--preset", "tiny", "--out", str(tmp_path)]
            args += ["--device", "cuda", "--executor", "serial", "--no-progress"]
            assert main(args) == 0
    finally:
        torch.set_num_threads(threads)
    n = rec(tmp_path, "fig4b")["numbers"]
    assert n["exact_relative_error"][-1] < 0.5 * n["exact_relative_error"][0]
    assert n["sgd_over_exact_max"] < 1.05
    assert rec(tmp_path, "hessian")["device"] == "cuda"


def test_readme_verdicts_match_the_committed_paper_report():
    """README's generated "where the paper is wrong" block is the committed paper-preset
    report's own (rebuilt from docs/paper/results.json, nothing rerun)."""
    from spinglass_icl.experiments.report import collect
    from spinglass_icl.experiments.report import main as report_main

    root = Path(__file__).resolve().parents[1]
    recs = collect(root / "docs" / "paper")
    main_figures = {n for n in FIGURES if n not in SUPPLEMENTARY and n not in DIVERSITY}
    assert {r["preset"] for r in recs} == {"paper"}
    assert main_figures <= {r["figure"] for r in recs}
    args = [str(root / "docs" / "paper"), "--readme", str(root / "README.md"), "--check"]
    assert report_main(args) == 0


def test_amp_stability_prediction_matches_the_solver(tiny):
    n = rec(tiny, "amp-stability")["numbers"]
    assert n["agreement"] >= 0.95 and n["instances"] >= 20
    s = rec(tiny, "fig4a")["numbers"]["stability"]
    assert s["instance_level_agreement"] >= 0.9
    assert s["cells_measured_nonconverged"] > 0  # the tiny grid has a corner to explain


def test_log_tick_values_are_spaced_and_keep_both_ends():
    """Fig. 4b's N = 20..200 on a log axis: neighbouring tick labels at least span/8
    decades apart (180 and 200 overlapped before), first and last always labelled."""
    import math

    from spinglass_icl.experiments.common import spaced_log_values

    for values in (range(20, 201, 20), [5, 10, 20, 40, 80], [1, 1.1, 1.2, 50, 51, 100]):
        kept = spaced_log_values(values)
        vals = sorted(float(v) for v in values)
        assert kept[0] == vals[0] and kept[-1] == vals[-1]
        gap = math.log10(vals[-1] / vals[0]) / 8
        assert all(math.log10(b / a) >= gap for a, b in zip(kept, kept[1:]))
    assert spaced_log_values(range(20, 201, 20)) == [20, 40, 60, 100, 140, 200]
    assert spaced_log_values([5, 10, 20, 40, 80]) == [5, 10, 20, 40, 80]


def test_plain_tick_labels_have_no_exponent():
    from spinglass_icl.experiments.common import plain_number

    assert [plain_number(v) for v in (1000.0, 20.0, 0.3, 2.5, 1e-3)] == [
        "1000", "20", "0.3", "2.5", "0.001",
    ]  # fmt: skip


def test_report_says_when_trials_were_overridden():
    from spinglass_icl.experiments.report import _trials_note

    note = _trials_note({"figure": "fig6", "preset": "paper", "trials_override": 20})
    assert "--trials 20" in note and "preset's 100" in note
    assert _trials_note({"figure": "fig6", "preset": "paper"}) is None
    # the preset's own count (here the authors' 10, which a CPU run lowers to 4)
    note = _trials_note({"figure": "figS8", "preset": "paper", "trials_override": 10})
    assert note == (
        "Run with --trials 10, the preset's own count; a CPU run without --trials runs 4, "
        "to fit the time budget."
    )
    note = _trials_note({"figure": "fig6", "preset": "paper", "trials_override": 100})
    assert note == "Run with --trials 100, the preset's own count."
    note = _trials_note({"figure": "fig6", "preset": "paper", "trials_override": 200})
    assert "more than the preset's 100" in note and "wider" not in note


def test_figure_groups_split_main_and_supplementary():
    """``main`` and ``supplementary`` partition ``all``, in the registry's order."""
    from spinglass_icl.cli.reproduce import _group

    main_, supp, div = _group("main"), _group("supplementary"), _group("diversity")
    assert main_ + supp + div == _group("all") == list(FIGURES)
    assert supp == [n for n in SUPPLEMENTARY if n in FIGURES] and "fig1" in main_
    assert _group("fig3") == ["fig3"]
