"""Symmetric matrix-vector products of the dense CPU operators through SciPy's BLAS.

``symv`` reads one triangle of a symmetric matrix: half the memory traffic of the general
product that bounds a dense AMP iteration on the CPU (two passes over ``n x n`` matrices,
``G m`` and ``J^2 v``). Each product runs on one BLAS thread (threaded ``symv`` was slower
on the 2-core development machine; benchmarks/RESULTS.md). The two products of an AMP
iteration do not depend on each other, so :func:`symv_pair` runs them at once, one on the
calling thread and one on a worker thread, when torch may use more than one thread: the
routine is SciPy's ``?symv`` taken from ``scipy.linalg.cython_blas`` and called through
ctypes, which releases the GIL while it runs. Where that routine cannot be had, the
products go one after the other through ``scipy.linalg.blas``. Either way each product is
the same single-threaded BLAS call, so the numbers do not depend on the path taken.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = ["Symv", "symv_kernel", "symv_pair"]

_REAL = {torch.float64: ("d", ctypes.c_double), torch.float32: ("s", ctypes.c_float)}


@functools.lru_cache(maxsize=1)
def scipy_blas_pools() -> tuple:
    """threadpoolctl controllers of the BLAS library SciPy ships (empty if none is found)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return ()
    return tuple(
        c
        for c in ThreadpoolController().lib_controllers
        if c.user_api == "blas" and Path(c.filepath).parent.name.startswith("scipy")
    )


@contextmanager
def one_blas_thread():
    """SciPy's BLAS on one thread inside the block (restored after it)."""
    pools = scipy_blas_pools()
    old = [c.num_threads for c in pools]
    for c in pools:
        c.set_num_threads(1)
    try:
        yield
    finally:
        for c, n in zip(pools, old):
            c.set_num_threads(n)


@functools.cache
def _gil_free_symv(prefix: str):
    """SciPy's BLAS ``?symv`` (``prefix`` "d" or "s") as a ctypes function, or None."""
    try:
        from scipy.linalg import cython_blas

        capsule = cython_blas.__pyx_capi__[prefix + "symv"]
        api = ctypes.pythonapi
        get_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)
        get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)
        name = get_name(("PyCapsule_GetName", api))(capsule)
        address = get_pointer(("PyCapsule_GetPointer", api))(capsule, name)
    except (ImportError, AttributeError, KeyError, TypeError, ValueError, OSError):
        return None
    if not address:
        return None
    real = dict(_REAL.values())[prefix]
    i, r, p = ctypes.POINTER(ctypes.c_int), ctypes.POINTER(real), ctypes.c_void_p
    # Fortran ?symv(uplo, n, alpha, a, lda, x, incx, beta, y, incy); a CFUNCTYPE call
    # releases the GIL for its duration
    return ctypes.CFUNCTYPE(None, ctypes.c_char_p, i, r, p, i, p, i, r, p, i)(address)


class Symv:
    """``x -> M x`` for one symmetric, C-contiguous CPU matrix ``M`` (float64 or float32)
    through BLAS ``?symv`` on one BLAS thread; vectors it cannot take (batched, another
    dtype or device) get the row product ``x^T M``."""

    def __init__(self, M: torch.Tensor, *, gil_free: bool = True):
        prefix, real = _REAL[M.dtype]
        self.M, self.n = M, int(M.shape[-1])
        self._fn = _gil_free_symv(prefix) if gil_free else None
        if self._fn is not None:
            self._args = (ctypes.c_int(self.n), real(1.0), real(0.0), ctypes.c_int(1))
        else:
            from scipy.linalg import blas

            self._scipy = getattr(blas, prefix + "symv")
            self._a = M.numpy().T  # the same symmetric matrix, Fortran order: no copy

    @property
    def gil_free(self) -> bool:
        """Whether the product releases the GIL (so two can run at once)."""
        return self._fn is not None

    def takes(self, x: torch.Tensor) -> bool:
        return x.dim() == 1 and x.dtype == self.M.dtype and x.device.type == "cpu"

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """``M x`` for a vector it takes, on the BLAS threads set by the caller."""
        if self._fn is None:
            return torch.from_numpy(self._scipy(1.0, self._a, x.numpy()))
        x = x.contiguous()
        y = torch.empty(self.n, dtype=self.M.dtype)
        n, one, zero, inc = self._args
        # the lower triangle of the C-ordered M is the upper one of its Fortran view, as
        # scipy.linalg.blas's default: the same routine on the same numbers
        self._fn(b"U", n, one, self.M.data_ptr(), n, x.data_ptr(), inc, zero, y.data_ptr(), inc)
        return y

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.takes(x):
            return (x.unsqueeze(-2) @ self.M).squeeze(-2)
        with one_blas_thread():
            return self.raw(x)


def symv_kernel(M: torch.Tensor, *, gil_free: bool = True) -> Symv | None:
    """A :class:`Symv` for ``M``, or None where ``M`` is not one symmetric C-contiguous
    CPU matrix of float64 / float32 (the caller then uses the row product)."""
    if M.device.type != "cpu" or M.dim() != 2 or M.dtype not in _REAL:
        return None
    if not M.is_contiguous() or M.requires_grad:
        return None
    return Symv(M, gil_free=gil_free)


_WORKER: tuple[int, ThreadPoolExecutor] | None = None
_WORKER_LOCK = threading.Lock()


def _worker() -> ThreadPoolExecutor:
    """The one worker thread of this process (a new one in a forked child)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None or _WORKER[0] != os.getpid():
            _WORKER = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="spinglass-symv"))
        return _WORKER[1]


def symv_pair(
    a: Symv, x: torch.Tensor, b: Symv, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A x, B y)``: at once on two threads where both products release the GIL and
    torch may use more than one thread (:func:`torch.get_num_threads`), else in turn."""
    if not (a.takes(x) and b.takes(y)):
        return a(x), b(y)
    with one_blas_thread():
        if a.gil_free and b.gil_free and torch.get_num_threads() > 1:
            future = _worker().submit(b.raw, y)
            ax = a.raw(x)
            return ax, future.result()
        return a.raw(x), b.raw(y)
