"""The certificate Secret's contents and their encoding.

One ``kubernetes.io/tls`` Secret in the webhook's namespace holds everything, so that every replica (and a new
leader after a failover) sees the same state:

- ``tls.crt`` / ``tls.key``: the serving certificate and key (what the admission server loads);
- ``ca.crt``: the trust bundle, i.e. exactly what goes into the webhook configurations' ``caBundle``; one CA
  normally, two while a CA rotation overlaps;
- ``issuer.crt`` / ``issuer.key``: the CA that signs new serving certificates (the newest CA in the bundle);
- annotation ``lanes.io/ca-trusted-since``: per CA fingerprint, when the API server was last given a bundle
  that newly contained it (a serving certificate from a CA is published only ``propagation`` after that);
- annotation ``lanes.io/serving-issued-at``: when the current serving certificate was issued (the old CA is
  dropped ``overlap`` after that).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from webhook.controller.certs import pki, x509util

SECRET_TYPE = "kubernetes.io/tls"
ANN_TRUSTED_SINCE = "lanes.io/ca-trusted-since"
ANN_ISSUED_AT = "lanes.io/serving-issued-at"

JSON = dict[str, Any]


@dataclass
class Material:
    """Parsed Secret contents; ``usable`` says whether the rotation loop can work from it."""

    bundle: list[x509.Certificate] = field(default_factory=list)
    issuer: pki.KeyPair | None = None
    leaf: pki.KeyPair | None = None
    trusted_since: dict[str, float] = field(default_factory=dict)
    issued_at: float | None = None
    secret: JSON | None = None  # the object it came from (for resourceVersion-checked updates)

    @property
    def usable(self) -> bool:
        if self.issuer is None or self.leaf is None or not self.bundle:
            return False
        issuer_fp = x509util.fingerprint(self.issuer.certificate)
        return (
            x509util.key_matches(self.issuer)
            and x509util.key_matches(self.leaf)
            and any(x509util.fingerprint(ca) == issuer_fp for ca in self.bundle)
            and x509util.trusted_by(self.leaf.certificate, self.bundle) is not None
        )

    @property
    def bundle_pem(self) -> bytes:
        return x509util.to_pem(self.bundle)


def _decode(data: JSON, key: str) -> bytes:
    value = data.get(key)
    if not isinstance(value, str):
        return b""
    try:
        return base64.b64decode(value)
    except ValueError:
        return b""


def _pair(cert: bytes, key: bytes) -> pki.KeyPair | None:
    if not cert or not key:
        return None
    pair = pki.KeyPair(cert, key)
    try:
        pair.certificate  # noqa: B018 - parse check
    except ValueError:
        return None
    return pair


def parse_secret(secret: JSON | None) -> Material:
    """Whatever can be read from the Secret; never raises (a mangled Secret is just not usable)."""
    if not secret:
        return Material()
    data = secret.get("data") or {}
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    trusted: dict[str, float] = {}
    try:
        raw = json.loads(annotations.get(ANN_TRUSTED_SINCE) or "{}")
        if isinstance(raw, dict):
            trusted = {str(k): float(v) for k, v in raw.items()}
    except (ValueError, TypeError):
        trusted = {}
    try:
        issued_at: float | None = float(annotations[ANN_ISSUED_AT])
    except (KeyError, ValueError, TypeError):
        issued_at = None
    return Material(
        bundle=x509util.load_bundle(_decode(data, "ca.crt")),
        issuer=_pair(_decode(data, "issuer.crt"), _decode(data, "issuer.key")),
        leaf=_pair(_decode(data, "tls.crt"), _decode(data, "tls.key")),
        trusted_since=trusted,
        issued_at=issued_at,
        secret=secret,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret_body(material: Material, namespace: str, name: str) -> JSON:
    """The Secret for ``material``; carries the source object's metadata (resourceVersion, labels) if any."""
    assert material.issuer is not None and material.leaf is not None
    base: JSON = dict(material.secret or {})
    metadata: JSON = dict(base.get("metadata") or {})
    metadata.update(name=name, namespace=namespace)
    metadata.pop("managedFields", None)
    annotations = dict(metadata.get("annotations") or {})
    annotations[ANN_TRUSTED_SINCE] = json.dumps(
        {k: round(v, 3) for k, v in sorted(material.trusted_since.items())}, separators=(",", ":")
    )
    if material.issued_at is not None:
        annotations[ANN_ISSUED_AT] = f"{material.issued_at:.3f}"
    metadata["annotations"] = annotations
    labels = dict(metadata.get("labels") or {})
    labels.setdefault("app.kubernetes.io/managed-by", "lanes-controller")
    metadata["labels"] = labels
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": SECRET_TYPE,
        "data": {
            "tls.crt": _b64(material.leaf.cert_pem),
            "tls.key": _b64(material.leaf.key_pem),
            "ca.crt": _b64(material.bundle_pem),
            "issuer.crt": _b64(material.issuer.cert_pem),
            "issuer.key": _b64(material.issuer.key_pem),
        },
    }


def serving_files(secret: JSON) -> dict[str, bytes] | None:
    """``tls.crt``, ``tls.key`` and ``ca.crt`` for the admission server, or None if the pair is incomplete."""
    data = secret.get("data") or {}
    files = {name: _decode(data, name) for name in ("tls.crt", "tls.key", "ca.crt")}
    if not files["tls.crt"] or not files["tls.key"]:
        return None
    if not files["ca.crt"]:
        del files["ca.crt"]
    return files
