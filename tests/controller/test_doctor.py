"""``lanes doctor`` against a healthy installation and against broken ones."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
from typing import Any

import pytest

from tests.controller.conftest import Env
from tests.controller.support import AdmissionServer, condition_status, managed_webhook, pinned_template, wait_for
from webhook.cli import doctor
from webhook.contract import names
from webhook.controller import CertTiming
from webhook.controller.certs import pki


def run_doctor(env: Env, **names_: str) -> tuple[int, list[str]]:
    argv = [
        f"--kubeconfig={env.control_plane.kubeconfig}",
        f"--namespace={env.system_namespace}",
        f"--webhook-config={names_.get('webhook_config', f'lanes-{env.token}')}",
        "--secret=lanes-tls",
        "--lease=lanes-controller",
        f"--namespace-selector={env.selector}",
        "--timeout=3",
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = doctor.main(argv)
    return code, out.getvalue().splitlines()


def lines_with(lines: list[str], level: str, *words: str) -> list[str]:
    return [line for line in lines if line.startswith(level) and all(w in line for w in words)]


def test_doctor_on_a_healthy_then_broken_installation(env: Env) -> None:
    ns = env.namespace()
    env.kube.patch(
        f"/api/v1/namespaces/{ns}",
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
        "merge",
    )
    timing = CertTiming(ca_lifetime=3600, leaf_lifetime=1800, propagation=0.5, overlap=0.5)
    with managed_webhook(env, certs=timing) as hook:
        # a pod admitted (and injected) by the real webhook, registered by the controller
        template = pinned_template(env.node, {"app": "shop"}, {})
        del template["spec"]["readinessGates"]
        pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shop", **template["metadata"]}}
        pod["spec"] = {**template["spec"], "nodeName": env.node}
        # the app complies with Pod Security "restricted"; the admission then proves the injected containers do
        pod["spec"]["securityContext"] = {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        pod["spec"]["containers"][0]["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
        wait_for(lambda: env.kube.create(f"/api/v1/namespaces/{ns}/pods", pod), 15, "admission through the webhook")
        wait_for(
            lambda: condition_status(env.kube.get(f"/api/v1/namespaces/{ns}/pods/shop"), "Ready") == "True",
            20,
            "the injected pod Ready",
        )
        assert names.ANN_STATUS in env.kube.get(f"/api/v1/namespaces/{ns}/pods/shop")["metadata"]["annotations"]

        code, lines = run_doctor(env)
        assert code == 0, "\n".join(lines)
        assert all(line.startswith("OK ") for line in lines), "\n".join(lines)
        assert lines_with(lines, "OK", "Kubernetes v1.37", "native sidecars")
        assert lines_with(lines, "OK", "caBundle")
        assert lines_with(lines, "OK", "serving certificate in Secret", "trusted by caBundle")
        assert lines_with(lines, "OK", "certificate served at 127.0.0.1", "trusted by caBundle")
        assert lines_with(lines, "OK", "answers /healthz")
        assert lines_with(lines, "OK", "controller leader")
        assert lines_with(lines, "OK", f"namespace {ns} is enabled", "enforce=restricted")
        assert lines_with(lines, "OK", f"namespace {ns}: 1 pod(s), none needs repair")

        secret_path = f"/api/v1/namespaces/{env.system_namespace}/secrets/lanes-tls"
        data = {k: base64.b64decode(v) for k, v in env.kube.get(secret_path)["data"].items()}
        port = hook.server.port

    # Broken: the controller is gone (Lease released) and the serving certificate expired, in the Secret and on
    # the wire (a server still running with it).
    issuer = pki.KeyPair(data["issuer.crt"], data["issuer.key"])
    expired = pki.issue(issuer, "lanes", dt.timedelta(minutes=1), dns_names=("localhost",), ip_addresses=("127.0.0.1",))
    secret = env.kube.get(secret_path)
    secret["data"]["tls.crt"] = base64.b64encode(expired.cert_pem).decode()
    secret["data"]["tls.key"] = base64.b64encode(expired.key_pem).decode()
    env.kube.replace(secret_path, secret)
    stale = env.workdir / "stale"
    stale.mkdir()
    (stale / "tls.crt").write_bytes(expired.cert_pem)
    (stale / "tls.key").write_bytes(expired.key_pem)
    server = AdmissionServer(stale, env.workdir / "stale.log", port=port).start()
    try:
        code, lines = run_doctor(env)
    finally:
        server.stop()
    assert code == 1, "\n".join(lines)
    assert lines_with(lines, "FAIL", "serving certificate in Secret", "expired", "fix:")
    assert lines_with(lines, "FAIL", "127.0.0.1", "certificate has expired", "fix:")
    assert lines_with(lines, "FAIL", "controller Lease has no holder", "fix:")
    for line in lines:
        assert line.split(" ", 1)[0] in ("OK", "WARN", "FAIL")


def test_doctor_reports_a_missing_webhook_configuration_and_uninjected_pods(env: Env) -> None:
    ns = env.namespace()
    env.kube.create(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": "bare"},
            "spec": {"nodeName": env.node, "containers": [{"name": "app", "image": "registry.example/app:1"}]},
        },
    )
    code, lines = run_doctor(env, webhook_config="no-such-webhook")
    assert code == 1
    assert lines_with(lines, "FAIL", "MutatingWebhookConfiguration no-such-webhook not found", "fix: helm install")
    assert lines_with(lines, "FAIL", "no controller Lease", "fix:")
    assert lines_with(lines, "WARN", f"pod {ns}/bare was admitted without injection", "recreate pod bare")
    assert lines_with(lines, "OK", f"namespace {ns} is enabled", "enforce not set")


@pytest.mark.parametrize(
    ("version", "level"),
    [({"gitVersion": "v1.28.9", "major": "1", "minor": "28"}, "FAIL"), ({"major": "1", "minor": "30+"}, "OK")],
)
def test_version_check(version: dict[str, str], level: str) -> None:
    checker = doctor.Doctor(
        None,  # type: ignore[arg-type]
        namespace="x",
        webhook_config="x",
        secret="x",
        lease="x",
        selector="x",
        timeout=1,
        max_pods=1,
    )
    assert checker._version(version).level == level
