"""The SQLite layer under every resumable store: the sweep store
(:mod:`spinglass_icl.sweep.store`) and the trial store (:mod:`spinglass_icl.trials`).

One place decides, for both:

* **recognition** (:func:`validate_store`): a store is a regular file with the SQLite
  magic bytes and a ``meta(key, value)`` table holding ``app`` (which store) and
  ``schema`` (its version). Anything else -- random bytes, a corrupt file, someone
  else's database, a named pipe, another schema -- raises
  :class:`~spinglass_icl.errors.ConfigError` naming the path, and is never written to;
* **creation** (:func:`create_store`): a new store is built under a private name and
  linked into place, so a process starting at the same moment never sees half of one,
  and the leftover of a killed creation is removed by the next one;
* **connections** (:func:`connect`, :func:`connect_readonly`): WAL journal, a 60 s busy
  timeout (several processes may write one store), a write check up front; reads work
  on read-only files and file systems and leave no ``-wal``/``-shm`` files behind;
* **failed writes** (:func:`write_error`): a full disk, a quota or a read-only file
  system named as such, with the path;
* **keys and values**: :func:`canonical_json` (the text that is hashed into keys) and
  :func:`sha256_hex`; arrays as ``numpy.save`` bytes (:func:`array_to_blob`), dicts
  of arrays as ``numpy.savez`` bytes (:func:`pack_arrays`), never pickles.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, OutputError
from .safeio import (
    SQLITE_MAGIC,
    check_input_file,
    check_output_dir,
    disk_problem,
    store_write_error,
)

__all__ = [
    "BUSY_TIMEOUT_S",
    "array_to_blob",
    "blob_to_array",
    "canonical_json",
    "connect",
    "connect_readonly",
    "create_store",
    "pack_arrays",
    "read_meta",
    "sha256_hex",
    "unpack_arrays",
    "validate_store",
    "write_error",
]

#: seconds a connection waits for another writer's lock before giving up
BUSY_TIMEOUT_S = 60.0


# ------------------------------------------------------------ keys and values
def canonical_json(obj: Any, *, default: Callable | None = None, allow_nan: bool = False) -> str:
    """JSON with sorted keys and no spaces: the text hashed into keys. ``default`` and
    ``allow_nan`` as :func:`json.dumps` (the trial store's keys stringify other objects
    and allow NaN; the sweep's refuse both)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), allow_nan=allow_nan, default=default
    )


def sha256_hex(text: str) -> str:
    """SHA-256 (hex) of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode()).hexdigest()


def array_to_blob(a: Any) -> bytes | None:
    """An array as ``numpy.save`` bytes (None stays None); never a pickle."""
    if a is None:
        return None
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def blob_to_array(b: bytes | None) -> np.ndarray | None:
    """The array of :func:`array_to_blob` bytes (None stays None)."""
    if b is None:
        return None
    return np.load(io.BytesIO(b), allow_pickle=False)


def pack_arrays(values: dict[str, Any]) -> bytes:
    """A dict of arrays as ``numpy.savez`` bytes; never a pickle."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in values.items()})
    return buf.getvalue()


def unpack_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """The dict of :func:`pack_arrays` bytes."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ---------------------------------------------------------------- recognition
def read_meta(path: Path, query: str = "mode=ro") -> tuple[set[str], dict[str, str]]:
    """``(tables, meta)`` of the SQLite file ``path``, read through URI ``query``."""
    con = sqlite3.connect(f"{Path(path).resolve().as_uri()}?{query}", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        meta = {}
        if "meta" in tables:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    finally:
        con.close()
    return tables, meta


def validate_store(path: str | Path, *, app: str, schema: str, tables: set[str], what: str) -> None:
    """Raise :class:`ConfigError` naming ``path`` unless it is a store of ``app`` with
    schema ``schema`` and at least ``tables``; reads only (never writes)."""
    path = Path(path)
    check_input_file(path, what, max_bytes=None)  # a FIFO or device: refused, unread
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {exc}") from None
    if head != SQLITE_MAGIC:
        raise ConfigError(
            f"{str(path)!r} is not a {what} (not an SQLite database); "
            "refusing to touch it -- pass a new file name"
        )
    try:
        try:
            have, meta = read_meta(path, "mode=ro")
        except sqlite3.OperationalError:  # a WAL store on a read-only file system
            have, meta = read_meta(path, "mode=ro&immutable=1")
    except sqlite3.DatabaseError as exc:
        raise ConfigError(
            f"{str(path)!r} is not a readable {what} ({exc}); refusing to touch it"
        ) from None
    if meta.get("app") != app or not tables <= have:
        raise ConfigError(
            f"{str(path)!r} is an SQLite database but not a spinglass-icl {what} "
            f"(tables: {', '.join(sorted(have)) or 'none'}); refusing to touch it"
        )
    if meta.get("schema") != schema:
        raise ConfigError(
            f"{str(path)!r} has {what} schema {meta.get('schema')!r}; "
            f"this version reads schema {schema!r}"
        )


def init_schema(path: Path, schema_sql: str, app: str, schema: str) -> None:
    """Write an empty store (WAL journal, ``schema_sql``, meta with the package version
    that made it, ``created_version``) to the new file ``path``."""
    from . import __version__

    con = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = WAL")
        con.executescript(schema_sql)
        con.execute("INSERT OR IGNORE INTO meta VALUES ('app', ?)", (app,))
        con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (schema,))
        con.execute("INSERT OR IGNORE INTO meta VALUES ('created_version', ?)", (__version__,))
    finally:
        con.close()


# ------------------------------------------------------------------- creation
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_stale_new(path: Path) -> None:
    """Remove ``.<name>.<pid>.*.new`` files (and their -wal/-shm) of dead creators."""
    for f in path.parent.glob(f".{path.name}.*.new*"):
        parts = f.name[len(path.name) + 2 :].split(".")
        if not parts or not parts[0].isdigit():
            continue
        if not _pid_alive(int(parts[0])):
            f.unlink(missing_ok=True)


def create_store(path: str | Path, init: Callable[[Path], None], what: str) -> None:
    """Create the store ``path`` (if it does not exist) with ``init(new_file)``.

    The store is built under a private name holding our pid and hard-linked into place:
    the link either creates ``path`` complete or fails because another process just did
    (then theirs is used); the leftover of a killed creation (dead pid) is removed.
    A full disk or read-only file system raises :class:`OutputError` saying so.
    """
    path = Path(path)
    if path.exists():
        return
    check_output_dir(path.parent, name=what.split()[-1])  # under a file, read-only, ...
    _remove_stale_new(path)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".new", dir=path.parent
        )
    except OSError as exc:
        raise ConfigError(
            f"{what} {str(path)!r} cannot be created ({disk_problem(path, exc) or exc})"
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()  # sqlite creates the file itself
        try:
            init(tmp)
        except sqlite3.OperationalError as exc:  # a full disk, ...
            raise write_error(what, path, exc) from None
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError:  # no hard links here (some file systems): create in place
            if not path.exists():
                init(path)
    finally:
        for f in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            f.unlink(missing_ok=True)


# ---------------------------------------------------------------- connections
def connect(path: str | Path, what: str) -> sqlite3.Connection:
    """A read-write connection (autocommit; callers open their transactions): WAL,
    :data:`BUSY_TIMEOUT_S`, and a check that the store can be written at all (a
    read-only file, folder or file system raises :class:`ConfigError` saying which)."""
    path = Path(path)
    con = None
    try:
        con = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        con.execute("BEGIN IMMEDIATE")  # can we write? (read-only file or folder)
        con.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if con is not None:
            con.close()
        why = disk_problem(path, exc) or exc
        raise ConfigError(
            f"{what} {str(path)!r} cannot be written ({why}): check the permissions "
            "of the file and its folder, or copy it somewhere writable"
        ) from None
    return con


def connect_readonly(path: str | Path, what: str, probe: str) -> sqlite3.Connection:
    """A connection that never writes (status, export, lookups), checked by running the
    query ``probe``.

    Where the store and its folder can be written, a plain connection with
    ``query_only``: as the last connection it removes the ``-wal`` and ``-shm`` files
    when it closes (a ``mode=ro`` connection leaves them behind, empty). Elsewhere
    ``mode=ro``, then ``immutable=1`` (a WAL store on a read-only file system)."""
    path = Path(path)
    folder = path.resolve().parent
    if os.access(path, os.R_OK | os.W_OK) and os.access(folder, os.W_OK | os.X_OK):
        con = None
        try:
            con = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
            con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            con.execute("PRAGMA query_only = 1")
            con.execute(probe).fetchone()
            return con
        except sqlite3.Error:
            if con is not None:
                con.close()
    uri = path.resolve().as_uri()
    last = None
    for query in ("mode=ro", "mode=ro&immutable=1"):
        try:
            con = sqlite3.connect(
                f"{uri}?{query}", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
            )
            try:
                con.execute(probe).fetchone()
            except sqlite3.OperationalError:
                con.close()
                raise
            return con
        except sqlite3.OperationalError as exc:
            last = exc
    raise ConfigError(f"cannot read {what} {str(path)!r} ({last})")


def write_error(what: str, path: str | Path, exc: BaseException) -> OutputError:
    """The one-line error of a failed write to a store (see
    :func:`~spinglass_icl.safeio.store_write_error`)."""
    return store_write_error(what, path, exc)
