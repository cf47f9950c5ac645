"""Interpreter settings for a long-running server process (measured in bench/, see docs/benchmarks.md).

- ``gc.freeze()`` after start-up moves the ~120,000 objects that imports leave behind out of the collector's
  reach; without it every full collection walks them all (70-110 ms stalls every ~1,000 requests, which
  was the p99 at c=32). A higher generation-0 threshold runs young collections less often.
- A 1 ms switch interval (default 5 ms) lets the log-writer thread get the GIL back promptly from a busy
  event loop, so a group commit is not held up waiting for it.
- At most 4 glibc malloc arenas. glibc gives each new thread an arena of its own, up to 8 per core, and
  keeps them for the life of the process. When the in-process caches expire together, a burst of
  concurrent reads opens up to 15 SQLite connections, each on its own aiosqlite thread: 11 new arenas of
  ~330 KiB (3.6 MiB of RSS) that stayed after the threads had gone. Those threads are idle nearly all the
  time, so sharing arenas costs no measurable CPU. ``MALLOC_ARENA_MAX``, when set, is left to rule.
"""

import gc
import os
import sys

_SWITCH_INTERVAL = 0.001
_GEN0_THRESHOLD = 10_000
_MALLOC_ARENAS = 4
_M_ARENA_MAX = -8  # glibc's malloc.h


def tune() -> None:
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(_GEN0_THRESHOLD, gen1, gen2)
    sys.setswitchinterval(_SWITCH_INTERVAL)
    cap_malloc_arenas(_MALLOC_ARENAS)


def cap_malloc_arenas(arenas: int) -> bool:
    """Limit glibc's malloc arenas for threads started from now on; False where that is not possible (not
    glibc, or ``MALLOC_ARENA_MAX`` / ``GLIBC_TUNABLES`` already decide). glibc fixes the limit the first time
    it needs a 9th arena, so this must run early: the server calls it once start-up is done (4-5 arenas)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    if "glibc.malloc.arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    import ctypes  # ~4 ms, and only here

    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: no arenas to cap
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))
