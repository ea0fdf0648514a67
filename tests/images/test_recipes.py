"""What decides a rebuild and how buildah is configured, without building anything (fast; no buildah needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.images import buildah as buildah_module
from devtools.images.base import mmdebstrap_command
from devtools.images.buildah import Buildah, ImageError, check_host
from devtools.images.recipes import REPO_ROOT, BaseRecipe, ImageRecipe, _ignore_patterns, _ignored, images


def test_the_build_context_is_exactly_what_the_dockerfiles_copy() -> None:
    files = {p.relative_to(REPO_ROOT).as_posix() for p in images()["helper"].input_files()}
    tops = {f.split("/")[0] for f in files}
    assert tops == {".dockerignore", "Dockerfile.helper", "README.md", "pyproject.toml", "helper", "webhook"}
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    assert "helper/cli.py" in files and "webhook/__init__.py" in files
    sample = {p.relative_to(REPO_ROOT).as_posix() for p in images()["sample-app"].input_files()}
    assert {"examples/sample-app/app.py", "examples/sample-app/Dockerfile"} <= sample


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("helper", False), ("helper/cli.py", False), ("README.md", False), ("docs/x.md", True),
        ("tests/test_x.py", True), (".venv/bin/python", True), ("helper/__pycache__/cli.cpython-311.pyc", True),
        ("webhook/deep/x.pyc", True), ("Makefile", True), ("lanes.egg-info/PKG-INFO", True),
    ],
)
def test_dockerignore_allow_list(path: str, ignored: bool) -> None:
    assert _ignored(path, _ignore_patterns(REPO_ROOT / ".dockerignore")) is ignored


def _context(tmp_path: Path) -> ImageRecipe:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("A = 1\n")
    (tmp_path / "notes.txt").write_text("not copied\n")
    (tmp_path / ".dockerignore").write_text("*\n!src\n**/__pycache__\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY src /src\n")
    return ImageRecipe("t", "localhost/t:dev", tmp_path / "Dockerfile", tmp_path)


def test_key_follows_the_context_dockerfile_and_base_only(tmp_path: Path) -> None:
    recipe, base = _context(tmp_path), BaseRecipe()
    key = recipe.key(base)
    (tmp_path / "notes.txt").write_text("edited, still outside the context\n")
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert recipe.key(base) == key
    (tmp_path / "src" / "a.py").write_text("A = 2\n")
    assert recipe.key(base) != key
    key = recipe.key(base)
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY src /app\n")
    assert recipe.key(base) != key
    key = recipe.key(base)
    assert recipe.key(BaseRecipe(packages=("python3-minimal",))) != key


def test_base_is_made_from_debian_packages_without_docs() -> None:
    recipe = BaseRecipe()
    cmd = mmdebstrap_command(recipe, Path("/tmp/rootfs.tar"))
    assert cmd[0] == "mmdebstrap" and "--variant=essential" in cmd and "--format=tar" in cmd
    assert "--include=python3,python3-venv,python3-pip" in cmd
    for folder in ("doc", "man", "locale"):
        assert f"--dpkgopt=path-exclude=/usr/share/{folder}/*" in cmd
    assert any(c.startswith("--hook-dir=") and c.endswith("merged-usr") for c in cmd)
    assert recipe.ref() == f"localhost/lanes/base:{recipe.key()}"


def test_buildah_is_configured_from_the_run_folder_only(tmp_path: Path) -> None:
    buildah = Buildah(tmp_path / "run", tmp_path / "store", tmp_path / "log")
    env = buildah.env()
    for var in ("CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF", "CONTAINERS_CONF", "TMPDIR"):
        assert env[var].startswith(str(tmp_path / "run")), var
    registries = (tmp_path / "run" / "registries.conf").read_text()
    for registry in ("docker.io", "quay.io", "ghcr.io"):
        assert f'location = "{registry}"\nblocked = true' in registries
    assert "unqualified-search-registries = []" in registries
    assert f'graphroot = "{tmp_path / "store" / "storage"}"' in (tmp_path / "run" / "storage.conf").read_text()
    policy = json.loads(buildah.policy.read_text())
    assert policy["default"] == [{"type": "reject"}]  # nothing from a registry, only local stores and archives
    flags = buildah.global_flags()
    assert all(not f.startswith("/etc/containers") for f in flags)
    assert 'runtime = "runc"' in (tmp_path / "run" / "containers.conf").read_text()
    # every call runs in a private mount namespace where /var and /run write into the run folder
    cmd = buildah.command("images")
    assert cmd[:4] == ["unshare", "--mount", "--propagation", "private"]
    script = cmd[cmd.index("-c") + 1]
    for target in ("/var", "/run"):
        assert f"lowerdir={target},upperdir={tmp_path / 'run' / 'host' / target.strip('/') / 'upper'}" in script
    assert cmd[-1] == "images" and "buildah" in cmd


def test_missing_tools_get_one_line_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buildah_module.shutil, "which", lambda tool: None if tool == "mmdebstrap" else "/x")
    with pytest.raises(ImageError) as error:
        check_host()
    assert "mmdebstrap" in str(error.value) and "apt-get install -y buildah mmdebstrap runc" in str(error.value)
    assert "\n" not in str(error.value)


def test_cli_rejects_unknown_images_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "devtools.images", "build", "nginx"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unknown image nginx; choose from helper, webhook, sample-app" in result.stderr
    assert "Traceback" not in result.stderr
