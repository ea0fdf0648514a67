"""The MutatingWebhookConfiguration that routes pod creations to Lanes.

One definition of the registration's shape (selectors, matchConditions, reinvocation, timeouts) for the places
that register Lanes without Helm: ``make demo``, the tests, and ``lanes doctor``'s expectations. The Helm chart
renders the same fields from its templates; a chart test compares the two so they cannot drift.
"""

from __future__ import annotations

import base64
from typing import Any

from webhook.contract import names

WEBHOOK_NAME = "pods.lanes.io"


def mutating_webhook_configuration(
    *,
    name: str,
    ca_pem: bytes,
    own_namespace: str,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    failure_policy: str = "Ignore",
    timeout_seconds: int = 5,
) -> dict[str, Any]:
    """Build the configuration for either a ``url`` (local runs) or a ``service`` (namespace, name, port).

    ``failurePolicy: Ignore`` is the default because a webhook outage then degrades to "pods start without
    Lanes" (reported and repaired by the controller) instead of "no pod can start in enabled namespaces".
    """
    if (url is None) == (service is None):
        raise ValueError("pass exactly one of url or service")
    client_config: dict[str, Any] = {"caBundle": base64.b64encode(ca_pem).decode()}
    if url is not None:
        client_config["url"] = url.rstrip("/") + "/mutate"
    else:
        assert service is not None
        namespace, service_name, port = service
        client_config["service"] = {"namespace": namespace, "name": service_name, "port": port, "path": "/mutate"}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "lanes"}},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": client_config,
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": names.NAMESPACE_ENABLE_LABEL,
                            "operator": "In",
                            "values": [names.NAMESPACE_ENABLE_VALUE],
                        }
                    ]
                },
                "objectSelector": {
                    "matchExpressions": [{"key": names.LABEL_INJECT, "operator": "NotIn", "values": ["false"]}]
                },
                "matchConditions": [
                    {"name": "not-own-namespace", "expression": f"request.namespace != '{own_namespace}'"},
                    {
                        "name": "not-host-network",
                        "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
                    },
                ],
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "reinvocationPolicy": "IfNeeded",
                "timeoutSeconds": timeout_seconds,
                "failurePolicy": failure_policy,
            }
        ],
    }
