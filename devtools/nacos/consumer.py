"""A Nacos consumer as apps run one: the official Python SDK (nacos-sdk-python, gRPC) subscribed to a service.

Used by tests/nacos and bench/nacos_rollout.py; needs the ``dev`` extra (the SDK is never part of the helper).

    python -m devtools.nacos.consumer --server 127.0.0.1:8848 --service demo [--username U --password P]
        [--register-ip IP --register-port PORT] [--pick-every 0.01] [--call]

Prints one JSON line per event on stdout, each with ``t`` (unix time):

- ``{"event": "push", "hosts": [{ip, port, weight, enabled, healthy, metadata}]}`` for every push the SDK delivers
  (``update_cache_when_empty`` is on: by default the SDK drops an empty list, so a subscriber would never see the
  last instance go);
- ``{"event": "pick", "host": "ip:port"}`` every ``--pick-every`` seconds: a weighted random choice among the
  healthy, enabled instances of the latest push, as Nacos's Java client does in ``selectOneHealthyInstance`` (the
  Python SDK has no chooser of its own); with ``--call`` it also sends an HTTP GET to the pick and reports
  ``ok``/``error``;
- ``{"event": "registered"}`` after ``--register-ip/--register-port`` registered an instance of its own over gRPC
  (the way an app registers itself: Spring Cloud Alibaba, Dubbo).

Runs until stdin closes or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from typing import Any

from v2.nacos import ClientConfigBuilder, NacosException, NacosNamingService
from v2.nacos.naming.model.naming_param import RegisterInstanceParam, SubscribeServiceParam


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps({"t": round(time.time(), 4), **fields}) + "\n")
    sys.stdout.flush()


def describe(instance: Any) -> dict[str, Any]:
    return {
        "ip": instance.ip,
        "port": instance.port,
        "weight": instance.weight,
        "enabled": instance.enabled,
        "healthy": instance.healthy,
        "metadata": dict(instance.metadata or {}),
    }


async def main(args: argparse.Namespace) -> None:
    workdir = tempfile.mkdtemp(prefix="lanes-nacos-consumer.")

    def on_sigterm() -> None:  # a pod's SIGTERM: gone at once (the gRPC connection closes), no temp dir left
        shutil.rmtree(workdir, ignore_errors=True)
        os._exit(0)

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        await _consume(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _consume(args: argparse.Namespace, workdir: str) -> None:
    builder = ClientConfigBuilder().server_address(args.server).log_level("WARNING").log_dir(workdir)
    builder = builder.timeout_ms(15000)
    builder = builder.cache_dir(workdir).load_cache_at_start(False)
    if args.username:
        builder = builder.username(args.username).password(args.password)
    config = builder.build()
    config.set_update_cache_when_empty(True)
    naming = await NacosNamingService.create_naming_service(config)
    hosts: list[dict[str, Any]] = []

    async def on_push(instances: list[Any]) -> None:
        nonlocal hosts
        hosts = [describe(instance) for instance in instances]
        emit(event="push", hosts=hosts)

    await _retried(lambda: naming.subscribe(SubscribeServiceParam(service_name=args.service,
                                                                  subscribe_callback=on_push)))  # fmt: skip
    if args.register_ip:
        instance = RegisterInstanceParam(service_name=args.service, ip=args.register_ip, port=args.register_port,
                                         weight=args.register_weight, metadata={"registered-by": "app"})  # fmt: skip
        await _retried(lambda: naming.register_instance(instance))
        emit(event="registered", ip=args.register_ip, port=args.register_port)
    emit(event="subscribed", service=args.service)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()

    def on_stdin() -> None:
        if not stdin_closed.done() and not sys.stdin.read(1):
            stdin_closed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    while not stdin_closed.done():
        await asyncio.sleep(args.pick_every)
        if args.pick_every <= 0:
            continue
        choices = [h for h in hosts if h["enabled"] and h["healthy"] and h["weight"] > 0]
        if not choices:
            emit(event="pick", host=None)
            continue
        chosen = random.choices(choices, weights=[h["weight"] for h in choices])[0]
        address = f"{chosen['ip']}:{chosen['port']}"
        if not args.call:
            emit(event="pick", host=address)
            continue
        began = time.perf_counter()
        try:
            await asyncio.to_thread(_get, f"http://{address}{args.path}")
            emit(event="pick", host=address, result="ok", ms=round((time.perf_counter() - began) * 1000, 2))
        except OSError as error:
            ms = round((time.perf_counter() - began) * 1000, 2)
            emit(event="pick", host=address, result="error", error=str(error)[:80], ms=ms)
    try:
        await asyncio.wait_for(naming.shutdown(), 3)
    except Exception as error:  # the SDK's shutdown can hang on a server that is gone: never keep the caller
        emit(event="shutdown_failed", error=repr(error)[:80])


async def _retried(call: Any, attempts: int = 30) -> Any:
    """The SDK answers "client not connected" until its gRPC connection is up (seconds on a busy machine)."""
    for attempt in range(attempts):
        try:
            return await call()
        except NacosException:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    return None


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=2) as answer:
        answer.read()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--username", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--register-ip", default="")
    parser.add_argument("--register-port", type=int, default=0)
    parser.add_argument("--register-weight", type=float, default=1.0)
    parser.add_argument("--pick-every", type=float, default=0.0)
    parser.add_argument("--call", action="store_true")
    parser.add_argument("--path", default="/api/consumer", help="what --call requests")
    asyncio.run(main(parser.parse_args()))
    sys.stdout.flush()
    os._exit(0)  # gRPC's threads must not hold the process after the SDK is shut down
