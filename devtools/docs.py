"""``python -m devtools.docs``: rewrite the tables docs/ derives from the settings declarations.

Each table sits between ``<!-- NAME:start ... -->`` and ``<!-- NAME:end -->`` in its document and is rendered from
``SETTINGS`` in webhook/contract/settings.py; everything outside the markers is written by hand. ``--check`` only
reports stale documents (exit status 1); tests/webhook_unit/test_settings_declared.py runs the same check.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from webhook.contract.settings import ANNOTATION_SETTINGS, SETTINGS, Setting

REPO_ROOT = Path(__file__).resolve().parent.parent


def _flow(value: Any) -> str:
    """A default as YAML writes it: ``10s``, ``true``, ``15400``, ``{requests: {cpu: 10m}}``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_flow(item)}" for key, item in value.items()) + "}"
    return str(value)


def _code(value: Any, empty: str) -> str:
    return empty if value == "" else f"`{_flow(value)}`"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _annotation_default(setting: Setting) -> str:
    if setting.default is None:
        return setting.computed
    helm = f" (`{setting.helm}`)" if setting.helm else ""
    return _code(setting.default, "none") + helm


def annotation_table() -> str:
    """docs/reference.md, "Annotations": every annotation a user sets."""
    rows = [
        [f"`{s.annotation}`", s.doc, _annotation_default(s), s.format, s.example] for s in ANNOTATION_SETTINGS
    ]
    return _table(["annotation", "meaning", "default", "format", "example"], rows)


def _annotation(setting: Setting) -> str:
    return f"`{setting.annotation}`" if setting.annotation else ""


def defaults_table() -> str:
    """docs/reference.md, "Cluster defaults": every field of the defaults file, in its order."""
    rows = [
        [f"`{s.field}`", _code(s.default, "none"), f"`{s.helm}`" if s.helm else "", _annotation(s), s.doc]
        for s in SETTINGS
        if s.default is not None
    ]
    return _table(["field", "default", "Helm value", "annotation", "meaning"], rows)


def values_table() -> str:
    """docs/install.md, "Values reference": the ``defaults.*`` Helm values."""
    rows = [
        [f"`{s.helm}`", _code(s.default, '`""`'), _annotation(s), s.doc]
        for s in SETTINGS
        if s.helm and s.helm.startswith("defaults.")
    ]
    return _table(["value", "default", "annotation", "meaning"], rows)


REGIONS: dict[str, tuple[str, Callable[[], str]]] = {
    "settings-table": ("docs/reference.md", annotation_table),
    "defaults-table": ("docs/reference.md", defaults_table),
    "defaults-values-table": ("docs/install.md", values_table),
}
"""Marker name -> (document, renderer)."""


def _region(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {re.escape(name)}:start\b[^>]*-->\n)(.*?)(<!-- {re.escape(name)}:end -->)", re.S)


def render(text: str, name: str, table: str) -> str:
    """``text`` with the region ``name`` holding ``table``; ValueError when the markers are missing."""
    pattern = _region(name)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {name}:start --> ... <!-- {name}:end --> markers")
    return pattern.sub(lambda m: f"{m.group(1)}\n{table}\n\n{m.group(3)}", text, count=1)


def rendered(root: Path = REPO_ROOT) -> dict[Path, tuple[str, str]]:
    """Each document with generated regions: (its text now, its text with every region up to date)."""
    documents: dict[Path, tuple[str, str]] = {}
    for name, (document, renderer) in REGIONS.items():
        path = root / document
        current, updated = documents.get(path, (path.read_text(encoding="utf-8"),) * 2)
        documents[path] = (current, render(updated, name, renderer()))
    return documents


def stale(root: Path = REPO_ROOT) -> list[str]:
    """The documents whose generated regions differ from the declarations (relative paths)."""
    return [str(path.relative_to(root)) for path, (now, wanted) in rendered(root).items() if now != wanted]


def main(argv: Sequence[str] | None = None) -> int:
    description = "Rewrite the tables docs/ derives from webhook/contract/settings.py."
    parser = argparse.ArgumentParser(prog="python -m devtools.docs", description=description)
    parser.add_argument("--check", action="store_true", help="only report stale documents (exit status 1)")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for document in outdated:
            print(f"{document}: generated tables are stale; run python -m devtools.docs", file=sys.stderr)
        return 1 if outdated else 0
    for path, (now, wanted) in rendered().items():
        if now != wanted:
            path.write_text(wanted, encoding="utf-8")
            print(f"rewrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
