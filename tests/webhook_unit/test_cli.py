"""The ``lanes`` command's structure: subcommands, lazy imports, exit statuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from webhook.cli.lanes import COMMANDS, main


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command.name in out


@pytest.mark.parametrize("name", ["doctor"])
def test_other_subcommands_are_reachable(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    assert f"lanes {name}" in capsys.readouterr().out


def test_only_what_a_cluster_user_runs() -> None:
    # the demo is developer tooling (`make demo`), not part of the installed command
    assert [command.name for command in COMMANDS] == ["inject", "doctor", "lane", "route"]


def test_demo_is_not_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 2
    assert "invalid choice: 'demo'" in capsys.readouterr().err


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bogus"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_inject_does_not_import_the_cluster_commands() -> None:
    code = (
        "import sys; from webhook.cli.lanes import main; main(['inject', '--help']); "
        "print(sorted(m for m in sys.modules if m in ('webhook.cli.doctor', 'kubernetes') or m.startswith('devtools')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_installed_lanes_command_offers_inject_and_doctor_but_no_demo() -> None:
    """What a user types: the console script pip installed next to this interpreter, run as a process."""
    lanes = str(Path(sys.executable).with_name("lanes"))
    shown = subprocess.run([lanes, "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "inject" in shown.stdout and "doctor" in shown.stdout and "demo" not in shown.stdout
    demo = subprocess.run([lanes, "demo"], capture_output=True, text=True, timeout=60)
    assert demo.returncode == 2 and "invalid choice: 'demo'" in demo.stderr
    assert "Traceback" not in demo.stderr
