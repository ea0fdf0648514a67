"""The webhook image's install step without Docker: build the `lanes` wheel, install it with the `webhook` extra
into a fresh virtualenv (dependencies from PyPI, binary wheels only, as Dockerfile.webhook does), then run
`lanes-webhook serve` from there with a test certificate and the defaults the chart renders, and get 200 from
/healthz over verified TLS.

Also what the wheel leaves out: the developer tooling (devtools/: the local control plane, the demo), the tests
and the benchmarks work from a checkout only, so the product must neither ship nor import them.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.controlplane.binaries import REPO_ROOT
from devtools.controlplane.cluster import free_port
from tests.chart.helm import Helm, one
from webhook.controller.certs import pki

DOCKERFILE = REPO_ROOT / "Dockerfile.webhook"
PRODUCT = ("webhook", "helper")
#: Top-level directories of the checkout that only work from a checkout.
NOT_SHIPPED = ("devtools", "tests", "bench", "hack")


#: What a build from a fresh clone would not see: a previous build's build/ (setuptools never removes a module
#: deleted since from build/lib, so it would reappear in the wheel), caches, the virtualenv.
BUILD_LEFTOVERS = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".*_cache", ".hypothesis"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel as Dockerfile.webhook builds it, from the whole checkout (so the package selection of
    pyproject.toml is what keeps devtools/, tests/ and bench/ out, not the image's COPY lines)."""
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    shutil.copytree(REPO_ROOT, source, ignore=BUILD_LEFTOVERS, symlinks=True)
    wheels = work / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), "."],
        cwd=source, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (built,) = wheels.glob("lanes-*.whl")
    return built


@pytest.fixture(scope="module")
def installed_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and its ``webhook`` dependencies from PyPI (most of a minute: the tests
    using it are ``slow``)."""
    work = tmp_path_factory.mktemp("wheel")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--only-binary=:all:", f"{wheel}[webhook]"],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


def test_wheel_ships_the_product_and_no_developer_tooling(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        paths = archive.namelist()
    top = {path.split("/", 1)[0] for path in paths}
    assert {t for t in top if not t.endswith(".dist-info")} == set(PRODUCT), sorted(top)
    # every module in the wheel is one of the checkout's (nothing stale, nothing generated)
    modules = {path for path in paths if path.endswith(".py")}
    assert modules and all((REPO_ROOT / path).is_file() for path in modules), sorted(
        path for path in modules if not (REPO_ROOT / path).is_file()
    )
    for path in paths:
        parts = path.split("/")
        assert not set(parts) & {*NOT_SHIPPED, "envtest"}, path  # the local control plane once lived in webhook/
        assert not re.fullmatch(r"(test_.*|.*_test|conftest)\.py", parts[-1]), path


def _imported_modules(tree: ast.AST) -> Iterator[str]:
    """Absolute imports, and module names passed as literals to importlib.import_module / __import__."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield node.args[0].value


def test_the_product_imports_nothing_that_is_not_shipped() -> None:
    offenders = []
    for package in PRODUCT:
        for source in sorted((REPO_ROOT / package).rglob("*.py")):
            tree = ast.parse(source.read_text(), str(source))
            for module in _imported_modules(tree):
                if module.split(".", 1)[0] in NOT_SHIPPED:
                    offenders.append(f"{source.relative_to(REPO_ROOT)} imports {module}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.slow
def test_wheel_carries_both_packages_and_the_entry_points(installed_venv: Path) -> None:
    python = str(installed_venv / "bin" / "python")
    # imported from the installed wheel, not from the source tree
    where = subprocess.run(
        [python, "-c", "import webhook, helper; print(webhook.__file__); print(helper.__file__)"],
        capture_output=True, text=True, cwd=installed_venv, check=True,
    ).stdout.split()
    assert all(str(installed_venv) in path for path in where), where
    for command in ("lanes-webhook", "lanes-helper", "lanes"):
        assert (installed_venv / "bin" / command).is_file(), command
    # the chart's controller container: `python -m webhook.controller` (the image's python is this venv's)
    controller = subprocess.run([python, "-m", "webhook.controller", "--help"], capture_output=True, text=True,
                                cwd=installed_venv)
    assert controller.returncode == 0, controller.stderr
    assert "--cert-dir" in controller.stdout and "--manage-certs" in controller.stdout


@pytest.fixture
def served(installed_venv: Path, helm: Helm, tmp_path: Path) -> Iterator[tuple[int, bytes, subprocess.Popen[bytes]]]:
    ca = pki.make_ca("lanes-wheel-test-ca", dt.timedelta(hours=1))
    leaf = pki.issue(ca, "lanes.lanes-system.svc", dt.timedelta(hours=1), dns_names=("localhost",))
    (tmp_path / "tls.crt").write_bytes(leaf.cert_pem)
    (tmp_path / "tls.key").write_bytes(leaf.key_pem)
    # the defaults file the chart's ConfigMap carries
    (tmp_path / "defaults.yaml").write_text(one(helm.template(), "ConfigMap")["data"]["defaults.yaml"])
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(installed_venv / "bin" / "lanes-webhook"), "serve", f"--cert={tmp_path / 'tls.crt'}",
         f"--key={tmp_path / 'tls.key'}", "--host=127.0.0.1", f"--port={port}",
         f"--defaults={tmp_path / 'defaults.yaml'}", "--no-owner-cache", "--shutdown-delay=0"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
    )
    try:
        yield port, ca.cert_pem, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@pytest.mark.slow
def test_installed_server_answers_healthz_over_tls(
    served: tuple[int, bytes, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, ca_pem, process = served
    context = ssl.create_default_context(cadata=ca_pem.decode())  # verifies chain and the name "localhost"
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"https://localhost:{port}/healthz", context=context, timeout=2) as r:
                status = r.status
                break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    assert status == 200, (tmp_path / "serve.log").read_text()[-3000:]
    # a clean stop on SIGTERM, as in a pod
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0, (tmp_path / "serve.log").read_text()[-3000:]


def _stages(text: str) -> list[list[str]]:
    """Dockerfile instructions (continuations joined), split into build stages."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_runs_this_install_step_and_ships_a_minimal_non_root_image() -> None:
    build, final = _stages(DOCKERFILE.read_text())
    build_text = " ".join(build)
    assert "pip wheel --no-deps --no-build-isolation" in build_text
    assert "[webhook]" in build_text and "--only-binary=:all:" in build_text
    assert final[0].startswith("FROM ${PYTHON_IMAGE}") and build[0].startswith("FROM ${PYTHON_IMAGE} AS build")
    final_text = " ".join(final)
    assert "USER 65532:65532" in final
    assert 'ENTRYPOINT ["lanes-webhook"]' in final
    assert "COPY --from=build /opt/lanes /opt/lanes" in final
    # nothing but the virtualenv comes from the build stage, and nothing is compiled or installed in the final one
    assert [line for line in final if line.startswith("COPY")] == ["COPY --from=build /opt/lanes /opt/lanes"]
    for tool in ("apt-get", "apk ", "gcc", "build-essential", "pip install"):
        assert tool not in final_text, tool
    assert "PYTHONDONTWRITEBYTECODE=1" in final_text  # read-only root filesystem
