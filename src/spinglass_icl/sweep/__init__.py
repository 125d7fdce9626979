"""Sweeps that scale: a spec, a resumable SQLite store, four executors.

::

    from spinglass_icl.sweep import SweepSpec, run_sweep, open_store
    spec = SweepSpec(grid={"P": [20, 50, 100], "N": [2, 10, 50]},
                     fixed={"D": 20, "lam": 1.0, "beta": 100.0, "solver": "amp"},
                     repeats=10, seed=0)
    store = run_sweep(spec, "sweep.sqlite", executor="local", workers=2)
    ds = store.to_xarray()            # dims P, N, repeat; contrast, test_error, status, ...

* :mod:`.spec` -- :class:`SweepSpec` (TOML in and out), tasks and derived seeds;
* :mod:`.store` -- :class:`Store`, one row per (point, repeat), export to xarray/NetCDF/CSV;
* :mod:`.plan` -- which tasks are solved together (chunks);
* :mod:`.rows` -- solving a chunk as one batch and making its rows;
* :mod:`.executors` -- :func:`run_sweep` with the ``serial``, ``local``, ``dask`` and
  ``slurm`` executors;
* :mod:`.slurm` -- the ``slurm`` executor: worker jobs submitted through dask-jobqueue,
  their options (:class:`~.slurm.SlurmOptions`).

Any registered solver (:func:`spinglass_icl.solvers.register_solver`) can be swept; a
spec with ``matfree = true`` uses the matrix-free backend
(:mod:`spinglass_icl.solvers.matfree`).
"""

from .executors import EXECUTORS, run_sweep
from .plan import plan_chunks
from .rows import run_chunk
from .spec import DATA_PARAMS, OBSERVABLES, PARAMS, SweepSpec, Task, derive_seed
from .store import Store, create_or_open_store, open_store

__all__ = [
    "DATA_PARAMS",
    "EXECUTORS",
    "OBSERVABLES",
    "PARAMS",
    "Store",
    "SweepSpec",
    "Task",
    "create_or_open_store",
    "derive_seed",
    "open_store",
    "plan_chunks",
    "run_chunk",
    "run_sweep",
]
