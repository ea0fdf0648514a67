"""What the helper's TLS client does not allocate (helper/http/tls.py; issue #15.4, the agent with an HTTPS app).

Each fact is checked in a fresh interpreter (``sys.modules`` and asyncio's class attributes are process-wide):

- a TLS connection to an ASCII host name does not load the ``idna`` codec and ``unicodedata``;
- asyncio's per-connection TLS read buffer is 32 KiB, not its 256 KiB default (eight warm-up connections left
  ~1.5 MB of heap behind with the default);
- the verified context looks system CAs up in the hashed CA directory on demand instead of parsing the whole
  bundle (~1.3 MB for Debian's 144 roots), and still verifies against them.

Memory numbers themselves are measured, not asserted, here: see docs/performance.md ("Agent with TLS").
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import trustme

from tests.helper.procs import REPO, base_env
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
import asyncio, sys
from helper.http import tls
async def main():
    context = tls.{context}()
    reader, writer = await asyncio.open_connection("127.0.0.1", {port}, ssl=context, server_hostname="localhost")
    writer.write(b"GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n")
    print((await reader.read()).split()[1].decode())
    writer.close()
asyncio.run(main())
print("encodings.idna" in sys.modules, "unicodedata" in sys.modules, asyncio.sslproto.SSLProtocol.max_size)
"""


def test_an_unverified_tls_connection_loads_no_idna_codec_and_uses_small_buffers() -> None:
    with _server(trustme.CA()) as server:
        status, idna, unicodedata, buffer = _python(CONNECT.format(port=server.port, context="unverified_context"))
    assert status == "200"
    assert (idna, unicodedata) == ("False", "False")
    assert int(buffer) == 32 * 1024


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
