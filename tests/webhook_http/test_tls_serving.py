"""TLS policy and certificate hot reload of the admission server."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import warnings
from pathlib import Path

import httpx
import pytest

from tests.webhook_http.support import (
    HOST,
    CliServer,
    Pki,
    SecretVolume,
    ThreadServer,
    client_context,
    start_thread_server,
)
from webhook.admission.serving import CertificateError, load_pair


def peer_certificate(url: str, context: ssl.SSLContext) -> bytes:
    """DER of the certificate the server presents on a fresh connection (after a full verified request)."""
    with (
        httpx.Client(verify=context, timeout=10) as client,
        client.stream("GET", url + "/healthz", headers={"connection": "close"}) as response,
    ):
        assert response.status_code == 200
        der = response.extensions["network_stream"].get_extra_info("ssl_object").getpeercert(True)
        response.read()
    assert isinstance(der, bytes)
    return der


def legacy_client_context(pki: Pki) -> ssl.SSLContext:
    """A client that speaks at most TLS 1.1 (OpenSSL 3 needs security level 0 to offer it at all)."""
    context = client_context(pki)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated is the point
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def test_tls_1_1_client_is_refused(webhook: ThreadServer, pki: Pki, tmp_path: Path) -> None:
    legacy = legacy_client_context(pki)

    # Control: this client really can complete a TLS 1.1 handshake with a server that allows it...
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive.minimum_version = ssl.TLSVersion.TLSv1
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    (tmp_path / "c.pem").write_bytes(pki.cert_pem)
    (tmp_path / "k.pem").write_bytes(pki.key_pem)
    permissive.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    with socket.create_server((HOST, 0)) as listener:
        versions: list[str | None] = []

        def accept() -> None:
            conn, _ = listener.accept()
            with permissive.wrap_socket(conn, server_side=True) as tls:
                versions.append(tls.version())

        acceptor = threading.Thread(target=accept)
        acceptor.start()
        with legacy.wrap_socket(socket.create_connection(listener.getsockname()), server_hostname="localhost"):
            pass
        acceptor.join(10)
    assert versions == ["TLSv1.1"]

    # ...and the webhook refuses it.
    with pytest.raises(ssl.SSLError):
        legacy.wrap_socket(socket.create_connection((HOST, webhook.port)), server_hostname="localhost")
    assert webhook.client.get("/healthz").status_code == 200


@pytest.mark.parametrize("server_hostname", ["localhost", HOST])
def test_modern_clients_get_tls_1_2_or_newer(webhook: ThreadServer, pki: Pki, server_hostname: str) -> None:
    for maximum in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = client_context(pki, maximum=maximum)
        raw = socket.create_connection((HOST, webhook.port))
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[maximum]
            assert tls.selected_alpn_protocol() in (None, "http/1.1")


def test_bad_certificate_files_are_named_in_the_error(tmp_path: Path, pki: Pki) -> None:
    other = Pki.new()
    cert, key, wrong_key = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "other.key"
    cert.write_bytes(pki.cert_pem)
    key.write_bytes(pki.key_pem)
    wrong_key.write_bytes(other.key_pem)
    assert load_pair(cert, key).sha256
    with pytest.raises(CertificateError, match=r"cannot read certificate file .*missing.crt: No such file"):
        load_pair(tmp_path / "missing.crt", key)
    with pytest.raises(CertificateError, match=r"cannot read key file .*tls.crt.d: Is a directory"):
        (tmp_path / "tls.crt.d").mkdir()
        load_pair(cert, tmp_path / "tls.crt.d")
    with pytest.raises(CertificateError, match=r"certificate .*tls.crt does not match key .*other.key"):
        load_pair(cert, wrong_key)
    with pytest.raises(CertificateError, match=r"certificate file .*tls.key does not contain a PEM certificate"):
        load_pair(key, key)
    with pytest.raises(CertificateError, match=r"key file .*tls.crt does not contain a PEM private key"):
        load_pair(cert, cert)
    half = tmp_path / "half.crt"
    half.write_bytes(pki.cert_pem[: len(pki.cert_pem) // 2])
    with pytest.raises(CertificateError, match="does not contain a PEM certificate"):
        load_pair(half, key)


def test_broken_rotation_keeps_the_old_certificate(pki: Pki, secret_volume: SecretVolume) -> None:
    """A mismatched pair and a half-written file are logged and ignored; a good pair is then picked up."""
    server = start_thread_server(pki, secret_volume.cert, secret_volume.key)
    new = Pki.new()
    both = client_context(pki, new)
    reloads = server.metrics.cert_reloads
    try:
        assert peer_certificate(server.url, both) == pki.leaf_der

        secret_volume.publish(new.cert_pem, pki.key_pem)  # new certificate, old key
        assert server.server.reloader.check() is False
        assert peer_certificate(server.url, both) == pki.leaf_der
        assert reloads.labels("failure")._value.get() == 1
        assert server.server.reloader.check() is False  # unchanged files: not retried, not re-logged
        assert reloads.labels("failure")._value.get() == 1

        secret_volume.publish(new.cert_pem[:200], new.key_pem)  # half-written certificate
        assert server.server.reloader.check() is False
        assert peer_certificate(server.url, both) == pki.leaf_der

        secret_volume.publish(new.cert_pem, new.key_pem)
        assert server.server.reloader.check() is True
        assert peer_certificate(server.url, both) == new.leaf_der
        assert peer_certificate(server.url, client_context(new)) == new.leaf_der
        assert reloads.labels("success")._value.get() == 1
        assert reloads.labels("failure")._value.get() == 2
        expiry = server.metrics.cert_not_after._value.get()
        assert expiry == server.server.reloader.current.not_after
    finally:
        server.stop()


def test_rotation_under_load_without_failed_handshakes_or_restart(
    pki: Pki, secret_volume: SecretVolume, cli_server_factory: object
) -> None:
    """The kubelet swaps the Secret volume to a new CA and certificate while a client keeps opening new
    connections: no request fails, new connections get the new certificate, the process is the same one."""
    server: CliServer = cli_server_factory(secret_volume, pki, "--cert-check-interval", "0.2")  # type: ignore[operator]
    new = Pki.new()
    both = client_context(pki, new)
    seen: list[bytes] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                seen.append(peer_certificate(server.url, both))
            except BaseException as exc:
                failures.append(exc)

    def wait_for(condition: object, what: str) -> None:
        deadline = time.monotonic() + 30
        while not condition():  # type: ignore[operator]
            assert not failures, failures
            assert time.monotonic() < deadline, f"timed out waiting for {what}; {server.log()}"
            time.sleep(0.02)

    pid = server.process.pid
    client = threading.Thread(target=load)
    client.start()
    try:
        wait_for(lambda: len(seen) >= 20, "requests with the first certificate")
        secret_volume.publish(new.cert_pem, new.key_pem)
        wait_for(lambda: new.leaf_der in seen, "the new certificate")
        switched = len(seen)
        wait_for(lambda: len(seen) >= switched + 20, "requests after the switch")
    finally:
        stop.set()
        client.join(30)

    assert failures == []
    first_new = seen.index(new.leaf_der)
    assert set(seen[:first_new]) == {pki.leaf_der}
    assert set(seen[first_new:]) == {new.leaf_der}  # once switched, every new connection gets the new one
    assert server.process.poll() is None and server.process.pid == pid
    assert peer_certificate(server.url, client_context(new)) == new.leaf_der
    with pytest.raises(httpx.ConnectError):
        peer_certificate(server.url, client_context(pki))  # the old CA no longer validates the server
    assert '"msg":"serving certificate reloaded"' in server.log()
    metrics = httpx.get(server.url + "/metrics", verify=both).text
    assert 'lanes_tls_certificate_reloads_total{result="success"} 1.0' in metrics
