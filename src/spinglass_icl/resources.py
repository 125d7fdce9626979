"""Resource checks made before any work starts: memory, worker processes, grid size.

Every command estimates its peak memory from the sizes it is given, before it allocates
anything, and refuses with one line (:class:`~spinglass_icl.errors.ResourceError`)
giving the estimate, what is available and what to do, when the estimate exceeds the
memory available (``MemAvailable`` of ``/proc/meminfo``, bounded by the cgroup limit of
a container and by the address space left under ``RLIMIT_AS``, ``ulimit -v``; on a GPU
its free memory). The estimates are upper-bound style: the dense
solvers hold the ``n x n`` Gram matrix and a few matrices of its size (``n = (D+1)^2``,
eq. 5), training holds every trial's prompts and activations, a sweep holds its task
list in the parent and one batch per worker process.

``with memory_check(False): ...`` (the CLI's ``--no-memory-check``) skips the check on
purpose, e.g. when swap is meant to be used.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections.abc import Iterator

from .errors import ResourceError

__all__ = [
    "ResourceCapWarning",
    "available_memory",
    "cpu_count",
    "cap_workers",
    "memory_check",
    "check_memory",
    "dense_solve_bytes",
    "matfree_solve_bytes",
    "train_bytes",
    "sweep_bytes",
    "check_grid_size",
    "check_prompt_memory",
    "prompt_bytes",
    "MAX_SWEEP_ROWS",
    "WORKER_BYTES",
    "format_bytes",
]

#: sweeps with more rows (points x repeats) than this need explicit confirmation
#: (``confirm=True``, the CLI's ``--yes``): the task list alone is ~0.5 KB per row
MAX_SWEEP_ROWS = 1_000_000
#: resident memory of one spawned worker process (Python + torch imported), measured
#: ~300 MB with torch 2.x on Linux
WORKER_BYTES = 300 << 20
#: bytes of the parent's bookkeeping per sweep row (Task objects, keys, the done set;
#: measured 0.5 KB per row for 10^5 rows with tracemalloc, so this is an upper bound)
ROW_BYTES = 2 << 10

_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("memory_check", default=True)


class ResourceCapWarning(UserWarning):
    """A request was reduced to what the machine has (e.g. more workers than CPU cores)."""


@contextlib.contextmanager
def memory_check(enabled: bool = True) -> Iterator[None]:
    """Turn the memory checks of this module on or off inside the ``with`` block."""
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def format_bytes(n: float) -> str:
    """``1.5 GB`` style (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"  # pragma: no cover


def _cgroup_free() -> int | None:
    """Memory left under the cgroup (v2 or v1) limit, if there is one."""
    pairs = (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    )
    for lim_p, cur_p in pairs:
        try:
            with open(lim_p) as fh:
                lim = fh.read().strip()
            with open(cur_p) as fh:
                cur = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if lim == "max" or not lim.isdigit() or int(lim) >= 1 << 60:
            return None
        return max(0, int(lim) - cur)
    return None


def available_memory() -> int | None:
    """Bytes of host memory available now (None if unknown: then nothing is refused)."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            import psutil  # optional

            avail = int(psutil.virtual_memory().available)
        except Exception:  # noqa: BLE001 - psutil missing or unusable
            avail = None
    for bound in (_cgroup_free(), _rlimit_as_free()):
        if bound is not None:
            avail = bound if avail is None else min(avail, bound)
    return avail


def _rlimit_as_free() -> int | None:
    """Address space left under ``RLIMIT_AS`` (``ulimit -v``), if one is set: the limit
    minus this process's virtual size (``VmSize``); None without a limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError, AttributeError):
        return None
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    used = 0
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    used = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        used = 0
    return max(0, int(soft) - used)


def _device_free(device) -> int | None:
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type != "cuda":
        return None
    try:
        free, _ = torch.cuda.mem_get_info(dev)
    except Exception:  # noqa: BLE001 - no CUDA: resolve_device reports it
        return None
    return int(free)


def check_memory(
    estimate: float,
    what: str,
    hint: str,
    *,
    device=None,
    device_estimate: float | None = None,
) -> None:
    """Raise :class:`ResourceError` if ``estimate`` bytes exceed the available memory.

    ``what`` names the run (``"solve D=300 N=10 P=1000"``), ``hint`` says what to do
    instead. On a CUDA ``device``, ``device_estimate`` (default ``estimate``) is also
    checked against the GPU's free memory. Does nothing inside ``memory_check(False)``.
    """
    if not _ENABLED.get():
        return
    override = "; --no-memory-check runs it anyway"
    avail = available_memory()
    free_dev = _device_free(device)
    if free_dev is not None:
        need = estimate if device_estimate is None else device_estimate
        if need > free_dev:
            raise ResourceError(
                f"{what} needs about {format_bytes(need)} of GPU memory, "
                f"{format_bytes(free_dev)} free: {hint}{override}"
            )
        if device_estimate is None:
            return  # the estimate was of device memory
    if avail is not None and estimate > avail:
        raise ResourceError(
            f"{what} needs about {format_bytes(estimate)} of memory, "
            f"{format_bytes(avail)} available: {hint}{override}"
        )


def cpu_count() -> int:
    """CPU cores this process may use (affinity mask, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def cap_workers(workers: int, name: str = "workers") -> int:
    """``workers`` capped at :func:`cpu_count`, with a :class:`ResourceCapWarning` if capped."""
    n = cpu_count()
    if workers > n:
        warnings.warn(
            f"{name}={workers} is more than the {n} CPU cores here; using {n}",
            ResourceCapWarning,
            stacklevel=2,
        )
        return n
    return workers


# --------------------------------------------------------------------- estimates
def dense_solve_bytes(
    D: int, N: int, P: int, solver: str = "amp", test_tasks: int = 0, batch: int = 1
) -> int:
    """Peak bytes of one dense solve (float64): features ``P n``, the Gram matrix and the
    solver's :attr:`~spinglass_icl.solvers.Solver.dense_matrices` ``n x n`` matrices
    (exact and AMP 5, r-BP 8), prompts, test prompts."""
    from .solvers.registry import get_solver

    n = (D + 1) ** 2
    mats = get_solver(solver).dense_matrices
    prompt = (D + 1) * (N + 1)
    per = P * n + mats * n * n + 2 * P * prompt
    test = 3 * min(test_tasks, 100_000) * prompt if test_tasks else 0
    return 8 * (batch * per + test)


def matfree_solve_bytes(D: int, N: int, P: int, test_tasks: int = 0) -> int:
    """Peak bytes of one matrix-free solve: the factors (``2 P (D+1)``), the features are
    never formed; a few length-``n`` and length-``P`` vectors; test prompts."""
    n = (D + 1) ** 2
    prompt = (D + 1) * (N + 1)
    return 8 * (4 * P * (D + 1) + 2 * P * prompt + 16 * n + 8 * P + 3 * test_tasks * prompt)


def train_bytes(
    D: int,
    N: int,
    P: int,
    trials: int,
    test_tasks: int = 0,
    batch_size: int | None = None,
    *,
    sampler: str = "prompts",
    quadratic: bool = False,
    itemsize: int = 8,
    model=None,
) -> int:
    """Peak bytes of training ``trials`` models at once: every trial's data (whole prompts,
    or the exact-law factors ``(u, q, y~)`` with ``sampler="factors"``), the per-prompt
    activations and gradients of one step (``batch_size`` prompts), and the test data.

    ``model`` (a :class:`spinglass_icl.models.ModelConfig`) gives the model's own part:
    the numbers per prepared prompt (``prompt_items``), per prompt of a step
    (``step_items``) and four copies of its weights (weights, gradients, Adam's moments;
    ``weight_items``); None keeps the generic whole-prompt estimate without weights.

    With ``quadratic=True`` (full-batch SLA on eq. 2 as a quadratic) a step touches no
    prompt: the cost is the features ``P n`` met once while ``A = G + lam I`` is built
    and the ``n x n`` matrix ``A`` itself. ``itemsize`` is 4 for float32 training.
    Full batch on the prompts, the active trials' prompts are copied once a trial of the
    chunk stops (at most ``trials - 1`` more trials' data; ``training._LiveTrials``)."""
    n = (D + 1) ** 2
    prompt = (D + 1) * (N + 1)
    if model is None:
        held, step_items, weights = prompt, 3 * prompt + 2 * (D + 1) ** 2, 0
    else:
        held, step_items = model.prompt_items(D, N), model.step_items(D, N)
        weights = 4 * model.weight_items(D)
    # the raw prompts of one trial are drawn before they are prepared
    datum = 2 * (D + 1) + 1 if sampler == "factors" else max(prompt, held)
    if quadratic:
        per = P * datum + P * n + 2 * n * n + test_tasks * datum
    else:
        step = P if batch_size is None else min(P, batch_size)
        per = P * datum + step * step_items + test_tasks * datum + weights
        if batch_size is None:
            return itemsize * (trials * per + (trials - 1) * P * held)
    return itemsize * trials * per


def prompt_bytes(D: int, N: int, P: int, batch: int = 1) -> int:
    """Peak bytes of drawing ``batch x P`` prompts (float64): the inputs ``x``, the
    labels and the prompt matrices ``X`` (eq. 1) exist at once while ``X`` is built."""
    return 8 * batch * P * (2 * (D + 1) * (N + 1) + 2 * (N + 1) + D)


def check_prompt_memory(D: int, N: int, P: int, batch_shape=(), device=None) -> None:
    """Refuse (:class:`ResourceError`) drawing prompts that cannot fit in memory,
    before any tensor is allocated (:func:`sample_prompts`, :func:`make_instance`)."""
    batch = 1
    for b in batch_shape:
        batch *= int(b)
    need = prompt_bytes(D, N, P, batch)
    shape = f" batch_shape={tuple(batch_shape)}" if batch_shape else ""
    check_memory(
        need,
        f"sampling prompts D={D} N={N} P={P}{shape}",
        "use fewer prompts (P), a smaller batch, or the factors (sample_factors)",
        device=device,
        device_estimate=8 * batch * P * (D + 1) * (N + 1),
    )


def sweep_bytes(
    rows: int, worker_batch_bytes: int, workers: int, *, in_process: bool = False
) -> int:
    """Peak bytes of a sweep: the parent's task list and bookkeeping (``rows``), and per
    worker one batch (``worker_batch_bytes``) plus the worker process itself."""
    per_worker = worker_batch_bytes + (0 if in_process else WORKER_BYTES)
    return ROW_BYTES * rows + workers * per_worker


def check_grid_size(rows: int, confirm: bool, limit: int = MAX_SWEEP_ROWS) -> None:
    """Refuse a sweep of more than ``limit`` rows unless ``confirm``."""
    if rows > limit and not confirm:
        raise ResourceError(
            f"the sweep has {rows:,} rows (grid points x repeats), more than {limit:,}: "
            "check the spec (a typo in repeats or a grid?), or confirm with --yes "
            "(confirm=True in the API)"
        )
