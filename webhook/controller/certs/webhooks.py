"""Keeping ``caBundle`` of the webhook configurations equal to the trust bundle.

Every webhook entry of the named MutatingWebhookConfiguration (required) and ValidatingWebhookConfiguration
(optional: 404 means "not installed") gets the bundle. The patch is a JSON Patch that first tests the
``resourceVersion`` it was computed from, so a concurrent change (a ``helm upgrade`` adding a webhook) makes it
fail with 409 and be recomputed rather than write a caBundle at a shifted index.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

from cryptography import x509

from webhook.controller.certs import x509util
from webhook.kube.client import JSON, Kube, KubeError, path_segment

log = logging.getLogger("lanes.controller.certs")

GROUP = "/apis/admissionregistration.k8s.io/v1"
MUTATING = "mutatingwebhookconfigurations"
VALIDATING = "validatingwebhookconfigurations"


@dataclass(frozen=True)
class Target:
    """One webhook configuration to keep current."""

    resource: str
    name: str
    required: bool

    @property
    def path(self) -> str:
        return f"{GROUP}/{self.resource}/{path_segment(self.name)}"

    def describe(self) -> str:
        return f"{self.resource}/{self.name}"


@dataclass(frozen=True)
class Published:
    """What a publish pass found and did."""

    changed: bool  # at least one webhook entry was patched
    newly_trusted: frozenset[str]  # fingerprints of CAs some target did not carry before
    missing: tuple[str, ...]  # required targets that do not exist (nothing calls the webhook: not a blocker)


def bundle_of(config: JSON) -> list[list[str]]:
    """Per webhook entry, the fingerprints of the CAs in its caBundle."""
    out = []
    for hook in config.get("webhooks") or []:
        raw = ((hook or {}).get("clientConfig") or {}).get("caBundle") or ""
        try:
            pem = base64.b64decode(raw)
        except ValueError:
            pem = b""
        out.append([x509util.fingerprint(c) for c in x509util.load_bundle(pem)])
    return out


def certificates_of(config: JSON) -> list[x509.Certificate]:
    """The distinct CAs in the caBundles of all webhook entries of a configuration."""
    seen: dict[str, x509.Certificate] = {}
    for hook in config.get("webhooks") or []:
        raw = ((hook or {}).get("clientConfig") or {}).get("caBundle") or ""
        try:
            pem = base64.b64decode(raw)
        except ValueError:
            continue
        for ca in x509util.load_bundle(pem):
            seen.setdefault(x509util.fingerprint(ca), ca)
    return list(seen.values())


def publish(kube: Kube, targets: list[Target], bundle_pem: bytes, timeout: float) -> Published:
    """Make every webhook entry of every target carry ``bundle_pem``."""
    wanted = base64.b64encode(bundle_pem).decode()
    wanted_fps = [x509util.fingerprint(c) for c in x509util.load_bundle(bundle_pem)]
    changed = False
    newly: set[str] = set()
    missing: list[str] = []
    request_timeout = (min(5.0, timeout), timeout)
    for target in targets:
        try:
            config = kube.get(target.path, timeout=request_timeout)
        except KubeError as exc:
            if exc.status == 404:
                if target.required:
                    missing.append(target.describe())
                continue
            if exc.status == 403 and not target.required:
                # Never let an optional configuration's RBAC gap stop the required one from being kept current.
                log.warning("cannot read webhook configuration", extra={"target": target.describe(), "error": str(exc)})
                continue
            raise
        hooks = config.get("webhooks") or []
        before = bundle_of(config)
        ops: list[JSON] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": config["metadata"]["resourceVersion"]}
        ]
        for index, hook in enumerate(hooks):
            if ((hook or {}).get("clientConfig") or {}).get("caBundle") != wanted:
                ops.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": wanted})
                newly.update(fp for fp in wanted_fps if fp not in before[index])
        if len(ops) == 1:
            continue
        kube.patch(target.path, ops, "json", timeout=request_timeout)
        changed = True
        log.info(
            "caBundle published",
            extra={"target": target.describe(), "webhooks": len(ops) - 1, "cas": wanted_fps},
        )
    return Published(changed=changed, newly_trusted=frozenset(newly), missing=tuple(missing))
