"""What the helper's TLS client does not allocate (helper/http/tls.py; issue #15.4, the agent with an HTTPS app).

Each fact is checked in a fresh interpreter (``sys.modules`` is process-wide):

- a TLS connection to an ASCII host name does not load the ``idna`` codec and ``unicodedata``, and the helper's
  streams carry it without importing asyncio (whose TLS protocol alone kept a 256 KiB read buffer per connection);
- the verified context looks system CAs up in the hashed CA directory on demand instead of parsing the whole
  bundle (~1.3 MB for Debian's 144 roots), and still verifies against them.

And what the agent does not keep around, TLS or not:

- no thread: the agent listens on every interface without asking ``getaddrinfo`` in a thread pool, whose worker
  thread (stack, malloc arena, ``concurrent.futures.thread`` and ``queue``) would otherwise live as long as the
  agent; it still answers on IPv4 and IPv6 loopback;
- no ``random`` module (with ``_sha512`` and ``bisect``) for the backoff's jitter, which still spreads delays
  over its range.

The bench's summary row for the TLS cases (bench/footprint.py) is checked on made-up results: met only when both
TLS cases stay within 20 MiB in every phase.

Memory numbers themselves are measured, not asserted, here: see docs/performance.md ("Agent with TLS").
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import trustme

from bench.footprint import RSS_BUDGET_KB, tls_target_rows
from tests.helper.procs import REPO, Agent, base_env, http_request
from tests.helper.servers import HttpServer


def _python(code: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()) -> list[str]:
    environment = {k: v for k, v in base_env(env).items() if k not in unset}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO, env=environment
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def _server(ca: trustme.CA) -> HttpServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return HttpServer(context)


CONNECT = """
import sys
from helper import aio
from helper.http import tls
async def main():
    context = tls.{context}()
    reader, writer = await aio.open_connection("127.0.0.1", {port})
    await writer.start_tls(context, server_hostname="localhost")
    writer.write(b"GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n")
    print((await reader.read()).split()[1].decode())
    writer.close()
aio.run(main())
print("encodings.idna" in sys.modules, "unicodedata" in sys.modules, "asyncio" in sys.modules)
"""


def test_an_unverified_tls_connection_loads_no_idna_codec_and_no_asyncio() -> None:
    with _server(trustme.CA()) as server:
        status, idna, unicodedata, asyncio = _python(CONNECT.format(port=server.port, context="unverified_context"))
    assert status == "200"
    assert (idna, unicodedata) == ("False", "False")
    assert asyncio == "False"


def test_system_cas_are_looked_up_in_the_hashed_directory_not_parsed_up_front(tmp_path: Path) -> None:
    ca = trustme.CA()
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(pem)], capture_output=True, text=True, check=True
    ).stdout.strip()
    os.symlink(pem, tmp_path / f"{subject_hash}.0")
    env = {"SSL_CERT_DIR": str(tmp_path)}  # and no SSL_CERT_FILE: OpenSSL's default bundle is the alternative
    with _server(ca) as server:
        out = _python(
            CONNECT.format(port=server.port, context="verified_context")
            + "print(tls.verified_context().cert_store_stats()['x509'])",
            env,
            unset=("SSL_CERT_FILE",),
        )
    assert out[0] == "200", "verified against the CA found in SSL_CERT_DIR"
    assert out[-1] == "1", "only the issuer the handshake needed was loaded, not the system bundle"


def test_the_agent_listens_on_ipv4_and_ipv6_with_a_single_thread(tmp_path: Path) -> None:
    with HttpServer() as app:
        agent = Agent.start(tmp_path, {"LANES_APP_PORT": str(app.port), "LANES_APP_READY_PATH": "/"})
        try:
            agent.wait_ready(timeout=15)
            threads = os.listdir(f"/proc/{agent.process.pid}/task")
            answers = [http_request(agent.port, "/healthz", host=host)[0] for host in ("127.0.0.1", "::1")]
        finally:
            agent.stop()
    assert threads == [str(agent.process.pid)], "no thread besides the main one"
    assert answers == [200, 200]


def test_backoff_jitter_needs_no_random_module() -> None:
    code = (
        "import sys\n"
        "from helper.backoff import Backoff\n"
        "b = Backoff(first=1.0, cap=8.0)\n"
        "print(*[round(b.next_delay(), 6) for _ in range(400)], 'random' in sys.modules)"
    )
    *delays, imported = _python(code)
    assert imported == "False"
    ceilings = [1.0, 2.0, 4.0] + [8.0] * 397
    values = [float(d) for d in delays]
    assert all(0.5 * c <= v <= c for v, c in zip(values, ceilings, strict=True)), "equal jitter: [d/2, d]"
    capped = values[3:]
    assert min(capped) < 4.4 and max(capped) > 7.6, "spread over the range, not a constant"
    assert len(set(capped)) > 390, "a fresh draw each time"


def _case(worst_kb: int) -> dict[str, object]:
    return {
        "rss_kb": {"warmup_max": worst_kb, "idle": worst_kb, "drain_max": worst_kb},
        "summary": {"max_rss_kb": worst_kb},
    }


def test_the_tls_summary_row_is_met_only_within_20_mib_for_both_cases() -> None:
    within, over = RSS_BUDGET_KB, RSS_BUDGET_KB + 1
    row = tls_target_rows({"tls": {"https-app": _case(within), "https-notify": _case(within - 100)}})
    assert [ok for _, _, ok in row] == [True]
    assert "20.0 / 20.0 / 20.0" in row[0][1]
    assert tls_target_rows({"tls": {"https-app": _case(within), "https-notify": _case(over)}})[0][2] is False
    assert tls_target_rows({})[0][1:] == ("not measured", None)
