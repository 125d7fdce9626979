"""Sweep executors agree; SIGKILL and resume through the CLI; CLI status and export."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

import pytest

from spinglass_icl.sweep import SweepSpec, open_store, run_sweep
from sweep_helpers import SMALL, _assert_same, _cli, _count, _values

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------- executors agree
def test_local_pool_equals_serial(tmp_path):
    spec = SweepSpec(**SMALL)
    a = run_sweep(spec, tmp_path / "a.sqlite", executor="serial", progress=False)
    b = run_sweep(spec, tmp_path / "b.sqlite", executor="local", workers=2, progress=False)
    _assert_same(_values(a), _values(b))


def test_dask_local_cluster_equals_serial(tmp_path):
    pytest.importorskip("distributed")
    spec = SweepSpec(**{**SMALL, "grid": {"P": [100], "N": [4, 8]}})
    a = run_sweep(spec, tmp_path / "a.sqlite", executor="serial", progress=False)
    b = run_sweep(spec, tmp_path / "b.sqlite", executor="dask", workers=1, progress=False)
    _assert_same(_values(a), _values(b))


# -------------------------------------------------- SIGKILL and resume (CLI)
KILL_SPEC = """
repeats = 2
seed = 11
test_tasks = 400
[grid]
P = [40, 50, 60, 70, 80, 90, 100, 110]
N = [4, 8]
[fixed]
D = 5
lam = 1.0
[solver_options]
damping = 0.9
tol = 1e-7
"""


@pytest.mark.parametrize("nested", [False, True])
def test_sigkill_then_rerun_gives_every_row_once_identical(tmp_path, nested):
    """Also for a nested_p sweep, whose chunks are whole chains over P (one family per
    chunk with --max-batch 1 there)."""
    spec_path = tmp_path / "kill.toml"
    spec_path.write_text(("nested_p = true\n" if nested else "") + KILL_SPEC)
    mb = "1" if nested else "2"
    total = SweepSpec.from_toml(spec_path).n_tasks
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # interrupted run: SIGKILL once a few chunks are written
    path = tmp_path / "kill.sqlite"
    cmd = _cli("run", str(spec_path), "--store", str(path), "--executor", "serial")
    proc = subprocess.Popen(
        [*cmd, "--max-batch", mb, "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and _count(path) < 4:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _count(path)
    assert 0 < partial < total, f"kill landed outside the run ({partial}/{total})"
    rerun = subprocess.run(
        [*cmd, "--max-batch", mb, "--threads", "1", "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    con = sqlite3.connect(path)
    keys = [r[0] for r in con.execute("SELECT key FROM results")]
    con.close()
    assert len(keys) == len(set(keys)) == total
    # an uninterrupted run with the same options; stderr is a pipe (not a tty): the
    # progress bar must not break it
    same = tmp_path / "same.sqlite"
    ok = subprocess.run(
        [*_cli("run", str(spec_path), "--store", str(same), "--executor", "serial")]
        + ["--max-batch", mb, "--threads", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().startswith(f"spinglass-icl sweep: {total}/{total} rows")
    assert "Traceback" not in ok.stderr and f"{total}/{total}" in ok.stderr
    with open_store(same) as a, open_store(path) as b:
        assert _values(a) == _values(b)  # bit-identical


def test_cli_status_export_and_errors(tmp_path, capsys):
    from spinglass_icl.cli import main

    spec_path = tmp_path / "s.toml"
    SweepSpec(**SMALL).to_toml(spec_path)
    store = tmp_path / "s.sqlite"
    assert main(["sweep", "run", str(spec_path), "--store", str(store), "--executor", "serial",
                 "--no-progress"]) == 0  # fmt: skip
    assert main(["sweep", "status", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "8/8 rows" in out and "P:2 x N:2" in out
    assert main(["sweep", "export", "--store", str(store), "--format", "csv",
                 "--out", str(tmp_path / "o.csv")]) == 0  # fmt: skip
    assert (tmp_path / "o.csv").read_text().count("\n") == 9
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\nD = [1.5]\n[fixed]\nN = 2\nP = 3\nlam = 1\n")
    assert main(["sweep", "run", str(bad), "--store", str(tmp_path / "x.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "D must be an integer" in err
    assert not (tmp_path / "x.sqlite").exists()
    assert main(["sweep", "status", "--store", str(tmp_path / "none.sqlite")]) == 2
    assert main(["sweep", "run", str(spec_path), "--store", str(store), "--executor", "nope"]) == 2
    assert "executor must be one of" in capsys.readouterr().err
