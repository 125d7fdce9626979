"""Command-line interface: ``spinglass-icl <command> ...``.

Each command lives in its own module ``spinglass_icl.cli.<name>`` exposing
``register(subparsers)`` (adds its parser, with ``func`` set) — add a module to
:data:`COMMANDS` to add a command. Errors of spinglass-icl (bad parameters, unreadable
configs) exit with status 2 and one line ``spinglass-icl: error: ...``, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import SpinGlassError

#: command modules, in the order they appear in ``--help``
COMMANDS: tuple[str, ...] = ("solve", "stability", "train", "sweep", "theory", "reproduce")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spinglass-icl",
        description="The spin-glass theory of in-context learning (Li, Bai, Huang 2024).",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"spinglass-icl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spinglass-icl`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpinGlassError as exc:
        print(f"spinglass-icl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spinglass-icl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
