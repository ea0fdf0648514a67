"""The helper image's install step, without Docker: build the wheel, install it with no extras, run it.

Dockerfile.helper builds the wheel in a builder stage and installs only the wheel, without the ``webhook`` extra,
into the final stage. This test does the same into a fresh virtual environment with ``--no-index`` (so nothing but
the wheel can be installed), then proves the installed command works, pulls in no third-party package, never
imports the webhook, writes nothing at run time, and keeps the agent within its 20 MB memory budget.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helper.measure_rss import measure
from tests.helper.procs import REPO, base_env
from tests.helper.servers import SilentListener

RSS_BUDGET_KB = 20 * 1024


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=180, check=False, **kwargs)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with only the built wheel installed; yields the venv's bin directory."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    for package in ("helper", "webhook"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    readme = REPO / "README.md"
    (source / "README.md").write_text(readme.read_text() if readme.exists() else "# lanes\n")

    dist = root / "dist"
    built = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(source)])
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list(dist.glob("lanes-*.whl"))
    assert len(wheels) == 1

    venv = root / "venv"
    created = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert created.returncode == 0, created.stderr
    install = _run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-index", str(wheels[0])]
    )
    assert install.returncode == 0, install.stdout + install.stderr
    yield venv / "bin"


def _env() -> dict[str, str]:
    env = base_env()
    env.pop("PYTHONPATH")  # only what the venv has installed
    return env


def test_console_script_runs(installed: Path) -> None:
    result = _run([str(installed / "lanes-helper"), "--help"], env=_env(), cwd="/")
    assert result.returncode == 0 and "prewarm" in result.stdout


def test_installed_prewarm_reaches_a_local_listener(installed: Path) -> None:
    with SilentListener() as listener:
        target = f"tcp://127.0.0.1:{listener.port}"
        result = _run([str(installed / "lanes-helper"), "prewarm", target, "--policy", "require"], env=_env(), cwd="/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"ok   {target} resolved=127.0.0.1")


def test_only_the_wheel_is_installed_and_the_webhook_is_never_imported(installed: Path) -> None:
    with SilentListener() as listener:
        script = (
            "import sys, importlib.metadata as md\n"
            "from helper.cli import main\n"
            f"code = main(['prewarm', 'tcp://127.0.0.1:{listener.port}'])\n"
            "assert code == 0, code\n"
            "print(sorted(d.metadata['Name'] for d in md.distributions()))\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'webhook', 'fastapi', 'pydantic', 'kubernetes'}))\n"
        )
        result = _run([str(installed / "python"), "-c", script], env=_env(), cwd="/")
    assert result.returncode == 0, result.stderr
    distributions, imported = result.stdout.splitlines()[-2:]
    assert distributions == "['lanes']"
    assert imported == "[]"
    webhook = _run([str(installed / "python"), "-c", "import webhook.contract.defaults"], env=_env(), cwd="/")
    assert webhook.returncode != 0 and "ModuleNotFoundError" in webhook.stderr  # its dependencies are absent


def test_installed_agent_writes_nothing_and_fits_its_memory_budget(installed: Path, tmp_path: Path) -> None:
    venv = installed.parent
    site = next(venv.glob("lib/python*/site-packages"))
    assert list((site / "helper").glob("__pycache__/*.pyc")), "the install step must compile bytecode"
    before = {path: path.stat().st_mtime for path in venv.rglob("*")}

    footprint = measure([str(installed / "lanes-helper")], tmp_path, latency_runs=1)

    after = {path: path.stat().st_mtime for path in venv.rglob("*")}
    assert after == before  # read-only root filesystem: nothing written at run time
    assert footprint.exit_code == 0 and footprint.warmup_requests_ok == 400
    for name in ("startup_peak_kb", "idle_kb", "drain_peak_kb", "lifetime_peak_kb"):
        assert getattr(footprint, name) <= RSS_BUDGET_KB, footprint
    print(f"\ninstalled agent footprint: {footprint}", file=sys.stderr)
