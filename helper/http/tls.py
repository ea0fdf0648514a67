"""TLS client contexts and readable TLS errors.

Imported only by code paths that open a TLS connection (see footprint.py for why that matters).

Two trust policies exist, for two different jobs:

- *verified* (prewarm of ``https://`` dependencies, ``https://`` notify receivers): the system CA bundle, plus an
  optional extra CA file for cluster-internal CAs (``LANES_PREWARM_CA_FILE``). A verification failure is reported,
  not bypassed: an unverifiable dependency is exactly what a pre-warm should surface. ``LANES_PREWARM_INSECURE``
  exists for dependencies whose certificate cannot be verified by design; the output then says ``unverified``;
- *unverified* (the app's own HTTPS readiness path and warm-up on localhost): the kubelet does not verify the
  certificate of an ``httpGet`` probe either, and the agent takes over exactly that probe.
"""

from __future__ import annotations

import ssl


def verified_context(ca_file: str | None = None) -> ssl.SSLContext:
    """System CAs plus ``ca_file`` (if given), hostname checking on."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


_unverified: ssl.SSLContext | None = None


def unverified_context() -> ssl.SSLContext:
    """Encryption without authentication, as the kubelet's HTTPS probes do; one shared context per process.

    Built from a bare client context rather than ``create_default_context()``, which would load the system CA
    bundle (about 1.5 MB resident in the agent) only to never consult it.
    """
    global _unverified
    if _unverified is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
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
