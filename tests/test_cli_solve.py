"""``spinglass-icl solve``: files written, their layout, determinism, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from spinglass_icl.cli import main
from spinglass_icl.hamiltonian import make_instance
from spinglass_icl.observables import predict, spins_to_W
from spinglass_icl.solvers import solve
from spinglass_icl.tasks import sample_prompts

SMALL = ["--D", "4", "--N", "20", "--P", "200", "--test-tasks", "2000"]


def run_cli(argv: list[str]) -> int:
    """``main(argv)``, turning argparse's SystemExit into its exit code."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture(scope="module")
def amp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("amp")
    argv = ["solve", *SMALL, "--lam", "1.0", "--solver", "amp", "--seed", "3", "--out", str(out)]
    return out, argv, run_cli(argv)


def test_solve_writes_the_three_files(amp_run, capsys):
    out, _, code = amp_run
    assert code == 0
    inst = np.load(out / "instance.npz")
    assert inst["S"].shape == (200, 25)
    assert inst["y"].shape == (200,)
    assert (int(inst["D"]), int(inst["N"]), int(inst["P"])) == (4, 20, 200)
    assert float(inst["lam"]) == 1.0 and float(inst["beta"]) == 100.0
    sol = np.load(out / "solution.npz")
    assert sol["m"].shape == (25,) and sol["v"].shape == (25,)
    assert bool(sol["converged"]) is True
    assert int(sol["iterations"]) > 0
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "contrast",
        "test_error",
        "relative_test_error",
        "energy",
        "converged",
        "iterations",
        "seconds",
        "config",
    ):
        assert key in summary, key
    assert summary["converged"] is True
    assert summary["iterations"] == int(sol["iterations"])
    cfg = summary["config"]
    assert (cfg["D"], cfg["N"], cfg["P"], cfg["lam"], cfg["seed"]) == (4, 20, 200, 1.0, 3)
    assert cfg["solver"] == "amp" and cfg["convention"] == "authors"
    assert 0 < summary["relative_test_error"] < 2
    assert -1 <= summary["contrast"] <= 1


def test_files_agree_with_the_python_api(amp_run):
    """The instance file is make_instance(seed); the solution is solve(); observables agree."""
    out, _, _ = amp_run
    inst = make_instance(4, 20, 200, 1.0, seed=3)
    data = np.load(out / "instance.npz")
    np.testing.assert_array_equal(data["S"], inst.s.numpy())
    np.testing.assert_array_equal(data["y"], inst.y.numpy())
    res = solve(inst, "amp")
    sol = np.load(out / "solution.npz")
    np.testing.assert_array_equal(sol["m"], res.m.numpy())
    np.testing.assert_array_equal(sol["v"], res.v.numpy())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["energy"] == pytest.approx(float(inst.energy(res.m)), rel=1e-12)


def test_S_layout_is_row_major_W(amp_run):
    """y^ = S @ m reproduces c (X X^T W X)[D, N] with W = spins_to_W(m) on the same prompts."""
    out, _, _ = amp_run
    S = np.load(out / "instance.npz")["S"]
    m = np.load(out / "solution.npz")["m"]
    pr = sample_prompts(4, 20, 200, seed=3)
    W = spins_to_W(torch.from_numpy(m))
    y_hat = predict(W, pr.X, pr.config.prefactor)
    np.testing.assert_allclose(S @ m, y_hat.numpy(), rtol=1e-10, atol=1e-12)
    # and S[mu].reshape(D+1, D+1) is the matrix S^mu = c u (x) q of eq. 3
    np.testing.assert_allclose(
        S[0].reshape(5, 5), (pr.config.prefactor * torch.outer(pr.u[0], pr.q[0])).numpy()
    )


def test_same_seed_same_summary(amp_run, tmp_path):
    out, argv, _ = amp_run
    argv2 = [*argv[:-1], str(tmp_path)]
    assert run_cli(argv2) == 0
    a = json.loads((out / "summary.json").read_text())
    b = json.loads((tmp_path / "summary.json").read_text())
    a.pop("seconds"), b.pop("seconds")
    a["config"].pop("out", None), b["config"].pop("out", None)
    assert a == b
    for name in ("instance.npz", "solution.npz"):
        x, y = np.load(out / name), np.load(tmp_path / name)
        for key in x.files:
            np.testing.assert_array_equal(x[key], y[key])


def test_different_seed_different_numbers(amp_run, tmp_path):
    out, argv, _ = amp_run
    argv2 = [*argv[:-3], "4", "--out", str(tmp_path)]
    assert argv2[-4] == "--seed"
    assert run_cli(argv2) == 0
    a = np.load(out / "solution.npz")["m"]
    b = np.load(tmp_path / "solution.npz")["m"]
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("solver", ["exact", "amp-paper", "rbp"])
def test_each_solver_runs(solver, tmp_path, capsys):
    argv = ["solve", *SMALL, "--lam", "1", "--solver", solver, "--out", str(tmp_path)]
    assert run_cli(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["converged"] is True
    assert summary["config"]["solver"] == solver
    text = capsys.readouterr().out
    assert "contrast C" in text and "test error" in text and solver in text


def test_diverging_run_exits_zero_and_reports_nulls(tmp_path, capsys):
    argv = ["solve", *SMALL, "--lam", "0.1", "--solver", "amp", "--out", str(tmp_path)]
    assert run_cli(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["converged"] is False
    assert summary["status"] == "diverged"
    for key in ("contrast", "test_error", "relative_test_error", "energy"):
        assert summary[key] is None
    sol = np.load(tmp_path / "solution.npz")
    assert bool(sol["converged"]) is False
    assert np.isfinite(sol["m"]).all() and np.isfinite(sol["v"]).all()
    assert "did not converge" in capsys.readouterr().out


BAD = [
    (["--D", "0"], "D"),
    (["--N", "0"], "N"),
    (["--P", "0"], "P"),
    (["--D", "-2"], "D"),
    (["--lam", "-1"], "lam"),
    (["--lam", "0"], "lam"),
    (["--lam", "0", "--solver", "exact"], "lam"),
    (["--beta", "0"], "beta"),
    (["--beta", "-5"], "beta"),
    (["--damping", "1"], "damping"),
    (["--damping", "-0.5"], "damping"),
    (["--solver", "bp"], "solver"),
    (["--convention", "paper"], "convention"),
    (["--device", "tpu"], "device"),
    (["--max-iter", "0"], "max_iter"),
    (["--tol", "0"], "tol"),
    (["--seed", "-1"], "seed"),
    (["--D", "ten"], "D"),
]


@pytest.mark.parametrize("extra, name", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_one_line_error(extra, name, tmp_path, capsys):
    out = tmp_path / "out"
    code = run_cli(["solve", *SMALL, *extra, "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("spinglass-icl")
    assert name in lines[0]
    assert not out.exists()  # nothing written


def test_cuda_device_rejected_without_cuda(cpu_only, tmp_path, capsys):
    assert run_cli(["solve", *SMALL, "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    assert "device" in capsys.readouterr().err


def test_console_script_exit_status(tmp_path):
    """The installed entry point exits 2 with one stderr line and no traceback."""
    cmd = [sys.executable, "-c", "import sys; from spinglass_icl.cli import main; sys.exit(main())"]
    p = subprocess.run(
        [*cmd, "solve", "--beta", "0", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert p.returncode == 2
    assert p.stderr.strip() == "spinglass-icl: error: beta must be > 0, got 0"


def test_solve_with_a_pool_reports_e_idg_and_gtask(tmp_path, capsys):
    """--tasks K: the instance's prompts take their tasks from the pool; summary.json and
    the printout carry e_IDG and g_task = e_ICL - e_IDG, equal to the API's Monte Carlo
    errors on the same test seed."""
    from spinglass_icl.tasks import TaskConfig

    out = tmp_path / "pool"
    argv = ["solve", *SMALL, "--lam", "0.01", "--solver", "exact", "--tasks", "3",
            "--pool-seed", "5", "--noise", "0.1", "--out", str(out)]  # fmt: skip
    assert run_cli(argv) == 0
    printed = capsys.readouterr().out
    assert "tasks=3" in printed and "e_IDG (pool)" in printed and "g_task" in printed
    s = json.loads((out / "summary.json").read_text())
    assert (s["config"]["tasks"], s["config"]["pool_seed"]) == (3, 5)
    task = TaskConfig(4, 20, 200, noise=0.1, tasks=3, pool_seed=5)
    inst = make_instance(task, lam=0.01, seed=0)
    W = spins_to_W(solve(inst, "exact").m)
    icl = task.test_error(W, "icl", n_tasks=2000, seed=1)
    idg = task.test_error(W, "idg", n_tasks=2000, seed=1)
    assert s["test_error"] == pytest.approx(float(icl.absolute), rel=1e-12)
    assert s["test_error_idg"] == pytest.approx(float(idg.absolute), rel=1e-12)
    assert s["gtask"] == pytest.approx(s["test_error"] - s["test_error_idg"], rel=1e-12)
    assert s["test_error_idg"] < s["test_error"]  # three tasks, memorized
    # without --tasks the summary has none of it
    plain = tmp_path / "plain"
    assert run_cli(["solve", *SMALL, "--solver", "exact", "--out", str(plain)]) == 0
    p = json.loads((plain / "summary.json").read_text())
    assert "test_error_idg" not in p and "tasks" not in p["config"]


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--tasks", "0"], "tasks (the task pool size K) must be an integer >= 1 or 'none' (a "
         "fresh task per prompt), got '0'"),
        (["--tasks", "2.5"], "tasks (the task pool size K) must be an integer >= 1 or 'none' "
         "(a fresh task per prompt), got '2.5'"),
        (["--tasks", "201", "--assignment", "equal"], "tasks must be <= P = 200 with assignment "
         "'equal' (each task used P/K >= 1 times), got 201"),
    ],
)  # fmt: skip
def test_solve_bad_pool_sizes_are_one_line_errors(tmp_path, capsys, extra, match):
    assert run_cli(["solve", *SMALL, *extra, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"spinglass-icl: error: {match}"
    assert not (tmp_path / "x").exists()
