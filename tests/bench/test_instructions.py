"""bench/instructions.py counts what a running process executes between two points, under real callgrind.

The admission benchmark trusts it for its load-independent ratio, so the mechanism itself is checked here on a
process whose work is known: after a warm-up of 2N loop iterations, the counters are zeroed, a loop of N runs and is
dumped, then one of 2N runs and is dumped: the second count must be about twice the first. If zeroing did not reset
the counters, the first count would include the warm-up (ratio ~1); if a dump did not start a new count, the second
would include the first (ratio ~3); if the dump were read from the wrong file, the counts would not follow the work.

valgrind comes from ``make system-deps``; in CI (``CI=true``) its absence fails the test, locally it skips loudly.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from bench import instructions

pytestmark = pytest.mark.slow
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

WORKER = """
import os, sys, time
folder = sys.argv[1]
done = 0
while True:
    jobs = sorted(f for f in os.listdir(folder) if f.startswith("go-"))
    for job in jobs[done:]:
        total = 0
        for i in range(int(job.split("-")[2])):
            total += i * i
        open(os.path.join(folder, "done-" + job.split("-")[1]), "w").close()
        done += 1
    time.sleep(0.05)
"""


def _needs_valgrind() -> None:
    if shutil.which("valgrind") and shutil.which("callgrind_control"):
        return
    if IN_CI:
        pytest.fail("valgrind/callgrind_control missing in CI: make system-deps installs the valgrind package")
    pytest.skip("!!! SKIPPING callgrind test: valgrind not installed (apt-get install valgrind) !!!")


def _run_job(folder: Path, index: int, iterations: int) -> None:
    (folder / f"go-{index:02d}-{iterations}").touch()
    deadline = time.monotonic() + 120
    while not (folder / f"done-{index:02d}").exists():
        assert time.monotonic() < deadline, "the worker under callgrind did not finish its job in 120 s"
        time.sleep(0.1)


def test_zero_and_dump_count_only_the_work_in_between(tmp_path: Path) -> None:
    _needs_valgrind()
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    worker = instructions.CallgrindProcess("worker", [sys.executable, "-S", str(script), str(jobs)], tmp_path / "cg")
    try:
        _run_job(jobs, 0, 400_000)  # warm-up, as the bench warms its servers: must not be counted
        counts = []
        for index, iterations in ((1, 200_000), (2, 400_000)):
            worker.zero()
            _run_job(jobs, index, iterations)
            counts.append(worker.dump())
    finally:
        worker.stop()
    single, double = counts
    assert single > 200_000 * 10, f"{single} instructions for 200,000 loop iterations: the dump is not this work"
    assert 1.7 < double / single < 2.3, f"twice the work counted {double} vs {single}: zero/dump do not bracket it"


def test_dump_totals_rejects_a_file_that_is_not_a_dump(tmp_path: Path) -> None:
    not_a_dump = tmp_path / "callgrind.x.1"
    not_a_dump.write_text("events: Ir\nfn=main\n")
    with pytest.raises(instructions.BenchError, match="no totals line"):
        instructions.dump_totals([not_a_dump])
