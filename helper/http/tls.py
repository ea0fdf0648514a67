"""TLS client contexts and readable TLS errors.

Imported only by code paths that open a TLS connection (see footprint.py for why that matters).

Two trust policies exist, for two different jobs:

- *verified* (prewarm of ``https://`` dependencies, ``https://`` notify receivers): the system CAs, plus an
  optional extra CA file for cluster-internal CAs (``LANES_PREWARM_CA_FILE``). A verification failure is reported,
  not bypassed: an unverifiable dependency is exactly what a pre-warm should surface. ``LANES_PREWARM_INSECURE``
  exists for dependencies whose certificate cannot be verified by design; the output then says ``unverified``;
- *unverified* (the app's own HTTPS readiness path and warm-up on localhost): the kubelet does not verify the
  certificate of an ``httpGet`` probe either, and the agent takes over exactly that probe.

Both are TLS 1.2+ (as the kubelet's Go client) and shared per process. What OpenSSL itself costs once loaded (about
5 MB of libcrypto/libssl pages a handshake touches, shared with every other process mapping the same files) cannot
be avoided here; what this module avoids is the memory a TLS client would otherwise allocate for nothing:

- the system CA bundle parsed into memory (~1.4 MB for Debian's ~140 roots) when a hashed CA directory is there to
  look up just the issuer a handshake needs (see :func:`_trust_system_cas`), and any bundle at all for the
  unverified context;
- the ``idna`` codec (which imports ``unicodedata`` and ``stringprep``) that ``ssl`` uses to encode the server
  name even when it is plain ASCII, as every Kubernetes host name and IP address is.
"""

from __future__ import annotations

import os
import ssl


class _Context(ssl.SSLContext):
    """``ssl.SSLContext`` encoding ASCII server names without the ``idna`` codec, exactly as that codec would."""

    def _encode_hostname(self, hostname: str | bytes | None) -> str | None:
        if isinstance(hostname, str) and hostname.isascii():
            # encodings.idna's own fast path for ASCII input: the same result and the same error.
            labels = hostname.split(".")
            if any(not 0 < len(label) < 64 for label in labels[:-1]) or len(labels[-1]) >= 64:
                raise UnicodeError("label empty or too long")
            return hostname
        return super()._encode_hostname(hostname)  # type: ignore[misc]


def _client_context() -> ssl.SSLContext:
    context = _Context(ssl.PROTOCOL_TLS_CLIENT)  # hostname checking and CERT_REQUIRED on
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _trust_system_cas(context: ssl.SSLContext) -> None:
    """Trust the system CAs, as ``create_default_context()`` does, preferring the lazy lookup.

    OpenSSL's default paths are a bundle file (parsed completely, at once) and a directory of certificates named by
    subject hash (read only for the issuer a handshake asks for). On Debian-based images both hold the same roots
    (``update-ca-certificates`` writes both), so when the directory has hashed entries and ``SSL_CERT_FILE`` does
    not name a different bundle, only the directory is configured. Otherwise: the default paths, both of them.
    """
    paths = ssl.get_default_verify_paths()
    directory = paths.capath
    if not os.environ.get(paths.openssl_cafile_env) and directory and _has_hashed_entries(directory):
        context.load_verify_locations(capath=directory)
        return
    context.load_default_certs(ssl.Purpose.SERVER_AUTH)


def _has_hashed_entries(directory: str) -> bool:
    try:
        with os.scandir(directory) as entries:
            return any(len(entry.name) == 10 and entry.name[8:] == ".0" for entry in entries)
    except OSError:
        return False


_verified: dict[str | None, ssl.SSLContext] = {}


def verified_context(ca_file: str | None = None) -> ssl.SSLContext:
    """System CAs plus ``ca_file`` (if given), hostname checking on; one shared context per ``ca_file``."""
    context = _verified.get(ca_file)
    if context is None:
        context = _client_context()
        _trust_system_cas(context)
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
        _verified[ca_file] = context
    return context


_unverified: ssl.SSLContext | None = None


def unverified_context() -> ssl.SSLContext:
    """Encryption without authentication, as the kubelet's HTTPS probes do; one shared context per process.

    No CA is loaded at all: it would never be consulted.
    """
    global _unverified
    if _unverified is None:
        context = _client_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _unverified = context
    return _unverified


def describe(error: BaseException) -> str | None:
    """A one-line explanation of a TLS failure, or None when ``error`` is not a TLS error."""
    if isinstance(error, ssl.SSLCertVerificationError):
        detail = error.verify_message or error.reason or str(error)
        return f"TLS certificate verification failed: {detail}"
    if isinstance(error, ssl.SSLError):
        reason = error.reason or error.strerror or str(error)
        if reason == "WRONG_VERSION_NUMBER":
            reason += " (is the port serving plain HTTP?)"
        return f"TLS handshake failed: {reason}"
    return None


def is_verification_error(error: BaseException) -> bool:
    """Retrying does not fix an untrusted certificate; callers stop early on these."""
    return isinstance(error, ssl.SSLCertVerificationError)


def load_error(error: BaseException) -> str:
    """Why a CA file could not be loaded (bad PEM, wrong format)."""
    return f"cannot load CA file: {getattr(error, 'reason', None) or error}"
