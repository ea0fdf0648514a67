"""``lanes doctor``: check a cluster's Lanes installation and say what to fix, one line per finding.

Every line is ``OK``, ``WARN`` or ``FAIL``, what was checked, and for anything not OK the fix. The exit status is
1 when anything FAILs (with ``--strict``, also on WARN), 2 on usage errors, else 0, so the command works in CI
and in a runbook alike. It only reads (GET/LIST) and makes one TLS handshake; it needs no Lanes permissions
beyond what ``kubectl get`` needs for the same objects.

Checks: the Kubernetes version (native sidecars need 1.29), the MutatingWebhookConfiguration and its caBundle,
the serving certificate (from the Secret, and as presented in a TLS handshake when the webhook is a URL) against
that caBundle and its expiry, that the webhook answers (directly, or through the API server's service proxy),
that a controller holds the Lease (else readiness gates never turn True), the enabled namespaces and their Pod
Security level, pods admitted without injection, and gated pods that wait far longer than their delay.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import re
import socket
import ssl
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from webhook.contract import names
from webhook.controller import pods as podfacts
from webhook.controller.certs import x509util
from webhook.kube.client import JSON, Kube, KubeError, path_segment

MIN_SIDECAR_MINOR = 29
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
EXPIRY_WARNING = 7 * 86_400.0
STUCK_GRACE = 120.0


@dataclass(frozen=True)
class Finding:
    level: str  # OK | WARN | FAIL
    what: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level:<4} {self.what}"
        return f"{text} -- fix: {self.fix}" if self.fix and self.level != "OK" else text


def ok(what: str) -> Finding:
    return Finding("OK", what)


def warn(what: str, fix: str) -> Finding:
    return Finding("WARN", what, fix)


def fail(what: str, fix: str) -> Finding:
    return Finding("FAIL", what, fix)


# --- command line -------------------------------------------------------------------------------------------


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--namespace", "-n", default="lanes-system", help="namespace Lanes is installed in")
    parser.add_argument("--name", default="lanes", help="the Helm release's full name: default for the names below")
    parser.add_argument("--webhook-config", metavar="NAME", help="MutatingWebhookConfiguration (default: --name)")
    parser.add_argument("--secret", metavar="NAME", help="serving certificate Secret (default: <name>-tls)")
    parser.add_argument("--lease", metavar="NAME", help="controller Lease (default: <name>-controller)")
    parser.add_argument(
        "--namespace-selector",
        default=f"{names.NAMESPACE_ENABLE_LABEL}={names.NAMESPACE_ENABLE_VALUE}",
        help="label selector of enabled namespaces",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds for each network check")
    parser.add_argument("--max-pods", type=int, default=20, help="list at most this many pods per finding kind")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    return parser


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``doctor`` to the ``lanes`` command's subparsers; ``lanes`` then calls :func:`run`."""
    parser = subparsers.add_parser(
        "doctor",
        help="check the Lanes installation in a cluster",
        description=(__doc__ or "").split("\n\n")[0],
    )
    return _configure(parser)


def build_parser() -> argparse.ArgumentParser:
    return _configure(argparse.ArgumentParser(prog="lanes doctor", description=(__doc__ or "").split("\n\n")[0]))


def run(args: argparse.Namespace) -> int:
    """Run every check, print one line per finding; the exit status."""
    from webhook.cli.controller import api_client
    from webhook.controller.settings import SettingsError

    try:
        kube = Kube(api_client(args.kubeconfig, in_cluster=False))
    except SettingsError as exc:
        print(f"FAIL no cluster credentials: {exc} -- fix: pass --kubeconfig FILE or set KUBECONFIG")
        return 1
    except Exception as exc:  # unreadable kubeconfig: one line, not a traceback
        print(f"FAIL cannot load the kubeconfig: {exc} -- fix: pass --kubeconfig FILE")
        return 1
    doctor = Doctor(
        kube,
        namespace=args.namespace,
        webhook_config=args.webhook_config or args.name,
        secret=args.secret or f"{args.name}-tls",
        lease=args.lease or f"{args.name}-controller",
        selector=args.namespace_selector,
        timeout=args.timeout,
        max_pods=args.max_pods,
    )
    worst = "OK"
    for finding in doctor.findings():
        print(finding.line(), flush=True)
        if finding.level == "FAIL" or (finding.level == "WARN" and worst == "OK"):
            worst = finding.level
    return 1 if worst == "FAIL" or (args.strict and worst == "WARN") else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


# --- the checks ---------------------------------------------------------------------------------------------


class Doctor:
    """The checks, in the order a person debugging an installation would look."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        webhook_config: str,
        secret: str,
        lease: str,
        selector: str,
        timeout: float,
        max_pods: int,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.webhook_config = webhook_config
        self.secret = secret
        self.lease = lease
        self.selector = selector
        self.timeout = timeout
        self.max_pods = max_pods
        self.request_timeout = (timeout, timeout)

    def findings(self) -> Iterator[Finding]:
        try:
            version = self.kube.get("/version", timeout=self.request_timeout)
        except KubeError as exc:
            yield fail(f"cannot reach the API server: {exc}", "check the kubeconfig context and the network")
            return
        yield self._version(version)
        config = None
        try:
            config = self.kube.get(
                f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{path_segment(self.webhook_config)}",
                timeout=self.request_timeout,
            )
        except KubeError as exc:
            if exc.status != 404:
                yield fail(f"cannot read MutatingWebhookConfiguration {self.webhook_config}: {exc}", _rbac_fix())
            else:
                yield fail(
                    f"MutatingWebhookConfiguration {self.webhook_config} not found: no pod is injected",
                    f"helm install lanes charts/lanes -n {self.namespace} (or pass --name / --webhook-config)",
                )
        if config is not None:
            yield from self._webhook(config)
        yield from self._leader()
        yield from self._namespaces_and_pods()

    # -- version -------------------------------------------------------------------------------------------

    def _version(self, version: JSON) -> Finding:
        text = str(version.get("gitVersion") or "")
        match = re.match(r"v?(\d+)\.(\d+)", text)
        if match:
            major, minor = int(match.group(1)), int(match.group(2))
        else:  # managed clusters report e.g. minor "29+"
            major = int(re.sub(r"\D", "", str(version.get("major") or "")) or 1)
            minor = int(re.sub(r"\D", "", str(version.get("minor") or "")) or 0)
            text = text or f"{major}.{minor}"
        if (major, minor) < (1, MIN_SIDECAR_MINOR):
            return fail(
                f"Kubernetes {text} has no native sidecar containers (needs 1.{MIN_SIDECAR_MINOR}+)",
                'upgrade the cluster, or run pods in minimal mode (annotation lanes.io/agent: "false")',
            )
        return ok(f"Kubernetes {text} supports native sidecars (1.{MIN_SIDECAR_MINOR}+)")

    # -- webhook configuration, certificate, reachability ---------------------------------------------------

    def _webhook(self, config: JSON) -> Iterator[Finding]:
        hooks = config.get("webhooks") or []
        if not hooks:
            yield fail(f"MutatingWebhookConfiguration {self.webhook_config} has no webhooks", _reinstall(self))
            return
        policies = sorted({str(h.get("failurePolicy") or "Fail") for h in hooks})
        yield ok(
            f"MutatingWebhookConfiguration {self.webhook_config}: {len(hooks)} webhook(s), "
            f"failurePolicy {'/'.join(policies)}"
        )
        bundle: list[x509.Certificate] = []
        for hook in hooks:
            raw = (hook.get("clientConfig") or {}).get("caBundle") or ""
            certs = x509util.load_bundle(_b64decode(raw))
            if not certs:
                yield fail(
                    f"webhook {hook.get('name')} has no valid caBundle: the API server cannot call it",
                    "check the controller's logs (it publishes caBundle), or cert-manager's cainjector",
                )
                return
            bundle = certs
        now = time.time()
        expired = [ca for ca in bundle if x509util.not_after(ca) <= now]
        if expired:
            yield fail(
                f"caBundle holds {len(expired)} expired CA(s)",
                "the controller rotates CAs before expiry: check its logs and that it holds the Lease",
            )
        else:
            soonest = min(x509util.not_after(ca) for ca in bundle)
            yield ok(f"caBundle: {len(bundle)} CA(s), valid until {_iso(soonest)}")
        client = hooks[0].get("clientConfig") or {}
        yield from self._serving_certificate(bundle, client)
        yield from self._reachable(bundle, client)

    def _serving_certificate(self, bundle: list[x509.Certificate], client: JSON) -> Iterator[Finding]:
        try:
            secret = self.kube.get(
                f"/api/v1/namespaces/{path_segment(self.namespace)}/secrets/{path_segment(self.secret)}",
                timeout=self.request_timeout,
            )
        except KubeError as exc:
            if exc.status == 404:
                yield warn(
                    f"Secret {self.namespace}/{self.secret} not found: cannot check the serving certificate",
                    "pass --secret NAME, or check that the controller (or cert-manager) created it",
                )
            else:
                yield warn(f"cannot read Secret {self.namespace}/{self.secret}: {exc}", _rbac_fix())
            return
        pem = _b64decode((secret.get("data") or {}).get("tls.crt") or "")
        certs = x509util.load_bundle(pem)
        if not certs:
            yield fail(f"Secret {self.namespace}/{self.secret} has no readable tls.crt", _reissue(self))
            return
        yield from self._judge_certificate(certs[0], bundle, f"serving certificate in Secret {self.secret}", client)

    def _judge_certificate(
        self, leaf: x509.Certificate, bundle: list[x509.Certificate], what: str, client: JSON
    ) -> Iterator[Finding]:
        now = time.time()
        ends = x509util.not_after(leaf)
        if x509util.trusted_by(leaf, bundle) is None:
            yield fail(f"{what} is not signed by any CA in caBundle: every admission fails TLS", _reissue(self))
        if ends <= now:
            yield fail(f"{what} expired at {_iso(ends)}", _reissue(self))
            return
        service = client.get("service") or {}
        if service:
            host = f"{service.get('name')}.{service.get('namespace')}.svc"
            if host not in x509util.dns_names(leaf):
                yield fail(f"{what} is not valid for {host}", _reissue(self))
        # Renewal happens with a third of the lifetime left (controller) or 30 days (cert-manager's default):
        # half of that window gone without a renewal means nothing is renewing it.
        issued = leaf.not_valid_before_utc.timestamp() + x509util.BACKDATE.total_seconds()
        if ends - now < min(EXPIRY_WARNING, max(ends - issued, 0.0) / 6):
            yield warn(
                f"{what} expires at {_iso(ends)} and was not renewed",
                "check that the controller (or cert-manager) runs; the controller renews at 2/3 of the lifetime",
            )
        else:
            yield ok(f"{what} is trusted by caBundle, valid until {_iso(ends)}")

    def _reachable(self, bundle: list[x509.Certificate], client: JSON) -> Iterator[Finding]:
        url = client.get("url")
        if url:
            yield from self._handshake(str(url), bundle, client)
            return
        service = client.get("service") or {}
        name, namespace = service.get("name"), service.get("namespace")
        port = service.get("port") or 443
        service_path = f"/api/v1/namespaces/{path_segment(str(namespace))}/services/https:{path_segment(str(name))}"
        path = f"{service_path}:{port}/proxy/healthz"
        try:
            self.kube.get(path, timeout=self.request_timeout)
        except KubeError as exc:
            yield fail(
                f"webhook Service {namespace}/{name}:{port} does not answer /healthz: {exc.message}",
                f"kubectl -n {namespace} get pods,endpointslices; kubectl -n {namespace} logs deploy/{name}",
            )
            return
        yield ok(f"webhook Service {namespace}/{name}:{port} answers /healthz (via the API server proxy)")

    def _handshake(self, url: str, bundle: list[x509.Certificate], client: JSON) -> Iterator[Finding]:
        parsed = urllib.parse.urlsplit(url)
        host, port = parsed.hostname or "", parsed.port or 443
        context = ssl.create_default_context(cadata=x509util.to_pem(bundle).decode())
        try:
            with (
                socket.create_connection((host, port), timeout=self.timeout) as raw,
                context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                der = tls.getpeercert(binary_form=True)
                tls.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                status_line = tls.recv(64).split(b"\r\n", 1)[0].decode(errors="replace")
        except ssl.SSLCertVerificationError as exc:
            yield fail(
                f"webhook {host}:{port} presents a certificate caBundle does not accept: {exc.verify_message}",
                _reissue(self),
            )
            return
        except (OSError, ssl.SSLError) as exc:
            yield fail(f"webhook {host}:{port} not reachable: {exc}", "check that the webhook server runs")
            return
        if der:
            served = x509.load_der_x509_certificate(der)
            yield from self._judge_certificate(served, bundle, f"certificate served at {host}:{port}", client)
        if " 200 " in f"{status_line} ":
            yield ok(f"webhook {host}:{port} answers /healthz over TLS verified with caBundle")
        else:
            yield fail(f"webhook {host}:{port} /healthz answered {status_line!r}", "check the webhook's logs")

    # -- controller -----------------------------------------------------------------------------------------

    def _leader(self) -> Iterator[Finding]:
        try:
            lease = self.kube.get(
                f"/apis/coordination.k8s.io/v1/namespaces/{path_segment(self.namespace)}/leases/{path_segment(self.lease)}",
                timeout=self.request_timeout,
            )
        except KubeError as exc:
            if exc.status == 404:
                yield fail(
                    f"no controller Lease {self.namespace}/{self.lease}: the controller never ran, so readiness "
                    "gates never turn True and certificates are never rotated",
                    f"kubectl -n {self.namespace} logs deploy/{self.lease.removesuffix('-controller')} -c controller",
                )
            else:
                yield warn(f"cannot read Lease {self.namespace}/{self.lease}: {exc}", _rbac_fix())
            return
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = podfacts.parse_time(spec.get("renewTime"))
        duration = float(spec.get("leaseDurationSeconds") or 15)
        age = time.time() - renewed if renewed is not None else None
        if not holder or age is None or age > duration * 2:
            state = "has no holder (released)" if not holder else f"was last renewed {age or 0:.0f}s ago"
            yield fail(
                f"the controller Lease {state}: no controller runs, readiness gates do not turn True",
                f"kubectl -n {self.namespace} get pods; check the controller container's logs",
            )
            return
        yield ok(f"controller leader {holder} (Lease renewed {max(age, 0):.0f}s ago)")

    # -- namespaces and pods --------------------------------------------------------------------------------

    def _namespaces_and_pods(self) -> Iterator[Finding]:
        try:
            namespaces = self.kube.get(
                "/api/v1/namespaces", {"labelSelector": self.selector}, timeout=self.request_timeout
            )["items"]
        except KubeError as exc:
            yield warn(f"cannot list namespaces: {exc}", _rbac_fix())
            return
        if not namespaces:
            yield warn(
                f"no namespace is enabled ({self.selector})",
                f"kubectl label namespace NAME {names.NAMESPACE_ENABLE_LABEL}={names.NAMESPACE_ENABLE_VALUE}",
            )
            return
        for namespace in sorted(namespaces, key=lambda n: n["metadata"]["name"]):
            name = namespace["metadata"]["name"]
            level = (namespace["metadata"].get("labels") or {}).get(PSA_ENFORCE)
            shown = f"Pod Security enforce={level}" if level else "Pod Security enforce not set (cluster default)"
            note = " (injected containers comply with restricted)" if level else ""
            yield ok(f"namespace {name} is enabled; {shown}{note}")
            yield from self._pods(name)

    def _pods(self, namespace: str) -> Iterator[Finding]:
        try:
            items = self.kube.get(f"/api/v1/namespaces/{path_segment(namespace)}/pods", timeout=self.request_timeout)
        except KubeError as exc:
            yield warn(f"cannot list pods in {namespace}: {exc}", _rbac_fix())
            return
        uninjected, stuck = [], []
        now = time.time()
        for pod in items.get("items") or []:
            if podfacts.needs_repair(pod, self.namespace):
                uninjected.append(pod)
            elif podfacts.has_gate(pod) and not podfacts.condition_true(pod, names.CONDITION_REGISTERED):
                ready = podfacts.condition(pod, "ContainersReady")
                since = podfacts.parse_time((ready or {}).get("lastTransitionTime"))
                if (
                    ready is not None
                    and ready.get("status") == "True"
                    and since is not None
                    and now - since > podfacts.register_delay(pod) + STUCK_GRACE
                    and not podfacts.is_deleting(pod)
                ):
                    stuck.append(pod)
        for pod in uninjected[: self.max_pods]:
            name = pod["metadata"]["name"]
            if podfacts.recreated_by_owner(pod):
                fix = (
                    f"kubectl -n {namespace} delete pod {name} (its controller recreates it injected), "
                    "or enable controller.repair.evict"
                )
            else:
                fix = f"recreate pod {name} from its manifest: nothing else would recreate it"
            yield warn(
                f"pod {podfacts.describe(pod)} was admitted without injection (no readiness gate, drain or lane)", fix
            )
        if len(uninjected) > self.max_pods:
            yield warn(f"... and {len(uninjected) - self.max_pods} more uninjected pods in {namespace}", "as above")
        for pod in stuck[: self.max_pods]:
            yield warn(
                f"pod {podfacts.describe(pod)} waits for {names.CONDITION_REGISTERED} long after its containers "
                "became ready",
                "check that the controller holds the Lease and its logs",
            )
        if not uninjected and not stuck:
            yield ok(f"namespace {namespace}: {len(items.get('items') or [])} pod(s), none needs repair")


def _b64decode(value: str) -> bytes:
    try:
        return base64.b64decode(value)
    except ValueError:
        return b""


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rbac_fix() -> str:
    return "run with credentials that may read it (kubectl auth can-i get ...)"


def _reissue(doctor: Doctor) -> str:
    return (
        f"let the controller re-issue it: kubectl -n {doctor.namespace} delete secret {doctor.secret} "
        "(cert-manager: kubectl cert-manager renew)"
    )


def _reinstall(doctor: Doctor) -> str:
    return f"helm upgrade --install lanes charts/lanes -n {doctor.namespace}"


if __name__ == "__main__":
    sys.exit(main())
