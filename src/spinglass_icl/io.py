"""Writing results: JSON values from numbers, tensors and dataclasses."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["jsonable", "write_json"]


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
    """Write ``obj`` (through :func:`jsonable`) as indented JSON, making the folder;
    atomically (:func:`~spinglass_icl.safeio.atomic_write_text`): a killed run leaves the
    old file or the new one, never half of one."""
    from .safeio import atomic_write_text

    atomic_write_text(Path(path), json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")
