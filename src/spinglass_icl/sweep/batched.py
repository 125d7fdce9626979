"""Old home of the sweep's batched kernels and row making, kept so old imports work.

The kernels live in :mod:`spinglass_icl.solvers.lowrank` (and the pair Gram matrix in
:mod:`spinglass_icl.hamiltonian`); planning in :mod:`.plan`; rows in :mod:`.rows`.
"""

from ..hamiltonian import expand_pairs, gram_from_factors, pair_gram, pair_products
from ..solvers.lowrank import (
    amp_from_operators,
    amp_pair_operators,
    solve_amp_batched,
    use_lowrank_matvec,
)
from .plan import CPU_BATCH_BYTES, DEFAULT_BATCH_BYTES, batch_size_for, plan_chunks
from .rows import RowOptions, iter_chunk_rows, run_chunk, spec_fields

#: the old name of :func:`~spinglass_icl.hamiltonian.gram_from_factors`
lowrank_couplings = gram_from_factors

__all__ = [
    "CPU_BATCH_BYTES",
    "DEFAULT_BATCH_BYTES",
    "RowOptions",
    "amp_from_operators",
    "amp_pair_operators",
    "batch_size_for",
    "expand_pairs",
    "iter_chunk_rows",
    "lowrank_couplings",
    "pair_gram",
    "pair_products",
    "plan_chunks",
    "run_chunk",
    "solve_amp_batched",
    "spec_fields",
    "use_lowrank_matvec",
]
