"""Fault injection on the executors: a real Dask scheduler and worker on 127.0.0.1,
killed mid-run (the sweep ends within bounded time, with one line, and the finished
rows stay in the store), a local worker's real cause of death, and a sweep run from a
script without a main guard."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from spinglass_icl.sweep import SweepSpec, open_store
from spinglass_icl.sweep.executors import unguarded_script
from sweep_helpers import ENV
from sweep_helpers import TINY_TOML as ONE_REPEAT

#: many one-instance chunks, each a fraction of a second: a run lasts long enough to kill
SLOW_TOML = """
repeats = 40
seed = 1
test_tasks = 2000
[grid]
P = [200, 300]
[fixed]
D = 6
N = 8
lam = 1.0
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(store: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            return int(con.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: killed whole at the end
    )


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=30)


@pytest.fixture
def dask_cluster():
    """A scheduler and one worker (with its nanny) on 127.0.0.1; killed at the end."""
    pytest.importorskip("distributed")
    env = {**ENV, "DASK_SPINGLASS_ICL__WORKER_WAIT": "5"}
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    sched = _start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                    str(port), "--no-dashboard"], env)  # fmt: skip
    worker = _start(["distributed.cli.dask_worker", addr, "--nthreads", "1",
                     "--no-dashboard"], env)  # fmt: skip
    try:
        yield addr, sched, worker, env
    finally:
        _stop(worker)
        _stop(sched)


@pytest.fixture
def dask_cluster_of_two(dask_cluster):
    """:func:`dask_cluster` plus a second worker (the first one is the victim)."""
    addr, sched, worker, env = dask_cluster
    second = _start(["distributed.cli.dask_worker", addr, "--nthreads", "1",
                     "--no-dashboard"], env)  # fmt: skip
    try:
        yield addr, sched, worker, env
    finally:
        _stop(second)


def _kill_mid_run(tmp_path, dask_cluster, victim: str):
    """Run a Dask sweep, SIGKILL ``victim`` once 2 rows are stored: ``(result, seconds
    from the kill to the end, store)``."""
    addr, sched, worker, env = dask_cluster
    spec = tmp_path / "s.toml"
    spec.write_text(SLOW_TOML)
    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "spinglass_icl", "sweep", "run", str(spec), "--store",
           str(store), "--executor", "dask", "--scheduler", addr, "--max-batch", "1",
           "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None and _rows(store) < 2:
            time.sleep(0.1)
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.skip(f"the sweep ended before the kill (exit {proc.returncode}): {err[-300:]}")
        if _rows(store) < 2:
            pytest.skip("no Dask worker computed a row within 180 s here")
        os.kill((worker if victim == "worker" else sched).pid, signal.SIGKILL)
        t0 = time.time()
        out, err = proc.communicate(timeout=120)  # no hang: bounded by WORKER_WAIT
        took = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), took, store


def _assert_one_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # no multi-line log of distributed
    assert lines[0].startswith("spinglass-icl: error: "), err
    assert "internal error" not in err and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]


def test_sigkill_of_the_only_dask_worker_ends_the_sweep_and_keeps_the_rows(tmp_path, dask_cluster):
    r, took, store = _kill_mid_run(tmp_path, dask_cluster, "worker")
    assert r.returncode == 2, r.stderr
    _assert_one_line(r.stderr, "no Dask worker", "5 s", "rerun", "resume")
    assert took < 60, took
    n = _rows(store)
    assert n >= 2  # the rows finished before the kill are in the store
    with open_store(store, readonly=True) as st:  # and they are whole rows
        assert len(st) == n and all(row["status"] for row in st.rows())


def test_sigkill_of_the_dask_scheduler_ends_the_sweep_and_keeps_the_rows(tmp_path, dask_cluster):
    r, took, store = _kill_mid_run(tmp_path, dask_cluster, "scheduler")
    assert r.returncode == 2, r.stderr
    _assert_one_line(r.stderr, "lost the Dask scheduler", "rerun", "resume")
    assert took < 60, took
    assert _rows(store) >= 2


@pytest.mark.slow
def test_sigkill_of_one_of_two_dask_workers_is_survived(tmp_path, dask_cluster_of_two):
    """The lost worker's chunks are retried on the other one: the sweep completes."""
    r, took, store = _kill_mid_run(tmp_path, dask_cluster_of_two, "worker")
    assert r.returncode == 0, r.stderr
    assert "error" not in r.stderr, r.stderr
    with open_store(store, readonly=True) as st:
        assert len(st) == SweepSpec.from_toml(tmp_path / "s.toml").n_tasks


# ---------------------------------------- a worker lost between finishing and fetching
class _RowsOnADeadWorker:
    """A future the client saw finish whose worker died before its rows were fetched:
    ``result()`` waits for a recomputation that no worker will run (a fake: a real one
    would block forever, so without a timeout this one fails at once). With
    ``arrive_after`` its rows come once a wait is at least that long."""

    status = "finished"

    def __init__(self, arrive_after: float = float("inf")) -> None:
        self.arrive_after = arrive_after
        self.waits: list[float] = []

    def result(self, timeout=None):
        if timeout is None:
            raise AssertionError("an unbounded result() would wait forever here")
        self.waits.append(timeout)
        if timeout >= self.arrive_after:
            return ["late rows"]
        time.sleep(min(timeout, 0.01))
        raise TimeoutError(f"timed out after {timeout} s")


class _Finished:
    status = "finished"

    def __init__(self, rows) -> None:
        self.rows = rows

    def result(self, timeout=None):
        return self.rows


class _ClientWithNoWorker:
    status = "running"

    def scheduler_info(self, n_workers=-1):
        return {"workers": {}}


def test_row_fetcher_gives_up_on_rows_that_are_not_coming_and_waits_longer_each_time():
    from spinglass_icl.sweep.rows import RowFetcher

    fetch = RowFetcher(wait_s=0.001)
    lost, other = _RowsOnADeadWorker(), _RowsOnADeadWorker()
    assert [fetch(lost) for _ in range(8)] == [None] * 8
    assert lost.waits == [0.001 * 2**k for k in (0, 1, 2, 3, 4, 5, 5, 5)]  # doubling, capped
    assert fetch(other) is None and other.waits == [0.001]  # each future its own count
    assert fetch(_Finished([{"key": 1}])) == [{"key": 1}]
    slow = _RowsOnADeadWorker(arrive_after=0.004)  # rows slow to come still come
    assert [fetch(slow) for _ in range(3)] == [None, None, ["late rows"]]
    assert fetch(slow) is None and slow.waits[-1] == 0.001  # its count reset on arrival


def test_a_finished_chunk_whose_worker_died_before_the_fetch_ends_the_sweep():
    """The race that hung a Dask sweep: a chunk seen finished, its only worker killed
    before its rows were fetched. The rows fetched before it are given; then the sweep
    ends on the worker wait (not on the fetch)."""
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    from spinglass_icl.sweep.executors import ClusterError, _dask_results

    lost = _RowsOnADeadWorker()
    futures = [_Finished(["row 0"]), lost, _Finished(["row 2"])]
    got = []
    t0 = time.monotonic()
    with dask.config.set({"spinglass-icl.worker-wait": 0.5}):
        with pytest.raises(ClusterError, match=r"no Dask worker connected .* for 0\.5 s"):
            for rows in _dask_results(_ClientWithNoWorker(), futures, "'tcp://here'"):
                got.append(rows)
    assert time.monotonic() - t0 < 10
    # the chunks that came are given (the one after the lost chunk too), and the lost
    # chunk was asked again while the executor waited for a worker
    assert got == [["row 0"], ["row 2"]]
    assert len(lost.waits) >= 2


# ------------------------------------------------------------- scripts and guards
# two repeats: four rows, so that two workers both get some
TINY_TOML = ONE_REPEAT.replace("repeats = 1", "repeats = 2")


def test_run_sweep_in_a_script_without_a_main_guard_runs_serially_and_says_why(tmp_path):
    (tmp_path / "s.toml").write_text(TINY_TOML)
    script = tmp_path / "noguard.py"
    script.write_text(
        textwrap.dedent("""
        from spinglass_icl.sweep import SweepSpec, run_sweep
        spec = SweepSpec.from_toml("s.toml")
        store = run_sweep(spec, "s.sqlite", executor="local", workers=2, progress=False)
        print("rows", len(store))
    """)
    )
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "rows 4" in r.stdout
    assert "ScriptGuardWarning" in r.stderr and 'if __name__ == "__main__":' in r.stderr
    assert "died" not in r.stderr and "memory" not in r.stderr


def test_unguarded_script_tells_a_guarded_call_from_an_unguarded_one(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        textwrap.dedent("""
        from spinglass_icl.sweep.executors import unguarded_script
        def f():
            return unguarded_script()
        print("top", f() is not None)
        if __name__ == "__main__":
            print("guarded", f() is not None)
    """)
    )
    r = subprocess.run([sys.executable, str(probe)], env=ENV, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["top", "True", "guarded", "False"]
    assert unguarded_script() is None  # under pytest: not a script's top level


@pytest.mark.skipif(shutil.which("true") is None, reason="needs a POSIX shell")
def test_a_worker_that_exits_is_reported_with_its_exit_code(tmp_path, monkeypatch):
    """A local worker that exits by itself (here: code 3) is reported with that code,
    never as an assumed out-of-memory."""
    from spinglass_icl.errors import ResourceError
    from spinglass_icl.sweep import executors, run_sweep

    monkeypatch.setattr(executors, "run_chunk", _exit_3)
    spec = SweepSpec.from_toml(_write(tmp_path / "s.toml", TINY_TOML))
    with pytest.raises(ResourceError, match=r"worker process \d+ exited with code 3") as ei:
        run_sweep(spec, tmp_path / "s.sqlite", executor="local", workers=1, progress=False)
    assert "memory" not in str(ei.value)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _exit_3(*args, **kwargs):
    os._exit(3)


def test_python_m_package_is_not_taken_for_an_unguarded_script(tmp_path):
    """``python -m spinglass_icl sweep run`` runs the package's ``__main__`` at top
    level; spawn never re-runs it, so the local executor keeps its worker processes."""
    pkg = tmp_path / "probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        "from spinglass_icl.sweep.executors import unguarded_script\n"
        "print('unguarded', unguarded_script() is not None)\n"
    )
    env = {**ENV, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ENV['PYTHONPATH']}"}
    r = subprocess.run([sys.executable, "-m", "probe_pkg"], env=env, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["unguarded", "False"]
