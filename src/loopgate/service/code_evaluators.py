"""``python`` evaluators, run only where the server allows it (``LOOPGATE_PYTHON_EVALUATORS=true``): each
judgment is the evaluator's ``code`` run in a Python process of its own.

The code defines functions; the last one it defines is called with the log (a LogResponse as a dict) and,
for a ``target_required`` evaluator, the testcase (``{"inputs", "messages", "target"}`` of the datapoint).
What it returns is the result's value; what it raises, or a value of the wrong type, the result's error.

The process is bounded, not sandboxed: it runs as the server's user, with an empty environment (so none
of the server's provider keys or settings), 5 s of CPU, 1 GiB of address space, no file it can write to
(``RLIMIT_FSIZE`` 0) and 10 s of wall time before it is killed; an answer over 1 MiB is refused. What it
prints (its first 64 KiB) becomes the ``stdout`` of the judgment's log. It can still read what the
server's user can read and reach the network, which is why this is off unless the operator trusts every
holder of an API key with running code on the server.
"""

import asyncio
import json
import os
import sys
import time
from typing import Any

from loopgate.service.evaluator_logs import Record
from loopgate.service.judges import JudgmentError, fits
from loopgate.store.evaluations import Judgment

_WALL_SECONDS = 10.0
_MAX_ANSWER = 1 << 20

# Run by ``python -I -c``: the limits first, then the code, with stdout swapped so its prints cannot be
# mistaken for the answer (one JSON object on the real stdout, the prints in it).
_BOOTSTRAP = r"""
import io, json, resource, sys, types
for limit, value in ((resource.RLIMIT_CPU, 5), (resource.RLIMIT_AS, 1 << 30), (resource.RLIMIT_FSIZE, 0)):
    resource.setrlimit(limit, (value, value))
request = json.loads(sys.stdin.read())
answer_to = sys.stdout
sys.stdout = printed = io.StringIO()

def answer(**fields):
    answer_to.write(json.dumps({**fields, "stdout": printed.getvalue()[:65536]}))
    answer_to.flush()
    raise SystemExit(0)

namespace = {"__name__": "__evaluator__"}
try:
    exec(compile(request["code"], "<evaluator>", "exec"), namespace)
except BaseException as exc:
    answer(error=f"The code did not run: {type(exc).__name__}: {exc}")
functions = [
    value for value in namespace.values()
    if isinstance(value, types.FunctionType) and value.__module__ == "__evaluator__"
]
if not functions:
    answer(error="The code defines no function to call")
try:
    value = functions[-1](*request["arguments"])
except BaseException as exc:
    answer(error=f"{type(exc).__name__}: {exc}")
try:
    json.dumps(value)
except (TypeError, ValueError):
    answer(error=f"The function returned a {type(value).__name__}, which is not JSON")
answer(value=value)
"""


async def run_code(code: str, arguments: list[Any], record: Record) -> Any:
    """What the code's last function returns for ``arguments`` (JudgmentError: why there is nothing);
    ``record`` gets what it printed and how long it took."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        _BOOTSTRAP,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={"PATH": os.defpath},
        cwd="/",
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        async with asyncio.timeout(_WALL_SECONDS):
            process.stdin.write(json.dumps({"code": code, "arguments": arguments}).encode())
            await process.stdin.drain()
            process.stdin.close()
            answer = b""
            while len(answer) <= _MAX_ANSWER and (chunk := await process.stdout.read(1 << 16)):
                answer += chunk
            if len(answer) <= _MAX_ANSWER:
                await process.wait()
    except TimeoutError:
        raise JudgmentError(f"The code ran for more than {_WALL_SECONDS:g} s") from None
    except (BrokenPipeError, ConnectionResetError):
        answer = b""
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    record.seconds = time.perf_counter() - started
    if len(answer) > _MAX_ANSWER:
        raise JudgmentError("The code's answer is over 1 MiB")
    if process.returncode != 0 or not answer:
        raise JudgmentError(f"The code's process ended without an answer (exit status {process.returncode})")
    found = _storable(json.loads(answer))
    record.stdout = found.get("stdout") or None
    if "error" in found:
        raise JudgmentError(str(found["error"]))
    return found["value"]


def _storable(value: Any) -> Any:
    """The answer with text every store can hold: the code may return, raise or print a lone surrogate
    (``"\\udc00"``, which no UTF-8 encoder takes) or a NUL (which PostgreSQL's text cannot hold): both are
    replaced by U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace").replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


def checked(value: Any, return_type: str) -> Judgment:
    """The code's value as a result of ``return_type``, or JudgmentError saying what it returned instead."""
    if fits(value, return_type):
        result: Judgment = value
        return result
    raise JudgmentError(
        f"The evaluator returns {return_type}, but the code returned a {type(value).__name__}: {value!r:.200}"
    )
