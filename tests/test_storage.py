"""The one SQLite layer under the sweep store and the trial store
(:mod:`spinglass_icl.storage`): both recognise, refuse and read files the same way."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from spinglass_icl import storage
from spinglass_icl.errors import ConfigError
from spinglass_icl.sweep import create_or_open_store, open_store
from spinglass_icl.trials import TrialStore, chunk_key

OPENERS = {
    "sweep store": lambda p: open_store(p),
    "trial store": lambda p: TrialStore(p),
}


def _bad_files(tmp_path):
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE t (x)")
    con.close()
    text = tmp_path / "notes.sqlite"
    text.write_text("my notes\n")
    files = {"corrupt": corrupt, "foreign": foreign, "text": text}
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.sqlite"
        os.mkfifo(fifo)
        files["fifo"] = fifo
    return files


@pytest.mark.parametrize("what", list(OPENERS))
def test_both_stores_refuse_what_is_not_theirs_and_leave_it_untouched(tmp_path, what):
    for kind, path in _bad_files(tmp_path).items():
        before = None if kind == "fifo" else path.read_bytes()
        with pytest.raises(ConfigError) as ei:
            OPENERS[what](path)
        assert str(path) in str(ei.value), (kind, str(ei.value))
        assert what in str(ei.value) or kind != "foreign", str(ei.value)
        if before is not None:
            assert path.read_bytes() == before, kind
    # each refuses the other's store: the app tag decides
    sweep = tmp_path / "s.sqlite"
    create_or_open_store(sweep).close()
    trial = tmp_path / "t.sqlite"
    TrialStore(trial)
    other = trial if what == "sweep store" else sweep
    with pytest.raises(ConfigError, match=f"not a spinglass-icl {what}"):
        OPENERS[what](other)


def test_a_trial_store_reads_and_writes_through_the_shared_layer(tmp_path):
    path = tmp_path / "t.sqlite"
    st = TrialStore(path)
    key = chunk_key({"a": 1}, 4, 0, 2)
    assert st.get(key) is None
    st.put(key, {"a": 1}, 4, 0, 2, {"x": np.array([1.0, 2.0])})
    st.put(key, {"a": 1}, 4, 0, 2, {"x": np.array([9.0, 9.0])})  # kept: first one wins
    np.testing.assert_array_equal(TrialStore(path).get(key)["x"], [1.0, 2.0])
    assert len(st) == 1
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(("-wal", "-shm")))
    assert left == []  # every connection closed cleans its journal files
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_keys_and_blobs_round_trip_and_refuse_pickles():
    assert storage.canonical_json({"b": 1, "a": [1.5, "x"]}) == '{"a":[1.5,"x"],"b":1}'
    with pytest.raises(ValueError):
        storage.canonical_json({"a": float("nan")})  # sweep keys: NaN refused
    assert storage.canonical_json({"a": float("nan")}, allow_nan=True) == '{"a":NaN}'
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(storage.blob_to_array(storage.array_to_blob(a)), a)
    assert storage.array_to_blob(None) is None and storage.blob_to_array(None) is None
    d = storage.unpack_arrays(storage.pack_arrays({"x": a, "y": [1, 2]}))
    np.testing.assert_array_equal(d["x"], a)
    with pytest.raises(ValueError):
        storage.array_to_blob(np.array([object()], dtype=object))  # never a pickle
