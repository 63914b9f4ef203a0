"""Base class of the local stand-in servers (NOT the real APIs) used to test ``scripts/lib/search/search_web.py``.

A stand-in is a threaded ``http.server`` on 127.0.0.1 with an ephemeral port. It serves canned, deterministic
responses shaped like the documented wire format of one API, records every request (per-path counter, per-request
counter, the parsed parameters and headers) and can inject faults, consumed in FIFO order, one per request:

* ``add_fault("status", status=503)``: answer with that status (JSON error body) instead of the real response;
  ``retry_after="1"`` (seconds or an HTTP date) adds a ``Retry-After`` header.
* ``add_fault("truncated")``: the normal 200 response cut in half (valid ``Content-Length``, invalid JSON).
* ``add_fault("short_body")``: the normal response, but ``Content-Length`` promises more bytes than are sent
  before the connection is closed (the client sees a broken body).
* ``add_fault("slow", delay=2.0)``: sleep before answering (to exceed the client's timeout).

``times=N`` repeats a fault for N consecutive requests; ``skip=K`` lets K requests pass normally first.
Subclasses implement :meth:`respond` (and optionally :meth:`check_auth`).
"""
from __future__ import annotations

import collections
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """One HTTP answer of a stand-in. ``body``: dict/list (sent as JSON), str or bytes."""

    status: int = 200
    body: Any = None
    headers: dict = field(default_factory=dict)


@dataclass
class Recorded:
    """One request as the stand-in saw it."""

    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name)
        return values[0] if values else default

    @property
    def key(self) -> tuple:
        """Identity of a request: path + every parameter (for "was anything sent twice?")."""
        return (self.method, self.path, tuple(sorted((k, tuple(v)) for k, v in self.params.items())))


@dataclass
class Fault:
    kind: str
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    skip: int = 0


def slug(text: str) -> str:
    """A URL-safe slug of a query text."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "q"


def fake_items(q: str, n: int) -> list[dict]:
    """``n`` deterministic fake image records for query ``q`` (the same q always gives the same records)."""
    s = slug(q)
    out = []
    for i in range(n):
        h = int(hashlib.sha256(f"{q}\t{i}".encode()).hexdigest()[:8], 16)
        out.append({
            "i": i,
            "id": f"{s}-{i}",
            "title": f"{q} photo {i}",
            "image_url": f"https://images.example.org/{s}/{i}.jpg",
            "page_url": f"https://pages.example.org/{s}/{i}.html",
            "width": 400 + h % 1600,
            "height": 300 + (h >> 11) % 1200,
        })
    return out


class StandinServer:
    """A threaded local HTTP server standing in for a real API (see module docstring). Use as a context manager."""

    api_name = "generic"

    def __init__(self, *, api_key: str | None = None, n_results: int | Mapping[str, int] = 45):
        self.api_key = api_key
        self.n_results = n_results
        self.counts: collections.Counter = collections.Counter()      # per path
        self.distinct: collections.Counter = collections.Counter()    # per Recorded.key
        self.requests: list[Recorded] = []
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration --------------------------------------------------------------------------------------------
    def add_fault(self, kind: str, times: int = 1, *, status: int = 503, retry_after: str | None = None,
                  delay: float = 0.0, skip: int = 0) -> None:
        """Queue ``times`` faults of ``kind`` (``status``, ``truncated``, ``short_body``, ``slow``), the first one
        after ``skip`` normal requests."""
        if kind not in ("status", "truncated", "short_body", "slow"):
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            for n in range(times):
                self._faults.append(Fault(kind, status, retry_after, delay, skip if n == 0 else 0))

    def results_for(self, q: str) -> int:
        """How many results the stand-in has for query ``q``."""
        if isinstance(self.n_results, Mapping):
            return int(self.n_results.get(q, self.n_results.get("*", 0)))
        return int(self.n_results)

    def items(self, q: str) -> list[dict]:
        """The image records the stand-in has for query ``q`` (:func:`fake_items`; a subclass may serve real ones)."""
        return fake_items(q, self.results_for(q))

    def request_count(self, path: str | None = None) -> int:
        """Requests received (on ``path``, or in total), faults included."""
        with self._lock:
            return sum(self.counts.values()) if path is None else self.counts[path]

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.distinct.clear()
            self.requests.clear()

    # -- to override ----------------------------------------------------------------------------------------------
    def check_auth(self, req: Recorded) -> Reply | None:
        """``None`` when the request is authorised, else the error reply."""
        return None

    def respond(self, req: Recorded) -> Reply:
        """The normal reply. The generic stand-in echoes the parameters at ``/echo``."""
        if req.path == "/echo":
            return Reply(200, {"params": req.params, "ok": True})
        return Reply(404, {"error": f"no route {req.path}"})

    def respond_post(self, req: Recorded, body: bytes) -> Reply:
        """The reply to a POST (``body``: the raw request body). The search APIs are GET only."""
        return Reply(405, {"error": f"POST not supported at {req.path}"})

    def fault_reply(self, fault: "Fault") -> Reply:
        """The error reply of a ``status`` fault, in the API's error shape."""
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        return Reply(fault.status, {"error": f"stand-in fault: HTTP {fault.status}"}, headers)

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "stand-in not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> "StandinServer":
        """Start serving on 127.0.0.1 (``port`` 0: an ephemeral port, see :attr:`url`)."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms ACK stalls

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):  # noqa: N802 - http.server API
                standin._handle(self)

            def do_POST(self):  # noqa: N802 - http.server API
                standin._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, client_address: None  # broken pipes after client timeouts
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"standin-{self.api_name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "StandinServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- request handling -----------------------------------------------------------------------------------------
    def _next_fault(self) -> "Fault | None":
        """The fault for this request (call with ``self._lock`` held): skip counts down first, then pop."""
        if self._faults and self._faults[0].skip > 0:
            self._faults[0].skip -= 1
            return None
        return self._faults.popleft() if self._faults else None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        body = None
        if h.command == "POST":
            length = int(h.headers.get("Content-Length") or 0)
            body = h.rfile.read(length) if length else b""
        req = Recorded(h.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                       {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.counts[req.path] += 1
            self.distinct[req.key] += 1
            self.requests.append(req)
            fault = self._next_fault()
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "status":
            reply = self.fault_reply(fault)
        elif body is not None:
            reply = self.respond_post(req, body)
        else:
            reply = self.check_auth(req) or self.respond(req)
        body = reply.body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body or b""
        declared = len(data)
        if fault is not None and fault.kind == "truncated":
            data = data[: max(1, len(data) // 2)]
            declared = len(data)
        elif fault is not None and fault.kind == "short_body":
            declared = len(data) + 100
            data = data[: len(data) // 2]
        try:
            h.send_response(reply.status)
            h.send_header("Content-Type", reply.headers.pop("Content-Type", "application/json; charset=utf-8"))
            h.send_header("Content-Length", str(declared))
            for k, v in reply.headers.items():
                h.send_header(k, v)
            if fault is not None and fault.kind == "short_body":
                h.send_header("Connection", "close")
                h.close_connection = True
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:  # the client gave up (timeout) and closed the socket
            h.close_connection = True
