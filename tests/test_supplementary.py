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
from spinglass_icl.experiments.common import run_figure, verify_figure

MINE = ("figS7",)


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
