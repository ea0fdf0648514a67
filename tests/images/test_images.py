"""The images ``devtools.images.ensure_images()`` builds here with buildah (helper, webhook, sample app), checked as
containerd will get them: each OCI archive is read and its layers unpacked, and its entrypoint runs in that root
filesystem mounted read-only, as the image's numeric non-root user (chroot in a private mount namespace).

Building needs root, buildah, mmdebstrap and runc (``make test`` installs them): in CI a missing piece fails these
tests, locally it skips them loudly. Cold, the build takes minutes (marked ``slow``); warm, it finds the archives.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import devtools.images.build as build_module
from devtools.images import Image, ImageError, cached, ensure_images
from devtools.images.archive import ArchiveImage, read_archive, unpack_rootfs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
USER = "65532:65532"


@pytest.fixture(scope="module")
def built() -> dict[str, Image]:
    try:
        return ensure_images()
    except ImageError as error:
        if os.environ.get("CI"):
            pytest.fail(f"images cannot be built in CI: {error}", pytrace=False)
        pytest.skip(f"!!! SKIPPING image tests: {error} !!!")


@pytest.fixture(scope="module")
def rootfs(built: dict[str, Image], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each image's layers applied in order, as containerd's snapshotter would."""
    roots = {}
    for name, image in built.items():
        root = tmp_path_factory.mktemp(f"rootfs-{name}")
        unpack_rootfs(image.archive, root)
        roots[name] = root
    return roots


def image_env(image: ArchiveImage, **extra: str) -> dict[str, str]:
    env = dict(item.split("=", 1) for item in image.runtime.get("Env", []))
    return {**env, **extra}


def in_image(root: Path, image: ArchiveImage, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
    """``argv`` inside ``root`` mounted read-only, as the image's USER, with the image's environment."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && root="$1" && user="$2" && shift 2 && ' \
             'exec chroot --userspec="$user" "$root" "$@"'
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(root),
         image.runtime["User"], *argv],
        env=kwargs.pop("env", image_env(image)), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        **kwargs,  # type: ignore[call-overload]
    )


def run_in_image(root: Path, image: ArchiveImage, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    process = in_image(root, image, argv)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


@pytest.mark.parametrize(
    ("name", "entrypoint"),
    [("helper", ["lanes-helper"]), ("webhook", ["lanes-webhook"]), ("sample-app", ["python3", "/app/app.py"])],
)
def test_archive_names_the_image_and_runs_it_as_a_numeric_non_root_user(
    built: dict[str, Image], name: str, entrypoint: list[str]
) -> None:
    image = read_archive(built[name].archive)
    assert image.name == built[name].ref == f"localhost/lanes/{name}:dev"
    runtime = image.runtime
    assert runtime["User"] == USER  # numeric: runAsNonRoot can verify it without /etc/passwd
    assert re.fullmatch(r"[1-9]\d*:\d+", runtime["User"])
    assert runtime["Entrypoint"] == entrypoint
    env = image_env(image)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert image.config["os"] == "linux"


def test_the_read_only_mount_really_refuses_writes(built: dict[str, Image], rootfs: dict[str, Path]) -> None:
    """Guards the tests below: their 'runs read-only' means something only if writing fails there."""
    image = read_archive(built["helper"].archive)
    result = run_in_image(rootfs["helper"], image, ["python3", "-c", "open('/tmp/probe', 'w')"])
    assert result.returncode != 0 and "Read-only file system" in result.stderr


def test_helper_entrypoint_runs_read_only_as_its_user(built: dict[str, Image], rootfs: dict[str, Path]) -> None:
    image = read_archive(built["helper"].archive)
    root = rootfs["helper"]
    for command in ([], ["agent"], ["prewarm"]):
        argv = ["lanes-helper", *command, "--help"]
        result = run_in_image(root, image, argv)
        assert result.returncode == 0, (argv, result.stderr)
        assert "usage: lanes-helper" in result.stdout
    result = run_in_image(root, image, ["python3", "-c", "import os; print(os.getuid(), os.getgid())"])
    assert result.stdout.split() == ["65532", "65532"]
    # no installer is left behind
    assert run_in_image(root, image, ["python3", "-m", "pip", "--version"]).returncode != 0
    assert not list((root / "usr" / "local" / "bin").glob("pip*")) and not (root / "usr" / "bin" / "pip").exists()


def test_webhook_and_controller_commands_run_read_only(built: dict[str, Image], rootfs: dict[str, Path]) -> None:
    image = read_archive(built["webhook"].archive)
    root = rootfs["webhook"]
    assert image.runtime["Cmd"] == ["serve", "--help"]
    result = run_in_image(root, image, ["lanes-webhook", "serve", "--help"])
    assert result.returncode == 0, result.stderr
    # the chart's controller container and its startupProbe (`test -s <cert>`)
    result = run_in_image(root, image, ["python", "-m", "webhook.controller", "--help"])
    assert result.returncode == 0, result.stderr
    assert run_in_image(root, image, ["test", "-s", "/etc/os-release"]).returncode == 0
    assert run_in_image(root, image, ["/opt/lanes/bin/python", "-m", "pip", "--version"]).returncode != 0


def _installed_package(root: Path, package: str) -> Path:
    (found,) = [p.parent for p in root.glob(f"usr/local/lib/python3*/*-packages/{package}/__init__.py")] or [
        p.parent for p in root.glob(f"opt/lanes/lib/python3*/site-packages/{package}/__init__.py")
    ]
    return found


@pytest.mark.parametrize("name", ["helper", "webhook"])
def test_the_image_holds_the_sources_it_was_built_from(
    built: dict[str, Image], rootfs: dict[str, Path], name: str
) -> None:
    """Every module of the checkout is in the image as it is in the checkout. Guards the layer cache: with the
    wheel bind-mounted into the last stage (RUN --mount=from=build), buildah 1.28 reused that RUN's layer after the
    sources changed, and the real node ran an agent hours old."""
    for package in ("helper", "webhook"):
        installed = _installed_package(rootfs[name], package)
        source = REPO / package
        wanted = {p.relative_to(source) for p in source.rglob("*.py") if "__pycache__" not in p.parts}
        present = {p.relative_to(installed) for p in installed.rglob("*.py")}
        assert wanted <= present, sorted(str(p) for p in wanted - present)[:10]
        stale = [str(p) for p in sorted(wanted) if (installed / p).read_bytes() != (source / p).read_bytes()]
        assert not stale, f"{name} image has old copies of {package}/: {stale[:10]}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sample_app_serves_and_stops_gracefully_read_only(built: dict[str, Image], rootfs: dict[str, Path]) -> None:
    image = read_archive(built["sample-app"].archive)
    port = _free_port()
    env = image_env(image, PORT=str(port), BIND="127.0.0.1", NAME="in-image", HOSTNAME="pod-x")
    process = in_image(rootfs["sample-app"], image, image.runtime["Entrypoint"], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/hello", headers={"x-lane": "gray"})
                answer = json.loads(connection.getresponse().read())
                connection.close()
                break
            except ConnectionRefusedError:
                assert process.poll() is None and time.monotonic() < deadline, process.communicate()
                time.sleep(0.1)
        assert answer["service"] == "in-image" and answer["pod"] == "pod-x"
        assert answer["received"]["x-lane"] == "gray"
        # unshare, sh and chroot each exec the next in place: the signal reaches the app itself, as PID 1 would
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events == ["start", "stop"]


def test_a_warm_run_builds_nothing(built: dict[str, Image], monkeypatch: pytest.MonkeyPatch) -> None:
    # in a shared checkout the sources may have changed since the fixture built: catch up first, so the call
    # below sees exactly the inputs of an existing archive
    for _ in range(5):
        built = ensure_images()
        if cached() == built:
            break
    before = {name: image.archive.stat().st_mtime_ns for name, image in built.items()}

    def no_build() -> None:
        raise AssertionError("ensure_images tried to build although every archive is cached")

    monkeypatch.setattr(build_module, "check_host", no_build)
    again = ensure_images()
    assert again == built
    assert {name: image.archive.stat().st_mtime_ns for name, image in again.items()} == before
    for image in again.values():
        assert image.info["key"] == image.key and image.info["image_bytes"] > 0
