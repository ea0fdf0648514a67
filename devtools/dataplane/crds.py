"""Gateway API and Istio CustomResourceDefinitions, from their Go modules, for the test API server.

Why from Go modules? No GitHub downloads here, but the Go module proxy serves both projects' sources, and the
CRD YAML in them is exactly what their releases ship: Gateway API's ``config/crd/standard/*.yaml`` (the
standard channel; Traefik 3.6 also watches BackendTLSPolicy, GRPCRoute and ReferenceGrant, so the whole set is
installed, and never the experimental channel, see docs in /work/shared/notes/gateway-data-plane.md) and
istio.io/api's ``kubernetes/customresourcedefinitions.gen.yaml`` (the CRDs the Istio chart installs). The files
are extracted once from the module zip (``go mod download -json``) into ``~/.cache/lanes/crds/`` keyed by
version; later runs read the cache and need neither Go nor the network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from devtools.controlplane.binaries import cache_root

#: Works with Traefik v3.6's Kubernetes Gateway provider (v1.4.0, v1.5.1 and v1.6.3 were all tried).
GATEWAY_API_VERSION = "v1.4.0"
GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"
#: istio.io/api is tagged with the Istio release; its CRDs serve networking.istio.io v1 (and v1beta1/v1alpha3).
ISTIO_API_VERSION = "v1.32.0"
ISTIO_API_MODULE = "istio.io/api"

_GATEWAY_DIR_IN_MODULE = "config/crd/standard/"
_ISTIO_FILE_IN_MODULE = "kubernetes/customresourcedefinitions.gen.yaml"


class CRDError(RuntimeError):
    """The CRDs cannot be had or installed; the message says why and what to do."""


def _say(message: str) -> None:
    print(f"[lanes dataplane] {message}", file=sys.stderr, flush=True)


def crd_cache_dir() -> Path:
    return cache_root() / "crds"


def _module_zip(module: str, version: str) -> Path:
    """The module zip from the Go module cache, downloading it through the Go module proxy if needed."""
    go = shutil.which("go")
    if go is None:
        raise CRDError(
            f"extracting {module}@{version} CRDs needs Go (the module proxy serves them); install Go, "
            f"or put the files into {crd_cache_dir()} yourself"
        )
    env = dict(os.environ, GO111MODULE="on", GOFLAGS="-mod=mod")
    with tempfile.TemporaryDirectory(prefix="lanes-gomod-") as scratch:  # outside any go.mod
        result = subprocess.run(
            [go, "mod", "download", "-json", f"{module}@{version}"],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    try:
        info = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    if result.returncode != 0 or not info.get("Zip"):
        detail = info.get("Error") or result.stderr.strip()[-500:] or f"exit {result.returncode}"
        raise CRDError(f"go mod download {module}@{version} failed: {detail}")
    return Path(info["Zip"])


Split = Callable[[str, bytes], list[tuple[str, bytes]]]


def _extract(module: str, version: str, select: Callable[[str], bool], split: Split, target: Path) -> list[Path]:
    """Write the module-zip members ``select(path_in_module)`` picks, as the files ``split`` makes of each, into
    ``target`` (atomically: a half-written cache directory is never used)."""
    if target.is_dir() and any(target.glob("*.yaml")):
        return sorted(target.glob("*.yaml"))
    started = time.monotonic()
    archive = _module_zip(module, version)
    prefix = f"{module}@{version}/"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                inner = member.removeprefix(prefix)
                if select(inner):
                    for name, data in split(inner, zf.read(member)):
                        (staging / name).write_bytes(data)
        if not any(staging.glob("*.yaml")):
            raise CRDError(f"{module}@{version} has no CRDs where expected ({archive})")
        try:
            staging.rename(target)
        except OSError:  # another process filled the cache first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = sorted(target.glob("*.yaml"))
    _say(f"extracted {len(files)} CRD files of {module}@{version} into {target} ({time.monotonic() - started:.1f}s)")
    return files


def gateway_api_crds(version: str = GATEWAY_API_VERSION) -> list[Path]:
    """The Gateway API standard-channel CRD files (one CRD per file), cached under ``~/.cache/lanes/crds``."""

    def select(inner: str) -> bool:
        rest = inner.removeprefix(_GATEWAY_DIR_IN_MODULE)
        return rest != inner and rest.endswith(".yaml") and "/" not in rest

    def split(inner: str, data: bytes) -> list[tuple[str, bytes]]:
        return [(Path(inner).name, data)]

    return _extract(GATEWAY_API_MODULE, version, select, split, crd_cache_dir() / f"gateway-api-{version}-standard")


_DOCUMENT_SEPARATOR = re.compile(rb"^---[ \t]*$", re.MULTILINE)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _split_crds(inner: str, data: bytes) -> list[tuple[str, bytes]]:
    """One file per CRD of a multi-document YAML, named after the CRD, each document's text kept as written."""
    out = []
    for chunk in _DOCUMENT_SEPARATOR.split(data):
        doc = yaml.load(chunk, Loader=_Loader) if chunk.strip() else None
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            out.append((f"{doc['metadata']['name']}.yaml", chunk.strip(b"\n") + b"\n"))
    return out


def istio_crds(version: str = ISTIO_API_VERSION) -> list[Path]:
    """Istio's CRDs, one file per CRD named after it (``destinationrules.networking.istio.io.yaml``, ...)."""
    return _extract(
        ISTIO_API_MODULE,
        version,
        lambda inner: inner == _ISTIO_FILE_IN_MODULE,
        _split_crds,
        crd_cache_dir() / f"istio-api-{version}",
    )


def load_crds(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition document in ``paths``."""
    docs: list[dict[str, Any]] = []
    for path in paths:
        for doc in yaml.load_all(path.read_bytes(), Loader=_Loader):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                docs.append(doc)
    return docs


_CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
FIELD_MANAGER = "lanes-devtools"


def install_crds(api_client: Any, paths: Iterable[Path], timeout: float = 60) -> list[str]:
    """Server-side apply every CRD in ``paths`` and wait until each is Established (its API is served).

    ``api_client`` is a ``kubernetes.client.ApiClient``. Returns the CRD names. Applying twice is a no-op, so
    a session fixture and the demo can both call it.
    """
    from webhook.kube.client import Kube, KubeError, path_segment

    kube = Kube(api_client)
    names: list[str] = []
    for doc in load_crds(paths):
        name = doc["metadata"]["name"]
        try:
            kube.request(
                "PATCH",
                f"{_CRD_PATH}/{path_segment(name)}",
                query={"fieldManager": FIELD_MANAGER, "force": True},
                body=json.dumps(doc),
                content_type="application/apply-patch+yaml",
            )
        except KubeError as exc:
            raise CRDError(f"installing CRD {name} failed: {exc}") from None
        names.append(name)
    wait_established(kube, names, timeout)
    return names


def wait_established(kube: Any, names: Iterable[str], timeout: float = 60) -> None:
    """Block until every named CRD has condition Established=True, or raise CRDError naming the laggards."""
    from webhook.kube.client import KubeError, path_segment

    pending = set(names)
    deadline = time.monotonic() + timeout
    while pending:
        for name in sorted(pending):
            try:
                crd = kube.get(f"{_CRD_PATH}/{path_segment(name)}")
            except KubeError as exc:
                if exc.status != 404:
                    raise CRDError(f"reading CRD {name} failed: {exc}") from None
                continue
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                pending.discard(name)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise CRDError(f"CRDs not Established after {timeout:.0f}s: {', '.join(sorted(pending))}")
        time.sleep(0.1)


def install_gateway_api(api_client: Any) -> list[str]:
    """Gateway API standard channel into the API server (what Traefik and the Lane reconciler need)."""
    return install_crds(api_client, gateway_api_crds())


def install_istio(api_client: Any) -> list[str]:
    """Istio's CRDs into the API server (so DestinationRules/VirtualServices are validated by the real schema)."""
    return install_crds(api_client, istio_crds())


def main(argv: list[str] | None = None) -> int:
    """``python -m devtools.dataplane.crds [gateway-api|istio]``: extract and print the cached files."""
    args = sys.argv[1:] if argv is None else argv
    which = args[0] if args else "all"
    try:
        if which in ("gateway-api", "all"):
            print("\n".join(str(p) for p in gateway_api_crds()))
        if which in ("istio", "all"):
            print("\n".join(str(p) for p in istio_crds()))
    except CRDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if which not in ("gateway-api", "istio", "all"):
        print(f"usage: python -m devtools.dataplane.crds [gateway-api|istio|all] (got {which!r})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
