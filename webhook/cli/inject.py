"""``lanes inject``: read manifests like ``kubectl apply -f`` does, print them with Lanes injected.

Inputs follow kubectl: ``-f`` may be repeated (every input is read, in order, before anything is printed), a
directory stands for its ``*.yaml``, ``*.yml`` and ``*.json`` files in name order (``-R`` also walks its
subdirectories), and ``-`` is stdin. Input without a single object is an error, like kubectl's "no objects passed
to apply". The I/O lives here; the injection itself is :mod:`webhook.injection.manifests`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from webhook.cli.errors import EXIT_OK, UserError

HELP = "print manifests with Lanes injected into every pod template (offline, like istioctl kube-inject)"
MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")  # kubectl's "recognized file extensions"


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``inject`` to the ``lanes`` command's subparsers; ``lanes`` then calls :func:`run`."""
    parser = subparsers.add_parser(
        "inject",
        help=HELP,
        description=(
            "Read Kubernetes manifests (multi-document YAML or JSON, List kinds) and print them with the Lanes "
            "mutation applied to every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, "
            "ReplicationController and DeploymentConfig pod template. Other kinds pass through unchanged. "
            "Warnings go to stderr."
        ),
        epilog=(
            "examples:\n"
            "  lanes inject -f deploy.yaml | kubectl apply -f -\n"
            "  lanes inject -f base/ -f overlay.yaml        # a directory: its *.yaml, *.yml, *.json files\n"
            "  kubectl get deploy web -o yaml | lanes inject -f -"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-f", "--filename", dest="filenames", action="append", required=True, metavar="PATH",
        help="manifest file, directory, or - for stdin; repeatable, read in order",
    )
    parser.add_argument(
        "-R", "--recursive", action="store_true", help="also read the subdirectories of directories given with -f"
    )
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
    return parser


def manifest_paths(name: str, recursive: bool) -> list[Path]:
    """The files ``-f name`` stands for: the file itself, or a directory's manifest files in name order."""
    path = Path(name)
    if not path.exists():
        raise UserError(f"cannot read {name}: the path does not exist")
    if not path.is_dir():
        return [path]
    pattern = "**/*" if recursive else "*"
    found = sorted(p for p in path.glob(pattern) if p.suffix in MANIFEST_SUFFIXES and p.is_file())
    if not found:
        where = " or its subdirectories" if recursive else " (use -R for subdirectories)"
        raise UserError(
            f"error reading {name}: no {', '.join(MANIFEST_SUFFIXES)} files in the directory{where}"
        )
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"cannot read {path}: not UTF-8 text") from None


def read_sources(filenames: list[str], recursive: bool) -> list[Any]:
    """Every input, in the order given; stdin at most once."""
    from webhook.injection.manifests import Source

    sources: list[Source] = []
    for name in filenames:
        if name == "-":
            if any(source.name == "<stdin>" for source in sources):
                raise UserError("-f - (stdin) given twice")
            try:
                sources.append(Source(sys.stdin.read(), "<stdin>"))
            except UnicodeDecodeError:
                raise UserError("cannot read <stdin>: not UTF-8 text") from None
            continue
        sources.extend(Source(_read(path), str(path)) for path in manifest_paths(name, recursive))
    return sources


def run(args: argparse.Namespace) -> int:
    from webhook.contract.defaults import DefaultsError, load_defaults, override_defaults
    from webhook.injection.manifests import InjectOptions, ManifestError, dump_documents, inject_sources

    try:
        defaults = override_defaults(load_defaults(args.defaults), args.settings, "--set")
        sources = read_sources(args.filenames, args.recursive)
        options = InjectOptions(defaults, dict(args.ns_annotations), dict(args.ns_labels))
        result = inject_sources(sources, options)
    except (DefaultsError, ManifestError) as exc:
        raise UserError(str(exc)) from None
    if not result.documents:
        shown = ", ".join(source.name for source in sources)
        raise UserError(f"no objects passed to inject: {shown} holds no YAML or JSON document")
    sys.stdout.write(dump_documents(result.documents))
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK
