"""PNG plots of the benchmark results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

_EVENT_STYLE = {
    "created": ("tab:blue", ":"),
    "lb_add": ("tab:green", "--"),
    "terminating": ("tab:orange", ":"),
    "lb_remove": ("tab:red", "--"),
}


def rollout_latency(runs: dict[str, dict[str, Any]], out: Path) -> Path:
    """Latency of every request over time, one panel per run, with failures and the rollout's events."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(runs), 1, figsize=(12.5, 3.6 * len(runs)), sharey=True)
    axes = list(axes) if len(runs) > 1 else [axes]
    for ax, (mode, result) in zip(axes, runs.items(), strict=True):
        t0 = result["_t0"]
        rows = result["_rows"]
        ok = [(r["t"] - t0, r["latency_ms"]) for r in rows if not r["error"]]
        bad = [(r["t"] - t0, max(r["latency_ms"], 1.0)) for r in rows if r["error"]]
        ax.scatter([x for x, _ in ok], [y for _, y in ok], s=3, alpha=0.5, color="tab:blue", label="ok")
        if bad:
            ax.scatter([x for x, _ in bad], [y for _, y in bad], s=14, marker="x", color="tab:red",
                       label=f"failed ({len(bad)})")
        _, end = result["_window"]
        ax.axvspan(0, end - t0, color="0.92", zorder=0, label="rollout window")
        seen = set()
        for event in result["events"]:
            style = _EVENT_STYLE.get(event["kind"])
            if style and event.get("replica"):
                label = event["kind"] if event["kind"] not in seen else None
                seen.add(event["kind"])
                ax.axvline(event["t"], color=style[0], linestyle=style[1], linewidth=0.8, label=label)
        ax.set_xlim(min(r["t"] for r in rows) - t0 - 0.5, max(r["t"] for r in rows) - t0 + 0.5)
        steady = result["steady"]["p99_ms"]
        rollout = result["rollout"]["p99_ms"]
        ax.set_title(f"{mode}: {result['failed_requests']} failed, p99 steady {steady} ms, "
                     f"p99 during rollout {rollout} ms, rollout {result['rollout_duration_s']} s")
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms, from intended send)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, borderaxespad=0)
    axes[-1].set_xlabel("seconds since the rollout started")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def rollout_share(result: dict[str, Any], out: Path, bucket: float = 1.0) -> Path:
    """Measured share of traffic per instance over time (stacked), with the expected share of ramping instances."""
    from bench.rollout_lab import share_series

    lab = result["_lab"]
    rows = result["_rows"]
    t0 = result["_t0"]
    start = min(r["t"] for r in rows)
    end = max(r["t"] for r in rows)
    series = share_series(rows, lab.weights, start, end, bucket)
    names = sorted({name for point in series for name in point["measured"]} - {""},
                   key=lambda n: int(n[3:]) if n[3:].isdigit() else 0)
    xs = [p["t0"] - t0 + bucket / 2 for p in series]
    fig, ax = plt.subplots(figsize=(11, 4))
    stacks = [[p["measured"].get(name, 0.0) * 100 for p in series] for name in names]
    ax.stackplot(xs, *stacks, labels=[f"{n} measured" for n in names], alpha=0.6)
    cumulative = [0.0] * len(series)
    for name in names:
        expected = [p["expected"].get(name, 0.0) * 100 for p in series]
        cumulative = [c + e for c, e in zip(cumulative, expected, strict=True)]
        ax.plot(xs, cumulative, color="black", linewidth=0.7, linestyle="--")
    ax.plot([], [], color="black", linewidth=0.7, linestyle="--", label="expected (cumulative, from weights)")
    ax.set_ylim(0, 100)
    ax.set_xlabel("seconds since the rollout started")
    ax.set_ylabel("share of requests (%)")
    ax.set_title(f"lanes run: traffic share per instance ({bucket:g} s buckets); ramp RMS deviation "
                 f"{result.get('ramp', {}).get('rms_pp')} pp")
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def warmup_curves(theory: dict[str, list[tuple[float, float]]], measured: dict[str, dict[str, Any]],
                  out: Path) -> Path:
    """Left: w(t)/W of each configured curve. Right: the new instance's measured vs expected share in the lab."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, points in theory.items():
        left.plot([p[0] for p in points], [p[1] * 100 for p in points], label=name)
    left.set_xlabel("t / T (fraction of the warm-up window)")
    left.set_ylabel("weight (% of full)")
    left.set_title("configured curves: w(t) = W * max(min, (t/T)^k)")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    for index, (name, data) in enumerate(measured.items()):
        color = f"C{index}"
        pts = data["points"]
        right.plot([p["t"] for p in pts], [p["expected"] * 100 for p in pts], color=color, linestyle="--",
                   linewidth=1)
        right.plot([p["t"] for p in pts], [p["measured"] * 100 for p in pts], color=color, marker="o",
                   markersize=3, linewidth=0, label=f"{name}: RMS {data['rms_pp']} pp")
    right.set_xlabel("seconds since the agent became ready (ramp clock)")
    right.set_ylabel("new instance's share of requests (%)")
    right.set_title("lab: measured (dots) vs expected (dashed)")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
