"""Fault injection: one test (or a few) per principle of fault handling.

1. Nothing the package writes destroys an input or a store (atomic writes, refused
   targets, no leftovers of a killed store creation, concurrent writers).
2. Resources are checked before they are used (memory estimates refused in under a
   second, an explicit override, worker counts capped, huge grids confirmed).
3. Children die with their parent (SIGKILL of ``sweep run --executor local``).
4. ``reproduce`` verifies before it skips (corrupt data, missing PNG, ``[]`` records).
5. One-line errors on every path (file system, seeds, scheduler, read-only stores, the
   Python API's types, shapes and dtypes; integers converted, never truncated).
6. Packaging (``python -m spinglass_icl``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import spinglass_icl.resources as resources
from spinglass_icl import build_instance, make_instance, solve
from spinglass_icl.cli import main
from spinglass_icl.errors import OutputError, ParameterError, ResourceError, SpinGlassError
from spinglass_icl.hamiltonian import Instance
from spinglass_icl.observables import contrast
from spinglass_icl.safeio import atomic_path, atomic_write_text
from spinglass_icl.sweep import SweepSpec, create_or_open_store, open_store, run_sweep
from sweep_helpers import ENV, TINY_TOML


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def _one_line_error(code: int, err: str, *words: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if "error" in ln]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def store_and_spec(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(TINY_TOML)
    store = tmp_path / "s.sqlite"
    code, err = _cli(
        capsys, "sweep", "run", spec, "--store", store, "--executor", "serial", "--no-progress"
    )
    assert code == 0, err
    return store, spec


# ------------------------------------------------------------ 1. never destroy data
def test_export_onto_a_store_or_spec_is_refused_and_leaves_it_intact(
    store_and_spec, tmp_path, capsys
):
    store, spec = store_and_spec
    copy = tmp_path / "renamed.nc"  # a store under an innocent name: magic bytes decide
    shutil.copy(store, copy)
    plain = tmp_path / "plain.csv"
    plain.write_text("keep\n")
    before = {p: _digest(p) for p in (store, spec, copy, plain)}
    for target, fmt, force, word in [
        (store, "netcdf", True, "input"),
        (store, "csv", True, "input"),
        (copy, "netcdf", True, "SQLite"),
        (spec, "netcdf", True, "spec"),
        (plain, "csv", False, "--force"),
    ]:
        argv = ["sweep", "export", "--store", store, "--out", target, "--format", fmt]
        code, err = _cli(capsys, *argv, *(["--force"] if force else []))
        _one_line_error(code, err, str(target))
        assert word in err
    assert {p: _digest(p) for p in before} == before
    # --force overwrites a plain file, atomically: no temporary file left behind
    code, err = _cli(capsys, "sweep", "export", "--store", store, "--out", plain, "--format",
                     "csv", "--force")  # fmt: skip
    assert code == 0, err
    assert plain.read_text().startswith("key,")
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert hidden == [".spinglass-icl-outputs"]  # the manifest of what the package wrote
    # the Store API refuses too, whatever the file is called
    with open_store(store) as st, pytest.raises(OutputError, match="SQLite"):
        st.to_netcdf(copy)
    assert _digest(copy) == before[copy]


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".spinglass-icl-outputs", "summary.json"]
    # an SQLite file is never replaced, even by an atomic write
    db = tmp_path / "db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(OutputError), atomic_path(db) as tmp:
        tmp.write_text("x")
    assert db.read_bytes().startswith(b"SQLite format 3")


def test_killed_store_creation_leaves_no_new_files(tmp_path):
    """The private name of a store being created holds its creator's pid: a leftover of
    a dead creator is removed by the next open; one of a live creator is kept."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "s.sqlite"
    stale = tmp_path / f".s.sqlite.{dead.pid}.abc123.new"
    stale.write_bytes(b"half a store")
    live = tmp_path / f".s.sqlite.{os.getpid()}.xyz.new"
    live.write_bytes(b"in progress")
    create_or_open_store(path).close()
    assert not stale.exists()
    assert live.exists()
    live.unlink()
    # a real SIGKILL during creation: kill the creator right after it made the temp file
    code = (
        "import os, signal, spinglass_icl.sweep.store as s\n"
        "orig = s._init_store\n"
        "def boom(p):\n"
        "    orig(p); os.kill(os.getpid(), signal.SIGKILL)\n"
        "s._init_store = boom\n"
        f"s.create_or_open_store({str(tmp_path / 'k.sqlite')!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], env=ENV, timeout=60)
    assert list(tmp_path.glob(".k.sqlite.*.new"))  # what the kill left
    create_or_open_store(tmp_path / "k.sqlite").close()
    assert not list(tmp_path.glob(".k.sqlite.*"))


def _concurrent_writer(path: str, seed: int) -> int:  # runs in a spawned process
    spec = SweepSpec(
        grid={"P": [20, 30, 40]}, fixed={"D": 2, "N": 4, "lam": 1.0}, repeats=2, seed=seed,
        test_tasks=20,
    )  # fmt: skip
    st = run_sweep(spec, path, executor="serial", progress=False)
    n = len(st)
    st.close()
    return n


def test_concurrent_writers_on_one_new_store(tmp_path):
    """Three processes create and fill one new store at once (two with the same spec):
    no error, every row once."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    path = str(tmp_path / "c.sqlite")
    with ProcessPoolExecutor(3, mp_context=mp.get_context("spawn")) as pool:
        ns = list(pool.map(_concurrent_writer, [path] * 3, [1, 1, 2]))
    assert all(n >= 6 for n in ns)
    con = sqlite3.connect(path)
    keys = [r[0] for r in con.execute("SELECT key FROM results")]
    con.close()
    assert len(keys) == len(set(keys)) == 12
    assert not list(tmp_path.glob(".c.sqlite.*"))


# ------------------------------------------------------------ 2. resources first
@pytest.fixture
def eight_gb(monkeypatch):
    """Pretend the machine has 8 GB available (results must not depend on the host)."""
    monkeypatch.setattr(resources, "available_memory", lambda: 8 << 30)


OOM_CASES = [
    (["solve", "--D", "300", "--N", "10", "--P", "1000"], "Gram"),
    (["train", "--trials", "100000"], "trials"),
    (["train", "--D", "20", "--P", "100000000"], "trials"),
]


@pytest.mark.parametrize("argv, word", OOM_CASES, ids=[" ".join(c[0]) for c in OOM_CASES])
def test_out_of_memory_sizes_refused_in_under_a_second(argv, word, eight_gb, tmp_path, capsys):
    t0 = time.perf_counter()
    code, err = _cli(capsys, *argv, "--out", tmp_path / "o")
    assert time.perf_counter() - t0 < 1.0
    _one_line_error(code, err, "needs about", "8.0 GB available", word, "--no-memory-check")
    assert not (tmp_path / "o").exists()


def test_oversized_sweeps_refused_in_under_a_second(eight_gb, tmp_path, capsys):
    big_rep = tmp_path / "rep.toml"
    big_rep.write_text(TINY_TOML.replace("repeats = 1", "repeats = 1000000000"))
    d400 = tmp_path / "d400.toml"
    d400.write_text(TINY_TOML.replace("D = 2", "D = 400"))
    store = tmp_path / "x.sqlite"
    for spec, extra, words in [
        (big_rep, [], ("2,000,000,000 rows", "--yes")),  # a grid limit needs confirmation
        (big_rep, ["--yes"], ("needs about",)),  # confirmed: then the memory check
        (d400, [], ("needs about", "matfree = true")),
    ]:
        t0 = time.perf_counter()
        code, err = _cli(capsys, "sweep", "run", spec, "--store", store, *extra)
        assert time.perf_counter() - t0 < 1.0
        _one_line_error(code, err, *words)
    assert not store.exists()  # refused before the store was created


def test_memory_check_can_be_overridden_on_purpose(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(resources, "available_memory", lambda: 1 << 10)  # 1 KB "free"
    argv = ["solve", "--D", "2", "--N", "4", "--P", "20", "--test-tasks", "20"]
    code, err = _cli(capsys, *argv, "--out", tmp_path / "a")
    _one_line_error(code, err, "needs about")
    code, err = _cli(capsys, *argv, "--out", tmp_path / "b", "--no-memory-check")
    assert code == 0, err
    assert (tmp_path / "b" / "summary.json").exists()
    with pytest.raises(ResourceError), resources.memory_check(True):
        solve(make_instance(2, 4, 20, 0.1), "exact")
    with resources.memory_check(False):
        solve(make_instance(2, 4, 20, 0.1), "exact")


def test_worker_count_capped_at_the_cpu_count(tmp_path, capsys):
    with pytest.warns(resources.ResourceCapWarning, match="CPU cores"):
        assert resources.cap_workers(10_000) == resources.cpu_count()
    assert resources.cap_workers(1) == 1
    spec = tmp_path / "s.toml"
    spec.write_text(TINY_TOML)
    code, err = _cli(capsys, "sweep", "run", spec, "--store", tmp_path / "w.sqlite",
                     "--executor", "local", "--workers", "1000", "--no-progress")  # fmt: skip
    assert code == 0, err
    warn = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warn) == 1 and "workers=1000" in warn[0] and "Traceback" not in err


# ------------------------------------------------------------ 3. children die too
KILL_TOML = """
repeats = 4
seed = 3
test_tasks = 2000
[grid]
P = [40, 60, 80, 100, 120, 140, 160, 180, 200, 220]
N = [4, 8, 12]
[fixed]
D = 6
lam = 1.0
"""


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(d.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:  # exited meanwhile
        return ""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _kill_parent_and_watch(cmd: list[str], want_workers: int) -> list[int]:
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        kids: list[int] = []
        while time.time() < deadline and proc.poll() is None:
            kids = [
                k for k in _children(proc.pid)
                if "spawn_main" in _cmdline(k)
            ]  # fmt: skip
            if len(kids) >= want_workers:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before its workers were seen"
        assert len(kids) >= want_workers, kids
        time.sleep(1.0)  # let them start
        all_kids = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 5
        while time.time() < deadline and any(_alive(k) for k in all_kids):
            time.sleep(0.05)
        return [k for k in all_kids if _alive(k)]
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigkill_of_the_parent_kills_local_workers(tmp_path):
    spec = tmp_path / "k.toml"
    spec.write_text(KILL_TOML)
    cmd = [sys.executable, "-m", "spinglass_icl", "sweep", "run", str(spec),
           "--store", str(tmp_path / "k.sqlite"), "--executor", "local", "--workers", "2",
           "--max-batch", "1", "--no-progress"]  # fmt: skip
    left = _kill_parent_and_watch(cmd, want_workers=min(2, resources.cpu_count()))
    assert left == [], f"workers still running 5 s after the parent died: {left}"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_killed_worker_is_a_one_line_error_and_the_store_resumes(tmp_path):
    """SIGKILL of one local worker (as the out-of-memory killer would): the parent stops
    with one line, exit 2, and a rerun completes the store."""
    spec = tmp_path / "k.toml"
    spec.write_text(KILL_TOML)
    store = tmp_path / "k.sqlite"
    cmd = [sys.executable, "-m", "spinglass_icl", "sweep", "run", str(spec), "--store",
           str(store), "--executor", "local", "--workers", "2", "--max-batch", "1",
           "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not store.exists():
            time.sleep(0.05)
        kids = []
        while time.time() < deadline and proc.poll() is None and not kids:
            kids = [k for k in _children(proc.pid) if "spawn_main" in
                    _cmdline(k)]  # fmt: skip
            time.sleep(0.05)
        assert kids, "no worker seen"
        time.sleep(1.0)
        os.kill(kids[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode == 0:
        pytest.skip("the sweep finished before the kill landed")
    # the real cause, read from the dead process: its pid and the signal
    cause = f"worker process {kids[0]} was killed by SIGKILL"
    _one_line_error(proc.returncode, err, cause, "rerun")
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with open_store(store) as st:
        assert SweepSpec.from_toml(spec).n_tasks == len(st)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigkill_of_reproduce_kills_the_fig4a_workers(tmp_path):
    cmd = [sys.executable, "-m", "spinglass_icl", "reproduce", "fig4a", "--preset", "quick",
           "--executor", "local", "--workers", "2", "--out", str(tmp_path),
           "--no-progress"]  # fmt: skip
    left = _kill_parent_and_watch(cmd, want_workers=min(2, resources.cpu_count()))
    assert left == [], f"workers still running 5 s after the parent died: {left}"


# ------------------------------------------------------------ 4. verify, then skip
def test_reproduce_redoes_a_corrupt_figure_and_one_never_blocks_another(
    tmp_path, monkeypatch, capsys
):
    import spinglass_icl.experiments.runner as runner
    from figure_checks import fake_figure

    mod, calls = fake_figure()
    real = runner.figure_module
    monkeypatch.setattr(runner, "figure_module", lambda n: mod if n == "fig1" else real(n))
    argv = ["reproduce", "fig1", "--preset", "tiny", "--out", tmp_path, "--no-progress"]
    fig = tmp_path / "fig1"

    def rerun():
        code = main([str(a) for a in argv])
        out = capsys.readouterr().out
        assert code == 0, out
        return out

    rerun()
    assert len(calls) == 1
    assert "skipped" in rerun() and len(calls) == 1  # intact: skipped
    corruptions = [
        ("data.nc", lambda: (fig / "data.nc").write_bytes(b"garbage"), "data.nc does not open"),
        ("figure.png", lambda: (fig / "figure.png").unlink(), "figure.png is missing"),
        ("figure.pdf", lambda: (fig / "figure.pdf").write_text("x"), "figure.pdf is not a PDF"),
        ("[]", lambda: (fig / "result.json").write_text("[]"), "holds a list"),
        ("{}", lambda: (fig / "result.json").write_text("{}"), "lacks"),
        ("truncated", lambda: (fig / "result.json").write_text('{"fig'), "does not parse"),
    ]
    for i, (what, corrupt, reason) in enumerate(corruptions, start=2):
        corrupt()
        out = rerun()
        assert len(calls) == i, what
        assert "redone" in out and reason in out, out
        assert reason in (tmp_path / "report.md").read_text()  # the report says so too
        assert "skipped" in rerun() and len(calls) == i  # repaired
    # a broken record of another figure neither breaks the report nor this figure
    (tmp_path / "fig2").mkdir()
    (tmp_path / "fig2" / "result.json").write_text("[]")
    assert "skipped" in rerun()
    assert "fig2" not in (tmp_path / "results.json").read_text()


# ------------------------------------------------------------ 5. one-line errors
def _ro_dir(tmp_path: Path) -> Path | None:
    """A read-only folder holding a store copy: a read-only tmpfs as root, chmod else."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        return ro
    r = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(ro)], capture_output=True)
    return ro if r.returncode == 0 else None


def test_file_system_errors_are_one_line(store_and_spec, tmp_path, capsys):
    store, spec = store_and_spec
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    ro = _ro_dir(tmp_path)
    if ro is None:
        pytest.skip("cannot make a read-only folder here")
    shutil.copy(store, ro / "s.sqlite")
    if os.geteuid() == 0:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    else:
        os.chmod(ro / "s.sqlite", 0o444)
        os.chmod(ro, 0o555)
    solve_a = ["solve", "--D", "2", "--N", "4", "--P", "20", "--test-tasks", "20"]
    train_a = ["train", "--D", "2", "--N", "4", "--P", "20", "--epochs", "2", "--quiet"]
    repro_a = ["reproduce", "fig1", "--preset", "tiny", "--no-progress"]
    try:
        for argv, path in [
            ([*solve_a, "--out", plain], plain),
            ([*solve_a, "--out", plain / "x"], plain),
            ([*solve_a, "--out", ro / "x"], ro),
            ([*train_a, "--out", plain], plain),
            ([*train_a, "--out", ro / "x"], ro),
            ([*repro_a, "--out", plain / "x"], plain),
            ([*repro_a, "--out", ro / "x"], ro),
            (["sweep", "export", "--store", store, "--out", ro / "x.nc"], ro),
            (["sweep", "export", "--store", store, "--out", plain / "x.nc"], plain),
            (["sweep", "run", spec, "--store", ro / "s.sqlite", "--executor", "serial"], ro),
            (["sweep", "run", spec, "--store", ro / "new.sqlite", "--executor", "serial"], ro),
            (["sweep", "run", spec, "--store", plain / "s.sqlite"], plain),
        ]:
            code, err = _cli(capsys, *argv)
            _one_line_error(code, err, str(path))
        # reading a read-only store works
        code, err = _cli(capsys, "sweep", "status", "--store", ro / "s.sqlite")
        assert code == 0, err
        code, err = _cli(capsys, "sweep", "export", "--store", ro / "s.sqlite", "--out",
                         tmp_path / "ok.csv", "--format", "csv")  # fmt: skip
        assert code == 0, err
    finally:
        if os.geteuid() == 0:
            import gc

            gc.collect()  # no connection may keep the mount busy
            if subprocess.run(["umount", str(ro)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(ro)], check=False)
        else:
            os.chmod(ro, 0o755)


@pytest.mark.parametrize("cmd", ["solve", "train", "reproduce"])
@pytest.mark.parametrize("seed", [2**64, 10**30, -1])
def test_seeds_out_of_range_are_one_line(cmd, seed, tmp_path, capsys):
    head = {"solve": ["solve", "--D", "2"], "train": ["train", "--D", "2"],
            "reproduce": ["reproduce", "fig1", "--preset", "tiny"]}[cmd]  # fmt: skip
    code, err = _cli(capsys, *head, "--seed", seed, "--out", tmp_path / "o")
    _one_line_error(code, err, "seed must be", str(seed))
    assert not (tmp_path / "o").exists()


def test_unreachable_scheduler_is_one_line_within_seconds(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(TINY_TOML)
    t0 = time.perf_counter()
    code, err = _cli(capsys, "sweep", "run", spec, "--store", tmp_path / "d.sqlite",
                     "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9",
                     "--no-progress")  # fmt: skip
    assert time.perf_counter() - t0 < 20
    _one_line_error(code, err, "scheduler", "tcp://127.0.0.1:9")


def test_value_errors_are_rejected_before_any_work(tmp_path, capsys):
    t0 = time.perf_counter()
    code, err = _cli(capsys, "solve", "--test-tasks", "0", "--out", tmp_path / "o")
    assert time.perf_counter() - t0 < 1.0  # before the (default-size) solve
    _one_line_error(code, err, "test_tasks")
    assert not (tmp_path / "o").exists()


def test_huge_lam_never_reports_a_nan_contrast(tmp_path, capsys):
    import json

    code = main(["solve", "--D", "3", "--N", "10", "--P", "50", "--lam", "1e300",
                 "--test-tasks", "50", "--out", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "nan" not in out.lower()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["contrast"] is None
    assert "not finite" in out


_CFG = make_instance(2, 4, 20, 0.1).config
API_MISUSES = [
    ("build_instance(None)", lambda: build_instance(None, 0.1), "prompts"),
    ("make_instance(seed=2**64)", lambda: make_instance(2, 4, 20, 0.1, seed=2**64), "seed"),
    ("make_instance(dtype=int64)", lambda: make_instance(2, 4, 20, 0.1, dtype=torch.int64),
     "dtype"),
    ("Instance(u=None)", lambda: Instance(u=None, q=torch.zeros(20, 3), y=torch.zeros(20),
                                          lam=0.1, config=_CFG), "u"),
    ("Instance(config=None)", lambda: Instance(u=torch.zeros(20, 3), q=torch.zeros(20, 3),
                                               y=torch.zeros(20), lam=0.1, config=None),
     "config"),
    ("Instance(y wrong shape)", lambda: Instance(u=torch.zeros(20, 3), q=torch.zeros(20, 3),
                                                 y=torch.zeros(19), lam=0.1, config=_CFG), "y"),
    ("Instance(complex u)", lambda: Instance(u=torch.zeros(20, 3, dtype=torch.complex128),
                                             q=torch.zeros(20, 3), y=torch.zeros(20), lam=0.1,
                                             config=_CFG), "u"),
    ("contrast(None)", lambda: contrast(None), "W"),
    ("contrast(complex)", lambda: contrast(torch.ones(3, 3, dtype=torch.complex128)), "W"),
    ("contrast(5 spins)", lambda: contrast(torch.ones(5)), "square"),
    ("solve(None)", lambda: solve(None), "instance"),
]  # fmt: skip


@pytest.mark.parametrize("call, name", [(c, n) for _, c, n in API_MISUSES],
                         ids=[i for i, _, _ in API_MISUSES])  # fmt: skip
def test_api_misuse_raises_the_packages_own_errors(call, name):
    with pytest.raises(SpinGlassError) as exc:
        call()
    assert isinstance(exc.value, ParameterError)
    assert name in str(exc.value) and "\n" not in str(exc.value)


def test_integer_input_is_converted_never_truncated():
    """An int64 W or instance gives the numbers of the same values in float64."""
    W = torch.eye(4, dtype=torch.float64) * 10 + torch.arange(16.0).reshape(4, 4) % 3
    assert float(contrast(W.long())) == float(contrast(W))
    inst = make_instance(3, 10, 50, 0.1)
    u, q, y = ((t * 4).round() for t in (inst.u, inst.q, inst.y))
    a = Instance(u=u.long(), q=q.long(), y=y.long(), lam=0.1, config=inst.config)
    b = Instance(u=u, q=q, y=y, lam=0.1, config=inst.config)
    assert a.u.dtype == a.q.dtype == a.y.dtype == torch.float64
    assert torch.equal(solve(a, "exact").m, solve(b, "exact").m)


def test_serial_sweep_bit_identical_whatever_the_torch_thread_count(tmp_path):
    spec = SweepSpec(grid={"P": [40, 80]}, fixed={"D": 4, "N": 8, "lam": 1.0}, repeats=2,
                     test_tasks=200)  # fmt: skip
    n = torch.get_num_threads()
    values = []
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            with run_sweep(spec, tmp_path / f"t{len(values)}.sqlite", executor="serial",
                           progress=False) as st:  # fmt: skip
                values.append([(r["contrast"], r["test_error"]) for r in st.rows()])
            assert torch.get_num_threads() == threads  # the caller's setting is restored
    finally:
        torch.set_num_threads(n)
    assert values[0] == values[1] == values[2]


# ------------------------------------------------------------ 6. packaging
def test_python_dash_m_spinglass_icl():
    r = subprocess.run(
        [sys.executable, "-m", "spinglass_icl", "--version"], env=ENV, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("spinglass-icl ")
