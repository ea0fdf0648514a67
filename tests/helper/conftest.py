"""Fixtures for the pod-side (helper) tests: process factories that clean up after themselves, and TLS material."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.helper.procs import Agent, SampleApp


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """``start_agent(env, **kw)`` starts a real agent subprocess; every one is stopped after the test."""
    agents: list[Agent] = []

    def start(env: dict[str, str] | None = None, **kwargs: Any) -> Agent:
        agent = Agent.start(tmp_path, env, **kwargs)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.kill()


@pytest.fixture
def start_app() -> Iterator[Callable[..., SampleApp]]:
    """``start_app(**options)`` starts tests/helper/sample_app.py; every one is stopped after the test."""
    apps: list[SampleApp] = []

    def start(**kwargs: Any) -> SampleApp:
        app = SampleApp.start(**kwargs)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """Server context with a certificate for localhost and 127.0.0.1, signed by the throwaway CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context
