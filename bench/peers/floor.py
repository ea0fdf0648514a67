"""The floor: Lanes' own web stack answering ``allowed`` with no work.

Same FastAPI app type, same plain Starlette route style, same uvicorn configuration and TLS context
(``webhook.admission.serving.create_server``: TLS 1.2+, ALPN http/1.1, httptools + uvloop, keep-alive), same body
reading (``--http h11 --loop asyncio``: the pure-Python stack Lanes ran on before, for the ``floor_h11`` server). The
only work is what every admission webhook must do to be valid: parse the review (orjson) to echo its ``uid``. The
difference between this and ``lanes-webhook serve`` is the cost of Lanes itself (review checks, resolution,
mutation, JSON Patch, metrics and the per-request log line).

Two stacks, so that Lanes is compared with the floor of the stack it runs on (bench/admission.py measures both):

- ``--stack fastapi`` (default; bench/apiserver.py uses it): ``POST /mutate`` is a route of the FastAPI app, through
  its middleware, router, ``Request`` and ``Response``;
- ``--stack lean``: ``POST /mutate`` is answered by a raw ASGI callable in front of the FastAPI app, which serves
  every other path, exactly as Lanes' own fast lane (``webhook.admission.app.AdmissionApp``) does, reading the
  body with the same function.

Run: ``python -m bench.peers.floor --cert FILE --key FILE --port N [--stack lean|fastapi] [--http h11]
[--loop asyncio]``.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bench.peers import server_parser
from webhook.admission.app import Lifecycle, _read_body
from webhook.admission.codec import DEFAULT_MAX_BODY_BYTES
from webhook.admission.serving import create_server


def _allowed(body: bytes) -> bytes:
    """The least a valid admission webhook answers: ``allowed`` for the review's uid."""
    uid = orjson.loads(body)["request"]["uid"]
    return orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                         "response": {"uid": uid, "allowed": True}})


class _LeanFloor(FastAPI):
    """``POST /mutate`` as a raw ASGI callable in front of FastAPI (Lanes' fast-lane shape), the rest routed."""

    calls: list[int]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/mutate":
            self.calls[0] += 1
            body = _allowed(await _read_body(scope, receive, DEFAULT_MAX_BODY_BYTES))
            headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await super().__call__(scope, receive, send)


def create_app(stack: str = "fastapi") -> FastAPI:
    cls = _LeanFloor if stack == "lean" else FastAPI
    app = cls(title="floor", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.lifecycle = Lifecycle()
    calls = [0]
    if isinstance(app, _LeanFloor):
        app.calls = calls

    async def stats(request: Request) -> Response:
        return Response(orjson.dumps({"mutate_calls": calls[0]}), media_type="application/json")

    async def mutate(request: Request) -> Response:
        calls[0] += 1
        return Response(_allowed(await request.body()), media_type="application/json")

    app.add_route("/mutate", mutate, methods=["POST"])
    app.add_route("/stats", stats, methods=["GET"])  # for bench/apiserver.py: is the API server calling us yet?
    return app


def main() -> None:
    parser = server_parser("floor", stack_options=True)
    parser.add_argument("--stack", choices=("fastapi", "lean"), default="fastapi")
    args = parser.parse_args()
    server = create_server(create_app(args.stack), host=args.host, port=args.port, cert_file=args.cert,
                           key_file=args.key, shutdown_delay=0.0, shutdown_timeout=2.0, http=args.http,
                           loop=args.loop)
    server.run()


if __name__ == "__main__":
    main()
