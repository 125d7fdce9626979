"""A single-node SLURM cluster for the tests: munge, slurmctld and slurmd on this host.

:func:`start_cluster` writes a munge key and a ``slurm.conf`` for this host into a
temporary folder (state, spool, logs and pid files there too), starts ``munged
--force``, ``slurmctld`` and ``slurmd`` as root, and waits (bounded) for the node to be
idle; :meth:`LocalSlurm.stop` cancels every job and stops the three daemons it started
(by their pids). It raises :class:`SlurmUnavailable` with the reason when no cluster
can be started (not root, Debian's ``slurm-wlm``/``munge`` not installed, a daemon
that does not come up), so that the tests marked ``slurm`` skip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

#: seconds to wait for the node to become idle
START_TIMEOUT = 30.0
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel")


class SlurmUnavailable(RuntimeError):
    """No SLURM cluster can be started here (the message says why)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _which(name: str) -> str:
    for d in (None, "/usr/sbin", "/sbin"):
        path = shutil.which(name, path=d)
        if path:
            return path
    raise SlurmUnavailable(f"{name} not found (apt-get install slurm-wlm munge)")


def _node_resources(slurmd: str) -> tuple[int, int]:
    """``(CPUs, RealMemory in MB)`` of this host as slurmd sees them."""
    out = subprocess.run([slurmd, "-C"], capture_output=True, text=True, timeout=30).stdout
    cpus = re.search(r"\bCPUs=(\d+)", out)
    mem = re.search(r"\bRealMemory=(\d+)", out)
    if not (cpus and mem):
        raise SlurmUnavailable(f"slurmd -C gave no CPUs/RealMemory: {out.strip()[:200]!r}")
    return int(cpus.group(1)), int(mem.group(1))


SLURM_CONF = """\
ClusterName=spinglass-icl-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={dir}/munge.sock
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=10
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName={partition} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class LocalSlurm:
    """A running single-node cluster: its folder, ``slurm.conf``, partition, node
    resources, the seconds it took to start, and the pids of its daemons."""

    dir: Path
    conf: Path
    partition: str
    host: str
    cpus: int
    memory_mb: int
    startup_seconds: float = 0.0
    pids: dict = field(default_factory=dict)

    @property
    def env(self) -> dict:
        """The environment of a process that talks to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command (``squeue``, ``scancel``, ...) on this cluster."""
        return subprocess.run(
            [_which(cmd[0]), *cmd[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def jobs(self) -> list[tuple[str, str]]:
        """``(job id, state)`` of the jobs in the queue."""
        out = self.run("squeue", "-h", "-o", "%i %T", check=False).stdout
        return [tuple(line.split()[:2]) for line in out.splitlines() if line.strip()]

    def node_state(self) -> str:
        return self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()

    def log_tail(self, n: int = 5) -> str:
        parts = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            p = self.dir / name
            if p.exists():
                parts.append(f"{name}: " + " | ".join(p.read_text().splitlines()[-n:]))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel every job, then stop the daemons this object started."""
        if self.pids.get("slurmctld"):
            self.run("scancel", "--full", "--partition", self.partition, check=False)
            deadline = time.monotonic() + 15
            while self.jobs() and time.monotonic() < deadline:
                time.sleep(0.5)
        for name in reversed(DAEMONS):
            pid = self.pids.pop(name, None)
            if pid:
                _terminate(pid)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left to a parent that does not reap is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _terminate(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read_pid(path: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.05)
    raise SlurmUnavailable(f"{path.name} did not appear")


def start_cluster(root: Path, partition: str = "debug") -> LocalSlurm:
    """Start munged, slurmctld and slurmd for this host under ``root``; see the module."""
    t0 = time.perf_counter()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise SlurmUnavailable("the test cluster runs its daemons as root (SlurmUser=root)")
    munged, slurmctld, slurmd = (_which(d) for d in DAEMONS)
    for c in CLIENTS:
        _which(c)
    root = Path(root)
    for sub in ("state", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    host = socket.gethostname().split(".")[0]
    cpus, mem = _node_resources(slurmd)
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            host=host,
            dir=root,
            ctld_port=_free_port(),
            d_port=_free_port(),
            cpus=cpus,
            mem=mem,
            partition=partition,
        )
    )
    cluster = LocalSlurm(root, conf, partition, host, cpus, mem)
    env = cluster.env
    try:
        subprocess.run(
            [
                munged,
                "--force",
                f"--key-file={key}",
                f"--socket={root / 'munge.sock'}",
                f"--pid-file={root / 'munged.pid'}",
                f"--log-file={root / 'munged.log'}",
                f"--seed-file={root / 'munge.seed'}",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        cluster.pids["munged"] = _read_pid(root / "munged.pid")
        for name, exe, pidfile in (
            ("slurmctld", slurmctld, "slurmctld.pid"),
            ("slurmd", slurmd, "slurmd.pid"),
        ):
            subprocess.run([exe], env=env, check=True, capture_output=True, timeout=30)
            cluster.pids[name] = _read_pid(root / pidfile)
        deadline = time.monotonic() + START_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            state = cluster.node_state()
            if state == "idle":
                break
            time.sleep(0.25)
        else:
            raise SlurmUnavailable(
                f"node {host} not idle after {START_TIMEOUT:g} s (state {state!r})\n"
                + cluster.log_tail()
            )
    except (subprocess.SubprocessError, OSError, SlurmUnavailable) as exc:
        why = exc
        if isinstance(exc, subprocess.CalledProcessError):
            why = f"{exc.cmd[0]} failed: {(exc.stderr or b'').decode(errors='replace').strip()}"
        cluster.stop()
        raise SlurmUnavailable(f"{why}\n{cluster.log_tail()}".strip()) from None
    cluster.startup_seconds = time.perf_counter() - t0
    return cluster
