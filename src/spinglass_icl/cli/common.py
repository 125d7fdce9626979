"""Argument helpers and output writers shared by the CLI commands."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..conventions import CONVENTIONS, DEFAULT_CONVENTION


def add_common(p: argparse.ArgumentParser, *, device: bool = True) -> None:
    """``--convention``, ``--seed`` and ``--device`` flags, identical in every command."""
    p.add_argument(
        "--convention",
        default=DEFAULT_CONVENTION,
        choices=CONVENTIONS,
        help="normalization convention (docs/conventions.md; default: authors)",
    )
    p.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")
