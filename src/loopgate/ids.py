"""Prefixed ids generated in-process (prefix + "_" + 21 url-safe alphanumerics), as Humanloop's were.

Generating ids locally lets a response carry them before any database round trip.
"""

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(21))


PROJECT = "pr"
LOG = "data"
SESSION = "sesh"
MODEL_CONFIG = "config"
ORGANIZATION = "tm"
API_KEY = "key"
ENVIRONMENT = "env"
