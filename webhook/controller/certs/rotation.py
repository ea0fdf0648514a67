"""Create, publish and rotate the webhook's CA and serving certificate (leader only).

The invariant: the API server must trust every serving certificate any replica may present. So a rotation goes

1. a CA is due (``rotate_fraction`` of its lifetime): generate a new CA and append it to the bundle (the Secret's
   ``ca.crt``); the new CA becomes the issuer, the serving certificate is still the old one;
2. publish the two-CA bundle into every webhook configuration's ``caBundle`` and read it back; remember when
   (``lanes.io/ca-trusted-since``);
3. ``propagation`` seconds later (the API servers' webhook informers have it), issue a serving certificate from
   the new CA into the Secret; every replica's file mirror switches the server to it;
4. ``overlap`` seconds later (every replica has reloaded), drop the old CA from the bundle and publish again.

A serving certificate that is merely due (same CA) is re-issued at once: its CA is already trusted. Each pass
re-reads the Secret and writes it with its ``resourceVersion``, so a pass interrupted by a failover is simply
redone by the next leader from what the Secret says. A Secret that is missing or unreadable is recreated; if
the webhook configurations still trust some other CA (the Secret was deleted while replicas serve the old
certificate), the new CA is published next to it and the new certificate waits for ``propagation`` as well.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from cryptography import x509

from helper.backoff import PLUS_MINUS_20, Backoff
from webhook.controller.certs import pki, x509util
from webhook.controller.certs.material import Material, parse_secret, secret_body
from webhook.controller.certs.webhooks import MUTATING, VALIDATING, Target, certificates_of, publish
from webhook.controller.leader import NotLeader
from webhook.controller.metrics import ControllerMetrics
from webhook.controller.settings import ControllerSettings
from webhook.kube.client import JSON, Kube, KubeError, path_segment

log = logging.getLogger("lanes.controller.certs")

MAX_SLEEP = 3600.0


class CertRotation:
    """The certificate loop of one leader term. :meth:`poke` when the Secret or a webhook config changed."""

    def __init__(
        self,
        kube: Kube,
        settings: ControllerSettings,
        write_timeout: Callable[[], float],
        metrics: ControllerMetrics,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.timing = settings.certs
        self.write_timeout = write_timeout
        self.metrics = metrics
        namespace, secret = path_segment(settings.namespace), path_segment(settings.secret_name)
        self.secret_path = f"/api/v1/namespaces/{namespace}/secrets/{secret}"
        self.targets = [Target(MUTATING, settings.webhook_config, True)]
        if settings.validating_config:
            self.targets.append(Target(VALIDATING, settings.validating_config, False))
        self._poke = threading.Event()
        self._pending_ca: pki.KeyPair | None = None  # bootstrap next to a CA we do not hold
        self._pending_since: float | None = None

    def poke(self) -> None:
        self._poke.set()

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff(first=1.0, cap=30.0, jitter=PLUS_MINUS_20)
        churn = Backoff(first=1.0, cap=60.0, jitter=PLUS_MINUS_20)
        immediate = 0
        while not stop.is_set():
            try:
                wait = self.reconcile()
                backoff.reset()
            except NotLeader:
                return
            except KubeError as exc:
                wait = max(backoff.next_delay(), exc.retry_after or 0.0)
                log.warning("certificate reconcile failed; retrying", extra={"error": str(exc), "retry_in": wait})
            except Exception:
                wait = backoff.next_delay()
                log.exception("certificate reconcile crashed; retrying")
            # Every write is followed by a fresh pass; a state that never settles (another tool rewriting caBundle
            # or the Secret) must not become a hot loop.
            immediate = immediate + 1 if wait <= 0.0 else 0
            if immediate > 10:
                wait = churn.next_delay()
                log.warning(
                    "certificate state keeps changing; is another tool writing caBundle or the Secret?",
                    extra={"retry_in": round(wait, 1)},
                )
            elif wait > 0.0:
                churn.reset()
            if stop.is_set():
                return
            self._poke.wait(min(wait, MAX_SLEEP))
            self._poke.clear()

    # -- one pass ------------------------------------------------------------------------------------------

    def reconcile(self) -> float:
        """Do the next step, if one is due; the seconds until the next step could be due."""
        timeout = self.write_timeout()
        now = time.time()
        try:
            secret: JSON | None = self.kube.get(self.secret_path, timeout=(min(5.0, timeout), timeout))
        except KubeError as exc:
            if exc.status != 404:
                raise
            secret = None
        material = parse_secret(secret)
        if not material.usable:
            return self._bootstrap(material, now)
        self._pending_ca = self._pending_since = None
        assert material.issuer is not None and material.leaf is not None
        issuer, leaf = material.issuer.certificate, material.leaf.certificate
        self._export(issuer, leaf)

        # 0. expired CAs leave the bundle (the issuer never expires before it is replaced: rotation is earlier)
        valid = [ca for ca in material.bundle if x509util.not_after(ca) > now or _same(ca, issuer)]
        if len(valid) != len(material.bundle):
            material.bundle = valid
            return self._write(material, "dropped expired CA")

        # 1. the bundle is in every webhook configuration; record when each CA got there
        published = publish(self.kube, self.targets, material.bundle_pem, self.write_timeout())
        if published.missing:
            log.warning("webhook configuration not found", extra={"missing": list(published.missing)})
        fingerprints = {x509util.fingerprint(ca) for ca in material.bundle}
        trusted = {fp: t for fp, t in material.trusted_since.items() if fp in fingerprints}
        for fp in fingerprints:
            if fp in published.newly_trusted or fp not in trusted:
                trusted[fp] = now
        if material.issued_at is None:
            material.issued_at = leaf.not_valid_before_utc.timestamp() + x509util.BACKDATE.total_seconds()
            material.trusted_since = trusted
            return self._write(material, "recorded certificate times")
        if trusted != material.trusted_since:
            material.trusted_since = trusted
            return self._write(material, "recorded when the CAs in caBundle became trusted")

        # 2. CA rotation: add the successor (once: only while the issuer is the newest CA in the bundle)
        ca_due = x509util.rotate_at(issuer, self.timing.rotate_fraction, self.timing.renew_before)
        if now >= ca_due and _same(material.bundle[-1], issuer):
            successor = self._new_ca()
            material.bundle = [*material.bundle, successor.certificate]
            material.issuer = successor
            material.trusted_since = {**trusted}
            return self._write(material, "CA rotation: new CA added to the bundle")

        # 3. the serving certificate: re-issue when due, from a different CA, or for other names
        leaf_due = x509util.rotate_at(leaf, self.timing.rotate_fraction, self.timing.renew_before)
        wrong_names = not x509util.covers(leaf, self.settings.dns_names, self.settings.extra_ip_addresses)
        if now >= leaf_due or wrong_names or not x509util.issued_by(leaf, issuer):
            ready_at = trusted[x509util.fingerprint(issuer)] + self.timing.propagation
            if now < ready_at:
                return ready_at - now
            material.leaf = self._new_leaf(material.issuer)
            material.issued_at = now
            return self._write(material, "serving certificate issued")

        # 4. after the overlap, the old CA leaves the bundle
        wake = [ca_due, leaf_due]
        if len(material.bundle) > 1:
            drop_at = material.issued_at + self.timing.overlap
            if now >= drop_at:
                material.bundle = [ca for ca in material.bundle if _same(ca, issuer)]
                return self._write(material, "CA rotation: old CA removed from the bundle")
            wake.append(drop_at)
        return max(0.05, min(wake) - now)

    def _bootstrap(self, material: Material, now: float) -> float:
        """No usable Secret: make a CA and certificate; keep trusting CAs the configurations still carry."""
        if self._pending_ca is None:
            self._pending_ca = self._new_ca()
        new = self._pending_ca
        still_trusted = self._currently_published(now)
        if not still_trusted:
            fresh = Material(
                bundle=[new.certificate],
                issuer=new,
                leaf=self._new_leaf(new),
                trusted_since={x509util.fingerprint(new.certificate): now},
                issued_at=now,
                secret=material.secret,
            )
            self._pending_ca = None
            return self._write(fresh, "created CA and serving certificate")
        bundle = [*still_trusted, new.certificate]
        published = publish(self.kube, self.targets, x509util.to_pem(bundle), self.write_timeout())
        if published.newly_trusted or self._pending_since is None:
            self._pending_since = now
        ready_at = self._pending_since + self.timing.propagation
        if now < ready_at:
            log.info("new CA published next to the one still in use", extra={"wait": round(ready_at - now, 1)})
            return ready_at - now
        fresh = Material(
            bundle=bundle,
            issuer=new,
            leaf=self._new_leaf(new),
            trusted_since={x509util.fingerprint(ca): self._pending_since for ca in bundle},
            issued_at=now,
            secret=material.secret,
        )
        self._pending_ca = self._pending_since = None
        return self._write(fresh, "recreated CA and serving certificate")

    def _currently_published(self, now: float) -> list[x509.Certificate]:
        """Valid CAs the webhook configurations trust right now (a lost Secret's, say), except our pending one."""
        seen: dict[str, x509.Certificate] = {}
        timeout = self.write_timeout()
        for target in self.targets:
            try:
                config = self.kube.get(target.path, timeout=(min(5.0, timeout), timeout))
            except KubeError as exc:
                if exc.status == 404:
                    continue
                raise
            for ca in certificates_of(config):
                if x509util.not_after(ca) > now:
                    seen.setdefault(x509util.fingerprint(ca), ca)
        if self._pending_ca is not None:
            seen.pop(x509util.fingerprint(self._pending_ca.certificate), None)
        return list(seen.values())

    # -- issuing and writing ----------------------------------------------------------------------------------

    def _new_ca(self) -> pki.KeyPair:
        ca = pki.make_ca(f"lanes-webhook-ca@{int(time.time())}", x509util.lifetime_for_pki(self.timing.ca_lifetime))
        self.metrics.cert_rotations.labels("ca").inc()
        log.info("issued CA", extra={"fingerprint": x509util.fingerprint(ca.certificate)})
        return ca

    def _new_leaf(self, issuer: pki.KeyPair) -> pki.KeyPair:
        leaf = pki.issue(
            issuer,
            f"{self.settings.service}.{self.settings.namespace}.svc",
            x509util.lifetime_for_pki(self.timing.leaf_lifetime),
            dns_names=self.settings.dns_names,
            ip_addresses=self.settings.extra_ip_addresses,
        )
        self.metrics.cert_rotations.labels("serving").inc()
        return leaf

    def _write(self, material: Material, why: str) -> float:
        body = secret_body(material, self.settings.namespace, self.settings.secret_name)
        timeout = self.write_timeout()
        request_timeout = (min(5.0, timeout), timeout)
        try:
            if material.secret is None:
                collection = self.secret_path.rsplit("/", 1)[0]
                self.kube.create(collection, body, timeout=request_timeout)
            else:
                self.kube.replace(self.secret_path, body, timeout=request_timeout)
        except KubeError as exc:
            if exc.status == 409:
                return 0.0  # changed or created concurrently: read again
            raise
        assert material.issuer is not None and material.leaf is not None
        log.info(
            why,
            extra={
                "secret": f"{self.settings.namespace}/{self.settings.secret_name}",
                "bundle": [x509util.fingerprint(ca) for ca in material.bundle],
                "issuer": x509util.fingerprint(material.issuer.certificate),
                "serving_not_after": _iso(x509util.not_after(material.leaf.certificate)),
            },
        )
        self._export(material.issuer.certificate, material.leaf.certificate)
        return 0.0

    def _export(self, issuer: x509.Certificate, leaf: x509.Certificate) -> None:
        self.metrics.cert_expiry.labels("ca").set(x509util.not_after(issuer))
        self.metrics.cert_expiry.labels("serving").set(x509util.not_after(leaf))


def _same(a: x509.Certificate, b: x509.Certificate) -> bool:
    return x509util.fingerprint(a) == x509util.fingerprint(b)


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
