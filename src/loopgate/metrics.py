"""Prometheus metrics: counted in each process, served at ``GET /metrics`` when ``LOOPGATE_METRICS_TOKEN``
is set (and not counted at all when it is not).

Counts live in plain dicts keyed by label values: the six updates of a chat (its generation, tokens and
provider time, its request and duration) take ~5 us, ~0.6% of its CPU. prometheus_client would need its
multiprocess mode for ``serve --workers N``, which writes every update to an mmap'd file under a lock:
four of those took 20 us (100,000 calls each, measured side by side).

Several processes (``serve --workers N`` and its SQLite writer process) each write what they have counted
to a file of their own in a directory the supervisor made before forking them, replaced atomically at most
once a second; ``/metrics`` adds the other processes' files to its own live counts. A file stays when its
process has gone (a replaced worker), so no counter ever goes down; the supervisor removes the directory
when the server stops, and every counter starts from zero with the next start, as Prometheus expects of a
restarted target.

Label values come from requests (a model name is any string), so each metric keeps at most
``MAX_SERIES`` label sets; any further one is counted under ``other`` in every label.
"""

import asyncio
import bisect
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

_log = logging.getLogger("loopgate.metrics")
MAX_SERIES = 1000
SHARE_INTERVAL = 1.0  # seconds between two snapshots of one process
_SHARE_PREFIX = "loopgate-metrics-"  # then the server's pid
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Labels = tuple[str, ...]

_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metric:
    """A counter, or a histogram when it has ``buckets``. Hashed by identity: each update looks its series
    up by metric, and hashing the fields every time would cost more than the update."""

    __slots__ = ("buckets", "help", "labels", "name")

    def __init__(self, name: str, help: str, labels: Labels = (), buckets: tuple[float, ...] = ()) -> None:
        self.name = name
        self.help = help
        self.labels = labels
        self.buckets = buckets


HTTP_REQUESTS = Metric(
    "loopgate_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ("method", "route", "code"),
)
HTTP_DURATION = Metric(
    "loopgate_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer (a stream's whole length).",
    ("method", "route"),
    _REQUEST_BUCKETS,
)
GENERATIONS = Metric(
    "loopgate_generations_total",
    "Generations logged, one per sample: complete, error (the provider failed) or partial (the client left).",
    ("provider", "model", "status"),
)
TOKENS = Metric(
    "loopgate_generation_tokens_total",
    "Tokens of generations: the prompt once per provider call, the output per sample.",
    ("provider", "model", "type"),
)
PROVIDER_DURATION = Metric(
    "loopgate_provider_duration_seconds",
    "Time a provider call took, retries included (for a stream, until its last event).",
    ("provider", "model"),
    _REQUEST_BUCKETS,
)
PROVIDER_RETRIES = Metric(
    "loopgate_provider_retries_total", "Provider requests retried after a failure.", ("provider",)
)
LOG_COMMITS = Metric("loopgate_log_commits_total", "Group commits of logs (transactions that committed).")
LOGS_COMMITTED = Metric("loopgate_logs_committed_total", "Logs committed to the database.")
LOG_WRITE_FAILURES = Metric(
    "loopgate_log_write_failures_total", "Requests whose logs the database refused (answered with an error)."
)
COMMIT_DURATION = Metric(
    "loopgate_log_commit_duration_seconds",
    "Time a group commit took, its fsync included.",
    (),
    _COMMIT_BUCKETS,
)
JUDGMENTS = Metric(
    "loopgate_evaluator_judgments_total",
    "Results of the evaluators loopgate runs in evaluations: a value, or an error.",
    ("evaluator_type", "outcome"),
)
ALL = (
    HTTP_REQUESTS,
    HTTP_DURATION,
    GENERATIONS,
    TOKENS,
    PROVIDER_DURATION,
    PROVIDER_RETRIES,
    LOG_COMMITS,
    LOGS_COMMITTED,
    LOG_WRITE_FAILURES,
    COMMIT_DURATION,
    JUDGMENTS,
)
_BY_NAME = {metric.name: metric for metric in ALL}


class Registry:
    """One process's counts. A counter's value is ``[total]``; a histogram's is the count in each bucket
    (not cumulative), the count above the last one, then the sum."""

    def __init__(self) -> None:
        self.series: dict[Metric, dict[Labels, list[float]]] = {metric: {} for metric in ALL}
        self.changes = 0

    def _values(self, metric: Metric, labels: Labels) -> list[float]:
        series = self.series[metric]
        values = series.get(labels)
        if values is None:
            if len(series) >= MAX_SERIES:
                labels = ("other",) * len(labels)
                values = series.get(labels)
            if values is None:
                values = series[labels] = [0.0] * (len(metric.buckets) + 2 if metric.buckets else 1)
        return values

    def add(self, metric: Metric, labels: Labels = (), amount: float = 1.0) -> None:
        self._values(metric, labels)[0] += amount
        self.changes += 1

    def observe(self, metric: Metric, labels: Labels, value: float) -> None:
        values = self._values(metric, labels)
        values[bisect.bisect_left(metric.buckets, value)] += 1  # a bucket counts values <= its bound
        values[-1] += value
        self.changes += 1

    def merge(self, snapshot: dict[str, list[tuple[Labels, list[float]]]]) -> None:
        """Adds another process's counts (as ``snapshot`` returns them)."""
        for name, entries in snapshot.items():
            metric = _BY_NAME.get(name)
            if metric is None:
                continue
            for labels, values in entries:
                mine = self._values(metric, tuple(labels))
                if len(mine) == len(values):
                    for index, value in enumerate(values):
                        mine[index] += value

    def snapshot(self) -> dict[str, list[tuple[Labels, list[float]]]]:
        # dict.copy and list copies are single steps under the GIL: the SQLite writer thread may be counting.
        return {
            metric.name: [(labels, list(values)) for labels, values in series.copy().items()]
            for metric, series in self.series.items()
        }


_registry: Registry | None = None
_share_dir: Path | None = None


def enable(share_dir: Path | None = None) -> None:
    """Start counting in this process (and in the processes it forks from now on). ``share_dir``: where
    the processes of one ``serve --workers N`` leave their counts for each other."""
    global _registry, _share_dir
    if _registry is None:
        _registry = Registry()
    if share_dir is not None:
        _share_dir = share_dir


# -- what the server counts -------------------------------------------------------------------------------


def http_request(method: str, route: str, code: str, seconds: float) -> None:
    if _registry is None:
        return
    _registry.add(HTTP_REQUESTS, (method, route, code))
    _registry.observe(HTTP_DURATION, (method, route), seconds)


def generation(
    provider: str,
    model: str,
    status: str,
    *,
    first_sample: bool,
    prompt_tokens: int | None,
    output_tokens: int | None,
    seconds: float | None,
    retries: int | None,
) -> None:
    """One sample's log. The provider call's own figures (its prompt, time and retries) count with the
    first sample only: ``num_samples=3`` is one call. A failed call's tokens are not counted: its log holds
    loopgate's estimate of the prompt, not what the provider used."""
    if _registry is None:
        return
    registry = _registry
    registry.add(GENERATIONS, (provider, model, status))
    if status == "error":
        prompt_tokens = output_tokens = None
    if output_tokens:
        registry.add(TOKENS, (provider, model, "output"), output_tokens)
    if first_sample:
        provider_call(provider, model, prompt_tokens=prompt_tokens, seconds=seconds, retries=retries)


def provider_call(
    provider: str,
    model: str,
    *,
    prompt_tokens: int | None,
    seconds: float | None,
    retries: int | None,
    output_tokens: int | None = None,
) -> None:
    """A provider call's own figures: a generation's (with its first sample, above), or one loopgate makes
    without a log of its own (an llm evaluator's judgment, with its output tokens)."""
    if _registry is None:
        return
    registry = _registry
    if prompt_tokens:
        registry.add(TOKENS, (provider, model, "prompt"), prompt_tokens)
    if output_tokens:
        registry.add(TOKENS, (provider, model, "output"), output_tokens)
    if seconds is not None:
        registry.observe(PROVIDER_DURATION, (provider, model), seconds)
    if retries:
        registry.add(PROVIDER_RETRIES, (provider,), retries)


def judgment(evaluator_type: str, *, failed: bool) -> None:
    if _registry is not None:
        _registry.add(JUDGMENTS, (evaluator_type, "error" if failed else "value"))


def log_commit(logs: int, seconds: float) -> None:
    """A transaction of the log writer that committed ``logs`` logs."""
    if _registry is None:
        return
    _registry.add(LOG_COMMITS)
    _registry.add(LOGS_COMMITTED, (), logs)
    _registry.observe(COMMIT_DURATION, (), seconds)


def log_write_failure() -> None:
    """A request whose logs could not be committed, even in a transaction of their own."""
    if _registry is not None:
        _registry.add(LOG_WRITE_FAILURES)


# -- sharing between processes ----------------------------------------------------------------------------

_own_file: tuple[int, Path] | None = None  # (pid, file): a forked child picks a file of its own
_last_shared = (0.0, -1)  # (monotonic time, registry.changes) of the last snapshot written
_share_failed = False


def _file() -> Path:
    global _own_file
    assert _share_dir is not None
    if _own_file is None or _own_file[0] != os.getpid():
        # Not the pid alone: pids are reused, and a new process must not overwrite a gone one's counts.
        _own_file = (os.getpid(), _share_dir / f"{os.getpid()}-{os.urandom(4).hex()}.json")
    return _own_file[1]


def share(*, every: float = 0.0) -> None:
    """Write this process's counts for the others, if they changed and ``every`` seconds have passed."""
    global _last_shared, _share_failed
    if _registry is None or _share_dir is None:
        return
    now = time.monotonic()
    if _registry.changes == _last_shared[1] or now - _last_shared[0] < every:
        return
    _last_shared = (now, _registry.changes)
    target = _file()
    temporary = target.with_suffix(".tmp")
    try:
        # Made again if something (a cleaner of /tmp) removed it: the counts are all in memory.
        _share_dir.mkdir(mode=0o700, exist_ok=True)
        temporary.write_bytes(orjson.dumps(_registry.snapshot()))
        temporary.replace(target)
    except OSError as exc:
        # Once a second from every process, it would flood the log: the first failure says it all.
        if not _share_failed:
            _share_failed = True
            _log.warning("could not share this process's metrics in %s: %s", _share_dir, exc)
    else:
        _share_failed = False


@contextlib.contextmanager
def shared_directory() -> Iterator[None]:
    """Counting on, with a directory of its own for the processes this one forks while it lasts. One that
    a server killed outright left behind (named after its pid) is removed first."""
    import shutil  # here: only a server with several processes and metrics on needs them
    import tempfile

    temporary = Path(tempfile.gettempdir())
    for stale in temporary.glob(f"{_SHARE_PREFIX}*-*"):
        pid = stale.name[len(_SHARE_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and stale.stat().st_uid == os.getuid():
            shutil.rmtree(stale, ignore_errors=True)
    directory = Path(tempfile.mkdtemp(prefix=f"{_SHARE_PREFIX}{os.getpid()}-"))
    enable(directory)
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


async def share_periodically() -> None:
    """In each worker of ``serve --workers N``, for as long as it serves (cancelled at shutdown)."""
    try:
        while True:
            await asyncio.sleep(SHARE_INTERVAL)
            share()
    finally:
        share()


def sharing() -> bool:
    return _registry is not None and _share_dir is not None


# -- the exposition ---------------------------------------------------------------------------------------


def gather() -> Registry:
    """This process's live counts plus what every other process of the server has shared."""
    total = Registry()
    if _registry is not None:
        total.merge(_registry.snapshot())
    if _share_dir is not None:
        own = _own_file[1] if _own_file is not None and _own_file[0] == os.getpid() else None
        for path in sorted(_share_dir.glob("*.json")):
            if path == own:
                continue
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                total.merge(orjson.loads(path.read_bytes()))
    return total


def render(registry: Registry) -> bytes:
    """Prometheus's text format (version 0.0.4)."""
    lines: list[str] = []
    for metric, series in registry.series.items():
        kind = "histogram" if metric.buckets else "counter"
        lines += [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} {kind}"]
        for labels, values in sorted(series.items()):
            pairs = [f'{name}="{_escape(value)}"' for name, value in zip(metric.labels, labels, strict=True)]
            if not metric.buckets:
                lines.append(f"{metric.name}{_braces(pairs)} {_number(values[0])}")
                continue
            cumulative = 0.0
            for bound, count in zip([*map(_number, metric.buckets), "+Inf"], values[:-1], strict=True):
                cumulative += count
                bucket = _braces([*pairs, f'le="{bound}"'])
                lines.append(f"{metric.name}_bucket{bucket} {_number(cumulative)}")
            lines.append(f"{metric.name}_sum{_braces(pairs)} {_number(values[-1])}")
            lines.append(f"{metric.name}_count{_braces(pairs)} {_number(cumulative)}")
    return ("\n".join(lines) + "\n").encode()


def _braces(pairs: list[str]) -> str:
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)
