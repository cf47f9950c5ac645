"""Summarise a py-spy profile in collapsed-stack form (``py-spy record --format raw``).

    .venv/bin/python bench/profile_summary.py bench/results/profile-<time>.txt [--top 30] [--match loopgate/]

Prints, per thread, the share of samples in each stage of loopgate's request path (the first stage in
``STAGES`` whose marker is on the stack), then per package and per function where each function is on the
stack (inclusive) and where it is the innermost frame (self); ``--match`` keeps only functions whose file
path contains the text. Time spent in C (sqlite, fsync, the garbage collector) is charged to the Python
frame that called it. Threads that only wait (aiosqlite's pool threads) can still show samples: compare
with per-thread CPU from /proc/PID/task/*/stat before reading much into them.
"""

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


# (stage, markers): a sample belongs to the first stage any of whose markers is in one of its frames.
STAGES = [
    ("store: group commit (SQLAlchemy, aiosqlite)", ("GroupCommitWriter._run", "loopgate/store/writer.py")),
    ("store: reads (auth key, project, config)", ("loopgate/store/repository.py",)),
    ("provider: upstream HTTP call", ("loopgate/providers/http_client.py", "Upstream.post", "_stream_once")),
    ("provider: build request / parse answer", ("loopgate/providers/",)),
    ("service: prepare (project, config, template)", ("Preparer.",)),
    ("service: log rows, ids, response body", ("loopgate/service/", "loopgate/ids.py")),
    ("web: send response", ("Response.__call__", "RequestResponseCycle.send", "SSEResponse")),
    (
        "web: request body, validation, auth",
        ("solve_dependencies", "Request.body", "_read_body", "model_validate_json", "authenticate"),
    ),
    ("web: the rest of the ASGI app (routing, middleware)", ("RequestResponseCycle.run_asgi",)),
    ("server: HTTP parsing (uvicorn, httptools)", ("uvicorn/protocols",)),
    ("event loop and the rest", ("",)),
]


def _stage(frames: list[str]) -> str:
    for stage, markers in STAGES:
        if any(marker in frame for marker in markers for frame in frames):
            return stage
    return STAGES[-1][0]


def _function(frame: str) -> str:
    """``name (path/file.py:123)`` -> ``name (path/file.py)``: lines of one function count together."""
    match = _FRAME.match(frame.strip())
    return f"{match['name']} ({match['file']})" if match else frame.strip()


def load(path: Path) -> dict[str, list[tuple[list[str], int]]]:
    """Thread name -> [(frames outermost first, samples)]."""
    threads: dict[str, list[tuple[list[str], int]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread ") else "all"
        body = frames[1:] if frames[0].startswith("thread ") else frames
        threads[thread].append(([_function(f) for f in body], int(count)))
    return threads


def _by_package(own: Counter[str]) -> Counter[str]:
    """Self samples per top-level package (``fastapi/routing.py`` -> ``fastapi``)."""
    packages: Counter[str] = Counter()
    for function, n in own.items():
        match = re.search(r"\(([^()]*)\)$", function)
        path = match[1] if match else function
        packages[path.split("/", 1)[0].removesuffix(".py") if "/" in path else path] += n
    return packages


def summarise(path: Path, *, top: int = 25, match: str | None = None) -> str:
    out = []
    threads = load(path)
    grand = sum(n for stacks in threads.values() for _, n in stacks)
    for thread, stacks in sorted(threads.items(), key=lambda item: -sum(n for _, n in item[1])):
        total = sum(n for _, n in stacks)
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        for frames, n in stacks:
            for function in set(frames):
                inclusive[function] += n
            if frames:
                own[frames[-1]] += n
        out.append(f"== thread {thread}: {total} samples ({total / grand:.0%} of all)")
        stages: Counter[str] = Counter()
        for frames, n in stacks:
            stages[_stage(frames)] += n
        out.append("-- by stage of the request path")
        for stage, _markers in STAGES:
            if stages[stage]:
                out.append(f"{stages[stage] / total:7.1%}  {stage}")
        out.append("-- self, by package")
        for package, n in _by_package(own).most_common(15):
            out.append(f"{n / total:7.1%}  {package}")
        for title, counter in (("inclusive", inclusive), ("self", own)):
            out.append(f"-- {title}")
            shown = 0
            for function, n in counter.most_common():
                if match and match not in function:
                    continue
                out.append(f"{n / total:7.1%}  {function}")
                shown += 1
                if shown >= top:
                    break
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", help="only functions whose file path contains this")
    args = parser.parse_args()
    print(summarise(args.profile, top=args.top, match=args.match))


if __name__ == "__main__":
    main()
