"""``lanes-webhook``: the admission server's command line.

``lanes-webhook serve`` wires the pieces: cluster defaults (the Helm ConfigMap file) and the owner watch cache
go into :func:`webhook.admission.app.create_app`; :func:`webhook.admission.serving.create_server` runs it over TLS.
Every startup problem (unreadable certificate, bad defaults file, no cluster credentials) is one line on stderr
and exit status 2, never a traceback: it ends up in ``kubectl logs`` of a crash-looping pod and must be readable there.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from webhook.admission.codec import DEFAULT_MAX_BODY_BYTES
from webhook.admission.serving import (
    DEFAULT_CERT_CHECK_INTERVAL,
    DEFAULT_KEEP_ALIVE_TIMEOUT,
    DEFAULT_SHUTDOWN_DELAY,
    DEFAULT_SHUTDOWN_TIMEOUT,
    HTTP_IMPLEMENTATION,
    LOOP_IMPLEMENTATION,
    CertificateError,
    create_server,
    load_pair,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from webhook.contract.defaults import ClusterDefaults

log = logging.getLogger("lanes.webhook")

EXIT_USAGE = 2


class StartupError(Exception):
    """A configuration problem reported as one line and exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanes-webhook",
        description="Lanes admission webhook server (mutates Pods, validates workloads).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the HTTPS admission server",
        description="Serve /mutate, /validate, /healthz, /readyz and /metrics over TLS 1.2+. The certificate "
        "files are re-read when they change (no restart needed); SIGTERM drains before stopping.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--cert", required=True, metavar="FILE", help="PEM certificate chain (e.g. tls.crt)")
    serve.add_argument("--key", required=True, metavar="FILE", help="PEM private key (e.g. tls.key)")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on")
    serve.add_argument("--port", type=int, default=8443, help="port to listen on")
    serve.add_argument("--defaults", metavar="FILE", help="cluster defaults file (YAML/JSON); built-ins if unset")
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig for the owner watch cache")
    source.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    source.add_argument(
        "--no-owner-cache",
        action="store_true",
        help="do not watch namespaces/workloads: resolve from pod annotations and defaults only",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--access-log", action="store_true", help="also log every HTTP request (uvicorn)")
    serve.add_argument(
        "--shutdown-delay",
        type=float,
        default=DEFAULT_SHUTDOWN_DELAY,
        metavar="SECONDS",
        help="after SIGTERM, keep serving this long with /readyz failing, so endpoints drop this pod first",
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=DEFAULT_SHUTDOWN_TIMEOUT,
        metavar="SECONDS",
        help="then wait at most this long for in-flight requests",
    )
    serve.add_argument(
        "--cert-check-interval",
        type=float,
        default=DEFAULT_CERT_CHECK_INTERVAL,
        metavar="SECONDS",
        help="how often the certificate files are checked for changes",
    )
    serve.add_argument(
        "--keep-alive-timeout",
        type=int,
        default=DEFAULT_KEEP_ALIVE_TIMEOUT,
        metavar="SECONDS",
        help="idle keep-alive timeout; keep it above the API server's 90s idle timeout",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        metavar="N",
        help="larger bodies get 413",
    )
    serve.add_argument(
        "--cache-sync-timeout",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for the owner cache before listening (0: listen at once; /readyz waits)",
    )
    return parser


def _load_defaults(path: str | None) -> ClusterDefaults:
    from webhook.contract.defaults import ClusterDefaults, load_defaults

    if not path:
        return ClusterDefaults()
    try:
        return load_defaults(path)
    except ValueError as exc:  # DefaultsError: the message already names the file and the field
        text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise StartupError(text or f"invalid defaults file {path}") from None
    except OSError as exc:
        raise StartupError(f"cannot read defaults file {path}: {exc.strerror or exc}") from None


def _api_client(args: argparse.Namespace) -> ApiClient | None:
    """The ApiClient for the owner cache, or None with --no-owner-cache."""
    if args.no_owner_cache:
        return None
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        if args.in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        else:
            kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
            if not args.kubeconfig and not Path(kubeconfig).exists():
                if os.environ.get("KUBERNETES_SERVICE_HOST"):
                    config.load_incluster_config(client_configuration=configuration)
                    return client.ApiClient(configuration)
                raise StartupError(
                    "no cluster credentials for the owner cache: pass --kubeconfig FILE, --in-cluster "
                    "or --no-owner-cache"
                )
            if not Path(kubeconfig).is_file():
                raise StartupError(f"cannot read kubeconfig {kubeconfig}: no such file")
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    except StartupError:
        raise
    except Exception as exc:
        raise StartupError(f"cannot load cluster credentials: {str(exc).splitlines()[0]}") from None
    return client.ApiClient(configuration)


def serve_command(args: argparse.Namespace) -> int:
    from webhook.cli.jsonlog import configure_logging

    configure_logging(args.log_level, access_log=args.access_log)
    if not 0 < args.port < 65536:
        raise StartupError(f"--port must be 1-65535, got {args.port}")
    if args.shutdown_delay < 0 or args.shutdown_timeout < 0 or args.cert_check_interval <= 0:
        raise StartupError("--shutdown-delay/--shutdown-timeout must be >= 0 and --cert-check-interval > 0")
    try:
        load_pair(args.cert, args.key)  # fail fast, before the heavier imports below
    except CertificateError as exc:
        raise StartupError(str(exc)) from None
    defaults = _load_defaults(args.defaults)

    from webhook.admission.app import create_app
    from webhook.admission.metrics import Metrics
    from webhook.admission.owners import WatchCache

    metrics = Metrics()
    api_client = _api_client(args)
    cache = WatchCache(api_client) if api_client is not None else None
    if cache is not None:
        metrics.watch_owner_cache(cache.is_synced, cache.stats)
    app = create_app(defaults, cache, metrics=metrics, max_body_bytes=args.max_body_bytes)
    try:
        server = create_server(
            app,
            host=args.host,
            port=args.port,
            cert_file=args.cert,
            key_file=args.key,
            shutdown_delay=args.shutdown_delay,
            shutdown_timeout=args.shutdown_timeout,
            cert_check_interval=args.cert_check_interval,
            keep_alive_timeout=args.keep_alive_timeout,
            access_log=args.access_log,
        )
    except CertificateError as exc:
        raise StartupError(str(exc)) from None
    if cache is not None:
        cache.start()
        if args.cache_sync_timeout > 0 and not cache.wait_synced(args.cache_sync_timeout):
            log.warning("owner cache not synced after %.0fs; serving anyway (/readyz waits)", args.cache_sync_timeout)
    log.info(
        "starting",
        extra={
            "host": args.host,
            "port": args.port,
            "owner_cache": cache is not None,
            "http": HTTP_IMPLEMENTATION,
            "loop": LOOP_IMPLEMENTATION,
        },
    )
    try:
        server.run()
    finally:
        if cache is not None:
            cache.stop()
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return serve_command(args)
    except StartupError as exc:
        print(f"lanes-webhook: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # e.g. the port is taken
        print(f"lanes-webhook: error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
