"""Hostile-user cases against one source tree: how many end cleanly.

    python benchmarks/hostile_cases.py SRC [--only CLASS] [--dask]

Runs each case with ``PYTHONPATH=SRC`` in a fresh subprocess and a fresh folder, and
prints one row per case: its class, whether it was handled, and what happened. A case
is handled when the run ends within its time limit with the expected outcome: one line
``spinglass-icl: error: ...`` naming what the case names (path, parameter, cause), exit
2, no traceback, no ``internal error``, nothing of the user's destroyed -- or, for the
cases that should just work, exit 0 with the expected result. The full-disk and
read-only cases mount a small tmpfs (root only; skipped otherwise); ``--dask`` adds the
cases that kill a real Dask worker or scheduler mid-run (about a minute each).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

TOML = """repeats = {repeats}
seed = 1
test_tasks = 50
[grid]
P = [20, 30]
[fixed]
D = 2
N = 4
lam = 1.0
"""
SOLVE = ["solve", "--D", "2", "--N", "4", "--P", "30", "--test-tasks", "100"]


class Case:
    def __init__(self, cls: str, name: str, fn: Callable, needs_root: bool = False):
        self.cls, self.name, self.fn, self.needs_root = cls, name, fn, needs_root


def run_cli(src, argv, cwd, timeout=120, pre="", env_extra=None):
    env = {**os.environ, "PYTHONPATH": src, **(env_extra or {})}
    env.pop("SPINGLASS_ICL_TRACEBACK", None)
    cmd = [sys.executable, "-m", "spinglass_icl", *map(str, argv)]
    if pre:
        cmd = ["bash", "-c", pre + ' && exec "$@"', "_", *cmd]
    try:
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    return r


def run_py(src, code, cwd, timeout=120):
    env = {**os.environ, "PYTHONPATH": src}
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return None


def one_line(r, *words) -> tuple[bool, str]:
    """Whether ``r`` is a clean one-line error holding ``words``, and what it said."""
    if r is None:
        return False, "hung (killed at the time limit)"
    err = r.stderr.strip()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit {r.returncode}, no message"
    ok = (
        r.returncode == 2
        and len([ln for ln in lines if "error" in ln]) == 1
        and "Traceback" not in err
        and "internal error" not in err
        and all(w.lower() in last.lower() for w in words)
    )
    return ok, last[:150]


# ------------------------------------------------------------------ the cases
def user_solve(src, d):
    out = d / "out"
    out.mkdir()
    (out / "summary.json").write_text("mine\n")
    r = run_cli(src, [*SOLVE, "--out", out], d)
    ok, msg = one_line(r, "summary.json", "--force")
    return ok and (out / "summary.json").read_text() == "mine\n", msg


def user_reproduce(src, d):
    (d / "report.md").write_text("mine\n")
    r = run_cli(src, ["reproduce", "hessian", "--preset", "quick", "--out", d,
                      "--no-progress"], d, timeout=300)  # fmt: skip
    kept = (d / "report.md").read_text() == "mine\n"
    if r is not None and r.returncode == 0:
        return False, "exit 0" + ("" if kept else ": the user's report.md was replaced")
    ok, msg = one_line(r, "report.md")
    return ok and kept, msg


def user_train(src, d):
    (d / "history.csv").write_text("mine\n")
    r = run_cli(src, ["train", "--D", "2", "--N", "4", "--P", "10", "--epochs", "2",
                      "--quiet", "--out", d], d)  # fmt: skip
    kept = (d / "history.csv").read_text() == "mine\n"
    if r is not None and r.returncode == 0:
        return False, "exit 0" + ("" if kept else ": the user's history.csv was replaced")
    ok, msg = one_line(r, "history.csv")
    return ok and kept, msg


def solve_force(src, d):
    out = d / "out"
    out.mkdir()
    (out / "summary.json").write_text("mine\n")
    r = run_cli(src, [*SOLVE, "--out", out, "--force"], d)
    if r is None or r.returncode != 0:
        return False, (r.stderr.strip().splitlines() or ["?"])[-1][:150] if r else "hung"
    return '"converged"' in (out / "summary.json").read_text(), "exit 0, replaced on --force"


def _fifo(d, name):
    p = d / name
    os.mkfifo(p)
    return p


def spec_fifo(src, d):
    return one_line(run_cli(src, ["sweep", "run", _fifo(d, "s.toml"), "--store",
                                  d / "s.sqlite"], d, timeout=90), "s.toml", "pipe")  # fmt: skip


def spec_dev_zero(src, d):
    # bounded by ulimit -v 4 GB so that a reader of an endless file stops
    r = run_cli(src, ["sweep", "run", "/dev/zero", "--store", d / "s.sqlite"], d, timeout=60,
                pre="ulimit -v 4000000")  # fmt: skip
    return one_line(r, "/dev/zero", "device")


def spec_oversize(src, d):
    big = d / "big.toml"
    with open(big, "wb") as fh:
        fh.truncate(512 << 20)
    r = run_cli(src, ["sweep", "run", big, "--store", d / "s.sqlite"], d, timeout=60,
                pre="ulimit -v 4000000")  # fmt: skip
    return one_line(r, "big.toml", "bytes")


def store_fifo(src, d):
    r = run_cli(src, ["sweep", "status", "--store", _fifo(d, "s.sqlite")], d, timeout=90)
    return one_line(r, "s.sqlite", "pipe")


API = """
import torch, spinglass_icl as sg
from spinglass_icl.errors import SpinGlassError
try:
    out = {expr}
except SpinGlassError as e:
    print("ERR", type(e).__name__, " ".join(str(e).split())[:120]); raise SystemExit(0)
print("RESULT", str(out)[:100])
"""


def api_case(expr, *words):
    def fn(src, d):
        r = run_py(src, API.format(expr=expr), d, timeout=60)
        if r is None:
            return False, "hung"
        line = (r.stdout.strip().splitlines() or r.stderr.strip().splitlines() or ["?"])[-1]
        return line.startswith("ERR") and all(w in line for w in words), line[:150]

    return fn


def _filled_tmpfs(d, room_kb=0):
    mnt = d / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode:  # fmt: skip
        raise PermissionError("cannot mount a tmpfs")
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    with open(mnt / "filler", "wb") as fh, contextlib.suppress(OSError):
        fh.write(b"\0" * max(0, free - room_kb * 1024))
    return mnt


def _umount(mnt):
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _store(src, d):
    (d / "s.toml").write_text(TOML.format(repeats=1))
    run_cli(src, ["sweep", "run", d / "s.toml", "--store", d / "s.sqlite", "--executor",
                  "serial", "--no-progress"], d)  # fmt: skip
    return d / "s.sqlite"


def full_disk(argv_fn, name, room_kb=0, timeout=300):
    def fn(src, d):
        store = _store(src, d)
        mnt = _filled_tmpfs(d, room_kb)
        try:
            r = run_cli(src, argv_fn(mnt, store, d), d, timeout=timeout)
            return one_line(r, name, "no space left")
        finally:
            _umount(mnt)

    return fn


def read_only(argv_fn, name):
    def fn(src, d):
        store = _store(src, d)
        mnt = _filled_tmpfs(d, room_kb=900)
        try:
            (mnt / "out").mkdir()
            run_cli(src, ["sweep", "run", d / "s.toml", "--store", mnt / "s.sqlite",
                          "--executor", "serial", "--no-progress"], d)  # fmt: skip
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            return one_line(run_cli(src, argv_fn(mnt, store, d), d), name, "read-only")
        finally:
            _umount(mnt)

    return fn


def cli_error(argv, *words):
    return lambda src, d: one_line(run_cli(src, argv, d), *words)


def no_guard_script(src, d):
    (d / "s.toml").write_text(TOML.format(repeats=2))
    (d / "go.py").write_text(
        textwrap.dedent("""
        from spinglass_icl.sweep import SweepSpec, run_sweep
        spec = SweepSpec.from_toml("s.toml")
        store = run_sweep(spec, "s.sqlite", executor="local", workers=2, progress=False)
        print("rows", len(store))
    """)
    )
    env = {**os.environ, "PYTHONPATH": src}
    try:
        r = subprocess.run([sys.executable, "go.py"], cwd=d, env=env, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, "hung"
    last = (r.stderr.strip().splitlines() or [""])[-1]
    if r.returncode == 0 and "rows 4" in r.stdout:
        return True, "exit 0, 4 rows; " + ("warns" if "ScriptGuardWarning" in r.stderr else "")
    return ("__main__" in r.stderr and "memory" not in last), last[:150]


def rlimit_as(src, d):
    r = run_cli(src, ["solve", "--D", "100", "--P", "100", "--out", d / "o"], d, timeout=120,
                pre="ulimit -v 3000000")  # fmt: skip
    return one_line(r, "needs about", "available")


def no_wal(src, d):
    store = _store(src, d)
    run_cli(src, ["sweep", "status", "--store", store], d)
    run_cli(src, ["sweep", "export", "--store", store, "--out", d / "o.nc"], d)
    left = sorted(p.name for p in d.iterdir() if p.name.endswith(("-wal", "-shm")))
    return not left, f"left: {left}" if left else "none left"


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dask_kill(victim):
    def fn(src, d):
        env = {**os.environ, "PYTHONPATH": src, "DASK_SPINGLASS_ICL__WORKER_WAIT": "10"}
        port = _port()
        addr = f"tcp://127.0.0.1:{port}"
        kw = dict(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                  start_new_session=True)  # fmt: skip
        sch = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                                "--host", "127.0.0.1", "--port", str(port),
                                "--no-dashboard"], **kw)  # fmt: skip
        wk = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr,
                               "--nthreads", "1", "--no-dashboard"], **kw)  # fmt: skip
        spec = d / "s.toml"
        spec.write_text(TOML.format(repeats=40).replace("test_tasks = 50", "test_tasks = 2000")
                        .replace("[20, 30]", "[200, 300]").replace("D = 2", "D = 6"))  # fmt: skip
        store = d / "s.sqlite"
        cmd = [sys.executable, "-m", "spinglass_icl", "sweep", "run", str(spec), "--store",
               str(store), "--executor", "dask", "--scheduler", addr, "--max-batch", "1",
               "--no-progress"]  # fmt: skip
        run = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip

        def rows():
            try:
                con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
                n = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                con.close()
                return n
            except sqlite3.Error:
                return 0

        try:
            t0 = time.time()
            while time.time() - t0 < 180 and run.poll() is None and rows() < 2:
                time.sleep(0.2)
            os.kill((wk if victim == "worker" else sch).pid, signal.SIGKILL)
            try:
                _, err = run.communicate(timeout=100)
            except subprocess.TimeoutExpired:
                run.kill()
                run.communicate()
                return False, f"hung over 100 s after the kill; {rows()} rows stored"
            r = subprocess.CompletedProcess([], run.returncode, "", err)
            ok, msg = one_line(r, "rerun")
            return ok and rows() >= 2, f"{msg} ({rows()} rows stored)"
        finally:
            for p in (wk, sch):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
            if run.poll() is None:
                run.kill()

    return fn


CASES = [
    Case("cluster", "SIGKILL of the only dask worker", dask_kill("worker")),
    Case("cluster", "SIGKILL of the dask scheduler", dask_kill("scheduler")),
    Case("user files", "solve --out dir with the user's summary.json", user_solve),
    Case("user files", "reproduce --out dir with the user's report.md", user_reproduce),
    Case("user files", "train --out dir with the user's history.csv", user_train),
    Case("user files", "solve --force replaces on purpose", solve_force),
    Case("special files", "sweep run on a FIFO spec", spec_fifo),
    Case("special files", "sweep run /dev/zero", spec_dev_zero),
    Case("special files", "sweep run on a 512 MB spec", spec_oversize),
    Case("special files", "sweep status on a FIFO store", store_fifo),
    Case(
        "api",
        "test_error(W with NaN)",
        api_case("sg.test_error(torch.full((3, 3), float('nan')), 5)", "finite"),
    ),
    Case(
        "api",
        "test_error(W with inf)",
        api_case("sg.test_error(torch.eye(3) * float('inf'), 5)", "finite"),
    ),
    Case(
        "api",
        "contrast(W with NaN)",
        api_case("sg.contrast(torch.full((3, 3), float('nan')))", "finite"),
    ),
    Case("api", "contrast(W = 0)", api_case("sg.contrast(torch.zeros(3, 3))", "0/0")),
    Case(
        "api",
        "Prompts X with 3 context columns, config N = 5",
        api_case(
            "(lambda p: __import__('dataclasses').replace(p, X=p.X[..., 2:]))"
            "(sg.sample_prompts(3, 5, 4))",
            "X must have shape",
        ),
    ),
    Case(
        "api",
        "sample_prompts(D=N=P=10**5)",
        api_case("sg.sample_prompts(D=10**5, N=10**5, P=10**5)", "needs about"),
    ),
    Case(
        "api",
        "make_instance(batch_shape=(10**9,))",
        api_case("sg.make_instance(5, 5, 5, 0.1, batch_shape=(10**9,))", "needs about"),
    ),
    Case(
        "disk",
        "reproduce fig4a onto a full disk",
        full_disk(
            lambda m, s, d: [
                "reproduce",
                "fig4a",
                "--preset",
                "quick",
                "--out",
                m / "rep",
                "--executor",
                "serial",
                "--no-progress",
            ],
            "fig4a",
            room_kb=80,
        ),
    ),
    Case(
        "disk",
        "reproduce fig1 onto a full disk",
        full_disk(
            lambda m, s, d: [
                "reproduce",
                "fig1",
                "--preset",
                "quick",
                "--out",
                m / "rep",
                "--no-progress",
            ],
            "fig1",
            room_kb=60,
        ),
    ),
    Case(
        "disk",
        "sweep export netcdf onto a full disk",
        full_disk(lambda m, s, d: ["sweep", "export", "--store", s, "--out", m / "o.nc"], "o.nc"),
    ),
    Case(
        "disk",
        "sweep run, store on a full disk",
        full_disk(
            lambda m, s, d: [
                "sweep",
                "run",
                d / "s.toml",
                "--store",
                m / "t.sqlite",
                "--executor",
                "serial",
                "--no-progress",
            ],
            "t.sqlite",
        ),
    ),
    Case(
        "disk",
        "solve --out on a full disk",
        full_disk(lambda m, s, d: [*SOLVE, "--out", m / "o"], "disk/o/"),
    ),
    Case(
        "disk",
        "train --out on a full disk",
        full_disk(
            lambda m, s, d: [
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
                m / "t",
            ],
            "disk/t/",
        ),
    ),
    Case(
        "disk",
        "solve --out on a read-only file system",
        read_only(lambda m, s, d: [*SOLVE, "--out", m / "out"], "disk/out"),
    ),
    Case(
        "disk",
        "sweep run, store on a read-only file system",
        read_only(
            lambda m, s, d: ["sweep", "run", d / "s.toml", "--store", m / "s.sqlite"], "s.sqlite"
        ),
    ),
    Case(
        "numbers",
        "train --noise 1e300",
        cli_error(
            ["train", "--D", "2", "--N", "4", "--P", "10", "--noise", "1e300", "--quiet"], "noise"
        ),
    ),
    Case(
        "numbers",
        "theory --noise 1e200",
        cli_error(["theory", "--alpha", "1", "--tau", "1", "--noise", "1e200"], "noise"),
    ),
    Case(
        "numbers",
        "solve --damping 1.0000001 quoted as typed",
        cli_error([*SOLVE, "--damping", "1.0000001"], "1.0000001"),
    ),
    Case(
        "numbers",
        "solve --beta 0.0e0 quoted as typed",
        cli_error([*SOLVE, "--beta", "0.0e0"], "0.0e0"),
    ),
    Case("scripts", "run_sweep in a script without a main guard", no_guard_script),
    Case("limits", "solve --D 100 under ulimit -v 3 GB", rlimit_as),
    Case("limits", "status + export leave no -wal/-shm", no_wal),
]
for c in CASES:
    c.needs_root = c.cls == "disk"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("--only", default=None)
    ap.add_argument("--dask", action="store_true")
    a = ap.parse_args()
    src = str(Path(a.src).resolve())
    root = os.geteuid() == 0
    n = handled = 0
    print(f"{'class':14s} {'handled':8s} case -- outcome")
    for c in CASES:
        if a.only and c.cls != a.only:
            continue
        if c.cls == "cluster" and not a.dask:
            continue
        if c.needs_root and not root:
            print(f"{c.cls:14s} {'skipped':8s} {c.name} -- needs root for a tmpfs")
            continue
        with tempfile.TemporaryDirectory() as t:
            try:
                ok, msg = c.fn(src, Path(t))
            except PermissionError as exc:
                print(f"{c.cls:14s} {'skipped':8s} {c.name} -- {exc}")
                continue
        n += 1
        handled += bool(ok)
        print(f"{c.cls:14s} {'yes' if ok else 'NO':8s} {c.name} -- {msg}", flush=True)
    print(f"handled {handled} of {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
