"""What keeps a long-running server's RSS from creeping up with load (docs/benchmarks.md, the RSS soak): the
SQLite log writer keeps only a few prepared statements, and ``runtime.tune`` caps glibc's malloc arenas."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loopgate.store.db import migrate
from loopgate.store.writers.sqlite import SQLiteLogWriter

STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
_MEMORY_USED, _PAGECACHE_OVERFLOW = 0, 2  # sqlite3_status64 operations


def _libsqlite3() -> Any:
    """The SQLite library the ``sqlite3`` module uses, through ctypes; skips where it is not the same copy."""
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        pytest.skip("no shared libsqlite3")
    lib = ctypes.CDLL(name)
    lib.sqlite3_libversion.restype = ctypes.c_char_p
    if lib.sqlite3_libversion().decode() != sqlite3.sqlite_version:
        pytest.skip("the sqlite3 module links another SQLite")
    lib.sqlite3_status64.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int64),
        ctypes.POINTER(ctypes.c_int64),
        ctypes.c_int,
    ]
    return lib


def _statement_memory(lib: Any) -> int:
    """Bytes SQLite has allocated in this process, page caches left out."""
    values = []
    for operation in (_MEMORY_USED, _PAGECACHE_OVERFLOW):
        current, highwater = ctypes.c_int64(), ctypes.c_int64()
        lib.sqlite3_status64(operation, ctypes.byref(current), ctypes.byref(highwater), 0)
        values.append(current.value)
    return values[0] - values[1]


def _log(log_id: str) -> dict[str, Any]:
    return {
        "id": log_id,
        "org_id": "tm_x",
        "created_at": STAMP,
        "updated_at": STAMP,
        "save": True,
        "status": "complete",
        "sample_index": 0,
        "output": "o",
        "payload": '{"inputs": {}}',
    }


async def test_sqlite_writer_keeps_few_prepared_statements(tmp_path: Path) -> None:
    """Each statement size is its own multi-row INSERT (~20 KiB + 2.7 KiB per row once prepared). With one
    statement per batch size and sqlite3's default cache of 128, batches of 1..80 rows left ~10 MB
    prepared; in power-of-two pieces they need seven statements (~0.45 MB)."""
    lib = _libsqlite3()
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    await asyncio.to_thread(migrate, url)
    writer = SQLiteLogWriter(url, synchronous="OFF")
    await writer.start()
    try:
        await writer.write_logs([_log("lg_first")], {})  # schema loaded, the 1-row statement prepared
        before = _statement_memory(lib)
        for rows in range(1, 81):  # one at a time: each batch is exactly one INSERT of `rows` rows
            await writer.write_logs([_log(f"lg_{rows}_{i}") for i in range(rows)], {})
        grown = _statement_memory(lib) - before
    finally:
        await writer.stop()
    assert writer.commits == 81
    assert grown < 1_000_000, f"{grown:,} bytes of prepared statements kept"


_ARENAS = """
import ctypes, json, sys, tempfile, threading
from loopgate import runtime
if sys.argv[1] == "tune":
    runtime.tune()
threads = 9
barrier = threading.Barrier(threads + 1)
def work():
    held = [bytearray(100_000) for _ in range(4)]  # above pymalloc's limit, below mmap's: a malloc arena
    barrier.wait()
    barrier.wait()
for _ in range(threads):
    threading.Thread(target=work).start()
barrier.wait()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    stream = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    arenas = open(out.name).read().count("<heap nr=")
barrier.wait()
print(json.dumps(arenas))
"""


def _arenas_with_nine_threads(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    done = subprocess.run(
        [sys.executable, "-c", _ARENAS, mode], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    arenas: int = json.loads(done.stdout)
    return arenas


def test_tune_caps_malloc_arenas() -> None:
    if not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"):
        pytest.skip("glibc only")
    assert _arenas_with_nine_threads("default") >= 8  # glibc: one arena per new thread, up to 8 per core
    assert _arenas_with_nine_threads("tune") <= 4
