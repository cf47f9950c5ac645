"""Prefixed ids generated in-process (prefix + "_" + 21 url-safe alphanumerics), as Humanloop's were.

Generating ids locally lets a response carry them before any database round trip.

Randomness is drawn from the OS 4 KiB at a time and turned into alphabet characters in C
(``bytes.translate``): one ``os.urandom`` per ~190 ids instead of one per id. That matters beyond the
syscall: ``os.urandom`` releases the GIL, and on a busy server every release lets another thread take the
interpreter for up to a switch interval in the middle of a request.
"""

import os
import string
import threading

_ALPHABET = (string.ascii_letters + string.digits).encode()
_LENGTH = 21
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


def new_id(prefix: str) -> str:
    return prefix + "_" + _characters.take(_LENGTH)


PROJECT = "pr"
LOG = "data"
SESSION = "sesh"
MODEL_CONFIG = "config"
ORGANIZATION = "tm"
API_KEY = "key"
ENVIRONMENT = "env"
