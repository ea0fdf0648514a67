"""``ensure_images()``: the project's images as OCI archives, built here with buildah only when their inputs change.

Each image's archive lives in ``~/.cache/lanes/images-<name>-<key>/image.oci.tar`` where ``key`` hashes its
Dockerfile, its build context (after ``.dockerignore``) and the base recipe (devtools/images/recipes.py). A warm
run finds every archive and does not even start buildah; a cold one builds the base root filesystem with mmdebstrap
(about 1-4 min, depending on the mirror), imports it, and builds each image on it. Builds hold a lock, so two test
sessions never build the same thing at once.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.controlplane.binaries import cache_root
from devtools.images.archive import uncompressed_size, write_archive
from devtools.images.base import ensure_base
from devtools.images.buildah import Buildah, check_host, say
from devtools.images.recipes import REPO_ROOT, BaseRecipe, ImageRecipe, images

NAMES = ("helper", "webhook", "sample-app")
#: images of the real node itself (not of contract #3): built on request, e.g. ``ensure_images(NODE_IMAGES)``
NODE_IMAGES = ("coredns",)
#: archives of older inputs kept per image (a branch switch back does not rebuild)
KEEP_OLD = 2


@dataclass(frozen=True)
class Image:
    """One built image: ``ref`` is the name pods use (``imagePullPolicy: Never``), ``archive`` the OCI archive that
    ``ctr -n k8s.io images import`` loads under that name."""

    name: str
    ref: str
    archive: Path
    key: str

    @property
    def info(self) -> dict[str, object]:
        """What the build recorded (build seconds, sizes); empty for an archive from elsewhere."""
        path = self.archive.with_name("image.json")
        return json.loads(path.read_text()) if path.is_file() else {}


def _folder(recipe: ImageRecipe, key: str) -> Path:
    return cache_root() / f"images-{recipe.name}-{key}"


def cached(names: Iterable[str] = NAMES) -> dict[str, Image]:
    """The images whose archive for the current inputs already exists (builds nothing)."""
    base, recipes, found = BaseRecipe(), images(), {}
    for name in names:
        recipe = recipes[name]
        key = recipe.key(base)
        archive = _folder(recipe, key) / "image.oci.tar"
        if archive.is_file():
            found[name] = Image(name, recipe.ref, archive, key)
    return found


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another image build to finish (lock {path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_images(names: Iterable[str] = NAMES, *, force: bool = False) -> dict[str, Image]:
    """Contract #3: ``{"helper", "webhook", "sample-app"} -> Image``, building only what is missing.

    Raises ``ImageError`` (one line: what is missing, e.g. buildah or root) when a build is needed but impossible."""
    names = tuple(names)
    unknown = [n for n in names if n not in images()]
    if unknown:
        raise ValueError(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(NAMES + NODE_IMAGES)}")
    if "coredns" in names:  # its build context is the binary, built from hack/coredns first (cached by version)
        from devtools.controlplane.binaries import ensure_node_binaries

        ensure_node_binaries(("coredns",))
    found = {} if force else cached(names)
    todo = [n for n in names if n not in found]
    if not todo:
        return {n: found[n] for n in names}
    check_host()
    store = cache_root() / "buildah"
    with _lock(store / "build.lock"):
        if not force:  # another process may have built them while we waited
            found.update(cached(todo))
            todo = [n for n in names if n not in found]
        if todo:
            found.update(_build(todo, store))
    return {n: found[n] for n in names}


def _build(names: list[str], store: Path) -> dict[str, Image]:
    started = time.monotonic()
    base, recipes = BaseRecipe(), images()
    (store / "logs").mkdir(parents=True, exist_ok=True)
    log_path = store / "logs" / f"build-{time.strftime('%Y%m%dT%H%M%S')}.log"
    run_dir = Path(tempfile.mkdtemp(prefix="lanes-buildah-"))
    say(f"building {', '.join(names)} with buildah (config in {run_dir}, store {store}, log {log_path})")
    built: dict[str, Image] = {}
    try:
        buildah = Buildah(run_dir, store, log_path)
        timings = ensure_base(base, buildah, cache_root())
        for name in names:
            recipe = recipes[name]
            key = recipe.key(base)
            say(f"building {recipe.ref} from {recipe.dockerfile.relative_to(REPO_ROOT)} on {base.ref()}")
            seconds = buildah.build(recipe.dockerfile, recipe.context, recipe.ref, {"PYTHON_IMAGE": base.ref()})
            folder = _folder(recipe, key)
            folder.mkdir(parents=True, exist_ok=True)
            layout = run_dir / f"layout-{name}"
            pushed = time.monotonic()
            buildah.push_layout(recipe.ref, layout)
            archive = folder / "image.oci.tar"
            write_archive(layout, recipe.ref, archive)
            shutil.rmtree(layout, ignore_errors=True)
            export_seconds = time.monotonic() - pushed
            size = uncompressed_size(archive)
            info = {
                "ref": recipe.ref, "key": key, "base": base.ref(), "build_s": round(seconds, 1),
                "export_s": round(export_seconds, 1), "image_bytes": size, "archive_bytes": archive.stat().st_size,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (folder / "image.json").write_text(json.dumps(info, indent=2) + "\n")
            timings[f"{name} build"] = seconds
            timings[f"{name} export"] = export_seconds
            say(f"{recipe.ref}: built in {seconds:.0f}s, exported in {export_seconds:.0f}s; image "
                f"{size / 1e6:.0f} MB, archive {info['archive_bytes'] / 1e6:.0f} MB ({archive})")
            built[name] = Image(name, recipe.ref, archive, key)
            _prune_old(recipe, key)
        # No `buildah rmi --prune` here: it also removes the build stages' intermediate images, which are the layer
        # cache (the webhook's dependency layer), and every later edit would download them again.
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    say(f"images ready in {time.monotonic() - started:.0f}s: "
        + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return built


def _prune_old(recipe: ImageRecipe, key: str) -> None:
    """Keep the newest ``KEEP_OLD`` archives of older inputs besides the current one."""
    others = sorted(
        (p for p in cache_root().glob(f"images-{recipe.name}-*") if p.name != f"images-{recipe.name}-{key}"),
        key=lambda p: p.stat().st_mtime, reverse=True,
    )
    for stale in others[KEEP_OLD:]:
        shutil.rmtree(stale, ignore_errors=True)
