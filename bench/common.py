"""Shared plumbing of the benchmarks: processes, /proc accounting, CPU pinning, certificates, tools, results.

Nothing here measures by itself; the benchmark modules (admission, apiserver, rollout_lab, warmup_curves,
footprint) use these helpers so that every number is taken the same way:

- CPU time of a process: ``utime + stime`` from ``/proc/PID/stat`` (clock ticks -> seconds);
- memory: ``VmRSS`` (now) and ``VmHWM`` (peak) from ``/proc/PID/status``;
- pinning: ``taskset -c N`` in front of the command (taskset execs, so the PID is the server's own);
- compiled helpers (the Go load generator and the Go yardstick) are built with ``go build`` into
  ``~/.cache/lanes/bench/<name>-<hash of sources>/`` and reused while the sources are unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.controlplane.binaries import cache_root

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_RESULTS = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent

CLK_TCK = os.sysconf("SC_CLK_TCK")
_T0 = time.monotonic()

#: Debian packages the benchmarks drive (the Makefile installs them in CI).
APT_HINT = "apt-get install -y wrk haproxy"


class BenchError(RuntimeError):
    """A benchmark cannot run (tool missing, server did not start); the message says what to do."""


class ToolMissing(BenchError):
    """A required external tool is not installed."""


# --- output -----------------------------------------------------------------------------------------------------


def say(message: str) -> None:
    """Progress line with the time since the run started (stderr is left to the tools)."""
    elapsed = time.monotonic() - _T0
    print(f"[bench {elapsed:6.1f}s] {message}", flush=True)


def write_result(results_dir: Path, name: str, data: dict[str, Any]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")
    tmp.replace(path)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# --- statistics --------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of unsorted values; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (q / 100.0) * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile``: ``buckets`` are cumulative ``(upper_bound, count)`` pairs including
    ``+Inf``; linear interpolation inside the bucket that holds the rank (lower bound 0 for the first bucket).
    Returns None without observations; the last finite bound when the rank falls in the ``+Inf`` bucket."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (count - previous_count)
        previous_bound, previous_count = bound, count
    return previous_bound


def rms(values: Sequence[float]) -> float | None:
    if not values:
        return None
    return math.sqrt(sum(v * v for v in values) / len(values))


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


# --- /proc -------------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (threads included, children not)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces and parentheses
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def memory_kb(pid: int) -> dict[str, int]:
    """``{"rss_kb": VmRSS, "hwm_kb": VmHWM}`` of ``pid``."""
    out = {"rss_kb": 0, "hwm_kb": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss_kb"] = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            out["hwm_kb"] = int(line.split()[1])
    return out


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) clock ticks of all CPUs from /proc/stat: on a VM, steal is time the hypervisor ran something
    else while our vCPUs had work, a source of latency no benchmark here controls."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    steal = fields[7] if len(fields) > 7 else 0
    return steal, sum(fields[:8])


def steal_percent(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total * 100, 2) if total > 0 else None


def pinned(core: int | None, command: list[str]) -> list[str]:
    """``taskset -c core command...`` when there are at least two CPUs and taskset exists; else the command."""
    if core is None or (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(core), *command]


SERVER_CORE = 1
LOAD_CORE = 0


# --- ports and waiting -------------------------------------------------------------------------------------------


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Any, timeout: float, what: str, process: Any = None, log: Path | None = None, interval: float = 0.05
) -> None:
    """Poll ``check()`` until it returns true; fail early when ``process`` (a Popen or Proc) exited."""
    if isinstance(process, Proc):
        log = log or process.log
        process = process.process
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BenchError(f"{what}: process exited with {process.returncode}{tail(log)}")
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise BenchError(f"{what}: not ready after {timeout:.0f}s ({last!r}){tail(log)}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n  log " + str(path) + ":\n    " + "\n    ".join(text) if text else ""


# --- processes ----------------------------------------------------------------------------------------------------


@dataclass
class Proc:
    """A child process we started, with its log file; stopped by its own PID only."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def stop(self, timeout: float = 10.0, signum: int = signal.SIGTERM) -> int | None:
        if self.alive():
            self.send(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start(
    name: str, command: list[str], log_dir: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Proc:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    handle = log.open("ab")
    full_env = {**os.environ, **(env or {})}
    process = subprocess.Popen(
        command,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=str(cwd or REPO),
    )
    handle.close()
    return Proc(name, process, log)


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- certificates -------------------------------------------------------------------------------------------------


@dataclass
class Tls:
    """A CA and a serving certificate for 127.0.0.1/localhost, written as files every server loads."""

    dir: Path
    ca_pem: bytes = b""
    cert: Path = field(init=False)
    key: Path = field(init=False)
    ca: Path = field(init=False)

    def __post_init__(self) -> None:
        from webhook.controller.certs import pki

        self.dir.mkdir(parents=True, exist_ok=True)
        ca = pki.make_ca("lanes-bench-ca", dt.timedelta(days=2))
        leaf = pki.issue(ca, "lanes-bench", dt.timedelta(days=2), dns_names=("localhost",), ip_addresses=("127.0.0.1",))
        self.ca_pem = ca.cert_pem
        self.ca, self.cert, self.key = self.dir / "ca.crt", self.dir / "tls.crt", self.dir / "tls.key"
        self.ca.write_bytes(ca.cert_pem)
        self.cert.write_bytes(leaf.cert_pem)
        self.key.write_bytes(leaf.key_pem)

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


# --- tools ---------------------------------------------------------------------------------------------------------


def require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(f"{tool} not found; install it: {hint}")
    return path


def require_module(module: str, hint: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ToolMissing(f"Python module {module} not found; install it: {hint}")


def go_build(module_dir: Path, package: str, name: str, timeout: float = 1200) -> Path:
    """Build ``package`` of the Go module in ``module_dir`` into the bench cache, keyed by a hash of the module's
    sources (``*.go``, go.mod, go.sum) and the Go version; reuse the binary while they are unchanged."""
    go = require("go", "install Go >= 1.22 (https://go.dev/dl) and put it on PATH")
    digest = hashlib.sha256()
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()
    digest.update(version.encode())
    for path in sorted(module_dir.rglob("*")):
        if path.name.endswith("_test.go"):
            continue
        if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
            digest.update(str(path.relative_to(module_dir)).encode())
            digest.update(path.read_bytes())
    digest.update(package.encode())
    out_dir = cache_root() / "bench" / f"{name}-{digest.hexdigest()[:16]}"
    binary = out_dir / name
    if binary.is_file():
        return binary
    out_dir.mkdir(parents=True, exist_ok=True)
    say(f"building {name} with go build (first time only; cached in {out_dir})")
    started = time.monotonic()
    env = {**os.environ, "CGO_ENABLED": "0"}
    tmp = out_dir / f".{name}.tmp"
    result = subprocess.run(
        [go, "build", "-trimpath", "-o", str(tmp), package],
        cwd=module_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise BenchError(f"go build of {module_dir.name}/{package} failed:\n{result.stderr[-3000:]}")
    tmp.replace(binary)
    say(f"built {name} in {time.monotonic() - started:.0f}s")
    for stale in out_dir.parent.glob(f"{name}-*"):  # builds of older sources
        if stale != out_dir:
            shutil.rmtree(stale, ignore_errors=True)
    return binary


def loadgen_binary() -> Path:
    """The open-loop load generator (bench/loadgen, standard library only)."""
    return go_build(BENCH_DIR / "loadgen", ".", "lanes-loadgen")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def kill_quietly(proc: Proc | None) -> None:
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.stop(timeout=5)
