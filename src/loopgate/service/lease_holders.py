"""Names for the processes that hold a lease in the database (the OTLP export's, an evaluation run's), and
how to tell that a holder on this host is gone without waiting out its lease."""

import os
import secrets
import socket

_HOST = socket.gethostname()


def new_holder() -> str:
    """``host:pid:token``: unique per holder, even for two holders in one process."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_gone(holder: str) -> bool:
    """A holder that was a process of this host which no longer runs."""
    parts = holder.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's): alive
        return False
    return False
