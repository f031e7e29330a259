"""A fault-injecting HTTP server on 127.0.0.1 for download tests.

Each path gets a script of `Reply`s served in order (the last one repeats); unscripted
paths answer 404. Replies can lie about Content-Length, stall before the body, drip it a few bytes at a
time, redirect, or send any status and headers, so retries and refusals are tested over
a real socket.
"""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass, field
from typing import Self


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_length: int | None = None  # declared length; None means len(body)
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    stall: float = 0.0  # seconds to wait after the headers (or after `stall_after` body bytes)
    stall_after: int = 0  # body bytes sent before the stall, so a client can be caught mid-body
    endless: bool = False  # repeat `body` until the client hangs up (a server that never stops)
    drip: float = 0.0  # a slow drip: seconds between pieces of `drip_bytes` bytes, so no single read times out
    drip_bytes: int = 2


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        server: FaultServer = self.server.owner
        reply = server._next_reply(self.path, dict(self.headers))
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        declared = len(reply.body) if reply.content_length is None else reply.content_length
        if reply.send_length:
            self.send_header("Content-Length", str(declared))
        # Lying about the length only works if the connection then closes.
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        try:
            self.wfile.write(reply.body[: reply.stall_after])
            self.wfile.flush()
            if reply.stall:
                time.sleep(reply.stall)
            self._send_rest(reply, reply.body[reply.stall_after :])
            while reply.endless:
                self.wfile.write(reply.body)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _send_rest(self, reply: Reply, rest: bytes) -> None:
        step = reply.drip_bytes if reply.drip else len(rest) or 1
        for start in range(0, len(rest), step):
            self.wfile.write(rest[start : start + step])
            self.wfile.flush()
            time.sleep(reply.drip)


class FaultServer:
    """`with FaultServer() as server: server.script(path, Reply(...), ...)`; `server.requests` logs paths."""

    def __init__(self):
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self._scripts: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self.requests: list[str] = []
        self.request_headers: list[dict[str, str]] = []
        self.request_times: list[float] = []
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[path] = list(replies)

    def _next_reply(self, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append(path)
            self.request_headers.append(headers)
            self.request_times.append(time.monotonic())
            replies = self._scripts.get(path)
            if not replies:
                return Reply(status=404, body=b"not found")
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
