"""Workloads of the lifecycle tests: the sample app as a pod, its logs as the kubelet wrote them, HTTP into pods.

Container logs are read from the node's own files (``/var/log/pods`` inside the node's mount namespace is a
folder of the run): they outlive the pod for a while (the kubelet's container GC runs once a minute), so a test
can read what the app and the agent printed during a deletion after the pod is gone. Each CRI log line starts
with containerd's nanosecond timestamp.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
from typing import Any

from devtools.realnode import RealNode

AGENT_PORT = 15400


def app_container(image: str, env: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": image,
        "imagePullPolicy": "Never",
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    container.update(extra)
    return container


def pod(
    name: str, containers: list[dict[str, Any]], annotations: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations or {}},
        "spec": {"containers": containers, **spec},
    }


def deployment(
    name: str,
    image: str,
    replicas: int = 1,
    annotations: dict[str, str] | None = None,
    strategy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Deployment of the sample app (``app: <name>`` labels); the API server's defaults where left out."""
    template: dict[str, Any] = {"labels": {"app": name}}
    if annotations is not None:
        template["annotations"] = annotations
    spec: dict[str, Any] = {"replicas": replicas}
    if strategy is not None:
        spec["strategy"] = strategy
    spec["selector"] = {"matchLabels": {"app": name}}
    spec["template"] = {"metadata": template, "spec": {"containers": [app_container(image)]}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def parse_cri_time(stamp: str) -> float:
    """containerd's RFC 3339 nano timestamps -> epoch seconds (Python parses microseconds at most)."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def parse_k8s_time(value: dt.datetime | str) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def log_lines(node: RealNode, namespace: str, pod_name: str, container: str) -> list[tuple[float, str]]:
    """Every line the container printed, over all its restarts, as (containerd's timestamp, text)."""
    root = node.workdir / "fs" / "var-log" / "pods"
    lines: list[tuple[float, str]] = []
    for folder in root.glob(f"{namespace}_{pod_name}_*"):
        for path in sorted((folder / container).glob("*.log"), key=lambda p: int(p.stem)):
            for raw in path.read_text(errors="replace").splitlines():
                stamp, _, rest = raw.partition(" ")
                _stream, _, rest = rest.partition(" ")
                _tag, _, text = rest.partition(" ")
                lines.append((parse_cri_time(stamp), text))
    return sorted(lines)


def json_events(lines: list[tuple[float, str]]) -> list[tuple[float, dict[str, Any]]]:
    events = []
    for stamp, text in lines:
        if text.startswith("{"):
            try:
                events.append((stamp, json.loads(text)))
            except ValueError:
                continue
    return events


def http_get(node: RealNode, host: str, port: int, path: str, timeout: float = 5) -> tuple[int, str]:
    """GET from inside the node's network namespace (as the kubelet would reach a pod)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.sock = node.dial(host, port, timeout)
    conn.sock.settimeout(timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def agent_status(node: RealNode, pod_ip: str) -> dict[str, Any]:
    status, body = http_get(node, pod_ip, AGENT_PORT, "/status")
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


class LogTail:
    """Keeps copies of a pod's log files while it terminates: the kubelet removes them with the pod."""

    def __init__(self, node: RealNode, namespace: str, pod_name: str) -> None:
        import threading

        self.root = node.workdir / "fs" / "var-log" / "pods"
        self.pattern = f"{namespace}_{pod_name}_*"
        self.copies: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in self.root.glob(f"{self.pattern}/*/*.log"):
                try:
                    text = path.read_text(errors="replace")
                except OSError:
                    continue
                key = f"{path.parent.name}/{path.name}"
                if len(text) >= len(self.copies.get(key, "")):
                    self.copies[key] = text
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def lines(self, container: str) -> list[tuple[float, str]]:
        found: list[tuple[float, str]] = []
        for key, text in self.copies.items():
            if key.split("/")[0] != container:
                continue
            for raw in text.splitlines():
                stamp, _, rest = raw.partition(" ")
                _stream, _, rest = rest.partition(" ")
                _tag, _, line = rest.partition(" ")
                found.append((parse_cri_time(stamp), line))
        return sorted(found)


def kill_container(node: RealNode, container_id: str, signal: str = "SIGKILL") -> None:
    """Signal a container's main process through containerd (``ctr tasks kill``): SIGKILL is what an OOM kill or
    a crash looks like to the kubelet, which then restarts the container per its restart policy."""
    cid = container_id.split("://", 1)[1]
    ctr = str(node.binary("ctr"))
    result = node.run([ctr, "--address", "/run/containerd/containerd.sock", "-n", "k8s.io", "tasks", "kill", "-s",
                       signal, cid])
    assert result.returncode == 0, result.stderr
