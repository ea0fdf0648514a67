"""The floor: Lanes' own web stack answering ``allowed`` with no work.

Same FastAPI app type, same plain Starlette route style, same uvicorn configuration and TLS context
(``webhook.admission.serving.create_server``: TLS 1.2+, ALPN http/1.1, h11, keep-alive), same body reading. The
only work is what every admission webhook must do to be valid: parse the review (orjson) to echo its ``uid``. The
difference between this and ``lanes-webhook serve`` is the cost of Lanes itself (review checks, resolution,
mutation, JSON Patch, metrics and the per-request log line).

Run: ``python -m bench.peers.floor --cert FILE --key FILE --port N``.
"""

from __future__ import annotations

import argparse

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from webhook.admission.app import Lifecycle
from webhook.admission.serving import create_server


def create_app() -> FastAPI:
    app = FastAPI(title="floor", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.lifecycle = Lifecycle()
    calls = [0]

    async def stats(request: Request) -> Response:
        return Response(orjson.dumps({"mutate_calls": calls[0]}), media_type="application/json")

    async def mutate(request: Request) -> Response:
        calls[0] += 1
        review = orjson.loads(await request.body())
        uid = review["request"]["uid"]
        body = orjson.dumps({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": True},
        })
        return Response(body, media_type="application/json")

    app.add_route("/mutate", mutate, methods=["POST"])
    app.add_route("/stats", stats, methods=["GET"])  # for bench/apiserver.py: is the API server calling us yet?
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="floor")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = create_server(create_app(), host=args.host, port=args.port, cert_file=args.cert, key_file=args.key,
                           shutdown_delay=0.0, shutdown_timeout=2.0)
    server.run()


if __name__ == "__main__":
    main()
