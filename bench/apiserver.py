"""Admission through the real API server: what kube-apiserver itself measures for the Lanes webhook.

A local control plane (devtools.controlplane: etcd + kube-apiserver + kube-controller-manager for the namespaces'
``default`` ServiceAccounts) and ``lanes-webhook serve --no-owner-cache`` registered with the
MutatingWebhookConfiguration of webhook/registration.py (URL form, ``failurePolicy: Fail``, so that every admission
really went through Lanes); nothing is pinned: all of it shares the machine's two CPUs. Then N pods are created in
a namespace labeled ``lanes=enabled`` and N in a plain one, interleaved (so both see the same conditions), paced at
RATE per second with at most 8 in flight, by an asyncio/httpx client over keep-alive HTTPS with the admin client
certificate. A second, closed-loop phase (8 in flight, as fast as they complete) shows the same numbers with the
control plane saturated (``saturated`` in the result; reported, not a target).

Reported:

- ``apiserver_admission_webhook_admission_duration_seconds{name="pods.lanes.io",type="admit"}``, the API server's own
  histogram of the webhook call, as the delta between two scrapes of ``/metrics``; p50/p99 by linear interpolation
  inside the buckets (Prometheus' ``histogram_quantile``). Its buckets are coarse (5 ms, 25 ms, 100 ms, ...): a p99
  inside the first bucket reads as "<= 5 ms", and the interpolated value is an upper-bound-ish estimate;
- the webhook's own ``lanes_admission_duration_seconds`` (finer buckets, server side only);
- the client-observed pod-create latency (p50/p99) in each namespace and their difference: what enabling Lanes
  costs a pod creation end to end.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

from bench import bodies
from bench.common import (
    VENV_BIN,
    BenchError,
    Proc,
    Tls,
    free_port,
    histogram_quantile,
    kill_quietly,
    percentile,
    rounded,
    say,
    start,
    wait_for,
)

METRIC = "apiserver_admission_webhook_admission_duration_seconds"
WEBHOOK_NAME = "pods.lanes.io"
CONCURRENCY = 8
#: Pod creations per second (both namespaces together): a brisk rollout's pace that this 2-core machine's control
#: plane sustains; a closed loop at concurrency 8 saturates it, and then the API server's own CPU queueing, not the
#: webhook, dominates what it measures for the webhook call (see docs/performance.md).
RATE = 40.0
#: The closed-loop phase after it (reported, not a target): how the API server's numbers move once it is saturated.
SATURATED_PER_NAMESPACE = 300
#: The control: the same registration pointed at the floor (bench/peers/floor.py, a webhook that does nothing): what the
#: API server measures for a webhook call on this machine when the webhook itself costs next to nothing.
FLOOR_PER_NAMESPACE = 300
_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_histogram(text: str, metric: str, match: dict[str, str]) -> list[tuple[float, float]]:
    """Cumulative ``(le, count)`` buckets of ``metric`` summed over the series whose labels include ``match``."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith(metric + "_bucket"):
            continue
        found = _LINE.match(line)
        if not found:
            continue
        labels = dict(_LABEL.findall(found.group("labels") or ""))
        if any(labels.get(k) != v for k, v in match.items()):
            continue
        le = float("inf") if labels.get("le") in ("+Inf", "Inf") else float(labels["le"])
        buckets[le] = buckets.get(le, 0.0) + float(found.group("value"))
    return sorted(buckets.items())


def _delta(after: list[tuple[float, float]], before: list[tuple[float, float]]) -> list[tuple[float, float]]:
    base = dict(before)
    return [(le, count - base.get(le, 0.0)) for le, count in after]


def _histogram_summary(buckets: list[tuple[float, float]]) -> dict[str, Any]:
    total = buckets[-1][1] if buckets else 0.0
    p50, p99 = histogram_quantile(0.5, buckets), histogram_quantile(0.99, buckets)
    bound_p99 = next((le for le, count in buckets if total and count >= 0.99 * total), None)
    return {
        "count": int(total),
        "fraction_within_ms": {("+Inf" if le == float("inf") else f"{le * 1000:g}"): rounded(count / total, 4)
                               for le, count in buckets} if total else {},
        "p50_ms": rounded(p50 * 1000 if p50 is not None else None),
        "p99_ms": rounded(p99 * 1000 if p99 is not None else None),
        "p99_bucket_upper_bound_ms": rounded(bound_p99 * 1000) if bound_p99 not in (None, float("inf")) else None,
        "buckets": [{"le_ms": "+Inf" if le == float("inf") else rounded(le * 1000, 4), "count": int(count)}
                    for le, count in buckets],
    }


def _pod_body() -> dict[str, Any]:
    """The small benchmark pod as a user/controller submits it (no ownerReferences: there is no ReplicaSet, and the
    garbage collector would delete pods whose owner does not exist; no status)."""
    pod = bodies.small_pod()
    pod["metadata"] = {
        "generateName": "bench-",
        "labels": {"app": "web"},
        "annotations": {"lanes.io/lane": "gray"},
    }
    pod["spec"].pop("volumes", None)
    for container in pod["spec"]["containers"]:
        container.pop("volumeMounts", None)
    pod["spec"].pop("serviceAccountName", None)
    return pod


async def _create_pods(url: str, context: Any, plan: list[str], rate: float | None) -> list[dict[str, Any]]:
    """Create the pods in ``plan`` order, request i due at start + i / rate (open loop; ``None``: as fast as
    possible), at most CONCURRENCY in flight; latency is measured from the actual send."""
    import httpx

    pod = json.dumps(_pod_body()).encode()
    results: list[dict[str, Any]] = [{} for _ in plan]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(plan)):
        queue.put_nowait(index)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    loop = asyncio.get_running_loop()
    begin = loop.time() + 0.1
    async with httpx.AsyncClient(verify=context, limits=limits, timeout=30) as client:
        async def worker() -> None:
            while True:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if rate:
                    due = begin + index / rate
                    if due > loop.time():
                        await asyncio.sleep(due - loop.time())
                namespace = plan[index]
                started = time.perf_counter()
                try:
                    response = await client.post(
                        f"{url}/api/v1/namespaces/{namespace}/pods", content=pod,
                        headers={"Content-Type": "application/json"},
                    )
                    elapsed = time.perf_counter() - started
                    injected = False
                    if response.status_code == 201:
                        annotations = response.json().get("metadata", {}).get("annotations") or {}
                        injected = "lanes.io/status" in annotations
                    results[index] = {"namespace": namespace, "status": response.status_code,
                                      "seconds": elapsed, "injected": injected}
                except httpx.HTTPError as exc:
                    results[index] = {"namespace": namespace, "status": 0, "seconds": time.perf_counter() - started,
                                      "error": type(exc).__name__, "injected": False}

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return results


def _api(cp: Any, method: str, path: str, body: Any = None,
         content_type: str = "application/json") -> tuple[int, Any]:
    import httpx

    with httpx.Client(verify=cp.ssl_context(), timeout=30) as client:
        content = json.dumps(body).encode() if body is not None else None
        response = client.request(method, cp.url + path, content=content, headers={"Content-Type": content_type})
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def run(quick: bool, work: Path) -> dict[str, Any]:
    from devtools.controlplane import ControlPlane
    from webhook.admission.registration import mutating_webhook_configuration

    per_namespace = 25 if quick else 1000
    say("apiserver: starting the local control plane (etcd, kube-apiserver, kube-controller-manager)")
    started = time.monotonic()
    cp = ControlPlane(controller_manager=True, scheduler=False, kwok=False)
    cp.start()
    webhook: Proc | None = None
    floor: Proc | None = None
    try:
        say(f"apiserver: control plane up in {time.monotonic() - started:.0f}s")
        tls = Tls(work / "tls")
        port = free_port()
        # Unpinned: the control plane, the webhook and the client share both CPUs. (Giving the webhook CPU 1 and the
        # control plane CPU 0 starves the API server, and its own queueing then dominates what it measures.)
        webhook = start("apiserver-lanes-webhook", [
            str(VENV_BIN / "lanes-webhook"), "serve", "--cert", str(tls.cert), "--key", str(tls.key),
            "--host", "127.0.0.1", "--port", str(port), "--no-owner-cache", "--shutdown-delay", "0",
        ], work / "logs")
        wait_for(lambda: _probe_webhook(port, tls), 60, "lanes-webhook", webhook)
        config = mutating_webhook_configuration(
            name="lanes-bench", ca_pem=tls.ca_pem, own_namespace="lanes-system", url=f"https://127.0.0.1:{port}",
            failure_policy="Fail",
        )
        status, body = _api(cp, "POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", config)
        if status != 201:
            raise BenchError(f"registering the webhook failed: HTTP {status} {str(body)[:300]}")
        namespaces = {"enabled": "bench-enabled", "plain": "bench-plain"}
        for kind, name in namespaces.items():
            labels = {"lanes": "enabled"} if kind == "enabled" else {}
            status, body = _api(cp, "POST", "/api/v1/namespaces",
                                {"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": name, "labels": labels}})
            if status != 201:
                raise BenchError(f"creating namespace {name} failed: HTTP {status} {str(body)[:300]}")
        for name in namespaces.values():
            wait_for(lambda n=name: _api(cp, "GET", f"/api/v1/namespaces/{n}/serviceaccounts/default")[0] == 200,
                     60, f"default ServiceAccount in {name}")
        # The API server picks up a new webhook configuration asynchronously: wait until a dry-run create is
        # injected (also warms the connection to the webhook).
        pod = _pod_body()
        wait_for(lambda: _dry_run_injected(cp, namespaces["enabled"], pod), 60, "webhook registration in effect",
                 interval=0.2)
        paced_rate = 100.0 if quick else RATE
        plan = [namespaces[k] for _ in range(per_namespace) for k in ("enabled", "plain")]
        say(f"apiserver: creating {len(plan)} pods ({per_namespace} per namespace, interleaved, {paced_rate:g}/s, "
            f"at most {CONCURRENCY} in flight; about {len(plan) / paced_rate:.0f}s)")
        paced = _phase(cp, port, tls, namespaces, plan, paced_rate)
        saturated_n = 10 if quick else SATURATED_PER_NAMESPACE
        plan = [namespaces[k] for _ in range(saturated_n) for k in ("enabled", "plain")]
        say(f"apiserver: closed loop, {len(plan)} more pods as fast as {CONCURRENCY} in flight allow")
        saturated = _phase(cp, port, tls, namespaces, plan, None)
        floor_n = 10 if quick else FLOOR_PER_NAMESPACE
        say(f"apiserver: the same registration pointed at the floor (no-op webhook): {2 * floor_n} pods at "
            f"{paced_rate:g}/s")
        floor_port = free_port()
        floor = start("apiserver-floor", [str(VENV_BIN / "python"), "-m", "bench.peers.floor", "--cert",
                                          str(tls.cert), "--key", str(tls.key), "--port", str(floor_port)],
                      work / "logs")
        wait_for(lambda: _floor_calls(floor_port, tls) >= 0, 60, "floor webhook", floor)
        configs = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
        status, body = _api(cp, "PATCH", f"{configs}/lanes-bench",
                            [{"op": "replace", "path": "/webhooks/0/clientConfig/url",
                              "value": f"https://127.0.0.1:{floor_port}/mutate"}],
                            content_type="application/json-patch+json")
        if status != 200:
            raise BenchError(f"re-pointing the webhook failed: HTTP {status} {str(body)[:300]}")

        def floor_called() -> bool:
            before = _floor_calls(floor_port, tls)
            _api(cp, "POST", f"/api/v1/namespaces/{namespaces['enabled']}/pods?dryRun=All", pod)
            return _floor_calls(floor_port, tls) > before

        wait_for(floor_called, 60, "registration pointing at the floor", interval=0.2)
        plan = [namespaces[k] for _ in range(floor_n) for k in ("enabled", "plain")]
        floor_phase = _phase(cp, port, tls, namespaces, plan, paced_rate, lanes_metrics=False)
        return {
            "params": {"pods_per_namespace": per_namespace, "concurrency": CONCURRENCY, "interleaved": True,
                       "rate_per_s": paced_rate, "saturated_pods_per_namespace": saturated_n,
                       "floor_pods_per_namespace": floor_n,
                       "failure_policy": "Fail", "webhook": "lanes-webhook serve --no-owner-cache",
                       "placement": "unpinned: control plane, webhook and client share both CPUs"},
            **paced,
            "saturated": saturated,
            "floor": floor_phase,
            "kubernetes_version": cp.version().get("gitVersion"),
        }
    finally:
        kill_quietly(floor)
        kill_quietly(webhook)
        cp.stop(remove_workdir=True)


def _phase(cp: Any, port: int, tls: Tls, namespaces: dict[str, str], plan: list[str],
           rate: float | None, lanes_metrics: bool = True) -> dict[str, Any]:
    """Create the pods of ``plan`` (paced at ``rate``, or closed loop when None) and read both histograms' deltas."""
    _, metrics_before = cp.get("/metrics", timeout=30)
    lanes_before = _lanes_metrics(port, tls) if lanes_metrics else ""
    began = time.monotonic()
    results = asyncio.run(_create_pods(cp.url, cp.ssl_context(), plan, rate))
    wall = time.monotonic() - began
    _, metrics_after = cp.get("/metrics", timeout=30)
    lanes_after = _lanes_metrics(port, tls) if lanes_metrics else ""
    match = {"name": WEBHOOK_NAME, "type": "admit", "operation": "CREATE"}
    apiserver_hist = _delta(parse_histogram(metrics_after.decode(), METRIC, match),
                            parse_histogram(metrics_before.decode(), METRIC, match))
    lanes_hist = _delta(parse_histogram(lanes_after, "lanes_admission_duration_seconds", {"path": "/mutate"}),
                        parse_histogram(lanes_before, "lanes_admission_duration_seconds", {"path": "/mutate"}))
    client: dict[str, Any] = {}
    for kind, name in namespaces.items():
        rows = [r for r in results if r.get("namespace") == name]
        ok = [r["seconds"] * 1000 for r in rows if r.get("status") == 201]
        client[kind] = {
            "namespace": name,
            "created": len(ok),
            "failed": len(rows) - len(ok),
            "injected": sum(1 for r in rows if r.get("injected")),
            "p50_ms": rounded(percentile(ok, 50)),
            "p90_ms": rounded(percentile(ok, 90)),
            "p99_ms": rounded(percentile(ok, 99)),
            "mean_ms": rounded(sum(ok) / len(ok) if ok else None),
        }
    difference = {
        q: rounded(client["enabled"][f"{q}_ms"] - client["plain"][f"{q}_ms"])
        if client["enabled"][f"{q}_ms"] is not None and client["plain"][f"{q}_ms"] is not None else None
        for q in ("p50", "p99")
    }
    api = _histogram_summary(apiserver_hist)
    created = client["enabled"]["created"]
    return {
        "rate_per_s": rate,
        "create_wall_s": rounded(wall, 2),
        "create_rate_per_s": rounded(len(plan) / wall if wall else None, 1),
        "webhook_calls_per_enabled_pod": rounded(api["count"] / created if created else None, 2),
        "apiserver_webhook_histogram": api,
        "lanes_server_histogram": _histogram_summary(lanes_hist),
        "client": client,
        "client_difference_ms": difference,
    }


def _probe_webhook(port: int, tls: Tls) -> bool:
    import httpx

    with httpx.Client(verify=tls.client_context(), timeout=2) as client:
        return client.get(f"https://127.0.0.1:{port}/healthz").status_code == 200


def _floor_calls(port: int, tls: Tls) -> int:
    import httpx

    with httpx.Client(verify=tls.client_context(), timeout=5) as client:
        return int(client.get(f"https://127.0.0.1:{port}/stats").json()["mutate_calls"])


def _lanes_metrics(port: int, tls: Tls) -> str:
    import httpx

    with httpx.Client(verify=tls.client_context(), timeout=10) as client:
        return client.get(f"https://127.0.0.1:{port}/metrics").text


def _dry_run_injected(cp: Any, namespace: str, pod: dict[str, Any]) -> bool:
    status, body = _api(cp, "POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", pod)
    return status == 201 and "lanes.io/status" in (body.get("metadata", {}).get("annotations") or {})
