"""Argument helpers and output writers shared by the CLI commands."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..conventions import CONVENTIONS, DEFAULT_CONVENTION


def add_safety(p: argparse.ArgumentParser, *, force: bool = True) -> None:
    """``--no-memory-check`` (and ``--force``): run a size the memory check refuses;
    overwrite existing plain output files."""
    p.add_argument(
        "--no-memory-check",
        action="store_true",
        help="run even when the memory estimate exceeds the memory available",
    )
    if force:
        p.add_argument("--force", action="store_true", help="overwrite existing output files")


def add_common(p: argparse.ArgumentParser, *, device: bool = True) -> None:
    """``--convention``, ``--seed`` and ``--device`` flags, identical in every command."""
    p.add_argument(
        "--convention",
        default=DEFAULT_CONVENTION,
        choices=CONVENTIONS,
        help="normalization convention (SPEC §2; default: authors)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="base random seed in [0, 2**64 - 1] (default 0)"
    )
    if device:
        p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")


def jsonable(x: Any) -> Any:
    """Turn numbers, tensors and dataclasses into JSON values; NaN/inf become null."""
    import dataclasses

    import torch

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {k: jsonable(v) for k, v in dataclasses.asdict(x).items()}
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return jsonable(x.detach().cpu().tolist() if x.dim() else x.item())
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON (NaN as null), atomically (see :mod:`spinglass_icl.safeio`)."""
    from ..safeio import atomic_write_text

    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")
