"""The Gateway API and Istio CRDs come from their Go modules and are served by the real API server.

Installing them proves the files are whole CRDs the pinned kube-apiserver accepts; the object checks prove the
API server now validates Gateway API and Istio objects with the upstream schemas (so the Lane reconciler's
generated objects are checked against the real thing, not against our idea of it).
"""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devtools.dataplane import crds


def test_gateway_api_standard_channel_files() -> None:
    names = {p.name for p in crds.gateway_api_crds()}
    assert names == {
        "gateway.networking.k8s.io_backendtlspolicies.yaml",
        "gateway.networking.k8s.io_gatewayclasses.yaml",
        "gateway.networking.k8s.io_gateways.yaml",
        "gateway.networking.k8s.io_grpcroutes.yaml",
        "gateway.networking.k8s.io_httproutes.yaml",
        "gateway.networking.k8s.io_referencegrants.yaml",
    }
    for doc in crds.load_crds(crds.gateway_api_crds()):
        # the standard channel, never experimental (Traefik 3.6 routes nothing with it; see the notes)
        assert doc["metadata"]["annotations"]["gateway.networking.k8s.io/channel"] == "standard"
        assert doc["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] == crds.GATEWAY_API_VERSION


def test_istio_files_one_crd_each() -> None:
    paths = crds.istio_crds()
    docs = crds.load_crds(paths)
    assert len(docs) == len(paths)
    assert {f"{d['metadata']['name']}.yaml" for d in docs} == {p.name for p in paths}
    assert {"destinationrules.networking.istio.io.yaml", "virtualservices.networking.istio.io.yaml"} <= {
        p.name for p in paths
    }


@pytest.fixture(scope="module")
def installed(k8s: client.ApiClient) -> list[str]:
    return crds.install_gateway_api(k8s) + crds.install_istio(k8s)


def test_install_is_established_and_idempotent(k8s: client.ApiClient, installed: list[str]) -> None:
    assert "httproutes.gateway.networking.k8s.io" in installed
    assert "destinationrules.networking.istio.io" in installed
    assert crds.install_gateway_api(k8s) == [n for n in installed if n.endswith("gateway.networking.k8s.io")]
    api = client.ApiextensionsV1Api(k8s)
    for name in installed:
        conditions = {c.type: c.status for c in api.read_custom_resource_definition(name).status.conditions}
        assert conditions["Established"] == "True", name


def _create(k8s: client.ApiClient, namespace: str, group: str, version: str, plural: str, body: dict) -> dict:
    return client.CustomObjectsApi(k8s).create_namespaced_custom_object(group, version, namespace, plural, body)


def test_api_server_validates_httproutes_with_the_upstream_schema(
    k8s: client.ApiClient, installed: list[str], namespace: str
) -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {
            "parentRefs": [{"name": "edge"}],
            "rules": [
                {
                    "matches": [{"headers": [{"name": "x-user-id", "value": "100"}]}],
                    "backendRefs": [{"name": "a", "port": 8080, "weight": 90}],
                }
            ],
        },
    }
    created = _create(k8s, namespace, "gateway.networking.k8s.io", "v1", "httproutes", route)
    assert created["spec"]["rules"][0]["matches"][0]["headers"][0]["type"] == "Exact"  # schema default applied
    bad = {**route, "metadata": {"name": "bad"}}
    bad["spec"] = {**route["spec"], "rules": [{"backendRefs": [{"name": "a", "port": 8080, "weight": -1}]}]}
    with pytest.raises(ApiException) as caught:
        _create(k8s, namespace, "gateway.networking.k8s.io", "v1", "httproutes", bad)
    assert caught.value.status == 422
    assert "weight" in caught.value.body


def test_api_server_validates_istio_objects_with_the_upstream_schema(
    k8s: client.ApiClient, installed: list[str], namespace: str
) -> None:
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "c"},
        "spec": {
            "host": "c",
            "subsets": [{"name": "gray", "labels": {"lanes.io/lane": "gray"}}],
            "trafficPolicy": {"loadBalancer": {"warmup": {"duration": "30s", "minimumPercent": 10}}},
        },
    }
    _create(k8s, namespace, "networking.istio.io", "v1", "destinationrules", rule)
    bad = {**rule, "metadata": {"name": "bad"}, "spec": {"subsets": [{"name": "gray"}]}}  # host is required
    with pytest.raises(ApiException) as caught:
        _create(k8s, namespace, "networking.istio.io", "v1", "destinationrules", bad)
    assert caught.value.status == 422
    assert "host" in caught.value.body
