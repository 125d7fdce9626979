"""How every seed of the package is derived from the one base seed a user gives.

One scheme: :func:`derive`. A seed is the SHA-256 of the canonical JSON (sorted keys, no
spaces; :func:`spinglass_icl.storage.canonical_json`) of the list of its parts -- a name
saying what the draw is for, the base seed and the parameters that define the draw -- cut
to its first 64 bits and masked to 63 (so it fits a signed 64-bit integer, SQLite's and
``torch.Generator.manual_seed``'s range). So no two draws share a stream, none depends
on the order in which they run or on the executor, and a parameter that does not define
the draw (lam, beta, the solver of a sweep row) does not change it:

=====================  ===========================================================
sweep row instance     ``derive("instance", seed, data, repeat)`` (``data``: the
                       task's ``key()``, D, N, P, convention, noise; for ``nested_p``
                       ``"instance-nested"`` and no P)
sweep row test set     ``derive("test", seed, data)`` (``data`` without P)
figure draw            ``derive("figure", figure, purpose, seed, convention, config)``
double-descent point   ``derive("double-descent", seed, data)``
=====================  ===========================================================

Two older derivations are kept bit for bit, so that the numbers already published and
stored (trained trials in their stores, every trained figure, nested sweeps, the
task-diversity tables of docs/theory.md) reproduce exactly; nothing new uses them:

* :func:`trial_stream`, the training streams: trial ``k`` of base ``seed`` draws stream
  ``s`` (0 data, 1 init, 2 test, 3 shuffle) from
  ``numpy.random.SeedSequence([seed, k, s]).generate_state(1)[0]`` (32 bits), restart
  ``r > 0`` from ``SeedSequence([seed, k, s, r])``.
* :func:`joined`, the blocks of nested prompt streams (``joined("nested-prompts", seed,
  block)``, stored ``nested_p`` sweeps) and the task-diversity curves
  (``joined("task-diversity", seed, ...)``): the SHA-256 of the parts joined by ``:``
  (not JSON), cut to 63 bits as :func:`derive`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .storage import canonical_json, sha256_hex

__all__ = ["SEED_BITS", "derive", "joined", "trial_stream"]

#: derived seeds are in ``[0, 2**SEED_BITS)``
SEED_BITS = 63
_MASK = (1 << SEED_BITS) - 1


def derive(*parts: Any) -> int:
    """The seed of the draw named by ``parts`` (JSON-able: names, the base seed,
    parameters): the first 64 bits of the SHA-256 of their canonical JSON list, masked
    to 63 bits."""
    return int(sha256_hex(canonical_json(list(parts)))[:16], 16) & _MASK


def trial_stream(seed: int, trial: int, stream: int, *more: int) -> int:
    """Training's per-trial stream seed (32 bits): ``SeedSequence([seed, trial, stream,
    *more])`` (``more``: the restart, for restarts > 0). Kept as it was so that stored
    trials and trained figures reproduce bit for bit."""
    ss = np.random.SeedSequence([int(seed), int(trial), int(stream), *map(int, more)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def joined(*parts: Any) -> int:
    """The task-diversity seeds: the first 64 bits of the SHA-256 of ``str`` of the parts
    joined by ``:``, masked to 63 bits. Kept as it was so that the published curves
    reproduce bit for bit."""
    h = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return int(h[:16], 16) & _MASK
