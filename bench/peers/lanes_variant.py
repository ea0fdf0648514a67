"""Lanes on another web stack: the other side of the web-stack comparisons in bench/admission.py.

``lanes-webhook serve --no-owner-cache`` answers ``POST /mutate`` from a raw ASGI callable in front of its FastAPI
app (``webhook.admission.app.AdmissionApp``'s fast lane), on uvicorn with ``httptools`` and ``uvloop``
(``webhook.admission.serving``). This peer builds the very same app, handler, metrics, logging and server, changing
one layer at a time:

- ``--routing fastapi``: each admission call passes FastAPI's middleware and router first
  (``create_app(..., fast_lane=False)``), the ``lanes_fastapi`` server;
- ``--http h11 --loop asyncio``: uvicorn's pure-Python HTTP/1.1 parser on the standard asyncio loop, the stack
  Lanes ran on before, the ``lanes_h11`` server.

bench/admission.py measures these and the floor on the same stacks in one run; the faster stack is the one the
product keeps.

Run: ``python -m bench.peers.lanes_variant --cert FILE --key FILE --port N [--routing fastapi] [--http h11]
[--loop asyncio]``.
"""

from __future__ import annotations

from bench.peers import server_parser
from webhook.admission.app import create_app
from webhook.admission.metrics import Metrics
from webhook.admission.serving import create_server
from webhook.cli.jsonlog import configure_logging
from webhook.contract.defaults import ClusterDefaults


def main() -> None:
    parser = server_parser("lanes_variant", stack_options=True)
    parser.add_argument("--routing", choices=("lean", "fastapi"), default="lean")
    args = parser.parse_args()
    configure_logging("info")  # as `lanes-webhook serve`: one JSON line per admission
    app = create_app(ClusterDefaults(), None, metrics=Metrics(), fast_lane=args.routing == "lean")
    server = create_server(app, host=args.host, port=args.port, cert_file=args.cert, key_file=args.key,
                           shutdown_delay=0.0, http=args.http, loop=args.loop)
    server.run()


if __name__ == "__main__":
    main()
