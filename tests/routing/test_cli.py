"""``lanes route`` (offline) and ``lanes lane`` (against the API server), run as the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from devtools.controlplane.binaries import REPO_ROOT
from tests.controller.support import wait_for
from tests.routing import scenario
from tests.routing.conftest import Routing

LANES = str(Path(sys.executable).parent / "lanes")


def lanes(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LANES, *args], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, **kw)


def write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


def deployment(app: str, lane: str | None = None) -> dict[str, Any]:
    annotations = {"lanes.io/lane": lane} if lane else {}
    name = f"{app}-{lane}" if lane else app
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": app, "track": lane or "base"}},
            "template": {
                "metadata": {"labels": {"app": app, "track": lane or "base"}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "sample", "ports": [{"containerPort": 8080}]}]},
            },
        },
    }


def test_route_prints_the_generated_objects_of_the_scenario(tmp_path: Path) -> None:
    apps = write(
        tmp_path / "apps.yaml",
        *(deployment(app) for app in "abc"),
        deployment("a", "gray"),
        deployment("c", "gray"),
        *(scenario.service(app) for app in "abc"),
    )
    lane = write(tmp_path / "lane.yaml", scenario.gray_lane())
    done = lanes("route", "-f", str(lane), "-f", str(apps))
    assert done.returncode == 0, done.stderr
    objects = {(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(done.stdout)}
    assert ("HTTPRoute", "gray-edge") in objects and ("Service", "c-gray") in objects
    assert ("Service", "b-gray") not in objects
    assert "b: served by base (NoVersion" in done.stderr


def test_route_previews_the_fallback_of_a_version_named_not_ready(tmp_path: Path) -> None:
    apps = write(tmp_path / "apps.yaml", deployment("a"), deployment("a", "gray"), scenario.service("a"))
    lane = write(tmp_path / "lane.yaml", scenario.gray_lane(services=["a"]))
    done = lanes("route", "-f", str(lane), "-f", str(apps), "--not-ready", "a-gray")
    assert done.returncode == 0, done.stderr
    vs = next(o for o in yaml.safe_load_all(done.stdout) if o["kind"] == "VirtualService")
    assert [r["name"] for r in vs["spec"]["http"]] == ["baseline"]
    assert "NoReadyEndpoints" in done.stderr


def test_route_rejects_a_bad_lane_and_input_without_lanes(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", scenario.lane("gray", percent=150))
    done = lanes("route", "-f", str(bad))
    assert done.returncode == 2 and "spec.percent" in done.stderr and "Traceback" not in done.stderr
    empty = write(tmp_path / "apps.yaml", deployment("a"))
    done = lanes("route", "-f", str(empty))
    assert done.returncode == 2 and "no Lane" in done.stderr


def test_lane_create_dry_run_builds_the_lane_from_flags() -> None:
    done = lanes(
        "lane", "create", "gray", "-n", "shop", "--services", "a,b,c",
        "--match", "header:x-user-id=100", "--match", "cookie:canary=always,query:lane=gray",
        "--entry", "a:8080", "--gateway", "gateways/edge", "--host", "base.example.com",
        "--percent", "10", "--mode", "Strict", "--dry-run",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lane = yaml.safe_load(done.stdout)
    assert lane["spec"]["match"] == [
        {"headers": [{"name": "x-user-id", "value": "100", "type": "Exact"}]},
        {
            "cookies": [{"name": "canary", "value": "always"}],
            "queryParams": [{"name": "lane", "value": "gray", "type": "Exact"}],
        },
    ]
    assert lane["spec"]["entry"] == {"service": "a", "port": 8080}
    assert lane["spec"]["gateway"]["parentRefs"] == [{"name": "edge", "namespace": "gateways"}]
    assert lane["spec"]["percent"] == 10 and lane["spec"]["mode"] == "Strict"


def test_lane_create_with_a_bad_flag_is_one_line() -> None:
    done = lanes("lane", "create", "gray", "--match", "header-x=1", "--dry-run")
    assert done.returncode == 2 and done.stderr.startswith("error: --match") and "Traceback" not in done.stderr


def test_lane_create_list_describe_delete_on_the_cluster(routing: Routing) -> None:
    kubeconfig = str(routing.control_plane.kubeconfig)
    ns = routing.namespace
    routing.scenario()
    routing.reconciler()
    done = lanes(
        "lane", "create", "gray", "-n", ns, "--kubeconfig", kubeconfig, "--services", "a,b,c",
        "--match", "header:x-user-id=100", "--entry", "a:8080", "--gateway", "gateways/edge",
        "--host", "base.example.com", "--outputs", "GatewayAPI,Istio",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_for(lambda: (routing.lane().get("status") or {}).get("inLane") == "2/3", 30, "the Lane reconciled")
    listed = lanes("lane", "list", "-n", ns, "--kubeconfig", kubeconfig)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "MODE", "SERVICES", "READY", "AGE"]
    assert row.split()[:4] == ["gray", "Permissive", "2/3", "True"]
    described = lanes("lane", "describe", "gray", "-n", ns, "--kubeconfig", kubeconfig)
    assert described.returncode == 0, described.stderr
    assert "NoVersion" in described.stdout and "HTTPRoute/gray-edge" in described.stdout
    assert "VirtualService/c-lanes" in described.stdout
    # the API server's own validation message, as one line
    bad = lanes("lane", "create", "blue", "-n", ns, "--kubeconfig", kubeconfig, "--percent", "200")
    assert bad.returncode == 2 and "less than or equal to 100" in bad.stderr and "Traceback" not in bad.stderr
    gone = lanes("lane", "delete", "gray", "-n", ns, "--kubeconfig", kubeconfig, "--wait", "--timeout", "30")
    assert gone.returncode == 0, gone.stderr
    assert routing.generated() == {}


def test_describe_probe_shows_where_the_lane_arrived(tmp_path: Path) -> None:
    """The probe walks the sample apps' echo (contract #2 of the sample app), here served by a local stand-in
    that answers one fixed echo: a (gray, tag received) -> b (base, tag received) -> c (base, tag lost)."""
    from webhook.cli.lane import probe

    echo = {
        "service": "a", "lane": "gray", "received": {"x-lane": "gray"},
        "calls": [{"service": "b", "lane": "base", "received": {"x-lane": "gray"},
                   "calls": [{"service": "c", "lane": "base", "received": {}, "calls": []}]}],
    }  # fmt: skip
    import http.server
    import threading

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(echo).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        table = probe(f"http://127.0.0.1:{server.server_port}/", None, ["x-user-id=100"], "gray")
    finally:
        server.shutdown()
    rows = [line.split() for line in table.splitlines()[1:]]
    assert [(r[1], r[2], r[-1]) for r in rows] == [("a", "gray", "yes"), ("b", "base", "yes"), ("c", "base", "NO")]


def test_controller_lane_flags_are_validated_and_parsed() -> None:
    from webhook.cli.controller import build_parser, settings_from_args

    args = build_parser().parse_args(
        ["--namespace=lanes-system", "--lanes", "--lanes-outputs=Istio,GAMMA", "--lanes-east-west-gateway=gw/mesh"]
    )
    routing = settings_from_args(args).routing
    assert routing is not None and routing.options.outputs == ("Istio", "GAMMA")
    assert routing.options.east_west[0].namespace == "gw" and routing.options.east_west[0].name == "mesh"
    assert settings_from_args(build_parser().parse_args(["--namespace=x"])).routing is None
    done = subprocess.run(
        [sys.executable, "-m", "webhook.controller", "--namespace=x", "--lanes", "--lanes-outputs=Linkerd"],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.returncode == 2 and "unknown output 'Linkerd'" in done.stderr and "Traceback" not in done.stderr
