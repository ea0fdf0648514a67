"""The rollout lab's sample app: a tiny keep-alive HTTP/1.1 server with a cold start (standard library only).

- ``GET /`` (any path but /healthz): simulated work of ``--work-ms`` (an awaited sleep, like a database call), plus a
  cold-start penalty of ``--cold-ms`` while the process is younger than ``--cold-seconds`` *or* has served fewer than
  ``--cold-requests`` requests (lazy initialisation: caches, connection pools, JIT). Answers ``200`` with the header
  ``X-Instance: <name>`` so the load generator can attribute each request;
- ``GET /healthz``: 200 at once (what a readiness probe sees: the app *answers* long before it is warm);
- SIGTERM: the default action, i.e. the process dies at once, dropping requests in flight: like most apps, it has no
  graceful shutdown of its own. Lanes must make the rollout lossless without changing that.

Run: ``python -m bench.lab_app --port N --name srv1``.
"""

from __future__ import annotations

import argparse
import asyncio
import time


class App:
    def __init__(self, name: str, work_ms: float, cold_ms: float, cold_seconds: float, cold_requests: int) -> None:
        self.name = name.encode()
        self.work = work_ms / 1000.0
        self.cold = cold_ms / 1000.0
        self.cold_seconds = cold_seconds
        self.cold_requests = cold_requests
        self.started = time.monotonic()
        self.served = 0

    def delay(self) -> float:
        self.served += 1
        young = time.monotonic() - self.started < self.cold_seconds
        return self.work + (self.cold if young or self.served <= self.cold_requests else 0.0)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                length = 0
                close = False
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    lowered = name.strip().lower()
                    if lowered == b"content-length":
                        length = int(value.strip() or 0)
                    elif lowered == b"connection" and value.strip().lower() == b"close":
                        close = True
                if length:
                    await reader.readexactly(length)
                parts = request_line.split()
                path = parts[1] if len(parts) > 1 else b"/"
                if path.startswith(b"/healthz"):
                    body = b"ok\n"
                else:
                    await asyncio.sleep(self.delay())
                    body = b"hello from " + self.name + b"\n"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Instance: " + self.name
                    + b"\r\nContent-Length: " + str(len(body)).encode()
                    + (b"\r\nConnection: close" if close else b"") + b"\r\n\r\n" + body
                )
                await writer.drain()
                if close:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(prog="lab_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--work-ms", type=float, default=5.0)
    parser.add_argument("--cold-ms", type=float, default=150.0)
    parser.add_argument("--cold-seconds", type=float, default=2.0)
    parser.add_argument("--cold-requests", type=int, default=30)
    args = parser.parse_args()
    app = App(args.name, args.work_ms, args.cold_ms, args.cold_seconds, args.cold_requests)
    server = await asyncio.start_server(app.handle, "127.0.0.1", args.port, backlog=512)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
