"""spinglass-icl: the spin-glass theory of in-context learning, runnable.

The pipeline reads like the physics (eq. 1-9; docs/solvers.md)::

    prompts  = sample_prompts(D=10, N=100, P=1000, seed=0)        # tasks    (eq. 1)
    instance = build_instance(prompts, lam=0.01)                  # couplings (eq. 3-5)
    result   = solve(instance, "amp", beta=100.0)                 # marginals (eq. 34 + Onsager)
    W        = spins_to_W(result.m)                               # weights   (eq. 9)
    contrast(W), test_error(W, N=100)                             # observables
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _dist_version

try:  # the installed distribution's version; from a source tree, the one in _version.py
    __version__: str = _dist_version("spinglass-icl")
except _PackageNotFoundError:  # pragma: no cover - running from an uninstalled checkout
    from ._version import __version__  # noqa: F401

from .conventions import CONVENTIONS, DEFAULT_CONVENTION, Convention, get_convention
from .errors import ConfigError, ConvergenceWarning, ParameterError, SpinGlassError
from .hamiltonian import Instance, build_instance, make_instance, zero_coupling_fraction
from .observables import (
    CONTRASTS,
    TestError,
    W_to_spins,
    blocks,
    contrast,
    predict,
    spins_to_W,
    test_error,
)
from .solvers import (
    Solver,
    SolverConfig,
    SolverResult,
    get_solver,
    ground_state,
    register_solver,
    solve,
    solver_names,
)
from .solvers.stability import StabilityResult, amp_stability, auto_damping
from .tasks import Prompts, TaskConfig, resolve_device, sample_prompts

__all__ = [
    "CONVENTIONS",
    "CONTRASTS",
    "DEFAULT_CONVENTION",
    "ConfigError",
    "Convention",
    "ConvergenceWarning",
    "Instance",
    "ParameterError",
    "Prompts",
    "Solver",
    "SolverConfig",
    "SolverResult",
    "SpinGlassError",
    "StabilityResult",
    "TaskConfig",
    "TestError",
    "W_to_spins",
    "amp_stability",
    "auto_damping",
    "blocks",
    "build_instance",
    "contrast",
    "get_convention",
    "get_solver",
    "ground_state",
    "make_instance",
    "predict",
    "register_solver",
    "resolve_device",
    "sample_prompts",
    "solve",
    "solver_names",
    "spins_to_W",
    "test_error",
    "zero_coupling_fraction",
]
