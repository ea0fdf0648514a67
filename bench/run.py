"""Run the Lanes benchmarks: ``python -m bench.run [--quick] [--only NAME ...] [--results DIR]``.

Benchmarks (each writes ``<results>/<name>.json``; all together ``<results>/summary.md`` and PNG plots):

- ``admission``: throughput at saturation, p50/p99 at fixed rates, CPU per request and RSS of Lanes vs kopf vs a Go
  controller-runtime webhook vs the floor (bench/admission.py);
- ``apiserver``: 2 x 1,000 pod creations through a real kube-apiserver; the API server's own webhook latency
  histogram and the client-observed cost (bench/apiserver.py);
- ``rollout``: the lossless rollout lab, plain Deployment vs Lanes, behind HAProxy (bench/rollout_lab.py);
- ``warmup_curves``: the configured ramps and how a new instance's measured traffic share follows them
  (bench/warmup_curves.py);
- ``footprint``: the agent sidecar's RSS and idle CPU (bench/footprint.py);
- ``routing``: the Lane reconciler on 200 services x 5 Lanes: time to apply, writes, a no-op resync, a change and
  a health-aware fallback (bench/routing.py);
- ``lossless_node``: rollout restart, scale down and eviction of the sample app under constant load through
  kube-proxy on a real node, plain vs Lanes (bench/lossless_node.py; needs root, builds the node and the images);
- ``first_request``: an app's first-request latency against an HTTPS dependency behind a caching DNS server, with
  and without ``lanes-prewarm`` and self warm-up requests, in one run (bench/first_request.py; needs root for its
  private network namespace);
- ``nacos_rollout``: providers discovered through a real Nacos by real consumers (the Python SDK, client-side
  weighted choice), rolled plain vs Lanes: failed requests and p99 (bench/nacos_rollout.py; processes, not pods;
  needs root, Java and Maven).

``--quick`` runs every benchmark in a smoke mode of seconds (numbers meaningless; for tests and CI) and writes to
``bench/results/quick/`` unless ``--results`` says otherwise. Tools: wrk and haproxy (Debian), Go (the Go yardstick and
the load generator are built into ~/.cache/lanes/bench/), kopf and matplotlib (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_RESULTS,
    ToolMissing,
    cpu_ticks,
    machine_info,
    say,
    steal_percent,
    write_result,
)


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    full_estimate_s: int
    quick_estimate_s: int
    runner: Callable[[bool, Path, Path], dict[str, Any]]


def _admission(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    from bench import admission

    return admission.run(quick, work)


def _apiserver(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    from bench import apiserver

    return apiserver.run(quick, work)


def _rollout(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    from bench import rollout_lab

    return rollout_lab.run(quick, work, results)


def _curves(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    from bench import warmup_curves

    return warmup_curves.run(quick, work, results)


def _footprint(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    from bench import footprint

    return footprint.run(quick, work)


def _routing(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    from bench import routing

    return routing.run(quick, work)


def _first_request(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    from bench import first_request

    return first_request.run(quick, work, results)


def _lossless_node(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    from bench import lossless_node

    return lossless_node.run(quick, work, results)


def _scale(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    from bench import scale

    return scale.run(quick, work)


def _scale_webhook(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    from bench import scale_webhook

    return scale_webhook.run(quick, work)


def _nacos_rollout(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    from bench import nacos_rollout

    return nacos_rollout.run(quick, work, results)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("admission", "Admission throughput and latency", 750, 45, _admission),
        Benchmark("apiserver", "Through the real API server", 90, 20, _apiserver),
        Benchmark("rollout", "Lossless rollout lab", 60, 20, _rollout),
        Benchmark("warmup_curves", "Warm-up curves", 50, 20, _curves),
        Benchmark("footprint", "Helper footprint", 160, 32, _footprint),
        Benchmark("routing", "Lane routing: 200 services x 5 lanes", 240, 60, _routing),
        Benchmark("lossless_node", "Lossless rollouts on a real node: plain vs Lanes", 900, 240, _lossless_node),
        Benchmark("first_request", "First request: pre-warm vs self warm-up", 60, 15, _first_request),
        Benchmark("nacos_rollout", "Nacos-discovered providers rolled: plain vs Lanes", 150, 90, _nacos_rollout),
        Benchmark("scale", "Controller at 1,000 / 5,000 / 10,000 pods on kwok nodes", 900, 60, _scale),
        Benchmark("scale_webhook", "Webhook owner cache: 2,000 ReplicaSets / 500 Deployments", 240, 30, _scale_webhook),
    )
}


# --- targets -----------------------------------------------------------------------------------------------------


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "missed")


def targets(name: str, result: dict[str, Any]) -> list[dict[str, str]]:
    """(target, measured, met/missed) rows of one benchmark's result."""
    rows: list[dict[str, str]] = []

    def row(target: str, measured: str, ok: bool | None) -> None:
        rows.append({"benchmark": name, "target": target, "measured": measured, "status": _met(ok)})

    if "error" in result:
        row("(benchmark ran)", result["error"][:120], False)
        return rows
    if name == "admission":
        bodies = result["summary"]["bodies"]
        servers = result["servers"]

        def both(key: str) -> list[float | None]:
            return [bodies[b].get(key) for b in ("small", "large")]

        kopf = both("lanes_over_kopf")
        row("Lanes throughput >= 3x kopf (small / large pod)",
            " / ".join(_fmt(v, "x", 2) for v in kopf), all(v is not None and v >= 3 for v in kopf))
        floor = both("lanes_over_floor")
        row("Lanes >= 80 % of the floor's throughput on its own stack (small / large)",
            " / ".join(_fmt(v * 100 if v else None, " %", 0) for v in floor) + " of floor",
            all(v is not None and v >= 0.8 for v in floor))
        by_instructions = both("lanes_over_floor_by_instructions")
        if any(v is not None for v in by_instructions):
            row("Lanes >= 80 % of the floor on its own stack, by instructions per request under callgrind "
                "(load-independent; small / large)",
                " / ".join(_fmt(v * 100 if v else None, " %", 0) for v in by_instructions) + " of floor",
                all(v is not None and v >= 0.8 for v in by_instructions))
            row("(info) web stack by instructions (throughput ratio, small / large): Lanes on httptools + uvloop over "
                "h11 + asyncio; the floor the same; Lanes with raw ASGI /mutate over FastAPI-routed",
                " / ".join(_fmt(v, "x", 2) for v in both("lanes_over_lanes_h11_by_instructions")) + " ; "
                + " / ".join(_fmt(v, "x", 2) for v in both("floor_over_floor_h11_by_instructions")) + " ; "
                + " / ".join(_fmt(v, "x", 3) for v in both("lanes_over_lanes_fastapi_by_instructions")), None)
        if "lanes_fastapi_over_floor_fastapi" in bodies["small"]:
            row("(info) web stack by throughput: Lanes on httptools + uvloop over h11 + asyncio; raw ASGI /mutate "
                "over FastAPI-routed, Lanes / floor; Lanes over floor on FastAPI",
                " / ".join(_fmt(v, "x", 2) for v in both("lanes_over_lanes_h11")) + " ; "
                + " / ".join(_fmt(v, "x", 2) for v in both("lanes_over_lanes_fastapi")) + " ; "
                + " / ".join(_fmt(v, "x", 2) for v in both("floor_over_floor_fastapi")) + " ; "
                + " / ".join(_fmt(v * 100 if v else None, " %", 0) for v in both("lanes_fastapi_over_floor_fastapi")),
                None)
        p99 = both("lanes_p99_ms_at_half_saturation")
        row("Lanes p99 <= 5 ms at half its saturation rate (small / large)",
            " / ".join(_fmt(v, " ms", 2) for v in p99), all(v is not None and v <= 5 for v in p99))
        floor_p99 = both("floor_p99_ms_at_half_saturation")
        steal = [run.get("vm_steal_percent") for b in ("small", "large")
                 for run in servers["lanes"]["bodies"][b]["fixed_rate"] if run["fraction_of_lanes_saturation"] == 0.5]
        row("(info) the floor's p99 at the same rates; VM steal during Lanes' runs",
            " / ".join(_fmt(v, " ms", 2) for v in floor_p99) + "; steal "
            + " / ".join(_fmt(v, " %", 1) for v in steal), None)
        go = both("lanes_over_go")
        row("Go controller-runtime yardstick (reported as is): Lanes / Go throughput",
            " / ".join(_fmt(v, "x", 2) for v in go), None)
        sat = " / ".join(
            f"{s}: " + "/".join(_fmt(servers[s]["bodies"][b]["saturation"]["throughput_rps"], "", 0)
                                for b in ("small", "large"))
            for s in servers)
        row("(info) saturation throughput req/s small/large", sat, None)
        cpu = " / ".join(
            f"{s}: " + "/".join(_fmt(servers[s]["bodies"][b]["saturation"]["cpu_us_per_request"], "", 0)
                                for b in ("small", "large"))
            for s in servers)
        row("(info) CPU per request, microseconds, small/large", cpu, None)
        rss = " / ".join(f"{s}: {_fmt(servers[s]['rss_kb'] / 1024, ' MB')}" for s in servers)
        row("(info) server RSS after the runs", rss, None)
    elif name == "apiserver":
        hist = result["apiserver_webhook_histogram"]
        p99 = hist["p99_ms"]
        bound = hist.get("p99_bucket_upper_bound_ms")
        within = hist.get("fraction_within_ms", {})
        shares = ", ".join(f"{_fmt(within[k] * 100, ' %', 1)} <= {k} ms" for k in ("5", "25") if k in within)
        row("Webhook p99 <= 10 ms as the API server measures it",
            f"p99 {_fmt(p99, ' ms', 2)} (interpolated in its bucket <= {_fmt(bound, ' ms', 0)}"
            f"{'; ' + shares if shares else ''}), "
            f"p50 {_fmt(hist['p50_ms'], ' ms', 2)}, {hist['count']} calls",
            p99 is not None and p99 <= 10)
        server = result["lanes_server_histogram"]
        row("(info) the same calls as Lanes' own server-side histogram",
            f"p50 {_fmt(server['p50_ms'], ' ms', 2)}, p99 {_fmt(server['p99_ms'], ' ms', 2)}; "
            f"{_fmt(result.get('webhook_calls_per_enabled_pod'), '', 1)} calls per pod (reinvocation)", None)
        floor = result.get("floor", {}).get("apiserver_webhook_histogram")
        if floor:
            row("(info) control: API server-measured latency of the no-op floor webhook, same setup",
                f"p50 {_fmt(floor['p50_ms'], ' ms', 2)}, p99 {_fmt(floor['p99_ms'], ' ms', 2)}", None)
        diff = result["client_difference_ms"]
        row("(info) client-observed pod create, enabled minus plain namespace",
            f"p50 {_fmt(diff['p50'], ' ms', 2)}, p99 {_fmt(diff['p99'], ' ms', 2)}", None)
        saturated = result.get("saturated", {}).get("apiserver_webhook_histogram")
        if saturated:
            row("(info) closed loop, control plane saturated: API server-measured webhook latency",
                f"p50 {_fmt(saturated['p50_ms'], ' ms', 2)}, p99 {_fmt(saturated['p99_ms'], ' ms', 2)} at "
                f"{_fmt(result['saturated']['create_rate_per_s'], ' pods/s', 0)}", None)
    elif name == "rollout":
        s = result["summary"]
        row("Lanes rollout: 0 failed requests while plain shows failures",
            f"Lanes {s['lanes_failed']}, plain {s['plain_failed']}", s["lanes_failed"] == 0 and s["plain_failed"] > 0)
        ratio = s["lanes_rollout_p99_over_steady"]
        row("Lanes p99 during the rollout <= 1.5x steady state",
            f"{_fmt(s['lanes_rollout_p99_ms'], ' ms', 1)} vs {_fmt(s['lanes_steady_p99_ms'], ' ms', 1)} "
            f"({_fmt(ratio, 'x', 2)}); plain {_fmt(s['plain_rollout_p99_ms'], ' ms', 1)}",
            ratio is not None and ratio <= 1.5)
        row("(info) rollout duration, plain / Lanes",
            f"{_fmt(s['plain_rollout_duration_s'], ' s')} / {_fmt(s['lanes_rollout_duration_s'], ' s')}", None)
    elif name == "warmup_curves":
        curves = result["curves"]
        measured = ", ".join(f"{c['spec']} {_fmt(c['rms_pp'], ' pp', 2)}" for c in curves.values())
        worst = result["summary"]["max_rms_pp"]
        row("New instance's traffic share follows the configured curve (RMS deviation; bar 5 pp)", measured,
            worst is not None and worst <= 5)
    elif name == "routing":
        row("Lane change applied < 1 s", f"{_fmt(result['change']['seconds'], ' s', 3)}, "
            f"{result['change']['writes']} writes", result["change"]["seconds"] < 1.0)
        row("Fallback applied < 2 s after the lane version's last pod went unready",
            f"{_fmt(result['fallback']['seconds'], ' s', 3)} "
            f"(back in {_fmt(result['fallback']['restore_seconds'], ' s', 3)})",
            result["fallback"]["seconds"] < 2.0)
        row("No-op resync writes nothing", f"{result['resync']['writes']} writes", result["resync"]["writes"] == 0)
        initial = result["initial"]
        row(f"(info) {result['services']} services x {result['lanes']} Lanes from nothing",
            f"{_fmt(initial['seconds'], ' s', 2)}, {initial['writes']} writes ({initial['applies']} applies)", None)
    elif name == "first_request":
        s = result["summary"]
        cases, speedup = s["cases"], s["speedup_vs_none"]
        firsts = " / ".join(_fmt(cases[c]["first_ms"], " ms", 1) for c in ("none", "prewarm", "selfwarm", "both"))
        row("(info) app's first request, median: neither / pre-warm / self warm-up / both", firsts, None)
        self_warm = cases["selfwarm"]
        row("Self warm-up opens the app's own connections: its first request pays no DNS, TCP or TLS set-up",
            f"{self_warm['paid_setup']} of {self_warm['trials']} first requests paid set-up; "
            f"{_fmt(speedup['selfwarm'], 'x', 1)} faster than neither",
            self_warm["trials"] > 0 and self_warm["paid_setup"] == 0)
        prewarm = cases["prewarm"]
        opened = prewarm["opened_ms"]
        tls_ms = (opened["tls_context"] or 0) + (opened["tls_handshake"] or 0)
        row("(info) pre-warm alone: shared state only (DNS cache hit, dependency warm); the app still opens its own "
            "TLS connection",
            f"{_fmt(speedup['prewarm'], 'x', 2)} faster than neither; {prewarm['dns_cache_hits']} of "
            f"{prewarm['trials']} DNS lookups hit the cache; still paid: DNS {_fmt(opened['dns'], ' ms', 1)}, "
            f"TLS context + handshake {_fmt(tls_ms, ' ms', 1)}",
            None)
    elif name == "lossless_node":
        s = result["summary"]
        plain, lanes = s["plain"], s["lanes"]
        row("Real node: Lanes 0 failed requests in every claimed case while plain fails (rollout restart, scale "
            "down, eviction; graceful and abrupt app; keep-alive and new connections)",
            f"Lanes {lanes['failed_claimed']} of {lanes['requests_claimed']}, "
            f"plain {plain['failed_claimed']} of {plain['requests_claimed']}",
            lanes["failed_claimed"] == 0 and plain["failed_claimed"] > 0)
        row("(info) every case incl. abrupt app + keep-alive: failed, and without the client's one retry",
            f"Lanes {lanes['failed_all']} ({lanes['failed_without_retry_all']}), "
            f"plain {plain['failed_all']} ({plain['failed_without_retry_all']}) of about {lanes['requests_all']}",
            None)
        row("(info) worst p99 during a disruption / steady p99, plain / Lanes",
            f"{_fmt(plain['worst_p99_ratio'], 'x', 2)} / {_fmt(lanes['worst_p99_ratio'], 'x', 2)}", None)
        row("(info) disruption duration until settled, plain / Lanes",
            ", ".join(f"{d} {_fmt(plain['duration_s'][d], ' s')} / {_fmt(lanes['duration_s'][d], ' s')}"
                      for d in plain["duration_s"] if plain["duration_s"][d] is not None), None)
    elif name == "nacos_rollout":
        s = result["summary"]
        row("Nacos consumers (real SDK, client-side LB): Lanes 0 failed requests while rolling providers",
            f"Lanes {s['lanes_failed']} of {result['lanes']['requests']}, plain {s['plain_failed']} of "
            f"{result['plain']['requests']}", s["lanes_failed"] == 0)
        row("(info) p99 during the rollout, plain / Lanes (processes, not pods; Nacos 2.3.2 third-party build)",
            f"{_fmt(s['plain_p99_ms'], ' ms', 1)} / {_fmt(s['lanes_p99_ms'], ' ms', 1)}", None)
    elif name == "scale":
        from bench.scale import target_rows

        for target, measured, ok in target_rows(result):
            row(target, measured, ok)
    elif name == "scale_webhook":
        from bench import scale_webhook

        for target, measured, ok in scale_webhook.target_rows(result):
            row(target, measured, ok)
    elif name == "footprint":
        s = result["summary"]
        rss = result["rss_kb"]
        row("Agent RSS <= 20 MB (warm-up / idle / drain)",
            f"{_fmt(rss['warmup_max'] / 1024, '', 1)} / {_fmt(rss['idle'] / 1024, '', 1)} / "
            f"{_fmt(rss['drain_max'] / 1024, ' MB', 1)}", s["max_rss_kb"] <= 20 * 1024)
        from bench.footprint import tls_target_rows

        for target, measured, ok in tls_target_rows(result):
            row(target, measured, ok)
        row("Agent idle CPU ~0 (<= 0.1 % of a core, no requests)",
            f"{_fmt(s['idle_cpu_seconds'], ' s', 2)} in {result['params']['idle_window_s']:g} s "
            f"({_fmt(s['idle_cpu_percent'], ' %', 3)})", s["idle_cpu_percent"] <= 0.1)
        probes = result.get("probed_cpu")
        if probes:
            row("(info) CPU with kubelet-like probes (/ready every 2 s, /healthz every 10 s)",
                f"{_fmt(probes['seconds'], ' s', 2)} in {probes['window_s']:g} s "
                f"({_fmt(probes['percent_of_one_core'], ' %', 3)}), {probes['probes_answered']} probes", None)
    return rows


def write_summary(results_dir: Path) -> Path:
    rows: list[dict[str, str]] = []
    meta: list[str] = []
    for name in BENCHMARKS:
        path = results_dir / f"{name}.json"
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        rows += targets(name, doc.get("result", doc))
        meta.append(f"{name}: {doc.get('started', '?')}, {doc.get('duration_s', '?')} s, VM steal "
                    f"{doc.get('vm_steal_percent', '?')} %{' (quick)' if doc.get('quick') else ''}")
    lines = [
        "# Lanes benchmark summary",
        "",
        "Generated by `python -m bench.run`; details in the JSON files beside this one, method in docs/performance.md.",
        "",
        "| benchmark | target | measured | status |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['benchmark']} | {r['target']} | {r['measured']} | {r['status']} |" for r in rows]
    lines += ["", "Runs: " + "; ".join(meta), ""]
    info = machine_info()
    lines += [f"Machine: {info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}, "
              f"kernel {info['kernel']}.", ""]
    out = results_dir / "summary.md"
    out.write_text("\n".join(lines))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: seconds per benchmark, numbers meaningless")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--results", type=Path, help="results directory (default bench/results, quick: .../quick)")
    parser.add_argument("--keep-work", action="store_true", help="keep the work directories (logs) afterwards")
    args = parser.parse_args(argv)
    results_dir = args.results or (DEFAULT_RESULTS / "quick" if args.quick else DEFAULT_RESULTS)
    names = args.only or list(BENCHMARKS)
    estimate = sum(BENCHMARKS[n].quick_estimate_s if args.quick else BENCHMARKS[n].full_estimate_s for n in names)
    say(f"running {', '.join(names)} ({'quick' if args.quick else 'full'} mode, roughly {estimate / 60:.0f} min "
        f"on 2 cores); results in {results_dir}")
    failures = 0
    began = time.monotonic()
    for name in names:
        bench = BENCHMARKS[name]
        guess = bench.quick_estimate_s if args.quick else bench.full_estimate_s
        say(f"== {name}: {bench.title} (about {guess} s)")
        work = Path(tempfile.mkdtemp(prefix=f"lanes-bench-{name}-"))
        started = time.monotonic()
        doc: dict[str, Any] = {"name": name, "title": bench.title, "quick": args.quick,
                               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "machine": machine_info(),
                               "load_average_before": [round(x, 2) for x in os.getloadavg()]}
        keep = args.keep_work
        ticks = cpu_ticks()
        try:
            doc["result"] = bench.runner(args.quick, work, results_dir)
        except ToolMissing as exc:
            failures += 1
            keep = True
            doc["result"] = {"error": f"tool missing: {exc}"}
            say(f"!! {name}: {exc}")
        except Exception as exc:  # record it and go on with the other benchmarks
            failures += 1
            keep = True
            doc["result"] = {"error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc()
            say(f"!! {name} failed; work directory kept: {work}")
        doc["duration_s"] = round(time.monotonic() - started, 1)
        doc["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        doc["vm_steal_percent"] = steal_percent(ticks, cpu_ticks())
        doc["targets"] = targets(name, doc["result"])
        path = write_result(results_dir, name, doc)
        say(f"== {name}: done in {doc['duration_s']:.0f}s -> {path}")
        for item in doc["targets"]:
            say(f"   [{item['status']:>6}] {item['target']}: {item['measured']}")
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    summary = write_summary(results_dir)
    say(f"all done in {(time.monotonic() - began) / 60:.1f} min; summary: {summary}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
