"""Lanes with its admission paths routed through FastAPI: the other side of the web-stack comparison.

``lanes-webhook serve --no-owner-cache`` answers ``POST /mutate`` from a raw ASGI callable in front of its FastAPI
app (``webhook.admission.app.AdmissionApp``'s fast lane). This peer builds the very same app, handler, metrics,
logging and server (``create_app(..., fast_lane=False)``), so the only difference is that each admission call
passes FastAPI's middleware and router first. bench/admission.py measures both, and the floor on both stacks, in
one run; the faster stack is the one the product keeps.

Run: ``python -m bench.peers.lanes_fastapi --cert FILE --key FILE --port N``.
"""

from __future__ import annotations

import argparse

from webhook.admission.app import create_app
from webhook.admission.metrics import Metrics
from webhook.admission.serving import create_server
from webhook.cli.jsonlog import configure_logging
from webhook.contract.defaults import ClusterDefaults


def main() -> None:
    parser = argparse.ArgumentParser(prog="lanes_fastapi")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    configure_logging("info")  # as `lanes-webhook serve`: one JSON line per admission
    app = create_app(ClusterDefaults(), None, metrics=Metrics(), fast_lane=False)
    server = create_server(app, host=args.host, port=args.port, cert_file=args.cert, key_file=args.key,
                           shutdown_delay=0.0)
    server.run()


if __name__ == "__main__":
    main()
