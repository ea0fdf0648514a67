"""The ``lanes`` command: ``inject``, ``doctor``.

Each subcommand is a :class:`Command`: a name, a one-line help, and a function that adds its full parser to the
subparsers and sets ``func`` (a callable taking the parsed arguments and returning the exit status). Only the
selected subcommand's module is imported, so ``lanes inject`` does not pay for the Kubernetes client that
``lanes doctor`` needs; the others are listed by name and help. To add one, append a :class:`Command` to
:data:`COMMANDS`.

Exit status: 0 success (warnings do not fail), 2 user error (bad arguments, unreadable or invalid input, invalid
defaults): a one-line ``error: ...`` on stderr, never a stack trace.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 2


class UserError(Exception):
    """A problem the user can fix (bad argument, unreadable file, invalid YAML): printed, exit status 2."""


Subparsers = Any  # argparse._SubParsersAction is private; its type is not worth importing


@dataclass(frozen=True)
class Command:
    """A ``lanes`` subcommand: ``add`` registers its full parser (importing what it needs) and sets ``func``."""

    name: str
    help: str
    add: Callable[[Subparsers], Any]


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


# --- inject ----------------------------------------------------------------------------------------------------


INJECT_HELP = "print manifests with Lanes injected into every pod template (offline, like istioctl kube-inject)"


def add_inject(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "inject",
        help=INJECT_HELP,
        description=(
            "Read Kubernetes manifests (multi-document YAML, List kinds) and print them with the Lanes mutation "
            "applied to every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob pod template. "
            "Other kinds pass through unchanged. Warnings go to stderr."
        ),
    )
    parser.add_argument("-f", "--filename", required=True, metavar="FILE", help="manifest file, or - for stdin")
    parser.add_argument("--defaults", metavar="FILE", help="cluster defaults file (YAML/JSON, as in the Helm chart)")
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
        help="override one cluster default, e.g. --set drain=20s --set tagHeader=x-env (repeatable)",
    )
    parser.add_argument(
        "--namespace-annotation", dest="ns_annotations", action="append", default=[], type=_key_value,
        metavar="KEY=VALUE", help="annotation of the target namespace, e.g. lanes.io/lane=gray (repeatable)",
    )
    parser.add_argument(
        "--namespace-label", dest="ns_labels", action="append", default=[], type=_key_value,
        metavar="KEY=VALUE", help="label of the target namespace, e.g. lanes.io/lane=gray (repeatable)",
    )
    parser.set_defaults(func=run_inject)


def _read_input(name: str) -> tuple[str, str]:
    if name == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(name).read_text(encoding="utf-8"), name
    except OSError as exc:
        raise UserError(f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"cannot read {name}: not UTF-8 text") from None


def run_inject(args: argparse.Namespace) -> int:
    from webhook.contract.defaults import DefaultsError, load_defaults, override_defaults
    from webhook.injection.manifests import InjectOptions, ManifestError, dump_documents, inject_text

    try:
        defaults = override_defaults(load_defaults(args.defaults), args.settings, "--set")
        text, source = _read_input(args.filename)
        options = InjectOptions(defaults, dict(args.ns_annotations), dict(args.ns_labels))
        result = inject_text(text, options, source)
    except (DefaultsError, ManifestError) as exc:
        raise UserError(str(exc)) from None
    sys.stdout.write(dump_documents(result.documents))
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def add_doctor(subparsers: Subparsers) -> None:
    from webhook.cli import doctor

    doctor.add_parser(subparsers)


COMMANDS: list[Command] = [
    Command("inject", INJECT_HELP, add_inject),
    Command("doctor", "check the Lanes installation in a cluster", add_doctor),
]
"""Subcommands, in the order ``lanes --help`` lists them."""


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The ``lanes`` parser with the full parser of ``selected`` (all of them when None) and the others listed."""
    parser = argparse.ArgumentParser(
        prog="lanes", description="Lanes: lossless deploys and lanes for Kubernetes workloads."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in COMMANDS:
        if selected is None or command.name == selected:
            command.add(subparsers)
        else:
            subparsers.add_parser(command.name, help=command.help)
    return parser


def _selected(argv: Sequence[str]) -> str:
    """The subcommand named on the command line (its module alone is imported), or "" for none."""
    known = {command.name for command in COMMANDS}
    return next((arg for arg in argv if arg in known), "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lanes``; returns the exit status (argparse's own exits, such as ``--help``, included)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    selected = _selected(arguments)
    try:
        parser = build_parser(selected)
        args = parser.parse_args(arguments)
        status: int = args.func(args)
        return status
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `lanes inject ... | head`
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
