"""``lanes inject``: real YAML files in, YAML out, warnings on stderr, exit status for user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.cli.lanes import main
from webhook.contract import names

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations:
    lanes.io/lane: gray
    lanes.io/drain: 40x
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations:
        lanes.io/warmup: 2m
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /ready, port: http}}
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web, annotations: {lanes.io/lane: ignored-here}}
spec: {ports: [{port: 80}]}
"""

CRONJOB_LIST = """\
apiVersion: v1
kind: List
items:
- apiVersion: batch/v1
  kind: CronJob
  metadata: {name: nightly, annotations: {lanes.io/lane: batch}}
  spec:
    schedule: "0 0 * * *"
    jobTemplate:
      metadata: {annotations: {lanes.io/drain: 1s}}
      spec:
        template:
          spec:
            restartPolicy: Never
            containers: [{name: job, image: busybox}]
- apiVersion: v1
  kind: Pod
  metadata: {name: hostnet, labels: {app: h}}
  spec: {hostNetwork: true, containers: [{name: c, image: x}]}
"""


def run(tmp_path: Path, text: str, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[Any], str]:
    path = tmp_path / "in.yaml"
    path.write_text(text)
    status = main(["inject", "-f", str(path), *args])
    out, err = capsys.readouterr()
    return status, [d for d in yaml.safe_load_all(out) if d is not None], err


def template(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]


def status_of(meta: dict[str, Any]) -> dict[str, Any]:
    return json.loads(meta["annotations"][names.ANN_STATUS])


def test_deployment_is_injected_with_workload_precedence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, docs, err = run(tmp_path, DEPLOYMENT, capsys=capsys)
    assert status == 0
    [deployment] = docs
    tpl = template(deployment)
    config = status_of(tpl["metadata"])["config"]
    assert config["lane"] == "gray"  # from the Deployment's own annotations
    assert config["warmup"] == 120.0  # from the template
    assert config["drain"] == 10.0  # "40x" is invalid: default
    assert config["app"] == "web"
    assert tpl["metadata"]["labels"]["lanes.io/lane"] == "gray"
    agent = next(c for c in tpl["spec"]["initContainers"] if c["name"] == names.CONTAINER_AGENT)
    assert {"name": names.ENV_APP_READY_PATH, "value": "/ready"} in agent["env"]
    assert deployment["metadata"] == yaml.safe_load(DEPLOYMENT)["metadata"]  # the workload itself is unchanged
    assert "warning: doc 1 Deployment/web: lanes.io/drain (Deployment web): '40x'" in err


def test_multi_document_stream_and_other_kinds_pass_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = DEPLOYMENT + "---\n" + SERVICE + "---\n" + CRONJOB_LIST
    status, docs, err = run(tmp_path, text, capsys=capsys)
    assert status == 0
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "List"]
    assert docs[1] == yaml.safe_load(SERVICE)
    cron, hostnet = docs[2]["items"]
    cron_template = cron["spec"]["jobTemplate"]["spec"]["template"]
    config = status_of(cron_template["metadata"])["config"]
    assert (config["lane"], config["drain"], config["app"]) == ("batch", 1.0, "nightly")
    assert hostnet == yaml.safe_load(CRONJOB_LIST)["items"][1]
    assert "doc 3 item 2 Pod/hostnet: not injected: hostNetwork" in err


def test_output_is_plain_yaml_without_anchors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.yaml"
    path.write_text(DEPLOYMENT)
    main(["inject", "-f", str(path)])
    out = capsys.readouterr().out
    assert "&id" not in out and "*id" not in out


def test_injecting_the_output_again_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.yaml"
    path.write_text(DEPLOYMENT + "---\n" + CRONJOB_LIST)
    assert main(["inject", "-f", str(path)]) == 0
    first = capsys.readouterr().out
    again = tmp_path / "again.yaml"
    again.write_text(first)
    assert main(["inject", "-f", str(again)]) == 0
    second, err = capsys.readouterr()
    assert list(yaml.safe_load_all(second)) == list(yaml.safe_load_all(first))
    assert "already injected" in err


def test_namespace_annotations_labels_and_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x}]}\n"
    status, [out], _ = run(
        tmp_path, pod, "--namespace-annotation", "lanes.io/drain=33s", "--namespace-label", "lanes.io/lane=blue",
        "--set", "tagHeader=x-env", "--set", "helper_image=registry.local/helper:dev", capsys=capsys,
    )
    assert status == 0
    config = status_of(out["metadata"])["config"]
    assert (config["drain"], config["lane"], config["tag_header"]) == (33.0, "blue", "x-env")
    agent = next(c for c in out["spec"]["initContainers"] if c["name"] == names.CONTAINER_AGENT)
    assert agent["image"] == "registry.local/helper:dev"


def test_workload_annotation_beats_namespace_annotation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, [out], _ = run(tmp_path, DEPLOYMENT, "--namespace-annotation", "lanes.io/lane=from-ns", capsys=capsys)
    assert status_of(template(out)["metadata"])["config"]["lane"] == "gray"


def test_defaults_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("drain: 7s\nagent: false\n")
    _, [out], _ = run(tmp_path, DEPLOYMENT, "--defaults", str(defaults), capsys=capsys)
    tpl = template(out)
    assert tpl["spec"]["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 7}}
    assert "initContainers" not in tpl["spec"]


def test_own_namespace_and_opt_out_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        "kind: Pod\nmetadata: {name: a, namespace: lanes-system}\nspec: {containers: [{name: c}]}\n---\n"
        "kind: Pod\nmetadata: {name: b, labels: {lanes.io/inject: 'false'}}\nspec: {containers: [{name: c}]}\n"
    )
    status, docs, err = run(tmp_path, text, capsys=capsys)
    assert status == 0
    assert docs == list(yaml.safe_load_all(text))
    assert "doc 1 Pod/a: not injected" in err and "doc 2 Pod/b: not injected" in err


@pytest.mark.parametrize(
    ("text", "document", "line"),
    [
        ("kind: Pod\nmetadata: {name: [\n", 1, 3),
        (DEPLOYMENT + "---\n" + "kind: Service\n  bad: indent\n", 2, 2),
    ],
)
def test_invalid_yaml_names_document_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, document: int, line: int
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["inject", "-f", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"document {document}, line {line}" in err
    assert err.startswith("error: ") and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inject", "-f", "/does/not/exist.yaml"], "cannot read"),
        (["inject", "-f", "{in}", "--set", "drain=forever"], "--set: drain"),
        (["inject", "-f", "{in}", "--set", "nonsense=1"], "unknown field"),
        (["inject", "-f", "{in}", "--defaults", "/nope.yaml"], "cannot read"),
        (["inject", "-f", "{in}", "--namespace-annotation", "novalue"], "KEY=VALUE"),
        (["inject"], "required"),
        ([], "required"),
    ],
)
def test_user_errors_exit_2_without_a_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    path = tmp_path / "in.yaml"
    path.write_text(DEPLOYMENT)
    assert main([a.replace("{in}", str(path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inject", "--help"]) == 0
    assert "--namespace-annotation" in capsys.readouterr().out


def test_stdin_through_the_real_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webhook.cli.lanes", "inject", "-f", "-"],
        input=DEPLOYMENT + "---\n" + SERVICE,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    assert names.ANN_STATUS in template(docs[0])["metadata"]["annotations"]
    assert "doc 1 Deployment/web" in done.stderr


def test_non_utf8_input_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kind: Pod\nmetadata: {name: \xe9}\n")
    assert main(["inject", "-f", str(path)]) == 2
    assert "UTF-8" in capsys.readouterr().err


RESERVED_AND_GATEWAY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
      - {name: lanes-prewarm, image: example.com/mine:1}
      containers:
      - {name: web, image: nginx, ports: [{containerPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingressgateway, namespace: shop}
spec:
  selector: {matchLabels: {app: gw}}
  template:
    metadata: {labels: {app: gw}, annotations: {inject.istio.io/templates: gateway}}
    spec:
      containers:
      - {name: istio-proxy, image: auto}
"""


def test_reserved_names_and_mesh_gateways_are_left_alone_by_the_real_command() -> None:
    """Issue #11.4/#11.5 through `lanes inject` (the webhook shares the core): unchanged output, a warning each."""
    lanes = Path(sys.executable).with_name("lanes")
    done = subprocess.run(
        [str(lanes), "inject", "-f", "-"], input=RESERVED_AND_GATEWAY, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    assert docs == list(yaml.safe_load_all(RESERVED_AND_GATEWAY))
    assert "doc 1 Deployment/web: initContainers 'lanes-prewarm' has a name Lanes injects" in done.stderr
    assert "doc 2 Deployment/ingressgateway: only mesh proxy containers (istio-proxy)" in done.stderr
