"""Warm-up curves: what the configured ramps look like, and whether a new instance's traffic really follows them.

Curves (parsed by helper.specs.parse_curve, evaluated by helper.warmup, the code the agent and the webhook use):

- ``linear``: Dubbo's ramp, k = 1;
- ``k=2``: Sermant's high-order curve (slow start that accelerates);
- ``aggression=2``: Envoy's slow-start aggression 2, i.e. k = 1/2 (front-loaded);

all with the default 10 % floor. Lab measurement (bench/rollout_lab.py infrastructure: HAProxy, real app processes, a
real ``lanes-helper agent`` for the new instance, open-loop load): two warm replicas at full weight; for each curve a
new instance is started, becomes ready, is added to the load balancer after the propagation delay, and its weight is
set every 0.2 s to ``helper.warmup.weight(now - agent ready time, T, curve)`` through the runtime API. The expected
share of the new instance is ``w(t) / (w(t) + 2 W)`` from the configured curve (averaged over each bucket); the
measured share is its fraction of the requests sent in that bucket. Reported: RMS and max of the difference in
percentage points, per curve.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from bench.common import loadgen_binary, require, rms, rounded, say
from bench.rollout_lab import FULL_WEIGHT, Lab, LabParams, Load, configured_weight_log, share_series
from helper.specs import parse_curve
from helper.warmup import fraction

CURVES = {
    "linear (Dubbo, k=1)": "linear",
    "k=2 (Sermant)": "k=2",
    "Envoy aggression=2 (k=0.5)": "aggression=2",
}


def theory(points: int = 121) -> dict[str, list[tuple[float, float]]]:
    out = {}
    for name, spec in CURVES.items():
        curve = parse_curve(spec)
        out[name] = [(i / (points - 1) * 1.2, fraction(i / (points - 1) * 1.2, 1.0, curve)) for i in range(points)]
    return out


async def _measure(params: LabParams, work: Path, window: float, bucket: float) -> dict[str, Any]:
    lab = Lab(params, "lanes", work)
    lab.setup(2 + len(CURVES))
    load: Load | None = None
    results: dict[str, Any] = {}
    try:
        base = [lab.start_replica(1), lab.start_replica(2)]
        await asyncio.gather(*(lab.warm_directly(r) for r in base))
        for replica in base:
            assert lab.lb is not None
            lab.lb.command(f"set server be/{replica.name} state ready")
            replica.in_lb = True
            lab.weights.append((time.time(), replica.name, FULL_WEIGHT))
        load = Load(lab, "curves")
        await asyncio.sleep(1.5)
        spans = []
        for index, (name, spec) in enumerate(CURVES.items()):
            say(f"warm-up curves: new instance with {spec}, window {window:g}s")
            replica = lab.start_replica(3 + index, curve=spec, warmup_s=window)
            await lab.make_available(replica)
            await lab.settle()  # the load balancer add (after the propagation delay)
            assert replica.ramp_start is not None
            await asyncio.sleep(max(0.0, replica.ramp_start + window - time.time()) + 0.5)
            added = next(w[0] for w in lab.weights if w[1] == replica.name and w[2] > 0)
            ramp_end = replica.ramp_start + window
            await lab.terminate(replica)
            await lab.settle()
            spans.append((name, spec, replica, added, ramp_end))
            await asyncio.sleep(0.5)
        rows = await load.stop()
        load = None
        configured = configured_weight_log(lab, max(r["t"] for r in rows))
        for name, spec, replica, added, ramp_end in spans:
            assert replica.ramp_start is not None
            series = share_series(rows, configured, added + 0.05, ramp_end, bucket)
            points = []
            for point in series:
                measured = point["measured"].get(replica.name, 0.0)
                expected = point["expected"].get(replica.name, 0.0)
                points.append({"t": rounded(point["t0"] + bucket / 2 - replica.ramp_start, 3),
                               "measured": rounded(measured, 4), "expected": rounded(expected, 4),
                               "requests": point["requests"]})
            deviations = [(p["measured"] - p["expected"]) * 100 for p in points]
            results[name] = {
                "spec": spec,
                "k": parse_curve(spec).k,
                "window_s": window,
                "traffic_starts_at_s": rounded(added - replica.ramp_start, 3),
                "rms_pp": rounded(rms(deviations), 2),
                "max_abs_pp": rounded(max((abs(d) for d in deviations), default=None), 2),
                "points": points,
            }
        failed = sum(1 for r in rows if r["error"])
        return {"curves": results, "failed_requests": failed}
    finally:
        if load is not None:
            with contextlib.suppress(Exception):
                await load.stop()
        lab.teardown()


def run(quick: bool, work: Path, plots_dir: Path | None = None) -> dict[str, Any]:
    require("haproxy", "apt-get install -y haproxy")
    loadgen_binary()
    base = LabParams.for_mode(quick)
    window = 3.0 if quick else 10.0
    bucket = 0.5
    params = LabParams(
        rate=base.rate if quick else 200.0, replicas=2, propagation_s=0.3 if quick else 0.5,
        drain_s=0.5 if quick else 1.0, register_delay_s=0.0, warmup_s=window,
        warmup_requests=base.warmup_requests, probe_period_s=0.25, cold_seconds=base.cold_seconds,
        cold_requests=base.cold_requests,
    )
    measured = asyncio.run(_measure(params, work, window, bucket))
    plots = {}
    if plots_dir is not None:
        from bench import plots as plotting

        plots["curves"] = str(plotting.warmup_curves(theory(), measured["curves"], plots_dir / "warmup_curves.png"))
    rms_values = [c["rms_pp"] for c in measured["curves"].values() if c["rms_pp"] is not None]
    return {
        "params": {"window_s": window, "bucket_s": bucket, "rate": params.rate, "replicas_at_full_weight": 2,
                   "propagation_s": params.propagation_s, "probe_period_s": params.probe_period_s,
                   "weight_update_interval_s": 0.2},
        "curves": measured["curves"],
        "failed_requests": measured["failed_requests"],
        "summary": {"max_rms_pp": max(rms_values) if rms_values else None,
                    **{c["spec"]: c["rms_pp"] for c in measured["curves"].values()}},
        "plots": plots,
    }
