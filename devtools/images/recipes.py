"""What each image is built from, and the hash of those inputs that names its cache folder.

Pure data and hashing, no I/O beyond reading the input files: an image is rebuilt exactly when one of its inputs
changes (its Dockerfile, the files its build context holds after ``.dockerignore``, the base recipe, or
``RECIPE_VERSION`` for a change in how we drive buildah), and a warm run finds every archive and builds nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Bump when the build steps in devtools/images change in a way the hashed files do not show.
RECIPE_VERSION = "1"


@dataclass(frozen=True)
class BaseRecipe:
    """A Debian root filesystem from Debian packages (``mmdebstrap``), imported as ``localhost/lanes/base:<key>``.

    ``essential`` plus Python is enough for every image here: the helper and the sample app only need the standard
    library, the webhook installs its wheels into a virtualenv (python3-venv), and pip (python3-pip) installs the
    wheel in the helper's final stage. Documentation, man pages and locales are never unpacked."""

    suite: str = "bookworm"
    variant: str = "essential"
    packages: tuple[str, ...] = ("python3", "python3-venv", "python3-pip")
    excludes: tuple[str, ...] = (
        "/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
        "/usr/share/lintian/*", "/usr/share/linda/*",
    )
    #: the merged-/usr hook lays out the symlinks itself, so mmdebstrap needs neither usrmerge nor perl
    hooks: tuple[str, ...] = ("merged-usr",)
    #: "" = the host's Debian sources (/etc/apt/sources.list(.d)), so the build uses the mirror apt already uses
    mirror: str = ""

    def key(self) -> str:
        """Hash of the recipe and, when it uses the host's mirror, of the host's apt sources."""
        sources = [] if self.mirror else [p.read_text() for p in host_sources()]
        return _digest(json.dumps([self.__dict__, sources], sort_keys=True).encode())[:12]

    def ref(self) -> str:
        return f"localhost/lanes/base:{self.key()}"


@dataclass(frozen=True)
class ImageRecipe:
    """One image: a Dockerfile and its build context, built on the base recipe's image."""

    name: str
    ref: str
    dockerfile: Path
    context: Path

    def input_files(self) -> list[Path]:
        """The Dockerfile, the ignore file and every file of the context that ``.dockerignore`` lets in."""
        patterns = _ignore_patterns(self.context / ".dockerignore")
        files = [self.dockerfile]
        if (self.context / ".dockerignore").is_file():
            files.append(self.context / ".dockerignore")
        exceptions = [pattern for negate, pattern in patterns if negate]
        for folder, dirs, names in os.walk(self.context):
            here = Path(folder)
            relative_dir = here.relative_to(self.context).as_posix()
            prefix = "" if relative_dir == "." else relative_dir + "/"
            # skip ignored folders (.git, .venv, ...) unless an exception could re-include something inside
            dirs[:] = sorted(
                d for d in dirs
                if not _ignored(prefix + d, patterns)
                or any(e.startswith(prefix + d + "/") or "**" in e for e in exceptions)
            )
            files.extend(here / n for n in names if not _ignored(prefix + n, patterns))
        return sorted(set(files))

    def key(self, base: BaseRecipe) -> str:
        """Hash of the recipe: base key, recipe version, and each input file's path and content."""
        digest = hashlib.sha256(f"{RECIPE_VERSION}\0{base.key()}\0{self.ref}\0".encode())
        for path in self.input_files():
            # a Dockerfile outside its context (the coredns image: hack/coredns/Dockerfile, the binary in the cache)
            name = path.relative_to(self.context).as_posix() if path.is_relative_to(self.context) else path.name
            digest.update(name.encode() + b"\0")
            digest.update(_digest(path.read_bytes()).encode() + b"\0")
        return digest.hexdigest()[:12]


def images() -> dict[str, ImageRecipe]:
    """The images of contract #3 (devtools.images.ensure_images), by key, and the real node's ``coredns``."""
    sample = REPO_ROOT / "examples" / "sample-app"
    return {
        "helper": ImageRecipe("helper", "localhost/lanes/helper:dev", REPO_ROOT / "Dockerfile.helper", REPO_ROOT),
        "webhook": ImageRecipe("webhook", "localhost/lanes/webhook:dev", REPO_ROOT / "Dockerfile.webhook", REPO_ROOT),
        "sample-app": ImageRecipe("sample-app", "localhost/lanes/sample-app:dev", sample / "Dockerfile", sample),
        # the real node's cluster DNS (devtools/realnode/coredns.py): the binary built from hack/coredns, whose cache
        # folder is the build context
        "coredns": ImageRecipe(
            "coredns", coredns_ref(), REPO_ROOT / "hack" / "coredns" / "Dockerfile", coredns_context()
        ),
    }


def coredns_ref() -> str:
    from devtools.controlplane.binaries import COREDNS_VERSION

    return f"localhost/lanes/coredns:{COREDNS_VERSION}"


def coredns_context() -> Path:
    """The folder ``go build`` of hack/coredns writes the binary into (it holds nothing else)."""
    from devtools.controlplane.binaries import node_bin_dir

    return node_bin_dir("coredns")


def host_sources() -> list[Path]:
    """The host's apt sources (one-line or deb822 files), handed to mmdebstrap as its mirrors."""
    sources = [Path("/etc/apt/sources.list")] if Path("/etc/apt/sources.list").is_file() else []
    folder = Path("/etc/apt/sources.list.d")
    if folder.is_dir():
        sources += sorted(p for p in folder.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
    return [p for p in sources if p.read_text().strip()]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ignore_patterns(path: Path) -> list[tuple[bool, str]]:
    """``.dockerignore`` lines as (is-exception, pattern), in order (a later line wins)."""
    if not path.is_file():
        return []
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        patterns.append((negate, pattern.strip("/")))
    return patterns


def _ignored(relative: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: a path is ignored when the last pattern matching it (or one of its parent folders) is not an
    exception; ``*`` and ``?`` stay within one folder, ``**`` spans any number. A file the build does not see only
    costs a needless rebuild, never a stale image."""
    ignored = False
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for negate, pattern in patterns:
        regex = _pattern_regex(pattern)
        if any(regex.fullmatch(candidate) for candidate in prefixes):
            ignored = not negate
    return ignored


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
