"""The exact RBAC rules the controller needs, as data.

The Helm chart's ClusterRole/Role must grant these; docs/controller.md lists them, and the controller tests run
the controller as a user bound to exactly these rules, so a missing verb fails a test instead of a cluster.
"""

from __future__ import annotations

from typing import Any

from webhook.controller.settings import ControllerSettings, RepairMode

Rule = dict[str, Any]


def _rule(group: str, resources: list[str], verbs: list[str], names: list[str] | None = None) -> Rule:
    rule: Rule = {"apiGroups": [group], "resources": resources, "verbs": verbs}
    if names:
        rule["resourceNames"] = names
    return rule


def cluster_rules(settings: ControllerSettings) -> list[Rule]:
    """ClusterRole rules (pods and namespaces everywhere; the named webhook configurations)."""
    rules = [
        # Gate and repair: the enabled namespaces and the pods in them (one cluster-wide pod watch).
        _rule("", ["namespaces", "pods"], ["get", "list", "watch"]),
        # Gate: the lanes.io/registered condition.
        _rule("", ["pods/status"], ["patch"]),
    ]
    if settings.repair.mode is not RepairMode.OFF:
        # Repair: one Event per uninjected pod (and per eviction), in the pod's namespace.
        rules.append(_rule("", ["events"], ["create"]))
    if settings.repair.mode is RepairMode.EVICT:
        rules.append(_rule("", ["pods/eviction"], ["create"]))
    if settings.routing is not None:
        rules.extend(routing_rules())
    if settings.manage_certs:
        # caBundle: list/watch work with resourceNames because the watch selects metadata.name.
        verbs = ["get", "list", "watch", "patch"]
        rules.append(
            _rule("admissionregistration.k8s.io", ["mutatingwebhookconfigurations"], verbs, [settings.webhook_config])
        )
        if settings.validating_config:
            rules.append(
                _rule(
                    "admissionregistration.k8s.io",
                    ["validatingwebhookconfigurations"],
                    verbs,
                    [settings.validating_config],
                )
            )
    return rules


def namespace_rules(settings: ControllerSettings) -> list[Rule]:
    """Role rules in the controller's own namespace (the Lease and the certificate Secret)."""
    rules = [
        # create cannot be limited by name (the name is in the body, not the URL).
        _rule("coordination.k8s.io", ["leases"], ["create"]),
        _rule("coordination.k8s.io", ["leases"], ["get", "update"], [settings.lease_name]),
    ]
    if settings.manage_certs:
        rules.append(_rule("", ["secrets"], ["create"]))
        rules.append(_rule("", ["secrets"], ["get", "list", "watch", "update"], [settings.secret_name]))
    elif settings.cert_dir is not None:
        rules.append(_rule("", ["secrets"], ["get", "list", "watch"], [settings.secret_name]))
    return rules


def routing_rules() -> list[Rule]:
    """Lane routing (webhook/controller/routing): read Lanes and what they are rendered from, write the status and
    the finalizer, server-side apply (create + patch) and delete the generated kinds. Nothing else is written."""
    generated = ["get", "list", "watch", "create", "patch", "delete"]
    return [
        _rule("lanes.io", ["lanes"], ["get", "list", "watch", "patch"]),  # patch: the finalizer
        _rule("lanes.io", ["lanes/status"], ["patch"]),
        # blockOwnerDeletion on the generated objects' ownerReferences needs update on the owner's finalizers.
        _rule("lanes.io", ["lanes/finalizers"], ["update"]),
        _rule("", ["services"], generated),
        _rule("discovery.k8s.io", ["endpointslices"], ["get", "list", "watch"]),
        _rule("gateway.networking.k8s.io", ["httproutes"], generated),
        _rule("networking.istio.io", ["destinationrules", "virtualservices"], generated),
        _rule("", ["events"], ["create"]),
    ]
