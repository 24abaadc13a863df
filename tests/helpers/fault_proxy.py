"""One forwarding HTTP proxy on 127.0.0.1 for fault injection in front of a real service (Barbican).

It records every request (``requests``, ``count``) and applies a fault plan to the requests its
``faults_on`` selects: by default the secret-creating POSTs, not keytools' RBAC probe. ``plan``
holds the actions for successive selected requests, ``default`` applies when it is empty:
"ok" (forward), "500" (answer 500, forward nothing), "lost" (forward, so the secret is stored,
then answer 500 instead), "hang" (sleep ``hang_seconds``, then forward).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = ("transfer-encoding", "connection", "content-length")
_ERROR = b'{"code": 500, "title": "Internal Server Error", "description": "%s"}'


def secret_post(method: str, path: str, body: bytes) -> bool:
    """A Barbican secret-creating POST that is not keytools' RBAC probe."""
    return method == "POST" and path.rstrip("/").endswith("/v1/secrets") and b"keytools-rbac-probe" not in body


class FaultProxy:
    """Forwards HTTP to ``upstream``; counts requests; answers the plan's faults (see the module)."""

    def __init__(self, upstream: str, port: int = 0,
                 faults_on: Callable[[str, str, bytes], bool] = secret_post) -> None:
        self.upstream = urlsplit(upstream)
        self.requests: list[str] = []
        self.plan: list[str] = []
        self.default = "ok"
        self.hang_seconds = 3.0
        self._faults_on = faults_on
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def count(self) -> int:
        return len(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _action(self, method: str, path: str, body: bytes) -> str:
        self.requests.append(f"{method} {path}")
        if not self._faults_on(method, path, body):
            return "ok"
        with self._lock:
            return self.plan.pop(0) if self.plan else self.default

    def _forward(self, method: str, path: str, headers: dict[str, str],
                 body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        return resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP], data

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def _send(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = proxy._action(self.command, self.path, body)
                json_type = [("Content-Type", "application/json")]
                if action == "500":
                    self._send(500, json_type, _ERROR % b"injected")
                    return
                if action == "hang":
                    time.sleep(proxy.hang_seconds)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                answer = proxy._forward(self.command, self.path, headers, body)
                if action == "lost":
                    self._send(500, json_type, _ERROR % b"answer lost")
                    return
                self._send(*answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle  # noqa: N815

        return Handler
