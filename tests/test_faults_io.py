"""Fault injection, round two: the user's own files, special input files, a full or
read-only disk, overflowing and typed numbers, the API's silent NaN, memory limits.

Each class of fault has a test that tries it on every path that meets it:

1. Never overwrite what the package did not write (``solve``, ``train``,
   ``reproduce``, ``sweep export``; ``--force``; the manifest of each output folder).
2. Inputs are regular files of sane size (FIFO, device, oversize spec; FIFO store).
3. The API never returns a silent NaN (non-finite W, W = 0, inconsistent shapes, sizes
   past memory).
4. Say what happened: a full disk (a small tmpfs, root only: skipped otherwise) and a
   read-only file system name the path and the cause; overflow names the parameter;
   values are quoted as typed.
5. The memory check respects ``ulimit -v``; status and export leave no ``-wal``/``-shm``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import spinglass_icl as sg
from spinglass_icl.cli import main
from spinglass_icl.errors import (
    ConfigError,
    NonFiniteWarning,
    OutputError,
    ParameterError,
    ResourceError,
)
from spinglass_icl.safeio import MANIFEST, atomic_write_text, check_input_file, overwrite
from spinglass_icl.sweep import SweepSpec, open_store
from sweep_helpers import ENV, TINY_TOML

SOLVE = ["solve", "--D", "2", "--N", "4", "--P", "30", "--test-tasks", "100"]


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _one_line(code: int, err: str, *words: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if "error" in ln]
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------ 1. the user's own files are kept
def test_solve_refuses_the_users_files_replaces_its_own_and_force_overrides(tmp_path, capsys):
    out = tmp_path / "dir"
    out.mkdir()
    mine = out / "summary.json"
    mine.write_text('{"my": "notes"}\n')
    code, err = _cli(capsys, *SOLVE, "--out", out)
    _one_line(code, err, str(mine), "not written by spinglass-icl", "--force")
    assert mine.read_text() == '{"my": "notes"}\n'
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]  # refused before work
    # a folder of its own earlier outputs is replaced without --force
    own = tmp_path / "own"
    for _ in range(2):
        code, err = _cli(capsys, *SOLVE, "--out", own)
        assert code == 0, err
    assert set((own / MANIFEST).read_text().split()) >= {
        "instance.npz",
        "solution.npz",
        "summary.json",
    }
    # --force replaces the user's file on purpose
    code, err = _cli(capsys, *SOLVE, "--out", out, "--force")
    assert code == 0, err
    assert '"converged"' in mine.read_text()


def test_reproduce_refuses_the_users_report_before_any_work(tmp_path, capsys):
    report = tmp_path / "report.md"
    report.write_text("my report\n")
    t0 = time.perf_counter()
    code, err = _cli(capsys, "reproduce", "hessian", "--preset", "quick", "--out", tmp_path,
                     "--no-progress")  # fmt: skip
    _one_line(code, err, str(report), "--force")
    assert time.perf_counter() - t0 < 10  # before computing the figure
    assert report.read_text() == "my report\n"
    assert not (tmp_path / "hessian").exists()


def test_train_refuses_the_users_history(tmp_path, capsys):
    hist = tmp_path / "history.csv"
    hist.write_text("mine\n")
    code, err = _cli(capsys, "train", "--D", "2", "--N", "4", "--P", "10", "--epochs", "2",
                     "--quiet", "--out", tmp_path)  # fmt: skip
    _one_line(code, err, str(hist), "--force")
    assert hist.read_text() == "mine\n"


def test_export_replaces_its_own_file_but_not_the_users(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(TINY_TOML)
    store = tmp_path / "s.sqlite"
    code, err = _cli(capsys, "sweep", "run", spec, "--store", store, "--executor", "serial",
                     "--no-progress")  # fmt: skip
    assert code == 0, err
    out = tmp_path / "o.csv"
    for _ in range(2):  # its own export, replaced on a rerun without --force
        code, err = _cli(capsys, "sweep", "export", "--store", store, "--out", out,
                         "--format", "csv")  # fmt: skip
        assert code == 0, err
    user = tmp_path / "u.csv"
    user.write_text("mine\n")
    code, err = _cli(capsys, "sweep", "export", "--store", store, "--out", user, "--format",
                     "csv")  # fmt: skip
    _one_line(code, err, str(user), "--force")
    assert user.read_text() == "mine\n"


def test_api_writes_refuse_a_users_file_unless_overwrite(tmp_path):
    f = tmp_path / "spec.txt"
    f.write_text("mine\n")
    with pytest.raises(OutputError, match="not written by spinglass-icl"):
        atomic_write_text(f, "ours\n")
    assert f.read_text() == "mine\n"
    with overwrite(True):
        atomic_write_text(f, "ours\n")
    assert f.read_text() == "ours\n"
    atomic_write_text(f, "again\n")  # now listed: its own file
    assert f.read_text() == "again\n"


# ------------------------------------------------------ 2. special input files
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_spec_or_store_is_refused_at_once_naming_it(tmp_path, capsys):
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    code, err = _cli(capsys, "sweep", "run", fifo, "--store", tmp_path / "s.sqlite")
    _one_line(code, err, str(fifo), "named pipe")
    fifo_store = tmp_path / "store.sqlite"
    os.mkfifo(fifo_store)
    spec = tmp_path / "ok.toml"
    spec.write_text(TINY_TOML)
    for argv in (
        ["sweep", "run", spec, "--store", fifo_store],
        ["sweep", "status", "--store", fifo_store],
        ["sweep", "export", "--store", fifo_store, "--out", tmp_path / "o.nc"],
    ):
        code, err = _cli(capsys, *argv)
        _one_line(code, err, str(fifo_store), "named pipe")
    assert time.perf_counter() - t0 < 20  # nothing blocked on the pipes


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_or_an_oversize_spec_is_refused_before_reading(tmp_path, capsys):
    code, err = _cli(capsys, "sweep", "run", "/dev/zero", "--store", tmp_path / "s.sqlite")
    _one_line(code, err, "/dev/zero", "character device")
    big = tmp_path / "big.toml"
    with open(big, "wb") as fh:
        fh.truncate(64 << 20)  # sparse: 64 MB that cost nothing
    code, err = _cli(capsys, "sweep", "run", big, "--store", tmp_path / "s.sqlite")
    _one_line(code, err, str(big), "bytes")
    with pytest.raises(ConfigError, match="a folder"):
        check_input_file(tmp_path, "sweep spec")
    assert not (tmp_path / "s.sqlite").exists()


# ------------------------------------------------------- 3. no silent NaN in the API
def test_non_finite_weights_raise_and_a_partly_bad_batch_warns():
    W = torch.eye(3)
    for bad in (float("nan"), float("inf"), -float("inf")):
        Wb = W.clone()
        Wb[0, 1] = bad
        with pytest.raises(ParameterError, match="W must be finite"):
            sg.test_error(Wb, 5, n_tasks=100)
        with pytest.raises(ParameterError, match="W must be finite"):
            sg.contrast(Wb)
    batch = torch.stack([W, W.clone().fill_(float("nan"))])
    with pytest.warns(NonFiniteWarning, match="1 of 2"):
        C = sg.contrast(batch)
    assert C[0] == 1 and torch.isnan(C[1])
    with pytest.warns(NonFiniteWarning):
        e = sg.test_error(batch, 5, n_tasks=100)
    assert torch.isfinite(e.absolute[0]) and torch.isnan(e.absolute[1])


def test_contrast_of_a_zero_w_is_an_error_not_nan():
    for kind in ("w11", "full", "cosine"):
        with pytest.raises(ParameterError, match="0/0"):
            sg.contrast(torch.zeros(4, 4), kind)
    with pytest.warns(NonFiniteWarning, match="1 of 2 instances of W11 are zero"):
        C = sg.contrast(torch.stack([torch.eye(4), torch.zeros(4, 4)]))
    assert C[0] == 1 and torch.isnan(C[1])


def test_prompts_with_shapes_inconsistent_with_their_config_are_refused():
    import dataclasses

    p = sg.sample_prompts(3, 5, 4, seed=0)
    with pytest.raises(ParameterError, match=r"X must have shape .* \(4, 4, 6\), got \(4, 4, 4\)"):
        dataclasses.replace(p, X=p.X[..., 2:])  # 3 context columns while N = 5
    with pytest.raises(ParameterError, match="w must have shape"):
        dataclasses.replace(p, w=p.w[:, :2])
    with pytest.raises(ParameterError, match="y must have shape"):
        dataclasses.replace(p, y=p.y[:3])
    assert sg.build_instance(p, 0.1).config.N == 5  # the consistent one still works


def test_sizes_past_memory_are_refused_before_allocating():
    t0 = time.perf_counter()
    with pytest.raises(ResourceError, match="sampling prompts D=100000"):
        sg.sample_prompts(D=10**5, N=10**5, P=10**5)
    with pytest.raises(ResourceError, match=r"batch_shape=\(1000000000,\)"):
        sg.make_instance(5, 5, 5, 0.1, batch_shape=(10**9,))
    assert time.perf_counter() - t0 < 2


# ------------------------------------------------------------ 4. say what happened
@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs (needs root and mount; skipped otherwise), filled up to ``room`` by
    the test with :func:`_fill`; unmounted at the end."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()[:80]})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt: Path, room: int = 0) -> None:
    """Fill the tmpfs ``mnt`` but for about ``room`` bytes."""
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    with open(mnt / "filler", "wb") as fh:
        with contextlib.suppress(OSError):
            fh.write(b"\0" * max(0, free - room))
            fh.flush()


def test_a_full_disk_is_named_on_every_write_path(tiny_disk, tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(TINY_TOML)
    store = tmp_path / "s.sqlite"
    assert _cli(capsys, "sweep", "run", spec, "--store", store, "--executor", "serial",
                "--no-progress")[0] == 0  # fmt: skip
    _fill(tiny_disk)
    cases = [
        (["sweep", "export", "--store", store, "--out", tiny_disk / "o.nc"], "o.nc"),
        (
            ["sweep", "export", "--store", store, "--out", tiny_disk / "o.csv", "--format", "csv"],
            "o.csv",
        ),  # fmt: skip
        ([*SOLVE, "--out", tiny_disk / "solve"], "solve"),
        (
            [
                "sweep",
                "run",
                spec,
                "--store",
                tiny_disk / "t.sqlite",
                "--executor",
                "serial",
                "--no-progress",
            ],
            "t.sqlite",
        ),  # fmt: skip
        (
            [
                "train",
                "--D",
                "2",
                "--N",
                "4",
                "--P",
                "10",
                "--epochs",
                "2",
                "--quiet",
                "--out",
                tiny_disk / "train",
            ],
            "train",
        ),  # fmt: skip
    ]
    for argv, name in cases:
        code, err = _cli(capsys, *argv)
        _one_line(code, err, name, "no space left on device")
    assert not [p for p in tiny_disk.iterdir() if p.name.startswith(".") and "tmp" in p.name]


def test_a_store_that_fills_the_disk_mid_sweep_keeps_its_rows(tiny_disk, capsys):
    spec = tiny_disk / "s.toml"
    spec.write_text(TINY_TOML.replace("repeats = 1", "repeats = 400").replace(
        "seed = 1", "seed = 1\nstore_arrays = true"))  # fmt: skip
    store = tiny_disk / "s.sqlite"
    _fill(tiny_disk, room=200 << 10)
    code, err = _cli(capsys, "sweep", "run", spec, "--store", store, "--executor", "serial",
                     "--max-batch", "10", "--no-progress")  # fmt: skip
    _one_line(code, err, "s.sqlite", "no space left on device", "rerun to resume")
    (tiny_disk / "filler").unlink()  # room again: the rows written are there, and resume
    with open_store(store, readonly=True) as st:
        kept = len(st)
    assert kept > 0
    code, err = _cli(capsys, "sweep", "run", spec, "--store", store, "--executor", "serial",
                     "--no-progress")  # fmt: skip
    assert code == 0, err
    with open_store(store, readonly=True) as st:
        assert len(st) == SweepSpec.from_toml(spec).n_tasks


def test_a_read_only_file_system_is_named(tiny_disk, tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(TINY_TOML)
    assert _cli(capsys, "sweep", "run", spec, "--store", tiny_disk / "s.sqlite",
                "--executor", "serial", "--no-progress")[0] == 0  # fmt: skip
    (tiny_disk / "solve").mkdir()
    r = subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot remount read-only here")
    for argv, name in [
        ([*SOLVE, "--out", tiny_disk / "solve"], "solve"),
        (["sweep", "run", spec, "--store", tiny_disk / "s.sqlite", "--no-progress"], "s.sqlite"),
    ]:
        code, err = _cli(capsys, *argv)
        _one_line(code, err, name, "read-only file system")
    # reading still works, and leaves nothing behind (it cannot)
    code, err = _cli(capsys, "sweep", "status", "--store", tiny_disk / "s.sqlite")
    assert code == 0, err


def test_overflow_names_the_parameter_and_values_are_quoted_as_typed(capsys):
    code, err = _cli(capsys, "train", "--D", "2", "--N", "4", "--P", "10", "--noise",
                     "1e300", "--quiet")  # fmt: skip
    _one_line(code, err, "noise = 1e+300 is too large", "overflows")  # its exact value
    code, err = _cli(capsys, "theory", "--alpha", "1", "--tau", "1", "--noise", "1e200")
    _one_line(code, err, "noise = 1e200 is too large")
    code, err = _cli(capsys, *SOLVE, "--damping", "1.0000001")
    _one_line(code, err, "damping", "got 1.0000001")
    code, err = _cli(capsys, *SOLVE, "--beta", "0.0e0")
    _one_line(code, err, "beta", "got 0.0e0")
    from spinglass_icl.theory import theory_params

    with pytest.raises(ParameterError, match=r"noise = 1e\+200 is too large"):
        theory_params(10, 10, 100, 0.1, noise=1e200)
    with pytest.raises(ParameterError, match=r"noise = 1e\+300 is too large"):
        sg.test_error(torch.eye(3), 5, noise=1e300, exact=True)


# ------------------------------------------------ 5. ulimit -v; no -wal/-shm left
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS semantics of Linux")
def test_the_memory_check_respects_ulimit_v():
    code = (
        "import resource, spinglass_icl.resources as r\n"
        "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, resource.RLIM_INFINITY))\n"
        "print(r.available_memory())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) <= 6 << 30
    # a solve too big for the limit (4.2 GB > 3 GB), not for the machine, is refused
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY))\n"
        "from spinglass_icl.cli import main\n"
        "sys.exit(main(['solve', '--D', '100', '--P', '100', '--out', sys.argv[1]]))\n"
    )
    with _tmpdir() as d:
        r = subprocess.run([sys.executable, "-c", script, d], env=ENV, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "needs about" in r.stderr and "available" in r.stderr


@contextlib.contextmanager
def _tmpdir():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        yield d


def test_status_and_export_leave_no_wal_or_shm(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(TINY_TOML)
    store = tmp_path / "s.sqlite"
    assert _cli(capsys, "sweep", "run", spec, "--store", store, "--executor", "serial",
                "--no-progress")[0] == 0  # fmt: skip
    for argv in (
        ["sweep", "status", "--store", store],
        ["sweep", "status", "--store", store, "--json"],
        ["sweep", "export", "--store", store, "--out", tmp_path / "o.nc"],
        ["sweep", "export", "--store", store, "--out", tmp_path / "o.csv", "--format", "csv"],
    ):
        code, err = _cli(capsys, *argv)
        assert code == 0, err
        left = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(("-wal", "-shm")))
        assert left == [], (argv, left)


def test_a_status_read_while_a_writer_is_open_does_not_disturb_it(tmp_path):
    """The read connection of status never deletes the -wal of a writer still open."""
    spec = SweepSpec.from_toml(_write(tmp_path / "s.toml", TINY_TOML))
    store = tmp_path / "s.sqlite"
    st = sg.sweep.run_sweep(spec, store, executor="serial", progress=False)
    try:
        with open_store(store, readonly=True) as ro:
            assert len(ro) == 2
        st.write([])  # the writer still works
        assert len(st) == 2
    finally:
        st.close()
    with sqlite3.connect(store) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (28, "no space left on device"),  # ENOSPC
        (122, "disk quota exceeded"),  # EDQUOT (Linux)
        (30, "read-only file system"),  # EROFS
    ],
)
def test_each_disk_errno_is_named_with_the_path(tmp_path, code, words):
    """Whatever library raises it (here a plain OSError from the writer), a write that
    fails with ENOSPC, EDQUOT or EROFS is an OutputError naming the path and the cause;
    nothing is left behind."""
    import errno

    from spinglass_icl.safeio import atomic_path

    code = {28: errno.ENOSPC, 122: errno.EDQUOT, 30: errno.EROFS}[code]
    target = tmp_path / "out.nc"
    with pytest.raises(OutputError, match=f"cannot write '.*out.nc': {words}"):
        with atomic_path(target):
            raise OSError(code, os.strerror(code))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
