"""``lanes-helper``: the command of the helper image (``prewarm`` init container, ``agent`` sidecar).

Exit statuses: 0 success; 1 prewarm under ``require`` with unreachable targets, or the agent could not listen;
2 bad usage or configuration (the message names the setting and the bad value).

Imports are deferred to the subcommand that needs them: the agent must not pay for the prewarm's modules or for
argparse (see helper/footprint.py for what the agent leaves out).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from helper.env import ConfigError

EXIT_USAGE = 2


def _fail(command: str, message: str, *, forms: bool = False) -> int:
    sys.stderr.write(f"lanes-helper {command}: error: {message}\n")
    if forms:
        from helper.usage import TARGET_FORMS

        sys.stderr.write(TARGET_FORMS + "\n")
    return EXIT_USAGE


def _agent_command_line(argv: Sequence[str]) -> tuple[bool, str | None]:
    """Recognise the sidecar's own command line (``agent`` or ``agent --port N``) without argparse.

    The agent runs in every pod, and argparse with gettext costs about 0.5 MB of its 20 MB budget. Anything else
    (``--help``, typos, other options) goes through the full parser and its error messages.
    """
    if argv == ["agent"]:
        return True, None
    if len(argv) == 3 and argv[:2] == ["agent", "--port"]:
        return True, argv[2]
    return False, None


def _parse_and_run(argv: Sequence[str]) -> int:
    """Every command line but the agent's own: full argparse (help, usage errors exit 2)."""
    from helper.usage import build_parser

    args = build_parser().parse_args(argv)
    if args.command == "agent":
        return _agent(args.port)
    from helper.config import prewarm_config
    from helper.prewarm import run as prewarm

    try:
        config = prewarm_config(
            args.targets,
            policy=args.policy,
            deadline=args.deadline,
            timeout=args.timeout,
            ca_file=args.ca_file,
            insecure=args.insecure,
            output=args.output,
        )
        return prewarm.run(config)
    except ConfigError as error:
        return _fail("prewarm", str(error), forms="target" in str(error))


def _agent(port: str | None) -> int:
    from helper.config import agent_config

    try:
        config = agent_config(port=port)
    except ConfigError as error:
        return _fail("agent", str(error))
    from helper.agent import run as agent

    try:
        return agent.run(config)
    except ConfigError as error:
        return _fail("agent", str(error))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        is_agent, port = _agent_command_line(argv)
        return _agent(port) if is_agent else _parse_and_run(argv)
    except KeyboardInterrupt:
        return 130
