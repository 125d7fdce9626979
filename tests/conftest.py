"""Shared fixtures and helpers of the core test suite."""

from __future__ import annotations

import pytest
import torch

from spinglass_icl.hamiltonian import make_instance

CONVENTIONS = ("authors", "paper-text", "normalized")


@pytest.fixture(params=CONVENTIONS)
def convention(request) -> str:
    """Each normalization convention (docs/conventions.md) in turn."""
    return request.param


@pytest.fixture
def small_instance():
    """A small converging instance: D=4, N=20, P=200, lam=1 (authors convention)."""
    return make_instance(4, 20, 200, 1.0, seed=0)


@pytest.fixture
def cpu_only():
    """Skip when CUDA is present (tests that need 'cuda' to be an invalid device)."""
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module (``pytestmark = usefixtures(...)``): its small
    problems run faster single-threaded and are immune to a busy shared machine
    (intra-op threads spinning against other processes). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A single-node SLURM cluster for this session (tests/slurm_local.py), or a skip
    saying why none can start here. ``SLURM_CONF`` points at it while the session runs."""
    import os

    from slurm_local import SlurmUnavailable, start_cluster

    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except SlurmUnavailable as exc:
        pytest.skip(f"no SLURM cluster: {' '.join(str(exc).split())[:300]}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        cluster.stop()
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
