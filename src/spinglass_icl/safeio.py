"""Writing outputs without destroying anything.

Every file the package writes goes through :func:`atomic_path`: it is written under a
private temporary name in the same folder and renamed into place (``os.replace``) only
when complete, so a killed run leaves either the old file or the new one, never half of
one, and never a temporary file that a later run mistakes for output.

Before anything is written, :func:`check_output_file` and :func:`check_output_dir` make
sure the target may be written: an existing sweep store (any SQLite file, recognised by
its magic bytes, whatever its name), a sweep spec or an input of the same command is
refused; an existing plain file needs ``force`` unless the package wrote it; a path under a
file, or in a folder that cannot be written, is refused with one line naming the path.

**Only the package's own files are replaced.** Every file written through
:func:`atomic_path` is listed in the manifest :data:`MANIFEST` of its folder (one name a
line, written before the file appears). An existing file not listed there (the user's
own ``summary.json`` or ``report.md``) is never replaced unless overwriting is allowed
on purpose: ``with overwrite(True): ...`` (the CLI's ``--force``).

**Inputs are regular files of sane size.** :func:`check_input_file` refuses, before
reading, a named pipe, a device, a socket or a folder given as an input file, and a file
larger than the stated limit, naming the path.

**A failed write says why.** A write that fails because the disk is full
(``ENOSPC``), a quota is exceeded (``EDQUOT``) or the file system is read-only
(``EROFS``) raises :class:`~spinglass_icl.errors.OutputError` naming the path and the
cause (:func:`disk_problem`), whichever library was writing (NetCDF/HDF5, matplotlib,
torch, SQLite report such failures in their own words).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OutputError

__all__ = [
    "MANIFEST",
    "MAX_SPEC_BYTES",
    "SQLITE_MAGIC",
    "check_input_file",
    "disk_problem",
    "store_write_error",
    "is_owned",
    "overwrite",
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

#: the manifest each output folder holds: the names of the files the package wrote there
MANIFEST = ".spinglass-icl-outputs"
_MANIFEST_HEAD = (
    "# files written into this folder by spinglass-icl (one name a line); it replaces only\n"
    "# these, never another existing file unless told to (--force)\n"
)
#: largest sweep spec (or other text input) read, in bytes: a spec is a few KB
MAX_SPEC_BYTES = 16 << 20

_OVERWRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("overwrite", default=False)


@contextlib.contextmanager
def overwrite(enabled: bool = True) -> Iterator[None]:
    """Allow (or not) replacing existing files the package did not write, inside the
    ``with`` block (the CLI's ``--force``). Stores and inputs stay refused."""
    token = _OVERWRITE.set(bool(enabled))
    try:
        yield
    finally:
        _OVERWRITE.reset(token)


def _manifest_names(folder: Path) -> set[str]:
    try:
        with open(folder / MANIFEST, encoding="utf-8") as fh:
            return {ln.rstrip("\n") for ln in fh if ln.strip() and not ln.startswith("#")}
    except (OSError, UnicodeDecodeError):
        return set()


def is_owned(path: str | Path) -> bool:
    """Whether ``path`` is listed in its folder's :data:`MANIFEST` (the package wrote it)."""
    path = Path(path)
    return path.name in _manifest_names(path.parent if str(path.parent) else Path("."))


def _record(path: Path) -> None:
    """List ``path`` in its folder's manifest (one appended line; idempotent)."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.name in _manifest_names(folder) or "\n" in path.name:
        return
    man = folder / MANIFEST
    try:
        fd = os.open(man, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666 & ~_UMASK)
    except OSError as exc:
        raise OutputError(_write_failure(man, exc)) from None
    try:
        head = _MANIFEST_HEAD if os.fstat(fd).st_size == 0 else ""
        os.write(fd, (head + path.name + "\n").encode("utf-8"))
    except OSError as exc:
        raise OutputError(_write_failure(man, exc)) from None
    finally:
        os.close(fd)


def _check_owner(path: Path, force: bool | None = None) -> None:
    """Refuse (OutputError) replacing an existing ``path`` the package did not write."""
    allowed = _OVERWRITE.get() if force is None else force
    if path.exists() and not path.is_dir() and not allowed and not is_owned(path):
        raise OutputError(
            f"{str(path)!r} exists and was not written by spinglass-icl (it is not in "
            f"{MANIFEST} of its folder); refusing to overwrite it -- pass --force "
            "(overwrite(True) in the API), or choose another output"
        )


# -------------------------------------------------------------- inputs
_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def check_input_file(path: str | Path, name: str, max_bytes: int | None = MAX_SPEC_BYTES) -> Path:
    """Check, before reading, that input ``path`` is a regular file of at most
    ``max_bytes`` bytes (None: any size); :class:`~spinglass_icl.errors.ConfigError`
    naming ``name`` and the path otherwise (a FIFO would block forever, ``/dev/zero``
    never ends). A missing file is left to the caller (FileNotFoundError)."""
    from .errors import ConfigError

    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot read {name} {str(path)!r} ({_reason(exc)})") from None
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise ConfigError(
                f"{name} {str(path)!r} is {kind}, not a regular file; refusing to read it"
            )
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{name} {str(path)!r} is not a regular file; refusing to read it")
    if max_bytes is not None and st.st_size > max_bytes:
        raise ConfigError(
            f"{name} {str(path)!r} is {st.st_size:,} bytes, more than the "
            f"{max_bytes:,} bytes a {name} may have; refusing to read it"
        )
    return path


# ------------------------------------------------------ failed writes
_DISK_ERRNOS = {
    errno.ENOSPC: "no space left on device (the disk is full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}


def disk_problem(path: str | Path, exc: BaseException | None = None) -> str | None:
    """Why writing under ``path`` fails for lack of room or a read-only file system,
    or None: from the error's errno if it has one, else from the file system itself
    (``statvfs``: no free block left, or mounted read-only) -- libraries such as
    HDF5 or SQLite report a full disk in their own words ("HDF error", "disk I/O
    error")."""
    code = getattr(exc, "errno", None)
    if code in _DISK_ERRNOS:
        return _DISK_ERRNOS[code]
    path = Path(path)
    base = next((a for a in (path, *path.absolute().parents) if a.exists()), None)
    if base is None:
        return None
    try:
        vfs = os.statvfs(base)
    except OSError:
        return None
    if vfs.f_flag & os.ST_RDONLY:
        return _DISK_ERRNOS[errno.EROFS]
    if vfs.f_bavail * vfs.f_frsize < (64 << 10):  # under one SQLite/HDF5 write's worth
        return _DISK_ERRNOS[errno.ENOSPC]
    return None


def store_write_error(what: str, path: str | Path, exc: BaseException) -> OutputError:
    """The one-line error of a failed write to SQLite store ``path`` (``what``: "sweep
    store", "trial store"): a full disk, a quota or a read-only file system named as
    such (SQLite says "database or disk is full" or "disk I/O error"), else SQLite's
    words; in both cases the path, and that the rows written before are kept."""
    why = disk_problem(path, exc) or " ".join(str(exc).split())
    return OutputError(
        f"{what} {str(path)!r} cannot be written: {why}; the rows stored before are "
        "kept -- free space (or fix the file system) and rerun to resume"
    )


def _why_not(folder: Path) -> str:
    """`` (read-only file system)`` where that is why ``folder`` cannot be written."""
    why = disk_problem(folder)
    return f" ({why})" if why == _DISK_ERRNOS[errno.EROFS] else ""


def _write_failure(path: Path, exc: BaseException) -> str:
    why = disk_problem(path, exc) or (
        _reason(exc) if isinstance(exc, OSError) else " ".join(str(exc).split())
    )
    return f"cannot write {str(path)!r}: {why}"


def is_sqlite(path: str | Path) -> bool:
    """Whether ``path`` is an existing regular file starting with the SQLite magic bytes
    (a FIFO or device is never opened: reading one could block or never end)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
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


def check_output_dir(
    path: str | Path, name: str = "out", create: bool = True, outputs: Iterable[str] = ()
) -> Path:
    """Check that folder ``path`` can be written, and create it (with parents) if
    ``create``; with ``create=False`` nothing is written (call again later to create).

    Raises :class:`~spinglass_icl.errors.OutputError` naming ``name`` and the path when
    ``path`` is an existing file, lies under a file, or cannot be created or written,
    or when one of the file names ``outputs`` (what the command will write there)
    exists and was not written by the package (unless :func:`overwrite` allows it) --
    so a command refuses before any work, not after it.
    """
    path = Path(path)
    for out_name in outputs:
        _check_owner(path / out_name)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{name} must be a folder, but {str(path)!r} is a file")
    bad = _first_file_ancestor(path)
    if bad is not None:
        raise OutputError(f"{name} {str(path)!r} lies under {str(bad)!r}, which is a file")
    if not create:
        base = next((a for a in (path.absolute(), *path.absolute().parents) if a.exists()), None)
        if base is not None and not os.access(base, os.W_OK | os.X_OK):
            raise OutputError(f"{name}: folder {str(base)!r} is not writable{_why_not(base)}")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{name}: cannot create folder {str(path)!r} ({_reason(exc)})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{name}: folder {str(path)!r} is not writable{_why_not(path)}")
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
    unwritable folder. Refused unless ``force``: any other existing file the package
    did not write (see :data:`MANIFEST`).
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
        if not (force or _OVERWRITE.get() or is_owned(path)):
            raise OutputError(
                f"{name} {str(path)!r} exists and was not written by spinglass-icl; "
                "pass --force to overwrite it"
            )
    check_output_dir(path.parent if str(path.parent) else Path("."), name=name)
    return path


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


@contextlib.contextmanager
def atomic_path(
    path: str | Path, *, force: bool | None = None, record: bool = True
) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); on success rename it onto
    ``path`` (atomic on POSIX), on any error remove it and leave ``path`` as it was.

    An existing SQLite file at ``path`` is never replaced; any other existing file only
    if the package wrote it (listed in the folder's :data:`MANIFEST`) or ``force``
    (default: :func:`overwrite`'s setting) -- else :class:`OutputError`. ``path`` is
    listed in the manifest before it appears. A write that fails for a full disk, a
    quota or a read-only file system raises :class:`OutputError` saying so. With
    ``record=False`` (a file the user named to be edited in place, such as the README
    whose generated block ``report --readme`` rewrites) the manifest is left alone.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    _check_owner(path, force)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=folder
        )
    except OSError as exc:
        raise OutputError(_write_failure(path, exc)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
        try:
            yield tmp
        except (OutputError, KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a full disk, in any library's words
            why = disk_problem(folder, exc)
            if why is None:
                raise
            raise OutputError(f"cannot write {str(path)!r}: {why}") from None
        if is_sqlite(path):
            raise OutputError(
                f"{str(path)!r} is an SQLite database (a sweep store?); refusing to replace it"
            )
        _check_owner(path, force)  # appeared while we wrote
        if record:
            _record(path)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(_write_failure(path, exc)) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write_text(
    path: str | Path, text: str, *, force: bool | None = None, record: bool = True
) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, force=force, record=record) as tmp:
        tmp.write_text(text)
    return Path(path)
