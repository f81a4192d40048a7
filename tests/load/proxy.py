"""A TCP proxy on 127.0.0.1 that the load harness cuts to make an upstream unavailable.

It forwards bytes both ways and knows nothing of the protocol (PostgreSQL, HTTP). ``SIGUSR1``
cuts it: every open connection is closed at once and the listening socket is closed, so new
connections are refused — what a client sees when a database or a KMS endpoint goes away.
``SIGUSR2`` listens again on the same port. The shared server behind it is never touched.

    python -m tests.load.proxy --listen 40001 --upstream 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal


class CuttableProxy:
    def __init__(self, listen_port: int, upstream_host: str, upstream_port: int) -> None:
        self.listen_port = listen_port
        self.upstream = (upstream_host, upstream_port)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.listen_port, reuse_address=True
            )

    async def cut(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
        for writer in list(self.writers):
            # An abortive close (RST), as when the peer host goes away.
            writer.transport.abort()
        self.writers.clear()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.transport.abort()
            return
        self.writers.update((client_w, upstream_w))
        try:
            await asyncio.gather(self._pipe(client_r, upstream_w), self._pipe(upstream_r, client_w))
        finally:
            for writer in (client_w, upstream_w):
                self.writers.discard(writer)
                writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()


async def serve(proxy: CuttableProxy) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    pending: set[asyncio.Task[None]] = set()

    def later(coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGUSR1, lambda: later(proxy.cut()))
    loop.add_signal_handler(signal.SIGUSR2, lambda: later(proxy.open()))
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await proxy.open()
    print("ready", flush=True)
    await stop.wait()
    await proxy.cut()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="host:port")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    asyncio.run(serve(CuttableProxy(args.listen, host, int(port))))


if __name__ == "__main__":
    main()
