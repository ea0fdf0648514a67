"""Fixtures for the admission server's HTTP tests (helpers live in support.py and bodies.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.webhook_http.support import (
    CliServer,
    Pki,
    SecretVolume,
    ThreadServer,
    start_cli_server,
    start_thread_server,
)


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki.new()


@pytest.fixture
def secret_volume(tmp_path: Path, pki: Pki) -> SecretVolume:
    volume = SecretVolume(tmp_path / "tls")
    volume.publish(pki.cert_pem, pki.key_pem)
    return volume


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ThreadServer]:
    """One shared server (no owner cache, built-in defaults, 1 MiB body limit) for the request/response tests."""
    volume = SecretVolume(tmp_path_factory.mktemp("tls"))
    volume.publish(pki.cert_pem, pki.key_pem)
    server = start_thread_server(pki, volume.cert, volume.key, max_body_bytes=1024 * 1024)
    yield server
    server.stop()


@pytest.fixture
def cli_server_factory(tmp_path: Path) -> Iterator[Callable[..., CliServer]]:
    started: list[CliServer] = []

    def factory(volume: SecretVolume, pki: Pki, *extra: str) -> CliServer:
        server = start_cli_server(volume, pki, tmp_path, *extra)
        started.append(server)
        return server

    yield factory
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
