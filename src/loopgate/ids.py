"""Prefixed ids generated in-process (prefix + "_" + 21 url-safe alphanumerics), as Humanloop's were.

Generating ids locally lets a response carry them before any database round trip.

The first 8 characters are the creation time in milliseconds, in base 62 with digits ordered as ASCII
orders them, so ids sort by creation time; the other 13 are random (77 bits). Random ids put each new log
at a random place in the primary-key index, and once the index outgrows the cache every insert reads and
rewrites a page of its own: with 200,000 logs in the database the SQLite writer spent 152-165 us of CPU per
log with random ids and 107-116 us with these, in 32-row commits (and PostgreSQL's B-tree gains the same
way). The clock only orders; uniqueness comes from the random part.

Randomness is drawn from the OS 4 KiB at a time and turned into alphabet characters in C
(``bytes.translate``): one ``os.urandom`` per ~300 ids instead of one per id. That matters beyond the
syscall: ``os.urandom`` releases the GIL, and on a busy server every release lets another thread take the
interpreter for up to a switch interval in the middle of a request.
"""

import os
import string
import threading
import time

_ALPHABET = (string.ascii_letters + string.digits).encode()
_SORTED = string.digits + string.ascii_uppercase + string.ascii_lowercase  # ASCII order
_TIME_LENGTH = 8  # 62**8 ms: until the year 8888
_RANDOM_LENGTH = 13
_DRAW = 4096
# Byte -> alphabet character. The 8 bytes above 4 x 62 = 248 are dropped rather than wrapped around, so
# every character is equally likely: 21 characters carry 21 x log2(62) = 125 bits.
_TABLE = bytes(_ALPHABET[value % len(_ALPHABET)] for value in range(256))
_REJECTED = bytes(range(len(_ALPHABET) * (256 // len(_ALPHABET)), 256))


class _Characters:
    """A buffer of random alphabet characters, shared by every thread of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._position = 0

    def take(self, count: int) -> str:
        with self._lock:
            end = self._position + count
            if end > len(self._buffer):
                self._buffer = os.urandom(_DRAW).translate(_TABLE, _REJECTED)
                self._position, end = 0, count
            chunk = self._buffer[self._position : end]
            self._position = end
        return chunk.decode("ascii")

    def forget(self) -> None:
        """After a fork the child must not hand out the characters its parent will also use."""
        self._lock = threading.Lock()
        self._buffer = b""
        self._position = 0


_characters = _Characters()
os.register_at_fork(after_in_child=_characters.forget)


class _Clock:
    """The time part of an id, remembered for the millisecond it stands for (many ids share one)."""

    def __init__(self) -> None:
        self._last: tuple[int, str] = (-1, "")

    def text(self) -> str:
        now = time.time_ns() // 1_000_000
        last = self._last
        if last[0] == now:
            return last[1]
        digits = []
        value = now
        for _ in range(_TIME_LENGTH):
            value, digit = divmod(value, 62)
            digits.append(_SORTED[digit])
        text = "".join(reversed(digits))
        self._last = (now, text)  # one tuple: a thread reading it never sees half an update
        return text


_clock = _Clock()


def new_id(prefix: str) -> str:
    return prefix + "_" + _clock.text() + _characters.take(_RANDOM_LENGTH)


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` ids in the order they sort: ids made in one millisecond share their time part and are
    ordered by chance, so the samples of one call would list out of order where ids break a tie."""
    return sorted(new_id(prefix) for _ in range(count))


PROJECT = "pr"
LOG = "data"
SESSION = "sesh"
MODEL_CONFIG = "config"
ORGANIZATION = "tm"
API_KEY = "key"
ENVIRONMENT = "env"
DATASET = "evts"
# v4 documents no prefix for a dataset's rows; "dp" says what they are.
DATAPOINT = "dp"
EVALUATOR = "evfn"
# v4 results name an ``evaluator_version_id``; "evv" is ours (the spec lists no prefix for it).
EVALUATOR_VERSION = "evv"
EVALUATION = "ev"
# v4 gives results no prefix; "evres" says what they are.
EVALUATION_RESULT = "evres"
