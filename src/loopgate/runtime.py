"""Interpreter settings for a long-running server process (measured in bench/, see docs/benchmarks.md).

- ``gc.freeze()`` after start-up moves the ~120,000 objects that imports leave behind out of the collector's
  reach; without it every full collection walks them all (70-110 ms stalls every ~1,000 requests, which
  was the p99 at c=32). A higher generation-0 threshold runs young collections less often.
- A 1 ms switch interval (default 5 ms) lets the log-writer thread get the GIL back promptly from a busy
  event loop, so a group commit is not held up waiting for it.
"""

import gc
import sys

_SWITCH_INTERVAL = 0.001
_GEN0_THRESHOLD = 10_000


def tune() -> None:
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(_GEN0_THRESHOLD, gen1, gen2)
    sys.setswitchinterval(_SWITCH_INTERVAL)
