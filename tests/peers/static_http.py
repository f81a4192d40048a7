"""A real HTTP server (the standard library's) on loopback that answers GETs from a table the
test fills in: what an identity provider's metadata, discovery or key endpoints answer, as
the test wants them (broken, hostile, redirecting). Started and stopped by the test."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], bytes]


class StaticHttp:
    """Answers each GET with the answer set for its path, else ``default``; records each
    request's path and Accept header in ``requests``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.default: Answer = (404, {}, b"")
        self.answers: dict[str, Answer] = {}
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Accept", "")))
                status, headers, body = server.answers.get(self.path, server.default)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family})
        self.httpd = server_class((host, 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.httpd.server_address[1]}"

    def url(self, path: str = "/") -> str:
        return f"{self.origin}{path}"

    def answer(self, path: str, body: bytes | str, status: int = 200, **headers: str) -> None:
        self.answers[path] = (status, headers, body.encode() if isinstance(body, str) else body)

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def __enter__(self) -> StaticHttp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
