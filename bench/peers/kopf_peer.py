"""The Python peer: kopf's admission webhook server doing Lanes' mutation.

A ``@kopf.on.mutate("pods")`` handler calls the same ``webhook.injection.admit.admit_pod`` as ``lanes-webhook serve``
and hands its JSON Patch to kopf the kopf way: as a transformation of the body (``patch.fns``), from which kopf
computes the JSON Patch it answers with. The difference to Lanes is therefore the framework: kopf's
``WebhookServer`` (aiohttp, its own TLS context loaded from the same certificate files), its request parsing,
cause building, handler execution and response building (``kopf._core.engines.admission``).

kopf normally runs the admission server inside a full operator, which first logs into a cluster and discovers
its resources. The benchmark has no cluster, so this module starts exactly the operator's admission task
(``admission.admission_webhook_server`` with ``webhookfn=serve_admission_request`` bound to the registry,
settings, insights, memories and indices, as ``kopf._core.reactor.running`` binds it) and feeds the insights
with the Pod resource as discovery would. The operator's other tasks (watch streams, peering, posting) are idle in
an operator that only serves webhooks, so the request path measured is kopf's own.

Run: ``python -m bench.peers.kopf_peer --cert FILE --key FILE --port N``; it serves ``POST /<handler id>``
(kopf's URL scheme), i.e. ``/mutate-pods``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from typing import Any

import jsonpatch
import kopf
from kopf._cogs.aiokits import aiovalues
from kopf._cogs.structs import ephemera, references
from kopf._core.engines import admission, indexing
from kopf._core.reactor import inventory

from bench.peers import server_parser
from webhook.contract.defaults import ClusterDefaults
from webhook.injection.admit import admit_pod

HANDLER_ID = "mutate-pods"
POD_RESOURCE = references.Resource(
    group="", version="v1", plural="pods", kind="Pod", singular="pod", shortcuts=frozenset({"po"}),
    namespaced=True, preferred=True,
    verbs=frozenset({"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}),
    subresources=frozenset({"status", "eviction", "binding", "log", "exec"}),
)


def build_registry(defaults: ClusterDefaults) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.mutate("pods", id=HANDLER_ID, registry=registry, operation="CREATE")
    def mutate_pod(body: Any, patch: kopf.Patch, warnings: list[str], **_: Any) -> None:
        raw = dict(body)
        namespace = raw.get("metadata", {}).get("namespace") or "default"
        result = admit_pod(raw, namespace, defaults, None)
        warnings.extend(result.warnings)
        if result.patch:
            ops = result.patch
            patch.fns.append(lambda target: jsonpatch.apply_patch(target, ops, in_place=True))

    return registry


async def serve(host: str, port: int, cert: str, key: str) -> None:
    defaults = ClusterDefaults()
    registry = build_registry(defaults)
    settings = kopf.OperatorSettings()
    settings.admission.server = kopf.WebhookServer(addr=host, port=port, certfile=cert, pkeyfile=key, host=host)
    settings.admission.managed = None
    insights = references.Insights()
    for selector in registry._webhooks.get_all_selectors():
        insights.webhook_resources.update(selector.select([POD_RESOURCE]))
    insights.ready_resources.set()
    memories = inventory.ResourceMemories()
    indexers = indexing.OperatorIndexers()
    memo = ephemera.AnyMemo(ephemera.Memo())
    container: aiovalues.Container[Any] = aiovalues.Container()
    webhookfn = functools.partial(
        admission.serve_admission_request, settings=settings, registry=registry, insights=insights,
        memories=memories, memobase=memo, indices=indexers.indices,
    )
    task = asyncio.create_task(admission.admission_webhook_server(
        settings=settings, registry=registry, insights=insights, webhookfn=webhookfn, container=container,
    ))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def main() -> None:
    parser = server_parser("kopf_peer")
    args = parser.parse_args()
    # kopf logs each handler call at INFO ("Webhook 'mutate-pods' succeeded."), as an operator does by default;
    # Lanes also logs one line per admission.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # Lanes has no access log either
    asyncio.run(serve(args.host, args.port, args.cert, args.key))


if __name__ == "__main__":
    main()
