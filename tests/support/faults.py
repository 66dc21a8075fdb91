"""Fault injection for the fault tests: a small HTTP proxy on loopback that forwards to a real
server (the AWS emulator, Vault) and, while a fault is switched on, answers in its place the way
a struggling AWS endpoint does:

- ``throttle``: HTTP 400 with ``x-amzn-ErrorType: ThrottlingException`` and the JSON body AWS's
  JSON protocols send (``{"__type":"ThrottlingException","message":"Rate exceeded"}``);
- ``unavailable``: HTTP 503 (``ServiceUnavailable``).

It counts what it forwarded and what it refused, so a test can wait for "the operator has met
the fault N times" instead of sleeping."""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

Fault = Literal["throttle", "unavailable"]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}
THROTTLE_BODY = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
UNAVAILABLE_BODY = b'{"__type":"ServiceUnavailable","message":"Service Unavailable"}'


class FaultProxy:
    """``FaultProxy(upstream).start()``; point a client at ``proxy.endpoint``; ``proxy.fault =
    "throttle"`` (or ``"unavailable"``, or None for pass-through) at any time."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"FaultProxy forwards to plain http only, not {upstream!r}")
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self.fault: Fault | None = None
        self.counts: Counter[str] = Counter()  # forwarded, throttle, unavailable, upstream-error
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_LIST = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, what: str) -> int:
        with self._lock:
            return self.counts[what]

    def _bump(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    # ------------------------------------------------------------------ one request
    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        fault = self.fault
        if fault == "throttle":
            self._bump("throttle")
            self._answer(req, 400, THROTTLE_BODY, {"x-amzn-ErrorType": "ThrottlingException"})
            return
        if fault == "unavailable":
            self._bump("unavailable")
            self._answer(req, 503, UNAVAILABLE_BODY, {"x-amzn-ErrorType": "ServiceUnavailable"})
            return
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            conn.request(req.command, req.path, body=body, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP | {"content-length"}}
            status = resp.status
        except OSError:
            self._bump("upstream-error")
            self._answer(req, 502, b"bad gateway", {})
            return
        finally:
            conn.close()
        self._bump("forwarded")
        self._answer(req, status, payload, out)

    @staticmethod
    def _answer(req: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        req.send_response(status)
        for key, value in headers.items():
            req.send_header(key, value)
        if not any(k.lower() == "content-type" for k in headers):
            req.send_header("Content-Type", "application/x-amz-json-1.1")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)
