"""The ``slurm`` executor: options, errors, and sweeps on a real single-node SLURM cluster.

Tests marked ``slurm`` use the session's cluster (``slurm_cluster`` in conftest.py,
started from Debian's slurm-wlm and munge by tests/slurm_local.py) and skip where none
can start.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from spinglass_icl.errors import ConfigError, ParameterError, ResourceError
from spinglass_icl.sweep import SweepSpec, open_store, run_sweep
from spinglass_icl.sweep.slurm import SlurmOptions, options_from_toml
from sweep_helpers import SMALL, _cli, _count, _values, _write

SPEC_TOML = """\
repeats = 2
seed = 3
test_tasks = 300

[grid]
P = [100, 200]
N = [4, 8]

[fixed]
D = 4
lam = 1.0
beta = 100.0
solver = "amp"
"""


# ------------------------------------------------------------- options (no cluster)
def test_defaults_and_overrides():
    o = SlurmOptions()
    assert (o.partition, o.walltime, o.cores, o.memory, o.jobs) == (None, "01:00:00", 1, "4GB", 1)
    assert o.max_jobs == 2
    p = o.replace(partition="gpu", jobs=3, cores=None, extra=("#SBATCH --gres=gpu:1",))
    assert (p.partition, p.jobs, p.cores, p.extra) == ("gpu", 3, 1, ("--gres=gpu:1",))
    kw = p.cluster_kwargs()
    assert kw["queue"] == "gpu" and kw["processes"] == kw["cores"] == 1
    assert kw["job_extra_directives"] == ["--gres=gpu:1"]
    assert repr(p).startswith("SlurmOptions(partition='gpu', jobs=3")


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"walltime": "1 hour"}, r"^slurm walltime must be .* got '1 hour'$"),
        ({"memory": "lots"}, r"^slurm memory must be a size .* got 'lots'$"),
        ({"memory": "1MB"}, r"^slurm memory must be a size"),
        ({"cores": 0}, r"^slurm cores must be an integer >= 1, got 0$"),
        ({"jobs": 1.5}, r"^slurm jobs must be an integer >= 1, got 1.5$"),
        ({"partition": "a b"}, r"^slurm partition must be a SLURM name"),
        ({"extra": ["--a\n--b"]}, r"^slurm extra must hold one-line sbatch options"),
        ({"resubmits": -1}, r"^slurm resubmits must be an integer >= 0, got -1$"),
    ],
)
def test_bad_options_are_one_line_parameter_errors(kw, match):
    with pytest.raises(ParameterError, match=match):
        SlurmOptions(**kw)


def test_spec_slurm_table_is_read_and_is_not_part_of_the_spec(tmp_path):
    plain = _write(tmp_path / "a.toml", SPEC_TOML)
    table = '\n[slurm]\npartition = "normal"\njobs = 4\nextra = ["--exclusive"]\n'
    with_slurm = _write(tmp_path / "b.toml", SPEC_TOML + table)
    assert SweepSpec.from_toml(with_slurm).hash == SweepSpec.from_toml(plain).hash
    assert options_from_toml(plain) is None
    o = options_from_toml(with_slurm)
    assert (o.partition, o.jobs, o.extra) == ("normal", 4, ("--exclusive",))
    bad = _write(tmp_path / "c.toml", SPEC_TOML + "\n[slurm]\nqueue = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown c.toml: \[slurm\] option\(s\) 'queue'"):
        options_from_toml(bad)


def test_cli_slurm_flag_without_slurm_executor_exits_2(tmp_path):
    spec = _write(tmp_path / "s.toml", SPEC_TOML)
    args = ["run", str(spec), "--store", str(tmp_path / "s.sqlite"), "--slurm-jobs", "2"]
    proc = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "spinglass-icl: error: --slurm-jobs needs --executor slurm, got --executor local"
    ]
    assert not (tmp_path / "s.sqlite").exists()


def test_no_sbatch_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("dask_jobqueue")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(ConfigError, match=r"^executor slurm: no sbatch on PATH"):
        run_sweep(SweepSpec(**SMALL), tmp_path / "s.sqlite", executor="slurm", progress=False)
    assert not (tmp_path / "s.sqlite").exists()


def test_a_batch_too_big_for_a_worker_is_refused_before_anything(tmp_path):
    """One D = 40 instance (~117 MB dense) plus the worker process does not fit 256MB
    per job: ResourceError naming the option, no store, nothing submitted (no cluster
    needed: the check comes first)."""
    spec = SweepSpec(
        grid={"P": [10]}, fixed={"D": 40, "N": 4, "lam": 1.0, "solver": "amp"}, repeats=1
    )
    store = tmp_path / "s.sqlite"
    with pytest.raises(ResourceError, match=r"^executor slurm: a worker needs about .* but gets"):
        run_sweep(spec, store, executor="slurm", slurm={"memory": "256MB"}, progress=False)
    with pytest.raises(ResourceError, match=r"\(slurm memory 4GB / cores 64\)"):
        run_sweep(spec, store, executor="slurm", slurm={"cores": 64}, progress=False)
    assert not store.exists()


# ------------------------------------------------------------- on a real cluster
def _opts(cluster, tmp_path, **kw):
    return dict(
        partition=cluster.partition,
        cores=1,
        memory="1GB",
        walltime="00:10:00",
        log_directory=str(tmp_path / "logs"),
        **kw,
    )


@pytest.mark.slurm
def test_sweep_through_slurm_equals_serial(slurm_cluster, tmp_path):
    spec = SweepSpec(**SMALL)
    ref = run_sweep(spec, tmp_path / "serial.sqlite", executor="serial", progress=False)
    jobs = min(2, slurm_cluster.cpus)
    st = run_sweep(
        spec,
        tmp_path / "slurm.sqlite",
        executor="slurm",
        slurm=_opts(slurm_cluster, tmp_path, jobs=jobs),
        progress=False,
    )
    assert len(st.rows()) == spec.n_tasks
    assert _values(st) == _values(ref)  # bit-identical: single-threaded workers
    assert list((tmp_path / "logs").glob("*.err")), "the worker jobs wrote no logs"
    ref.close()
    st.close()
    deadline = time.monotonic() + 20  # the cluster's jobs are cancelled on exit
    while slurm_cluster.jobs() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [s for _, s in slurm_cluster.jobs() if s in ("RUNNING", "PENDING")] == []


@pytest.mark.slurm
def test_bad_partition_is_refused_before_anything_is_queued(slurm_cluster, tmp_path):
    spec = _write(tmp_path / "s.toml", SPEC_TOML)
    store = tmp_path / "s.sqlite"
    args = ["run", str(spec), "--store", str(store), "--executor", "slurm"]
    proc = subprocess.run(
        _cli(*args, "--slurm-partition", "nosuchpartition", "--no-progress"),
        capture_output=True,
        text=True,
        timeout=120,
        env=slurm_cluster.env,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("spinglass-icl: error: executor slurm: SLURM refuses the worker job")
    assert "partition" in lines[0].lower()
    assert slurm_cluster.jobs() == []
    assert not store.exists()  # refused before the store is made


SCANCEL_TOML = """\
repeats = 3
seed = 5

[grid]
P = [200, 300, 400, 500]
N = [4, 8]

[fixed]
D = 6
lam = 1.0
beta = 100.0
solver = "amp"
"""


@pytest.mark.slurm
def test_scancel_mid_sweep_is_survived_and_a_rerun_resumes(slurm_cluster, tmp_path):
    """Two worker jobs; one is cancelled with scancel once rows are coming in. The
    sweep either finishes (the other job takes the chunks) or ends with one line; a
    rerun then completes it, and every row equals the serial run's."""
    if slurm_cluster.cpus < 2:
        pytest.skip("needs 2 CPUs for two worker jobs")
    spec_path = _write(tmp_path / "s.toml", SCANCEL_TOML)
    store = tmp_path / "s.sqlite"
    total = SweepSpec.from_toml(spec_path).n_tasks
    flags = [
        "--executor",
        "slurm",
        "--max-batch",
        "1",
        "--no-progress",
        "--slurm-partition",
        slurm_cluster.partition,
        "--slurm-jobs",
        "2",
        "--slurm-memory",
        "1GB",
        "--slurm-log-dir",
        str(tmp_path / "logs"),
    ]
    cmd = _cli("run", str(spec_path), "--store", str(store), *flags)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=slurm_cluster.env
    )
    try:
        deadline = time.monotonic() + 120
        while _count(store) == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        running = [j for j, s in slurm_cluster.jobs() if s == "RUNNING"]
        at_cancel = _count(store)
        assert running and 0 < at_cancel < total, (running, at_cancel, proc.poll())
        slurm_cluster.run("scancel", running[0])
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode == 0:  # survived: the other job ran the cancelled job's chunks
        assert f"{total}/{total} rows" in out
    else:
        assert proc.returncode == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert "rerun to resume" in err
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=slurm_cluster.env)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{total}/{total} rows" in rerun.stdout
    ref = run_sweep(
        SweepSpec.from_toml(spec_path),
        tmp_path / "serial.sqlite",
        executor="serial",
        max_batch=1,
        progress=False,
    )
    with open_store(store, readonly=True) as st:
        assert _values(st) == _values(ref)
    ref.close()
    print(f"scancel at {at_cancel}/{total} rows; first run exit {proc.returncode}", file=sys.stderr)


@pytest.mark.slurm
def test_reproduce_passes_its_slurm_flags_to_the_figure_sweeps(slurm_cluster, tmp_path):
    """``reproduce --executor slurm --slurm-partition P`` reaches the Fig. 4a sweep: a
    partition SLURM does not have stops it with SLURM's words, before any job."""
    code = "import sys; from spinglass_icl.cli import main; sys.exit(main())"
    args = ["reproduce", "fig4a", "--preset", "tiny", "--out", str(tmp_path / "out"),
            "--executor", "slurm", "--slurm-partition", "nosuch", "--no-progress"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=slurm_cluster.env,
    )
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("spinglass-icl: error: executor slurm: SLURM refuses the worker job")
    ), proc.stderr
    assert slurm_cluster.jobs() == []
