"""The controller's pure parts, without a cluster: timing rules, parsing, file swapping, settings."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

import pytest

from helper.backoff import PLUS_MINUS_20, Backoff
from tests.controller.support import status_annotation
from webhook.cli.controller import build_parser, long_duration, settings_from_args
from webhook.contract import names
from webhook.controller import pods as podfacts
from webhook.controller.certs import pki, x509util
from webhook.controller.certs.files import write_atomically
from webhook.controller.certs.material import Material, parse_secret, secret_body
from webhook.controller.gate import status_patch
from webhook.controller.rbac import cluster_rules, namespace_rules
from webhook.controller.settings import (
    CertTiming,
    ControllerSettings,
    LeaseTiming,
    RepairMode,
    RepairSettings,
    SettingsError,
)
from webhook.kube.ratelimit import TokenBucket


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take() == 0.0
    now[0] += 100
    assert [bucket.take() for _ in range(4)][:3] == [0.0, 0.0, 0.0]


def test_backoff_grows_to_its_cap_with_bounded_jitter() -> None:
    backoff = Backoff(first=1.0, cap=8.0, jitter=PLUS_MINUS_20)
    delays = [backoff.next_delay() for _ in range(8)]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4
    assert all(d <= 8.0 * 1.2 for d in delays) and delays[-1] >= 8.0 * 0.8
    backoff.reset()
    assert backoff.next_delay() <= 1.2


def test_certificates_last_their_lifetime_from_issuance_and_rotate_at_two_thirds() -> None:
    now = time.time()
    ca = pki.make_ca("ca", x509util.lifetime_for_pki(90))
    leaf = pki.issue(ca, "leaf", x509util.lifetime_for_pki(60), dns_names=("a", "b"), ip_addresses=("127.0.0.1",))
    # webhook.controller.certs.pki backdates by exactly x509util.BACKDATE: if that changes, lifetimes would be off
    assert ca.not_before().timestamp() == pytest.approx(now - x509util.BACKDATE.total_seconds(), abs=2)
    assert x509util.not_after(leaf.certificate) == pytest.approx(now + 60, abs=2)
    assert x509util.rotate_at(leaf.certificate, 2 / 3) == pytest.approx(now + 40, abs=2)
    assert x509util.rotate_at(leaf.certificate, 2 / 3, renew_before=50) == pytest.approx(now + 10, abs=2)
    assert x509util.issued_by(leaf.certificate, ca.certificate)
    assert not x509util.issued_by(leaf.certificate, pki.make_ca("other", dt.timedelta(days=1)).certificate)
    assert x509util.covers(leaf.certificate, ("a",), ("127.0.0.1",))
    assert not x509util.covers(leaf.certificate, ("c",))
    assert x509util.key_matches(leaf) and not x509util.key_matches(pki.KeyPair(leaf.cert_pem, ca.key_pem))


def test_secret_material_round_trips_and_garbage_is_not_usable() -> None:
    assert not parse_secret(None).usable
    assert not parse_secret({"data": {"tls.crt": "bm90IGEgY2VydA==", "tls.key": "!!"}}).usable
    ca = pki.make_ca("ca", dt.timedelta(days=2))
    leaf = pki.issue(ca, "leaf", dt.timedelta(days=1))
    material = Material(bundle=[ca.certificate], issuer=ca, leaf=leaf, trusted_since={"x": 1.5}, issued_at=2.0)
    body = secret_body(material, "ns", "name")
    assert body["type"] == "kubernetes.io/tls" and set(body["data"]) >= {"tls.crt", "tls.key", "ca.crt"}
    again = parse_secret(body)
    assert again.usable and again.trusted_since == {"x": 1.5} and again.issued_at == 2.0
    assert again.bundle_pem == ca.cert_pem
    # a leaf from another CA than the bundle's is not usable
    foreign = pki.issue(pki.make_ca("other", dt.timedelta(days=2)), "leaf", dt.timedelta(days=1))
    assert not Material(bundle=[ca.certificate], issuer=ca, leaf=foreign).usable


def test_atomic_files_swap_as_one_version(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_bytes(b"plain")  # a plain file from before is replaced by the managed link
    assert write_atomically(tmp_path, {"tls.crt": b"c0", "tls.key": b"k0"})
    assert (tmp_path / "tls.crt").is_symlink() and (tmp_path / "tls.crt").read_bytes() == b"c0"
    assert not write_atomically(tmp_path, {"tls.crt": b"c0", "tls.key": b"k0"}), "unchanged content rewritten"
    assert oct((tmp_path / "tls.key").stat().st_mode & 0o777) == "0o600"

    mismatches: list[tuple[bytes, bytes]] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            data = (tmp_path / "..data").resolve()
            try:
                cert, key = (data / "tls.crt").read_bytes(), (data / "tls.key").read_bytes()
            except FileNotFoundError:
                continue  # that version was already cleaned up: a real reader retries
            if cert[1:] != key[1:]:
                mismatches.append((cert, key))

    thread = threading.Thread(target=reader)
    thread.start()
    for version in range(1, 150):
        write_atomically(tmp_path, {"tls.crt": f"c{version}".encode(), "tls.key": f"k{version}".encode()})
    stop.set()
    thread.join()
    assert not mismatches
    versions = [p for p in tmp_path.iterdir() if p.name.startswith("..") and p.name != "..data"]
    assert len(versions) == 1, "old versions were not removed"
    assert os.readlink(tmp_path / "tls.key") == "..data/tls.key"


def pod(annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None, **spec: object) -> dict:
    return podfacts.project(
        {
            "metadata": {
                "name": "p",
                "namespace": "ns",
                "uid": "u",
                "annotations": annotations or {},
                "labels": labels or {},
            },
            "spec": {"containers": [{"name": "app"}], **spec},
            "status": {"phase": "Running"},
        }
    )


def test_register_delay_prefers_the_resolved_status_then_the_annotation_then_the_default() -> None:
    both = {names.ANN_STATUS: status_annotation(7.0), names.ANN_REGISTER_DELAY: "3s"}
    assert podfacts.register_delay(pod(both), 1.0) == 7.0
    assert podfacts.register_delay(pod({names.ANN_REGISTER_DELAY: "1m30s"}), 1.0) == 90.0
    assert podfacts.register_delay(pod({names.ANN_REGISTER_DELAY: "soon"}), 1.0) == 1.0
    assert podfacts.register_delay(pod(), 2.5) == 2.5


def test_which_pods_need_repair() -> None:
    assert podfacts.needs_repair(pod(), "lanes-system")
    assert not podfacts.needs_repair(pod({names.ANN_STATUS: status_annotation(0)}), "lanes-system")
    assert not podfacts.needs_repair(pod(labels={names.LABEL_INJECT: "false"}), "lanes-system")
    assert not podfacts.needs_repair(pod(hostNetwork=True), "lanes-system")
    assert not podfacts.needs_repair(pod(), "ns"), "the webhook's own namespace"
    assert not podfacts.needs_repair(pod({podfacts.MIRROR_ANNOTATION: "x"}), "lanes-system")
    terminal = pod()
    terminal["status"]["phase"] = "Succeeded"
    assert not podfacts.needs_repair(terminal, "lanes-system")


def test_status_patch_is_a_uid_guarded_condition() -> None:
    body = status_patch("abc", 2.0, dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=dt.UTC))
    assert body["metadata"] == {"uid": "abc"}
    (condition,) = body["status"]["conditions"]
    assert condition["type"] == names.CONDITION_REGISTERED and condition["status"] == "True"
    assert condition["lastTransitionTime"] == "2024-05-01T10:00:00Z"


def test_settings_reject_unsafe_combinations() -> None:
    with pytest.raises(SettingsError, match="renew deadline"):
        LeaseTiming(lease_duration=10, renew_deadline=10, retry_period=2)
    with pytest.raises(SettingsError, match="outlive"):
        CertTiming(ca_lifetime=10, leaf_lifetime=20)
    with pytest.raises(SettingsError, match="renewed too late"):
        CertTiming(ca_lifetime=30, leaf_lifetime=10, propagation=5, overlap=10)
    settings = ControllerSettings(namespace="lanes-system", service="web")
    assert settings.secret_name == "web-tls" and settings.validating_config is None
    assert settings.dns_names == (
        "web",
        "web.lanes-system",
        "web.lanes-system.svc",
        "web.lanes-system.svc.cluster.local",
    )


def test_cli_accepts_the_charts_flags() -> None:
    assert long_duration("87600h") == 87600 * 3600 and long_duration("90d") == 90 * 86400
    assert long_duration("1h30m") == 5400 and long_duration("45") == 45
    args = build_parser().parse_args(
        [
            "--namespace=lanes-system",
            "--identity=pod-1",
            "--lease=lanes-controller",
            "--manage-certs",
            "--secret=lanes-tls",
            "--service=lanes",
            "--mutating-webhook=lanes",
            "--ca-validity=87600h",
            "--cert-validity=8760h",
            "--renew-before=720h",
            "--repair=evict",
        ]
    )
    settings = settings_from_args(args)
    assert settings.manage_certs and settings.cert_dir is None and settings.identity == "pod-1"
    assert settings.certs.ca_lifetime == 87600 * 3600 and settings.certs.renew_before == 720 * 3600
    assert settings.repair.mode is RepairMode.EVICT
    cert_manager = settings_from_args(
        build_parser().parse_args(["--namespace=x", "--cert-dir=/tmp/x", "--cert-manager"])
    )
    assert not cert_manager.manage_certs and cert_manager.cert_dir is None


def test_rbac_grants_only_what_the_configuration_uses() -> None:
    report = ControllerSettings(namespace="ns", manage_certs=False, repair=RepairSettings(mode=RepairMode.REPORT))
    resources = {r for rule in cluster_rules(report) for r in rule["resources"]}
    assert resources == {"namespaces", "pods", "pods/status", "events"}
    assert not any("secrets" in rule["resources"] for rule in namespace_rules(report))
    evict = ControllerSettings(
        namespace="ns", webhook_config="hook", validating_config="hook", repair=RepairSettings(mode=RepairMode.EVICT)
    )
    rules = cluster_rules(evict)
    assert {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]} in rules
    hooks = [r for r in rules if r["apiGroups"] == ["admissionregistration.k8s.io"]]
    assert all(r["resourceNames"] == ["hook"] for r in hooks) and len(hooks) == 2


def test_a_pod_first_seen_ready_counts_its_delay_from_the_latest_moment_its_whole_second_stamp_allows() -> None:
    """A pod already ready when the leader's watch first lists it: its ContainersReady stamp has whole seconds,
    cut off, so the transition may have been up to a second later than the stamp says; counting from the stamp
    would register it up to a second early (the gate test's rare 1-in-4 failure under load)."""
    from webhook.controller import ControllerMetrics
    from webhook.controller.gate import Gate

    while time.time() % 1.0 < 0.6:  # late in a second: the cut-off fraction is large
        time.sleep(0.05)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = pod(annotations={names.ANN_REGISTER_DELAY: "2s"}, readinessGates=[{"conditionType": "lanes.io/registered"}])
    ready["metadata"]["uid"] = "u1"
    ready["status"] = {"conditions": [{"type": "ContainersReady", "status": "True", "lastTransitionTime": stamp}]}
    gate = Gate(None, None, lambda name: True, lambda: 10.0, ControllerMetrics())  # type: ignore[arg-type]
    try:
        seen = time.monotonic()
        gate.on_pod("ADDED", ready, None)
        due = gate.queue._due["u1"]
        assert due >= seen + 2.0 - 0.05, f"registered {seen + 2.0 - due:.2f}s before the delay can have passed"
        assert due <= seen + 2.0 + 0.05
    finally:
        gate.stop()
