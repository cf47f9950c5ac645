"""The summary table: one row per figure, direct vs through loopgate, with the benchmark issue's targets."""

import argparse
from typing import Any

from fixtures import DOOR, LOOPGATE

TARGETS = {
    "added_p50_ms": 0.5,
    "added_p99_ms": 1.0,
    "rps_c32": 3000.0,
    "ttft_added_ms": 1.0,
    "rss_growth_pct": 10.0,
    "ready_s": 1.0,
}


def summarize(r: dict[str, Any], args: argparse.Namespace) -> tuple[list[list[str]], dict[str, Any]]:
    """The table's rows (metric, direct, through loopgate, added or ratio, target, met) and the verdicts."""
    p = r["phases"]
    rows: list[list[str]] = []
    verdicts: dict[str, Any] = {}

    def add(metric: str, direct: str = "", through: str = "", delta: str = "", target: str = "") -> None:
        rows.append([metric, direct, through, delta, target, ""])

    def judge(name: str, value: float | None, ok: bool | None) -> None:
        verdicts[name] = {"value": value, "ok": ok}
        rows[-1][5] = "-" if ok is None else ("yes" if ok else "NO")

    def ms(value: float) -> str:
        return f"{value:.3f} ms"

    for kind, title in (("plain", "latency"), ("stream", "stream TTFT")):
        d, lg = p[f"c1_{kind}_direct"], p[f"c1_{kind}_loopgate"]
        for pct in (50, 99):
            key = f"{'ttft_' if kind == 'stream' else ''}p{pct}_ms"
            added = lg[key] - d[key]
            target = {("plain", 50): 0.5, ("plain", 99): 1.0, ("stream", 50): 1.0}.get((kind, pct))
            add(
                f"{title} p{pct}, c=1",
                ms(d[key]),
                ms(lg[key]),
                f"+{added:.3f} ms",
                f"<= {target} ms" if target else "",
            )
            name = f"added_{'ttft_' if kind == 'stream' else ''}p{pct}_ms"
            judge(name, added, added <= target if target else None)
    for kind in ("plain", "stream"):
        d, lg = p[f"c1_{kind}_direct"], p[f"c1_{kind}_loopgate"]
        add(
            f"  CPU per {'stream' if kind == 'stream' else 'request'}, c=1",
            f"{d['server_cpu_us_per_request']:.0f} us (nginx)",
            f"{lg['server_cpu_us_per_request']:.0f} us",
        )
    d, lg = p["c1_stream_direct"], p["c1_stream_loopgate"]
    add(
        "stream complete p50, c=1", ms(d["p50_ms"]), ms(lg["p50_ms"]), f"+{lg['p50_ms'] - d['p50_ms']:.3f} ms"
    )

    runs = [(c, "plain", f"requests/s, c={c}") for c in args.concurrency]
    runs.append((args.stream_concurrency, "stream", f"stream requests/s, c={args.stream_concurrency}"))
    for concurrency, kind, title in runs:
        d, lg = p[f"wrk_c{concurrency}_{kind}_direct"], p[f"wrk_c{concurrency}_{kind}_loopgate"]
        target = TARGETS["rps_c32"] if (concurrency, kind) == (32, "plain") else None
        add(
            title,
            f"{d['rps']:,.0f}",
            f"{lg['rps']:,.0f}",
            f"x{lg['rps'] / d['rps']:.4f}",
            f">= {target:,.0f}/s" if target else "",
        )
        judge(f"rps_c{concurrency}_{kind}", lg["rps"], lg["rps"] >= target if target else None)
        add(
            f"  latency p50 / p99, c={concurrency}",
            f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f} ms",
            f"{lg['p50_ms']:.1f} / {lg['p99_ms']:.1f} ms",
        )
        add(
            f"  CPU per request, c={concurrency}",
            f"{d['cpu_us_per_request']:.0f} us (nginx)",
            f"{lg['cpu_us_per_request']:.0f} us ({lg['cpu_user_us_per_request']:.0f} user)",
        )

    if f"c1_plain_{DOOR}" in p:
        rows.extend(door_rows(p, args))

    loopgate_runs = [v for v in p.values() if "logs_gained" in v]
    bad = sum(v["non_2xx"] + v["socket_errors"] for v in loopgate_runs)
    for name, phase in p.items():
        if name.startswith("exact_") or (
            name.startswith("c1_") and name.endswith((f"_{LOOPGATE}", f"_{DOOR}"))
        ):
            bad += sum(n for status, n in phase["statuses"].items() if int(status) != 200)
    add("errors through loopgate (all runs)", through=str(bad), target="0")
    judge("errors", bad, bad == 0)
    ok_seen = sum(v["ok_seen"] for v in loopgate_runs)
    gained = sum(v["logs_gained"] for v in loopgate_runs)
    add(
        "wrk runs: 200s seen / logs gained",
        through=f"{ok_seen:,} / {gained:,}",
        delta=f"{gained - ok_seen} cut off",
        target="logs >= 200s",
    )
    judge("wrk_durable", gained - ok_seen, all(v["durable"] for v in loopgate_runs))
    for kind in ("plain", "stream"):
        e = p[f"exact_{kind}"]
        add(
            f"exact {kind}: sent / 200 / ids in DB",
            through=f"{e['requests']} / {e['statuses'].get(200, 0)} / {e['ids_found_in_db']}",
            target="all equal",
        )
        judge(f"exact_{kind}_durable", e["ids_found_in_db"], e["durable"])

    ready = r["ready"]
    add("ready: /healthz 200", through=f"{ready['healthz_s'] * 1000:.0f} ms")
    add("ready: first /v4/chat 200", through=f"{ready['first_chat_s'] * 1000:.0f} ms", target="<= 1 s")
    judge("ready_s", ready["first_chat_s"], ready["first_chat_s"] <= TARGETS["ready_s"])
    warm, end = r["rss_after_warmup_kib"], r["rss_after_soak_kib"]
    growth = (end - warm) / warm * 100
    add(
        "RSS at ready / after warm-up",
        through=f"{ready['rss_at_ready_kib'] / 1024:.1f} / {warm / 1024:.1f} MiB",
        delta=f"warm-up: {r['logs_at_warmup']:,} logs",
    )
    reached = r["logs_at_soak_end"] >= 100_000  # the target is stated for 100,000 requests
    add(
        f"RSS after {r['logs_at_soak_end']:,} logs",
        through=f"{end / 1024:.1f} MiB",
        delta=f"{growth:+.1f}%",
        target="<= +10% at 100,000",
    )
    judge("rss_growth_pct", growth, growth <= TARGETS["rss_growth_pct"] if reached else None)
    samples = r.get("rss_samples") or []
    if len(samples) > 1:
        first, last = samples[0], samples[-1]
        drift = (last["rss_kib"] - first["rss_kib"]) / first["rss_kib"] * 100
        add(
            f"  RSS drift over the soak, logs {first['logs']:,} -> {last['logs']:,}",
            through=f"{first['rss_kib'] / 1024:.1f} -> {last['rss_kib'] / 1024:.1f} MiB",
            delta=f"{drift:+.1f}%",
        )
    db = r["database"]
    add("bytes per log (SQLite file)", through=f"{db['bytes_per_log']:,.0f} B", delta=f"{db['logs']:,} logs")
    add("bench/loadgen.py ceiling, c=32", direct=f"{r['loadgen_ceiling_rps']:,.0f}/s")
    return rows, verdicts


def door_rows(p: dict[str, Any], args: argparse.Namespace) -> list[list[str]]:
    """The same calls through loopgate's OpenAI-compatible door (POST /v1/chat/completions)."""
    rows = []
    for kind, key, title in (
        ("plain", "p50_ms", "OpenAI door: latency p50, c=1"),
        ("plain", "p99_ms", "OpenAI door: latency p99, c=1"),
        ("stream", "ttft_p50_ms", "OpenAI door: stream TTFT p50, c=1"),
    ):
        d, door = p[f"c1_{kind}_direct"], p[f"c1_{kind}_{DOOR}"]
        rows.append(
            [title, f"{d[key]:.3f} ms", f"{door[key]:.3f} ms", f"+{door[key] - d[key]:.3f} ms", "", ""]
        )
    for kind, concurrency in (("plain", 32), ("stream", args.stream_concurrency)):
        d, door = p[f"wrk_c{concurrency}_{kind}_direct"], p[f"wrk_c{concurrency}_{kind}_{DOOR}"]
        rows.append(
            [
                f"OpenAI door: {'stream ' if kind == 'stream' else ''}requests/s, c={concurrency}",
                f"{d['rps']:,.0f}",
                f"{door['rps']:,.0f} ({door['cpu_us_per_request']:.0f} us CPU each)",
                f"x{door['rps'] / d['rps']:.4f}",
                "",
                "",
            ]
        )
    return rows


def peer_header(r: dict[str, Any]) -> list[str]:
    name = r["peer"]["name"]
    return ["metric", "direct (nginx)", f"through {name}", "through loopgate", f"loopgate vs {name}"]


def peer_rows(r: dict[str, Any], args: argparse.Namespace) -> list[list[str]]:
    """The other gateway beside loopgate, from the same run: added latency and throughput, and the ratio."""
    p, name = r["phases"], r["peer"]["name"]
    rows: list[list[str]] = []
    for kind, title, key in (
        ("plain", "added latency p50, c=1", "p50_ms"),
        ("plain", "added latency p99, c=1", "p99_ms"),
        ("stream", "added TTFT p50, c=1", "ttft_p50_ms"),
    ):
        d, peer, lg = (p[f"c1_{kind}_{side}"] for side in ("direct", name, "loopgate"))
        peer_added, lg_added = peer[key] - d[key], lg[key] - d[key]
        rows.append(
            [
                title,
                f"{d[key]:.3f} ms",
                f"+{peer_added:.3f} ms",
                f"+{lg_added:.3f} ms",
                f"{peer_added / lg_added:.1f}x less added" if lg_added > 0 else "",
            ]
        )
    runs = [(c, "plain", f"requests/s, c={c}") for c in args.concurrency]
    runs.append((args.stream_concurrency, "stream", f"stream requests/s, c={args.stream_concurrency}"))
    for concurrency, kind, title in runs:
        d, peer, lg = (p[f"wrk_c{concurrency}_{kind}_{side}"] for side in ("direct", name, "loopgate"))
        rows.append(
            [
                title,
                f"{d['rps']:,.0f}",
                f"{peer['rps']:,.0f} ({peer['non_2xx'] + peer['socket_errors']} errors)",
                f"{lg['rps']:,.0f}",
                f"x{lg['rps'] / peer['rps']:.1f}" if peer["rps"] else "",
            ]
        )
        rows.append(
            [
                f"  CPU per request, c={concurrency}",
                "",
                f"{peer['cpu_us_per_request']:.0f} us",
                f"{lg['cpu_us_per_request']:.0f} us",
                f"{peer['cpu_us_per_request'] / lg['cpu_us_per_request']:.1f}x less CPU",
            ]
        )
    if f"c1_plain_{DOOR}" in p:
        # Like for like: the peer and loopgate's OpenAI-compatible door take the same OpenAI request.
        d, peer, door = (p[f"c1_plain_{side}"] for side in ("direct", name, DOOR))
        peer_added, door_added = peer["p50_ms"] - d["p50_ms"], door["p50_ms"] - d["p50_ms"]
        rows.append(
            [
                "added latency p50, c=1, OpenAI door",
                f"{d['p50_ms']:.3f} ms",
                f"+{peer_added:.3f} ms",
                f"+{door_added:.3f} ms",
                f"{peer_added / door_added:.1f}x less added" if door_added > 0 else "",
            ]
        )
        d, peer, door = (p[f"wrk_c32_plain_{side}"] for side in ("direct", name, DOOR))
        rows.append(
            [
                "requests/s, c=32, OpenAI door",
                f"{d['rps']:,.0f}",
                f"{peer['rps']:,.0f}",
                f"{door['rps']:,.0f}",
                f"x{door['rps'] / peer['rps']:.1f}" if peer["rps"] else "",
            ]
        )
    ready = [f"{r['peer']['ready_s']:.2f} s", f"{r['ready']['first_chat_s']:.2f} s"]
    rows.append(["ready: first 200", "", *ready, ""])
    return rows


def render(rows: list[list[str]], header: list[str] | None = None) -> str:
    header = header or ["metric", "direct (nginx)", "through loopgate", "added / ratio", "target", "met"]
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for index, row in enumerate(table):
        lines.append("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
