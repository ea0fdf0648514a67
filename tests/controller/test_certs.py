"""Self-managed certificates: creation, caBundle, rotation of the serving certificate and of the CA while pods
are admitted through the real webhook registration without a single failure, and without a server restart."""

from __future__ import annotations

import base64
import socket
import ssl
import time
from typing import Any

from cryptography import x509

from tests.controller.conftest import Env
from tests.controller.support import Stopwatch, admission_requests, managed_webhook, metric, wait_for
from webhook.controller import CertTiming
from webhook.controller.certs import x509util
from webhook.kube.client import Kube

# Short lifetimes: the serving certificate is renewed every ~8 s and the CA at ~16 s, so one test run sees
# two kinds of rotation, the two-CA overlap and the old CA's removal.
TIMING = CertTiming(ca_lifetime=24, leaf_lifetime=12, propagation=1.5, overlap=2)


def secret_data(env: Env, namespace: str, name: str) -> dict[str, bytes]:
    secret = env.kube.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def ca_bundle(env: Env, config: str) -> bytes:
    path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{config}"
    hooks = env.kube.get(path)["webhooks"]
    bundles = {h["clientConfig"].get("caBundle", "") for h in hooks}
    assert len(bundles) == 1
    return base64.b64decode(bundles.pop())


def presented_certificate(port: int, ca_pem: bytes) -> x509.Certificate:
    """Handshake as the API server would: verify against the caBundle, hostname 127.0.0.1."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_rotation_under_load_never_fails_an_admission(env: Env, k8s: Any) -> None:
    ns = env.namespace()
    with managed_webhook(env, certs=TIMING) as hook:
        settings = hook.settings
        data = secret_data(env, settings.namespace, settings.secret_name)
        # The Secret is a kubernetes.io/tls Secret with the CA bundle; caBundle carries the same bundle.
        wait_for(lambda: ca_bundle(env, settings.webhook_config) == data["ca.crt"], 10, "caBundle published")
        leaf = x509.load_pem_x509_certificate(data["tls.crt"])
        assert {
            "lanes",
            f"lanes.{settings.namespace}",
            f"lanes.{settings.namespace}.svc",
            f"lanes.{settings.namespace}.svc.cluster.local",
        } <= x509util.dns_names(leaf)
        secret = env.kube.get(f"/api/v1/namespaces/{settings.namespace}/secrets/{settings.secret_name}")
        assert secret["type"] == "kubernetes.io/tls"

        kube = Kube(k8s)
        probe = {
            "metadata": {"name": "probe"},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
        }
        wait_for(
            lambda: kube.create(f"/api/v1/namespaces/{ns}/pods", probe, timeout=(5, 10)) and True,
            15,
            "the API server to call the webhook",
        )
        server_pid = hook.server.process.pid if hook.server.process else None
        seen_bundles: set[tuple[str, ...]] = set()
        seen_leaves: set[str] = set()

        def admit(index: int) -> str:
            body = {
                "metadata": {"name": f"p-{index}", "labels": {"app": "load"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
            }
            kube.create(f"/api/v1/namespaces/{ns}/pods", body, timeout=(5, 15))
            kube.delete(f"/api/v1/namespaces/{ns}/pods/p-{index}", {"gracePeriodSeconds": 0}, timeout=(5, 15))
            bundle = x509util.load_bundle(ca_bundle(env, settings.webhook_config))
            seen_bundles.add(tuple(x509util.fingerprint(c) for c in bundle))
            seen_leaves.add(x509util.fingerprint(presented_certificate(hook.server.port, x509util.to_pem(bundle))))
            return "ok"

        load = Stopwatch(admit, pause=0.05)
        load.start()
        started = time.monotonic()
        # until the CA was rotated, the serving certificate switched to it and the old CA was dropped again
        wait_for(
            lambda: (
                metric(hook.controller.metrics, "lanes_cert_rotations_total", {"certificate": "ca"}) >= 2
                and len(x509util.load_bundle(ca_bundle(env, settings.webhook_config))) == 1
                and time.monotonic() - started > 4
            ),
            45,
            "a complete CA rotation",
            interval=0.2,
        )
        time.sleep(1.0)
        load.finish()

        assert not load.errors, (
            f"{len(load.errors)} of {len(load.results) + len(load.errors)} admissions failed: {load.errors[:3]}"
        )
        assert len(load.results) >= 50, f"only {len(load.results)} admissions during the rotation"
        rotations = metric(hook.controller.metrics, "lanes_cert_rotations_total", {"certificate": "serving"})
        assert rotations >= 3, f"only {rotations} serving certificates"
        assert any(len(b) == 2 for b in seen_bundles), "never saw the two-CA overlap in caBundle"
        assert len(seen_leaves) >= 3, "the server did not present the renewed certificates"

        # the final state: one CA, the issuer of the certificate the server presents, in caBundle and Secret
        data = secret_data(env, settings.namespace, settings.secret_name)
        bundle = ca_bundle(env, settings.webhook_config)
        assert bundle == data["ca.crt"]
        (only_ca,) = x509util.load_bundle(bundle)
        served = presented_certificate(hook.server.port, bundle)
        assert x509util.issued_by(served, only_ca)
        assert served == x509.load_pem_x509_certificate(data["tls.crt"])
        assert metric(hook.controller.metrics, "lanes_cert_expiry_timestamp_seconds", {"certificate": "serving"}) == (
            x509util.not_after(served)
        )

        # the very same server process answered throughout, reloading the files it was started with
        assert hook.server.process is not None and hook.server.process.poll() is None
        assert hook.server.process.pid == server_pid
        assert hook.server.log().count("serving certificate reloaded") >= 2
        requests = admission_requests(hook.server_metrics(bundle))
        assert requests >= len(load.results), (requests, len(load.results))


def test_existing_secret_is_reused_and_a_reset_cabundle_is_repaired(env: Env) -> None:
    timing = CertTiming(ca_lifetime=3600, leaf_lifetime=1800, propagation=0.5, overlap=0.5)
    with managed_webhook(env, certs=timing) as hook:
        settings = hook.settings
        wait_for(lambda: ca_bundle(env, settings.webhook_config), 10, "caBundle published")
        first = secret_data(env, settings.namespace, settings.secret_name)
        # A `helm upgrade` re-applies the configuration without caBundle: the controller puts it back.
        path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{settings.webhook_config}"
        env.kube.patch(path, [{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}], "json")
        wait_for(lambda: ca_bundle(env, settings.webhook_config) == first["ca.crt"], 10, "caBundle restored")
    # A restarted controller reuses the Secret instead of issuing new certificates.
    with managed_webhook(env, certs=timing) as hook:
        time.sleep(1.0)
        again = secret_data(env, settings.namespace, settings.secret_name)
        assert again["tls.crt"] == first["tls.crt"] and again["ca.crt"] == first["ca.crt"]
        assert metric(hook.controller.metrics, "lanes_cert_rotations_total", {"certificate": "serving"}) == 0
        assert (env.workdir / "certs" / "tls.crt").read_bytes() == first["tls.crt"]
