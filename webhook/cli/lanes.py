"""The ``lanes`` command: ``inject``, ``doctor``.

Each subcommand lives in its own module, which exposes two functions:

* ``register(subparsers)`` adds its full parser (``subparsers.add_parser(NAME, ...)``) and its arguments;
* ``run(args) -> int`` does the work and returns the exit status.

``lanes`` dispatches to ``run`` of the module it registered, so a parser cannot forget to name its handler (the
cause of ``lanes doctor`` crashing with ``'Namespace' object has no attribute 'func'``). Only the selected
subcommand's module is imported, so ``lanes inject`` does not pay for the Kubernetes client that ``lanes doctor``
needs; the others are listed by name and help. To add a subcommand, append one line to :data:`COMMANDS`.

Exit status: 0 success (warnings do not fail), 2 user error (bad arguments, unreadable or invalid input, invalid
defaults): a one-line ``error: ...`` on stderr, never a stack trace. A subcommand may use others (``lanes doctor``
exits 1 when a check FAILs).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from webhook.cli.errors import EXIT_OK, EXIT_USAGE, UserError

__all__ = ["COMMANDS", "EXIT_OK", "EXIT_USAGE", "Command", "UserError", "build_parser", "main"]


@dataclass(frozen=True)
class Command:
    """A ``lanes`` subcommand: its name, one-line help, and the module exposing ``register`` and ``run``."""

    name: str
    help: str
    module: str

    def load(self) -> ModuleType:
        module = importlib.import_module(self.module)
        for function in ("register", "run"):
            if not callable(getattr(module, function, None)):
                raise TypeError(f"{self.module} must define {function}() to be a lanes subcommand")
        return module


COMMANDS: list[Command] = [
    Command("inject", "print manifests with Lanes injected into every pod template (offline)", "webhook.cli.inject"),
    Command("doctor", "check the Lanes installation in a cluster", "webhook.cli.doctor"),
    Command("lane", "create, list, describe and delete Lanes (lane routing) in a cluster", "webhook.cli.lane"),
    Command("route", "print the objects the controller would generate for Lanes in manifests", "webhook.cli.route"),
]
"""Subcommands, in the order ``lanes --help`` lists them."""


def build_parser(selected: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The ``lanes`` parser with the full parser of ``selected`` (all of them when None) and the others listed;
    and the loaded subcommand modules by name."""
    parser = argparse.ArgumentParser(
        prog="lanes", description="Lanes: lossless deploys and lanes for Kubernetes workloads."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    loaded: dict[str, ModuleType] = {}
    for command in COMMANDS:
        if selected is None or command.name == selected:
            loaded[command.name] = module = command.load()
            module.register(subparsers)
        else:
            subparsers.add_parser(command.name, help=command.help)
    return parser, loaded


def _selected(argv: Sequence[str]) -> str:
    """The subcommand named on the command line (its module alone is imported), or "" for none."""
    known = {command.name for command in COMMANDS}
    return next((arg for arg in argv if arg in known), "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lanes``; returns the exit status (argparse's own exits, such as ``--help``, included)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, modules = build_parser(_selected(arguments))
        args = parser.parse_args(arguments)
        status: int = modules[args.command].run(args)
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
