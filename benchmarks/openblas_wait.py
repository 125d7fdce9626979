"""Keep NumPy's OpenBLAS threads from spinning into the next timed call.

Import this before NumPy (it sets the variable OpenBLAS reads when it loads). NumPy's
OpenBLAS keeps its worker threads spinning for ``2**28`` cycles (about 0.1 s here) after
each call. Interleaved with the reference they would hold the second core through the
next timed call, which our two-thread products need (benchmarks/RESULTS.md, "OpenBLAS's
spinning threads"). ``OPENBLAS_THREAD_TIMEOUT=4``, the smallest value, lets them sleep at
once; ``--blas-spin`` on the command line keeps OpenBLAS's default, and a value already in
the environment is kept.
"""

from __future__ import annotations

import argparse
import os
import sys

if "--blas-spin" not in sys.argv[1:]:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def add_flag(parser: argparse.ArgumentParser) -> None:
    """The ``--blas-spin`` option (read at import; declared here so argparse accepts it)."""
    parser.add_argument(
        "--blas-spin",
        action="store_true",
        help="keep OpenBLAS's default spinning threads (OPENBLAS_THREAD_TIMEOUT unset)",
    )


def blas_line() -> str:
    """How NumPy's OpenBLAS threads wait between calls, for a table's header."""
    t = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    return f"OPENBLAS_THREAD_TIMEOUT={t}" if t else "OpenBLAS threads spin (its default)"
