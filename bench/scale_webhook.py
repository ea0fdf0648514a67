"""Benchmark: the webhook's owner cache at cluster scale (issue #15.2): RSS and admission latency, small vs large.

The owner cache (webhook/admission/owners.py) lists and watches namespaces and workloads, never pods, so what
grows it is the number of ReplicaSets and Deployments: the large cluster is 2,000 ReplicaSets in 500 Deployments
(four ReplicaSets each, as rollouts leave them, the ReplicaSet controller's metadata: ownerReferences, a
``lanes.io/*`` annotation on each Deployment) across 10 namespaces; pods (10,000 in the issue's wording) would only
load the API server, not the cache, and are not created. One ``lanes-webhook serve --kubeconfig`` process
(owner cache on) is measured twice in the same run: in the small cluster (one Deployment, one ReplicaSet) and
after the large one was created and its cache holds every object: its RSS, and ``POST /mutate`` latency of the
small-pod review (owned by a cached ReplicaSet) over one keep-alive TLS connection, sequential, p50/p99 as the
median of three rounds (one scheduling stall on a shared VM would otherwise decide a p99).
Target: the large cluster's p99 within 10 % of the small cluster's.

Run: ``python -m bench.scale_webhook [--replicasets 2000 --deployments 500] [--quick]`` (quick: 40 / 10).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import bodies
from bench.common import Tls, memory_kb, percentile, rounded, say

REPLICASETS = 2000
DEPLOYMENTS = 500
NAMESPACES = 10
REQUESTS = 3000


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": {"lanes.io/warmup": "30s"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "a:1"}]}},
        },
    }


def _replicaset(name: str, deployment: dict[str, Any], revision: int) -> dict[str, Any]:
    labels = {**deployment["metadata"]["labels"], "pod-template-hash": f"h{revision}"}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"],
                "uid": deployment["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "a:1"}]}},
        },
    }


def _workloads(kube: Any, namespace: str, deployment: str, replicasets: list[str]) -> None:
    created = kube.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", _deployment(deployment))
    for revision, name in enumerate(replicasets):
        kube.create(f"/apis/apps/v1/namespaces/{namespace}/replicasets", _replicaset(name, created, revision))


def _latency(port: int, tls: Tls, body: bytes, requests: int) -> dict[str, Any]:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=tls.client_context(), timeout=10)
    headers = {"Content-Type": "application/json"}
    samples = []
    try:
        for index in range(requests + 200):
            started = time.perf_counter()
            connection.request("POST", "/mutate", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if index >= 200:  # the first 200 warm the process up
                samples.append(time.perf_counter() - started)
            if response.status != 200 or b'"allowed":true' not in answer:
                raise RuntimeError(f"/mutate answered {response.status}: {answer[:200]!r}")
    finally:
        connection.close()
    return {
        "requests": len(samples),
        "p50_ms": rounded(percentile(samples, 50) * 1000, 3),
        "p99_ms": rounded(percentile(samples, 99) * 1000, 3),
    }


ROUNDS = 3


def _phase(webhook: Any, tls: Tls, body: bytes, requests: int) -> dict[str, Any]:
    """``ROUNDS`` latency rounds (one stall on this shared VM would otherwise decide a p99) and the median round."""
    rounds = [_latency(webhook.port, tls, body, requests // ROUNDS) for _ in range(ROUNDS)]
    assert webhook.process is not None
    return {
        "cache_objects": _cache_objects(webhook),
        "requests": sum(r["requests"] for r in rounds),
        "p50_ms": sorted(r["p50_ms"] for r in rounds)[ROUNDS // 2],
        "p99_ms": sorted(r["p99_ms"] for r in rounds)[ROUNDS // 2],
        "rounds": rounds,
        "rss_kb": memory_kb(webhook.process.pid)["rss_kb"],
    }


def _cache_objects(webhook: Any) -> dict[str, float]:
    _status, text = webhook.get("/metrics")
    out: dict[str, float] = {}
    for line in text.decode().splitlines():
        if line.startswith("lanes_owner_cache_objects{"):
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            out[kind] = float(line.rsplit(" ", 1)[1])
    return out


def run(quick: bool = False, work: Path | None = None, replicasets: int | None = None,
        deployments: int | None = None) -> dict[str, Any]:
    from kubernetes import config as kube_config

    from devtools.controlplane import ControlPlane
    from devtools.local_webhook import LocalWebhook
    from webhook.kube.client import Kube

    replicasets = replicasets or (40 if quick else REPLICASETS)
    deployments = deployments or (10 if quick else DEPLOYMENTS)
    requests = 500 if quick else REQUESTS
    own_work = work is None
    work = work or Path(tempfile.mkdtemp(prefix="lanes-bench-scale-webhook-"))
    plane = ControlPlane(controller_manager=False, scheduler=False, kwok=False, workdir=work / "controlplane")
    say(f"scale_webhook: control plane; {deployments} Deployments / {replicasets} ReplicaSets")
    plane.start()
    webhook = None
    result: dict[str, Any] = {"params": {"replicasets": replicasets, "deployments": deployments,
                                         "requests_per_phase": requests}}
    try:
        kube = Kube(kube_config.new_client_from_config(config_file=str(plane.kubeconfig)))
        namespaces = [bodies.NAMESPACE] + [f"scale-wh-{i}" for i in range(NAMESPACES - 1)]
        for ns in namespaces:
            kube.create("/api/v1/namespaces", {"metadata": {"name": ns, "labels": {"lanes": "enabled"}}})
        _workloads(kube, bodies.NAMESPACE, "web", ["web-5d8f9c7b4"])  # the owner of bench/bodies.py's pods
        tls = Tls(work / "tls")
        webhook = LocalWebhook(
            tls.dir, work / "webhook.log", args=[f"--kubeconfig={plane.kubeconfig}", "--log-level=warning"],
            ca_pem=tls.ca_pem,
        )
        webhook.start(ready_timeout=90)
        assert webhook.process is not None
        body = bodies.encoded("small")
        small = _phase(webhook, tls, body, requests)
        say(f"scale_webhook: small cluster p50/p99 {small['p50_ms']}/{small['p99_ms']} ms, RSS {small['rss_kb']} kB")
        per = max(1, replicasets // deployments)
        jobs = [
            (namespaces[d % len(namespaces)], f"dep{d:04d}", [f"dep{d:04d}-rs{r}" for r in range(per)])
            for d in range(deployments)
        ]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for future in [pool.submit(_workloads, kube, *job) for job in jobs]:
                future.result()
        result["create_s"] = rounded(time.monotonic() - started, 1)
        want_rs = 1 + per * deployments
        deadline = time.monotonic() + 120
        while _cache_objects(webhook).get("ReplicaSet", 0) < want_rs and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(5)  # let the API server and the cache's watch finish with the burst of creations
        large = _phase(webhook, tls, body, requests)
        say(f"scale_webhook: large cluster p50/p99 {large['p50_ms']}/{large['p99_ms']} ms, RSS {large['rss_kb']} kB")
        result["small"], result["large"] = small, large
        result["summary"] = {
            "p99_ratio": rounded(large["p99_ms"] / small["p99_ms"], 3) if small["p99_ms"] else None,
            "p50_ratio": rounded(large["p50_ms"] / small["p50_ms"], 3) if small["p50_ms"] else None,
            "rss_growth_kb": large["rss_kb"] - small["rss_kb"],
            "cached_replicasets": large["cache_objects"].get("ReplicaSet"),
            "cached_deployments": large["cache_objects"].get("Deployment"),
        }
    finally:
        if webhook is not None:
            webhook.stop()
        plane.stop(remove_workdir=False)
    if own_work:
        shutil.rmtree(work, ignore_errors=True)
    return result


def target_rows(result: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    s, small, large = result["summary"], result["small"], result["large"]
    p = result["params"]
    return [
        (f"Admission p99 with {p['replicasets']:,} ReplicaSets / {p['deployments']:,} Deployments cached within "
         "10 % of a small cluster's",
         f"p99 {large['p99_ms']} vs {small['p99_ms']} ms ({s['p99_ratio']}x); p50 {large['p50_ms']} vs "
         f"{small['p50_ms']} ms", s["p99_ratio"] is not None and s["p99_ratio"] <= 1.10),
        ("(info) webhook RSS, small -> large cluster",
         f"{small['rss_kb'] / 1024:.1f} -> {large['rss_kb'] / 1024:.1f} MB (+{s['rss_growth_kb'] / 1024:.1f} MB for "
         f"{s['cached_replicasets']:.0f} ReplicaSets, {s['cached_deployments']:.0f} Deployments)", None),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicasets", type=int, default=REPLICASETS)
    parser.add_argument("--deployments", type=int, default=DEPLOYMENTS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.replicasets <= 0 or args.deployments <= 0 or args.replicasets < args.deployments:
        parser.error("--replicasets and --deployments must be positive, with at least one ReplicaSet per Deployment")
    result = run(args.quick, None, None if args.quick else args.replicasets, None if args.quick else args.deployments)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
