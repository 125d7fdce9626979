"""Writing outputs without destroying anything.

Every file the package writes goes through :func:`atomic_path`: it is written under a
private temporary name in the same folder and renamed into place (``os.replace``) only
when complete, so a killed run leaves either the old file or the new one, never half of
one, and never a temporary file that a later run mistakes for output.

Before anything is written, :func:`check_output_file` and :func:`check_output_dir` make
sure the target may be written: an existing sweep store (any SQLite file, recognised by
its magic bytes, whatever its name), a sweep spec or an input of the same command is
refused; an existing plain file needs ``force``; a path under a file, or in a folder that
cannot be written, is refused with one line naming the path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OutputError

__all__ = [
    "SQLITE_MAGIC",
    "is_sqlite",
    "atomic_path",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
]

SQLITE_MAGIC = b"SQLite format 3\x00"

#: suffixes of files that are inputs of some command (sweep specs); never overwritten
INPUT_SUFFIXES = (".toml",)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def is_sqlite(path: str | Path) -> bool:
    """Whether ``path`` is an existing file starting with the SQLite magic bytes."""
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _first_file_ancestor(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a folder (None if none)."""
    for parent in path.absolute().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_output_dir(path: str | Path, name: str = "out", create: bool = True) -> Path:
    """Check that folder ``path`` can be written, and create it (with parents) if
    ``create``; with ``create=False`` nothing is written (call again later to create).

    Raises :class:`~spinglass_icl.errors.OutputError` naming ``name`` and the path when
    ``path`` is an existing file, lies under a file, or cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{name} must be a folder, but {str(path)!r} is a file")
    bad = _first_file_ancestor(path)
    if bad is not None:
        raise OutputError(f"{name} {str(path)!r} lies under {str(bad)!r}, which is a file")
    if not create:
        base = next((a for a in (path.absolute(), *path.absolute().parents) if a.exists()), None)
        if base is not None and not os.access(base, os.W_OK | os.X_OK):
            raise OutputError(f"{name}: folder {str(base)!r} is not writable")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{name}: cannot create folder {str(path)!r} ({_reason(exc)})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{name}: folder {str(path)!r} is not writable")
    return path


def check_output_file(
    path: str | Path,
    *,
    name: str = "out",
    force: bool = False,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """Check that file ``path`` may be written; create its folder. Nothing else is written.

    Refused always (:class:`~spinglass_icl.errors.OutputError`): an existing SQLite file
    (a sweep store, recognised by its magic bytes), a sweep spec (``.toml``), one of
    ``inputs`` (the same file under any name), a folder, a path under a file, an
    unwritable folder. Refused unless ``force``: any other existing file.
    """
    path = Path(path)
    for inp in inputs:
        if _same(path, Path(inp)):
            raise OutputError(
                f"{name} {str(path)!r} is an input of this command ({str(inp)!r}); "
                "refusing to overwrite it -- pass another file name"
            )
    if path.is_dir():
        raise OutputError(f"{name} must be a file, but {str(path)!r} is a folder")
    if path.exists():
        if is_sqlite(path):
            raise OutputError(
                f"{name} {str(path)!r} is an SQLite database (a sweep store?); "
                "refusing to overwrite it -- pass another file name"
            )
        if path.suffix.lower() in INPUT_SUFFIXES:
            raise OutputError(
                f"{name} {str(path)!r} is a sweep spec; refusing to overwrite it "
                "-- pass another file name"
            )
        if not force:
            raise OutputError(f"{name} {str(path)!r} exists; pass --force to overwrite it")
    check_output_dir(path.parent if str(path.parent) else Path("."), name=name)
    return path


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); on success rename it onto
    ``path`` (atomic on POSIX), on any error remove it and leave ``path`` as it was.

    An existing SQLite file at ``path`` is never replaced (:class:`OutputError`).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=folder
        )
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r} ({_reason(exc)})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
        yield tmp
        if is_sqlite(path):
            raise OutputError(
                f"{str(path)!r} is an SQLite database (a sweep store?); refusing to replace it"
            )
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
