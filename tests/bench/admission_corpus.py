"""A corpus of AdmissionReview bodies and the exact bytes /mutate answers for each (golden responses).

The golden file was recorded from the implementation BEFORE the admission-cost optimisation of issue #15.3
(``python -m tests.bench.admission_corpus --record``), so that test_admission_golden.py can check that the
optimised code answers byte-for-byte the same. Re-record only for an intended change of the answer (a product
change in webhook/injection), and say so in the change: the point of the file is that a speed-up never changes it.

The corpus: the two benchmark bodies (bench/bodies.py), each with the lane annotations the settings table knows
(warm-up, curve, drain, register delay, opt-out), a pod already injected (the API server's second call), pods
without a lane, operations and kinds /mutate must leave alone, and bodies that are not an AdmissionReview.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import bodies

GOLDEN = Path(__file__).resolve().parent / "golden" / "admission_mutate.json"


def _with_annotations(pod: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["metadata"].setdefault("annotations", {}).update(annotations)
    return pod


def _review(pod: Any, **request: Any) -> bytes:
    review = bodies.review(pod)
    review["request"].update(request)
    return json.dumps(review, separators=(",", ":")).encode()


def corpus() -> Iterator[tuple[str, bytes]]:
    """(name, request body) pairs, in a fixed order."""
    for size, make in bodies.BODIES.items():
        yield f"{size}", _review(make())
        for key, value in (
            ("lanes.io/warmup", "30s"),
            ("lanes.io/warmup-curve", "aggression=2"),
            ("lanes.io/drain", "45s"),
            ("lanes.io/register-delay", "3s"),
            ("lanes.io/inject", "false"),
            ("lanes.io/warmup", "not-a-duration"),
        ):
            yield f"{size}-{key.split('/')[1]}={value}", _review(_with_annotations(make(), {key: value}))
        no_lane = make()
        no_lane["metadata"]["annotations"].pop("lanes.io/lane", None)
        yield f"{size}-no-lane", _review(no_lane)
        yield f"{size}-dry-run", _review(make(), dryRun=True)
        yield f"{size}-update", _review(make(), operation="UPDATE", oldObject=make())
    small = bodies.small_pod()
    yield "no-namespace", _review(small, namespace="")
    yield "not-a-pod", _review(small, kind={"group": "apps", "version": "v1", "kind": "Deployment"})
    yield "subresource", _review(small, subResource="status")
    yield "object-not-an-object", _review([1, 2, 3])
    yield "not-json", b"{not json"
    yield "not-a-review", b'{"kind":"Something"}'


def answers() -> list[dict[str, Any]]:
    """What the current code answers for every corpus body: status and the body's exact text."""
    import logging

    from webhook.admission.app import AdmissionHandler
    from webhook.admission.metrics import Metrics
    from webhook.contract.defaults import ClusterDefaults

    logging.getLogger("lanes.admission").setLevel(logging.CRITICAL)
    handler = AdmissionHandler(ClusterDefaults(), None, Metrics())
    out = []
    for name, body in corpus():
        answer = handler.mutate(body)
        injected = handler.mutate(_second_call(body, answer.body)) if answer.outcome == "injected" else None
        out.append({
            "name": name,
            "status": answer.status,
            "response": answer.body.decode(),
            **({"second_call_response": injected.body.decode()} if injected is not None else {}),
        })
    return out


def _second_call(body: bytes, response: bytes) -> bytes:
    """The API server's reinvocation: the same review with the patch applied (the pod is already injected)."""
    import base64

    import jsonpatch  # type: ignore[import-untyped]

    review = json.loads(body)
    patch = json.loads(base64.b64decode(json.loads(response)["response"]["patch"]))
    review["request"]["object"] = jsonpatch.apply_patch(review["request"]["object"], patch)
    return json.dumps(review, separators=(",", ":")).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help=f"write {GOLDEN.name} from the current code")
    args = parser.parse_args(argv)
    recorded = answers()
    if args.record:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        note = (
            "Recorded from the pre-optimisation implementation (issue #15.3); test_admission_golden.py checks "
            "byte equality. Re-record only for an intended change of the answer."
        )
        GOLDEN.write_text(json.dumps({"note": note, "cases": recorded}, indent=1) + "\n")
        print(f"wrote {len(recorded)} cases to {GOLDEN}")
    else:
        print(json.dumps(recorded, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
