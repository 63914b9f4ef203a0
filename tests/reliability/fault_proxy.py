"""A fault-injecting HTTP reverse proxy on 127.0.0.1, for driving real clients against real local servers.

``FaultProxy(upstream)`` forwards every request (any method, body and query string) to ``upstream`` (e.g. a real
``oxigraph serve-read-only`` or a search-API stand-in) and relays the answer with a ``Content-Length`` -- unless a
queued fault applies. Faults are consumed in FIFO order, one per request (``skip=K`` lets K requests pass first,
``times=N`` repeats a fault N times):

========== =====================================================================================================
``status`` answer ``status`` (e.g. 503, 429) with an error body and optional ``Retry-After``; nothing forwarded
``reset``  close the connection without any answer (the client sees "remote end closed connection")
``hang``   accept the request and send nothing at all (no status line) until released / ``hold_s``, then close
``truncate`` forward, then send a body cut inside a record, with a ``Content-Length`` that matches the cut body
           (the framing is fine; only parsing can tell)
``cut``    forward, announce the full ``Content-Length``, send half the body, close (a transport-level cut)
``stall``  forward, announce the full length, send half the body, then go silent (connection open) until
           released / ``hold_s``: a response that never ends
``drip``   forward, announce the full length, then send one byte every ``drip_s`` seconds until released /
           ``hold_s``: a response that never ends and never lets a per-read socket timeout fire
========== =====================================================================================================

Counters (server side): :attr:`received` (requests that reached the proxy), :attr:`forwarded` (requests passed to
the upstream), :attr:`by_key` (how often each distinct request -- method, path with query, sha256 of the body --
arrived) and :attr:`events` (one dict per request: index, monotonic time, key, fault, status sent).

A proxy created with ``listen=False`` has its port bound but does not accept connections yet: a client gets
"connection refused" until :meth:`listen` is called.
"""
from __future__ import annotations

import collections
import hashlib
import http.client
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

KINDS = ("status", "reset", "hang", "truncate", "cut", "stall", "drip")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "host", "content-length", "accept-encoding"}


@dataclass
class Fault:
    kind: str
    status: int = 503
    retry_after: str | None = None
    hold_s: float = 10.0
    drip_s: float = 0.2
    skip: int = 0


def cut_inside_record(body: bytes) -> bytes:
    """``body`` cut roughly in half, inside a line/record (never right after a newline or a final ``.``)."""
    if len(body) < 4:
        return body[:1]
    half = len(body) // 2
    nl = body.find(b"\n", half)
    cut = nl - 2 if nl > half + 2 else half
    while cut > 1 and body[cut - 1:cut] in (b"\n", b" ", b"."):
        cut -= 1
    return body[:cut]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # broken pipes after client timeouts are expected here
        pass


class FaultProxy:
    """See the module docstring. Use as a context manager; :attr:`url` is ``http://127.0.0.1:<port>``."""

    def __init__(self, upstream: str, *, listen: bool = True):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_prefix = parts.path.rstrip("/")
        self.received = 0
        self.forwarded = 0
        self.by_key: collections.Counter = collections.Counter()
        self.events: list[dict] = []
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server API
                proxy._handle(self)

            do_POST = do_GET  # noqa: N815
            do_HEAD = do_GET  # noqa: N815

        self._httpd = _Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self._httpd.server_bind()
        self._thread: threading.Thread | None = None
        if listen:
            self.listen()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def listen(self) -> None:
        """Start accepting connections (until now a client got "connection refused")."""
        if self._thread is not None:
            return
        self._httpd.server_activate()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fault-proxy", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """End every ``hang``/``stall``/``drip`` in progress (they close their connection)."""
        self._released.set()

    def close(self) -> None:
        self.release()
        if self._thread is not None:
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- configuration --------------------------------------------------------------------------------------------
    def add_fault(self, kind: str, times: int = 1, *, skip: int = 0, status: int = 503,
                  retry_after: str | None = None, hold_s: float = 10.0, drip_s: float = 0.2) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {KINDS}")
        self._released.clear()  # re-arm: holds queued from now on last until release() or hold_s
        with self._lock:
            for n in range(times):
                self._faults.append(Fault(kind, status, retry_after, hold_s, drip_s, skip if n == 0 else 0))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def times(self, fault: str | None = None) -> list[float]:
        """Arrival times (monotonic) of the requests, optionally only those that got ``fault`` (``"ok"``: none)."""
        with self._lock:
            return [e["t"] for e in self.events if fault is None or e["fault"] == fault]

    # -- request handling -----------------------------------------------------------------------------------------
    def _hold(self, seconds: float) -> None:
        self._released.wait(seconds)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        key = (h.command, h.path, hashlib.sha256(body).hexdigest())
        with self._lock:
            self.received += 1
            self.by_key[key] += 1
            fault = None
            if self._faults and self._faults[0].skip > 0:
                self._faults[0].skip -= 1
            elif self._faults:
                fault = self._faults.popleft()
            event = {"n": self.received, "t": time.monotonic(), "key": key, "fault": fault.kind if fault else "ok",
                     "status": None}
            self.events.append(event)
        try:
            self._answer(h, body, fault, event)
        except OSError:  # the client went away (timeout): expected with stall/drip/hang
            pass
        h.close_connection = h.close_connection or fault is not None

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, str, dict, bytes]:
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            conn.request(h.command, self.upstream_prefix + h.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            kept = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
            with self._lock:
                self.forwarded += 1
            return resp.status, resp.reason, kept, data
        finally:
            conn.close()

    def _answer(self, h: BaseHTTPRequestHandler, body: bytes, fault: Fault | None, event: dict) -> None:
        kind = fault.kind if fault else "ok"
        if kind == "reset":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if kind == "hang":
            self._hold(fault.hold_s)
            h.close_connection = True
            return
        if kind == "status":
            data = f'{{"error": "fault proxy: HTTP {fault.status}"}}'.encode()
            event["status"] = fault.status
            h.send_response(fault.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            if fault.retry_after is not None:
                h.send_header("Retry-After", fault.retry_after)
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
            return
        status, reason, headers, data = self._forward(h, body)
        event["status"], event["bytes"] = status, len(data)
        sent, declared = data, len(data)
        if kind == "truncate":
            sent = cut_inside_record(data)
            declared = len(sent)
        elif kind in ("cut", "stall"):
            sent = data[: len(data) // 2]
        elif kind == "drip":
            sent = b""
        h.send_response(status, reason)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(declared))
        if fault is not None:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(sent)
        h.wfile.flush()
        if kind == "stall":
            self._hold(fault.hold_s)
        elif kind == "drip":
            deadline = time.monotonic() + fault.hold_s
            for i in range(len(data)):
                if self._released.is_set() or time.monotonic() > deadline:
                    break
                h.wfile.write(data[i:i + 1])
                h.wfile.flush()
                self._released.wait(fault.drip_s)
