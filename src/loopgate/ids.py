"""Prefixed ids generated in-process (prefix + "_" + 21 url-safe alphanumerics), as Humanloop's were.

Generating ids locally lets a response carry them before any database round trip.
"""

import os
import string

_ALPHABET = string.ascii_letters + string.digits
_BASE = len(_ALPHABET)
_LENGTH = 21


def new_id(prefix: str) -> str:
    # One 128-bit draw from the OS, written in base 62: 21 digits hold 2**125 values, so ids stay
    # unguessable, and it costs one syscall instead of one per character.
    number = int.from_bytes(os.urandom(16), "big")
    digits = []
    for _ in range(_LENGTH):
        number, digit = divmod(number, _BASE)
        digits.append(_ALPHABET[digit])
    return prefix + "_" + "".join(digits)


PROJECT = "pr"
LOG = "data"
SESSION = "sesh"
MODEL_CONFIG = "config"
ORGANIZATION = "tm"
API_KEY = "key"
ENVIRONMENT = "env"
