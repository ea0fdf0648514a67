"""The servers bench/admission.py measures Lanes against; each is a script the bench starts as its own process."""

from __future__ import annotations

import argparse


def server_parser(prog: str, *, stack_options: bool = False) -> argparse.ArgumentParser:
    """The command line every peer takes from bench/admission.py (``--cert --key --host --port``), plus uvicorn's
    ``--http``/``--loop`` for the peers built on Lanes' own server (``stack_options``)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    if stack_options:
        from webhook.admission.serving import HTTP_IMPLEMENTATION, LOOP_IMPLEMENTATION

        parser.add_argument("--http", choices=("httptools", "h11"), default=HTTP_IMPLEMENTATION)
        parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=LOOP_IMPLEMENTATION)
    return parser
