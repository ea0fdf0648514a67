"""The ``lanes-helper`` command-line interface definition: arguments, help texts and the accepted target forms.

Separate from cli.py so the agent's start, which never needs argparse, does not import it (see cli.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

TARGET_FORMS = """\
accepted target forms:
  tcp://HOST:PORT                    resolve and connect
  dns://HOST                         resolve
  http://HOST[:PORT]/PATH[#STATUS]   connect and GET; STATUS is the status required (default: any below 500)
  https://HOST[:PORT]/PATH[#STATUS]  same over TLS, verified against the system CAs (+ --ca-file)
several targets: separate arguments, or commas (LANES_PREWARM_TARGETS=tcp://db:5432,https://auth/healthz)"""

PREWARM_HELP = f"""\
Check that dependencies are reachable before the app starts: resolve, connect, TLS handshake and GET, all targets in
parallel, retried with exponential backoff until one overall deadline. Prints one line per target.

{TARGET_FORMS}

environment (arguments win): LANES_PREWARM_TARGETS, LANES_PREWARM_POLICY, LANES_PREWARM_DEADLINE,
LANES_PREWARM_TIMEOUT, LANES_PREWARM_CA_FILE, LANES_PREWARM_INSECURE. Durations are plain seconds.
exit status: 0 ok (always, under policy warn), 1 unreachable targets under policy require, 2 bad configuration."""

AGENT_HELP = """\
Run the lanes-agent sidecar: wait for the app, self warm-up, then /ready; /prestop deregisters, broadcasts
going-offline and holds for the drain. Endpoints: /ready /prestop /status /healthz /metrics.
Configured by LANES_* environment variables (see docs/lossless.md); durations are plain seconds.
exit status: 0 stopped by SIGTERM/SIGINT, 1 could not listen, 2 bad configuration."""


class _Version(argparse.Action):
    """``--version``, reading the installed distribution's metadata only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version")

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("lanes")
        except PackageNotFoundError:
            text = "unknown (not installed)"
        sys.stdout.write(f"lanes-helper {text}\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanes-helper",
        description="Pod side of Lanes: the lanes-prewarm init container and the lanes-agent sidecar.",
    )
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    prewarm = commands.add_parser(
        "prewarm",
        help="check dependencies before the app starts (init container)",
        description=PREWARM_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prewarm.add_argument("targets", nargs="*", metavar="TARGET", help="dependency to check (see forms below)")
    prewarm.add_argument("--policy", help="warn (default): always exit 0; require: exit 1 if any is unreachable")
    prewarm.add_argument("--deadline", metavar="SECONDS", help="overall deadline (default 60)")
    prewarm.add_argument("--timeout", metavar="SECONDS", help="per-attempt timeout (default 5)")
    prewarm.add_argument("--ca-file", metavar="PEM", help="extra CA certificates trusted for https targets")
    prewarm.add_argument(
        "--insecure", action="store_true", help="do not verify TLS certificates (reported as unverified)"
    )
    prewarm.add_argument("--output", choices=("text", "json"), default="text", help="line format (default text)")

    agent = commands.add_parser(
        "agent",
        help="run the lanes-agent sidecar (readiness, warm-up, graceful offline)",
        description=AGENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    agent.add_argument("--port", help="port to listen on (default: LANES_AGENT_PORT or 15400)")
    return parser
