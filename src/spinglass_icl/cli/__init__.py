"""Command-line interface: ``spinglass-icl <command> ...``.

Each command lives in its own module ``spinglass_icl.cli.<name>`` exposing
``register(subparsers)`` (adds its parser, with ``func`` set) — add a module to
:data:`COMMANDS` to add a command. Errors of spinglass-icl (bad parameters, unreadable
configs, outputs that must not be written, sizes the machine cannot hold) and errors of
the system (files, sockets, memory) exit with status 2 and one line
``spinglass-icl: error: ...``, no traceback; warnings are one line
``spinglass-icl: warning: ...``. An unexpected error exits with status 1 and one line
(``SPINGLASS_ICL_TRACEBACK=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
import warnings
from collections.abc import Sequence

from ..errors import SpinGlassError, TypedFloat

#: command modules, in the order they appear in ``--help``
COMMANDS: tuple[str, ...] = (
    "solve",
    "stability",
    "train",
    "sweep",
    "theory",
    "task_diversity",
    "reproduce",
)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # every ``type=float`` keeps the text as typed, for the error messages
        self.register("type", float, TypedFloat)

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


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _os_error(exc: OSError) -> str:
    """``<path>: <reason>`` for a file-system error, else the message."""
    reason = exc.strerror or _one_line(exc) or type(exc).__name__
    if exc.filename is not None:
        extra = f" -> {exc.filename2!r}" if exc.filename2 is not None else ""
        return f"{exc.filename!r}{extra}: {reason}"
    return reason


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"spinglass-icl: warning: {_one_line(message)}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from ..safeio import overwrite

    try:
        with overwrite(bool(getattr(args, "force", False))):  # --force: replace any file
            return int(args.func(args) or 0)
    except SpinGlassError as exc:
        msg = _one_line(exc)
    except KeyboardInterrupt:
        print("spinglass-icl: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        msg = "out of memory (try smaller sizes, fewer trials or --chunk / matfree)"
    except OSError as exc:
        msg = _os_error(exc)
    except sqlite3.Error as exc:
        msg = f"sweep store: {_one_line(exc)}"
    except RuntimeError as exc:
        text = str(exc)
        if "DefaultCPUAllocator" in text or "out of memory" in text.lower():
            msg = "out of memory: " + _one_line(text.splitlines()[0])[:200]
        else:
            return _unexpected(exc)
    except Exception as exc:  # noqa: BLE001 - never a traceback on the CLI
        return _unexpected(exc)
    print(f"spinglass-icl: error: {msg}", file=sys.stderr)
    return 2


def _unexpected(exc: BaseException) -> int:
    if os.environ.get("SPINGLASS_ICL_TRACEBACK"):
        raise exc
    print(
        f"spinglass-icl: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} "
        "(SPINGLASS_ICL_TRACEBACK=1 shows the traceback; please report it)",
        file=sys.stderr,
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spinglass-icl`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
