"""Reading and judging certificates: bundles, issuers, names, the rotation point. Pure functions.

Shared by the rotation loop and ``lanes doctor``, so the check that says "this caBundle trusts the serving
certificate" is the same one the controller relies on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from webhook.controller.certs import pki

#: ``webhook.controller.certs.pki`` starts every certificate this long before "now" to tolerate clock skew; lifetimes
#: given to it are stretched by the same amount so a certificate lasts its configured lifetime *from issuance*.
BACKDATE = dt.timedelta(minutes=5)


def load_bundle(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle; an empty or unreadable bundle is an empty list."""
    if not pem or not pem.strip():
        return []
    try:
        return list(x509.load_pem_x509_certificates(pem))
    except ValueError:
        return []


def to_pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def fingerprint(cert: x509.Certificate) -> str:
    """Short SHA-256 of the DER form: a stable name for a CA in annotations and logs."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()[:16]


def issued_by(leaf: x509.Certificate, ca: x509.Certificate) -> bool:
    """``leaf``'s signature verifies with ``ca``'s key (and the names chain)."""
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def trusted_by(leaf: x509.Certificate, bundle: list[x509.Certificate]) -> x509.Certificate | None:
    """The CA in ``bundle`` that issued ``leaf``, if any."""
    for ca in bundle:
        if issued_by(leaf, ca):
            return ca
    return None


def dns_names(cert: x509.Certificate) -> set[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(sans.get_values_for_type(x509.DNSName))


def ip_addresses(cert: x509.Certificate) -> set[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}


def covers(cert: x509.Certificate, names: tuple[str, ...], ips: tuple[str, ...] = ()) -> bool:
    """Every wanted DNS name and IP address is in the certificate's subjectAltName."""
    have_ips = {str(ipaddress.ip_address(ip)) for ip in ip_addresses(cert)}
    return set(names) <= dns_names(cert) and {str(ipaddress.ip_address(ip)) for ip in ips} <= have_ips


def key_matches(pair: pki.KeyPair) -> bool:
    """The private key belongs to the certificate."""
    try:
        key = serialization.load_pem_private_key(pair.key_pem, password=None)
        public = pair.certificate.public_key()
    except (ValueError, TypeError):
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, spki) == public.public_bytes(der, spki)


def not_after(cert: x509.Certificate) -> float:
    return cert.not_valid_after_utc.timestamp()


def rotate_at(cert: x509.Certificate, fraction: float, renew_before: float = 0.0) -> float:
    """Unix time at which ``cert`` is due for renewal: ``fraction`` of its lifetime since issuance, or
    ``renew_before`` seconds before expiry, whichever is earlier."""
    issued = cert.not_valid_before_utc.timestamp() + BACKDATE.total_seconds()
    end = not_after(cert)
    issued = min(issued, end)
    due = issued + fraction * (end - issued)
    if renew_before:
        due = min(due, end - renew_before)
    return due


def lifetime_for_pki(seconds: float) -> dt.timedelta:
    """The lifetime to ask ``webhook.controller.certs.pki`` for so the certificate is valid ``seconds`` from now."""
    return dt.timedelta(seconds=seconds) + BACKDATE
