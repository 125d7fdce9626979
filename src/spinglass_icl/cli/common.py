"""Argument helpers and output writers shared by the CLI commands."""

from __future__ import annotations

import argparse

from ..conventions import CONVENTIONS, DEFAULT_CONVENTION
from ..io import jsonable, write_json  # noqa: F401 (re-exported for the commands)


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
        help="normalization convention (docs/conventions.md; default: authors)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="base random seed in [0, 2**64 - 1] (default 0)"
    )
    if device:
        p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
