"""Every console script of pyproject.toml, run as a user runs it: the installed entry point, as a process.

The tests call ``.venv/bin/<script>`` (found next to the interpreter), never ``main()``: that is where ``lanes
doctor`` crashed with ``AttributeError: 'Namespace' object has no attribute 'func'`` while its function-level tests
passed (issue 11.1). Each script and subcommand gets ``--help``, one real run and one error path (clear message,
non-zero exit, no traceback). What other modules already cover through the same entry points is listed, not
repeated:

==============================  =======================================  ===============================================
command                         real run                                 error path
==============================  =======================================  ===============================================
``lanes --help``, each          here (``test_help``, every subcommand    unknown subcommand, ``lanes demo``:
``lanes SUB --help``            of ``webhook.cli.lanes.COMMANDS``)       tests/webhook_unit/test_cli.py
``lanes inject``                ``-f`` file here; several ``-f``, dirs,  missing file, no objects, duplicate keys:
                                stdin: tests/cli/test_inject_inputs.py   tests/cli/test_inject_inputs.py; bad
                                                                         ``--set`` here
``lanes doctor``                here, against the real control plane     missing kubeconfig, bad ``--timeout`` here
``lanes-webhook --help``,       serve: starts, answers /healthz, drains  missing/unreadable/mismatched certificate,
``serve --help``                on SIGTERM, exits 0: tests/webhook_http  bad defaults, no credentials:
                                /test_graceful_shutdown.py (CliServer)   tests/webhook_http/test_server_cli.py
``lanes-helper --help``, each   ``agent``: here (listens, /healthz,      ``agent``: bad LANES_APP_PORT here;
``SUB --help``                  SIGTERM, exit 0); ``prewarm``: here      ``prewarm``: malformed target here (more:
                                (TCP target reachable)                   tests/helper/test_prewarm_cli.py)
==============================  =======================================  ===============================================
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from devtools.controlplane import ControlPlane
from tests.cli.conftest import console_script
from tests.cli.support import assert_user_error, documents, lanes
from tests.helper.procs import Agent, base_env, free_port, run_helper
from tests.helper.servers import SilentListener
from webhook.cli.lanes import COMMANDS

REPO = Path(__file__).resolve().parents[2]
SUBCOMMANDS = {
    "lanes": [command.name for command in COMMANDS],
    "lanes-webhook": ["serve"],
    "lanes-helper": ["agent", "prewarm"],
}


def run(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(script), *args], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, env=base_env(),
    )


def test_every_console_script_is_covered_here() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert sorted(declared) == sorted(SUBCOMMANDS), "add the new script to SUBCOMMANDS and the table above"


@pytest.mark.parametrize(
    ("script", "subcommand"),
    [(script, None) for script in SUBCOMMANDS] + [(s, sub) for s, subs in SUBCOMMANDS.items() for sub in subs],
)
def test_help(script: str, subcommand: str | None) -> None:
    done = run(script, *([subcommand] if subcommand else []), "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ") and done.stderr == ""
    if subcommand is None:
        for sub in SUBCOMMANDS[script]:
            assert sub in done.stdout
    else:
        assert f"{script} {subcommand}" in done.stdout.splitlines()[0]


# --- lanes inject ---------------------------------------------------------------------------------------------


def test_inject_a_file(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: app, image: x}]}\n")
    done = lanes("inject", "-f", str(manifest))
    assert done.returncode == 0, done.stderr
    [pod] = documents(done.stdout)
    assert "lanes.io/status" in pod["metadata"]["annotations"]


def test_inject_bad_setting(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("kind: Pod\n")
    assert_user_error(lanes("inject", "-f", str(manifest), "--set", "drain=forever"), "--set", "drain")


# --- lanes doctor ---------------------------------------------------------------------------------------------


def test_doctor_against_a_cluster_without_lanes(control_plane: ControlPlane, namespace: str) -> None:
    """A real run: the checks reach the API server, report what is missing, and exit 1 (FAIL)."""
    done = lanes(
        "doctor", f"--kubeconfig={control_plane.kubeconfig}", f"--namespace={namespace}", f"--name=absent-{namespace}",
        f"--namespace-selector=lanes.test/none={namespace}", "--timeout=5",
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("OK   Kubernetes v1.") and "native sidecars" in line for line in lines), lines
    assert any(line.startswith(f"FAIL MutatingWebhookConfiguration absent-{namespace} not found") for line in lines)
    assert any(line.startswith("FAIL no controller Lease") for line in lines), lines
    assert all(line.split(" ", 1)[0] in ("OK", "WARN", "FAIL") for line in lines), lines


def test_doctor_without_a_kubeconfig(tmp_path: Path) -> None:
    done = lanes("doctor", f"--kubeconfig={tmp_path / 'missing'}")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stderr == ""
    assert done.stdout.startswith("FAIL ") and "missing" in done.stdout and "fix: pass --kubeconfig" in done.stdout


def test_doctor_usage_error() -> None:
    done = lanes("doctor", "--timeout=soon")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "argument --timeout: invalid float value: 'soon'" in done.stderr


# --- lanes-helper ---------------------------------------------------------------------------------------------


def test_helper_agent_listens_and_stops_on_sigterm(tmp_path: Path) -> None:
    agent = Agent.start(tmp_path, {"LANES_APP_PORT": str(free_port())}, command=(console_script("lanes-helper"),))
    try:
        assert agent.get("/healthz")[0] == 200
    finally:
        status = agent.stop()
    assert status == 0, agent.log_text()
    assert "Traceback" not in agent.log_text()


def test_helper_agent_bad_setting() -> None:
    done = subprocess.run(
        [console_script("lanes-helper"), "agent"], capture_output=True, text=True, timeout=60,
        env=base_env({"LANES_APP_PORT": "eighty", "LANES_AGENT_PORT": str(free_port())}),
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("lanes-helper agent: error: ") and "LANES_APP_PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_helper_prewarm_reaches_a_tcp_target() -> None:
    with SilentListener() as listener:
        target = f"tcp://127.0.0.1:{listener.port}"
        done = run_helper(["prewarm", target, "--deadline", "10"], command=(console_script("lanes-helper"),))
    assert done.returncode == 0, done.stderr
    assert any(line.startswith("ok   ") and target in line for line in done.stdout.splitlines()), done.stdout


def test_helper_prewarm_malformed_target() -> None:
    done = run_helper(["prewarm", "http//missing-colon"], command=(console_script("lanes-helper"),))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "bad prewarm target 'http//missing-colon'" in done.stderr
