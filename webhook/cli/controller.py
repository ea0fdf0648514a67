"""``python -m webhook.controller``: the controller as its own process.

Accepts both the short flags (``--webhook-config``, ``--lease-name``) and the ones the Helm chart
passes (``--mutating-webhook``, ``--lease``, ``--manage-certs``, ``--ca-validity 87600h``, ...). Startup problems
are one line on stderr and exit status 2; SIGTERM/SIGINT stop the loops and release the Lease (exit 0).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from webhook.contract.durations import DurationError, parse_long_duration
from webhook.controller.metrics import ControllerMetrics
from webhook.controller.run import run_controller
from webhook.controller.settings import (
    CertTiming,
    ControllerSettings,
    LeaseTiming,
    RepairMode,
    RepairSettings,
    SettingsError,
)

log = logging.getLogger("lanes.controller")

EXIT_USAGE = 2


def long_duration(text: str) -> float:
    """Seconds in a certificate lifetime such as ``87600h``, ``90d``, ``1h30m`` or bare seconds.

    The syntax of annotations (``webhook.contract.durations``) plus days, without their one-day bound: lifetimes
    are years.
    """
    try:
        return parse_long_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m webhook.controller",
        description="Lanes controller: readiness gate, certificates, repair (one leader via a Lease).",
    )
    add = parser.add_argument
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG, else in-cluster)")
    source.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    add("--namespace", default=os.environ.get("POD_NAMESPACE"), help="the webhook's namespace ($POD_NAMESPACE)")
    add("--identity", help="leader election identity (default: $POD_NAME, else host-pid)")
    add(
        "--webhook-config",
        "--mutating-webhook",
        dest="webhook_config",
        default="lanes",
        metavar="NAME",
        help="MutatingWebhookConfiguration whose caBundle is kept current (default: %(default)s)",
    )
    add(
        "--validating-webhook",
        "--validating-config",
        dest="validating_config",
        metavar="NAME",
        help="ValidatingWebhookConfiguration whose caBundle is kept current too (default: none)",
    )
    add("--service", default="lanes", metavar="NAME", help="the webhook's Service (default: %(default)s)")
    add("--secret", metavar="NAME", help="certificate Secret (default: <service>-tls)")
    add(
        "--cert-dir",
        type=Path,
        metavar="DIR",
        help="mirror tls.crt/tls.key/ca.crt here for the admission server (implies --manage-certs)",
    )
    add("--manage-certs", action="store_true", help="create and rotate the CA and serving certificate")
    add("--cert-manager", action="store_true", help="cert-manager owns the certificates: no Secret, caBundle, files")
    add(
        "--extra-dns-name",
        action="append",
        default=[],
        metavar="NAME",
        help="extra DNS name in the serving certificate (repeatable)",
    )
    add(
        "--extra-ip",
        action="append",
        default=[],
        metavar="IP",
        help="extra IP address in the serving certificate (repeatable)",
    )
    add(
        "--ca-validity",
        type=long_duration,
        default=365 * 86400.0,
        metavar="DURATION",
        help="CA lifetime, e.g. 87600h or 3650d (default: 365d)",
    )
    add(
        "--cert-validity",
        type=long_duration,
        default=90 * 86400.0,
        metavar="DURATION",
        help="serving certificate lifetime (default: 90d)",
    )
    add(
        "--renew-before",
        type=long_duration,
        default=0.0,
        metavar="DURATION",
        help="renew at the latest this long before expiry (default: only at 2/3 of the lifetime)",
    )
    add(
        "--ca-propagation",
        type=long_duration,
        default=30.0,
        metavar="DURATION",
        help="after publishing a new CA, wait this long before serving a certificate from it (default: 30s)",
    )
    add(
        "--ca-overlap",
        type=long_duration,
        default=300.0,
        metavar="DURATION",
        help="keep the old CA in caBundle this long after the serving certificate switched (default: 300s)",
    )
    add(
        "--repair",
        choices=[m.value for m in RepairMode],
        default=RepairMode.REPORT.value,
        help="pods admitted without injection: off, report (Event, metric, log) or evict (default: %(default)s)",
    )
    add(
        "--eviction-rate",
        type=float,
        default=0.2,
        metavar="PER_SECOND",
        help="evictions per second (default: %(default)s)",
    )
    add("--eviction-burst", type=int, default=2, metavar="N", help="evictions at once (default: %(default)s)")
    add(
        "--eviction-retry",
        type=long_duration,
        default=30.0,
        metavar="DURATION",
        help="retry an eviction refused by a PodDisruptionBudget after this long (default: 30s)",
    )
    add(
        "--lease-name",
        "--lease",
        dest="lease_name",
        default="lanes-controller",
        metavar="NAME",
        help="leader election Lease in --namespace (default: %(default)s)",
    )
    add("--lease-duration", type=float, default=15.0, metavar="SECONDS", help="(default: %(default)s)")
    add("--renew-deadline", type=float, default=10.0, metavar="SECONDS", help="(default: %(default)s)")
    add("--retry-period", type=float, default=2.0, metavar="SECONDS", help="(default: %(default)s)")
    add(
        "--namespace-selector",
        default="lanes=enabled",
        metavar="SELECTOR",
        help="label selector of enabled namespaces, as the webhook's namespaceSelector (default: %(default)s)",
    )
    add("--defaults", metavar="FILE", help="cluster defaults file (its register_delay is the gate's default)")
    add(
        "--gate-concurrency",
        type=int,
        default=8,
        metavar="N",
        help="status PATCHes in flight at most (default: %(default)s)",
    )
    add("--lanes", action="store_true", help="run the Lane reconciler (lane routing; needs the Lane CRD)")
    add(
        "--lanes-outputs",
        default="GatewayAPI,Istio",
        metavar="LIST",
        help="outputs of Lanes that name none: GatewayAPI, Istio, GAMMA, EastWest (default: %(default)s)",
    )
    add(
        "--lanes-east-west-gateway",
        default="",
        metavar="NAMESPACE/NAME",
        help="the shared in-cluster Gateway of the EastWest output, for Lanes that name none",
    )
    add("--lanes-cluster-domain", default="cluster.local", metavar="DOMAIN", help="(default: %(default)s)")
    add(
        "--lanes-resync",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="re-render every namespace with Lanes this often (default: %(default)s)",
    )
    add("--metrics-port", type=int, default=0, metavar="PORT", help="serve Prometheus /metrics (default: off)")
    add("--metrics-host", default="0.0.0.0", metavar="ADDRESS", help="(default: %(default)s)")
    add("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def settings_from_args(args: argparse.Namespace) -> ControllerSettings:
    """Validated settings; :class:`SettingsError` names the bad flag combination."""
    if not args.namespace:
        raise SettingsError("--namespace is required (or set POD_NAMESPACE)")
    extra: dict[str, Any] = {}
    default_delay = 0.0
    tag_header = "x-lane"
    if args.defaults:
        from webhook.contract.defaults import load_defaults

        try:
            parsed = load_defaults(args.defaults).parsed
            default_delay = parsed["register_delay"]
            tag_header = str(parsed.get("tag_header") or tag_header)
        except Exception as exc:
            raise SettingsError(str(exc).splitlines()[0]) from None
    if args.lanes:
        extra["routing"] = routing_settings(args, tag_header)
    manage = not args.cert_manager and (args.manage_certs or args.cert_dir is not None)
    if args.identity:
        extra["identity"] = args.identity
    return ControllerSettings(
        namespace=args.namespace,
        service=args.service,
        webhook_config=args.webhook_config,
        validating_config=args.validating_config,
        secret_name=args.secret or "",
        cert_dir=None if args.cert_manager else args.cert_dir,
        manage_certs=manage,
        extra_dns_names=tuple(args.extra_dns_name),
        extra_ip_addresses=tuple(args.extra_ip),
        lease_name=args.lease_name,
        namespace_selector=args.namespace_selector,
        default_register_delay=default_delay,
        gate_concurrency=args.gate_concurrency,
        lease=LeaseTiming(args.lease_duration, args.renew_deadline, args.retry_period),
        certs=CertTiming(
            ca_lifetime=args.ca_validity,
            leaf_lifetime=args.cert_validity,
            renew_before=args.renew_before,
            propagation=args.ca_propagation,
            overlap=args.ca_overlap,
        ),
        repair=RepairSettings(
            mode=RepairMode(args.repair),
            rate=args.eviction_rate,
            burst=args.eviction_burst,
            retry_after=args.eviction_retry,
        ),
        **extra,
    )


def routing_settings(args: argparse.Namespace, tag_header: str) -> Any:
    """The Lane reconciler's settings from the ``--lanes-*`` flags; :class:`SettingsError` names a bad one."""
    from webhook.controller.routing.render import RenderOptions
    from webhook.controller.routing.settings import ReconcilerSettings
    from webhook.controller.routing.spec import LaneError, ParentRef, parse_gateway_ref, parse_outputs

    try:
        outputs = parse_outputs(args.lanes_outputs, "--lanes-outputs")
        east_west: tuple[ParentRef, ...] = ()
        if args.lanes_east_west_gateway:
            east_west = (parse_gateway_ref(args.lanes_east_west_gateway, "--lanes-east-west-gateway"),)
    except LaneError as exc:
        raise SettingsError(str(exc)) from None
    try:
        return ReconcilerSettings(
            options=RenderOptions(
                tag_header=tag_header, outputs=outputs, east_west=east_west, cluster_domain=args.lanes_cluster_domain
            ),
            resync=args.lanes_resync,
        )
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def api_client(kubeconfig: str | None, in_cluster: bool) -> Any:
    """An ApiClient from a kubeconfig, or the service account; a connection pool sized for the watches."""
    from kubernetes import client, config

    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if in_cluster or (not path and os.environ.get("KUBERNETES_SERVICE_HOST")):
        config.load_incluster_config(client_configuration=configuration)
    else:
        path = path or str(Path.home() / ".kube" / "config")
        if not Path(path).is_file():
            raise SettingsError(f"cannot read kubeconfig {path}: no such file (or pass --in-cluster)")
        config.load_kube_config(config_file=path, client_configuration=configuration)
    # Several long-lived watches plus the PATCH workers share the pool.
    configuration.connection_pool_maxsize = 32
    # One quick retry for a stale keep-alive connection, none for reads: every loop retries with its own
    # backoff, and the lease renewal must not block for several request timeouts in a row.
    import urllib3

    configuration.retries = urllib3.Retry(total=1, read=0, redirect=0, status=0, raise_on_status=False)
    return client.ApiClient(configuration)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from webhook.cli.jsonlog import configure_logging

    configure_logging(args.log_level)
    try:
        settings = settings_from_args(args)
        client = api_client(args.kubeconfig, args.in_cluster)
    except SettingsError as exc:
        print(f"lanes-controller: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # an unreadable kubeconfig or service account: one line, not a traceback
        print(f"lanes-controller: error: no cluster credentials: {exc}", file=sys.stderr)
        return EXIT_USAGE
    metrics = ControllerMetrics()
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.registry)
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    run_controller(settings, client, stop, metrics=metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
