"""The one base of the fault-injecting HTTP test servers: a threaded ``http.server`` on 127.0.0.1 (a free port),
started and stopped as a context manager, with a request log and one fault vocabulary.

Built on it: the search-API stand-ins (``tests/standins``), the reverse proxy of the reliability suite
(``tests/reliability/fault_proxy.py``), the image server of the download tests (``tests/faulty_image_server.py``),
the Hugging Face Hub stand-in (``tests/hf_hub_standin.py``) and the photo server (``tests/loopback.py``).
A subclass implements :meth:`HttpTestServer.reply` (the normal answer to a :class:`Recorded` request).

Faults are queued with :meth:`HttpTestServer.add_fault` and consumed in FIFO order, one per request (``skip=K`` lets K
requests pass first, ``times=N`` repeats a fault N times); a :class:`Reply` may also carry its own (a route that is
always faulty). Every faulted answer closes its connection.

============ ======================================================================================================
``status``   answer :meth:`HttpTestServer.fault_reply` instead: ``status`` (e.g. 503, 429) with an error body and, with
             ``retry_after`` (seconds or an HTTP date, or a function returning one, called when the fault is
             served: an HTTP date "3 s from now" must be computed then, not when the fault was queued), a
             ``Retry-After`` header; :meth:`reply` is not called
``slow``     wait ``delay`` seconds (or until :meth:`release`), then answer normally
``reset``    close the connection without any answer (the client sees "remote end closed connection")
``hang``     send nothing at all (no status line) until :meth:`release` / ``hold_s``, then close
``truncate`` the body cut inside a record (:func:`cut_inside_record`), with a ``Content-Length`` that matches the
             cut body (the framing is fine; only parsing can tell)
``cut``      announce the full ``Content-Length``, send half the body, close (a transport-level cut)
``stall``    announce the full length, send half the body, then go silent (connection open) until released /
             ``hold_s``: a response that never ends
``drip``     announce the full length, then send one byte every ``drip_s`` seconds until the body is sent, or until
             released / ``hold_s``: a response that never lets a per-read socket timeout fire
============ ======================================================================================================

Request log (server side, every request, faults included): :attr:`HttpTestServer.requests` (one :class:`Recorded` each:
index, arrival time, method, path, parameters, headers, body, fault, status and length of the answer),
:attr:`HttpTestServer.counts` (per path) and :attr:`HttpTestServer.distinct` (per :attr:`Recorded.key`).
"""
from __future__ import annotations

import collections
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

KINDS = ("status", "slow", "reset", "hang", "truncate", "cut", "stall", "drip")


@dataclass
class Fault:
    """One queued fault (see the module docstring for the kinds)."""

    kind: str
    status: int = 503
    retry_after: str | Callable[[], str] | None = None
    delay: float = 0.0
    hold_s: float = 10.0
    drip_s: float = 0.2
    skip: int = 0


@dataclass
class Reply:
    """One HTTP answer. ``body``: dict/list (sent as JSON), str or bytes; ``fault``: a fault this answer always
    carries (unless a queued one applies)."""

    status: int = 200
    body: Any = None
    headers: dict = field(default_factory=dict)
    reason: str | None = None
    fault: Fault | None = None

    def data(self) -> bytes:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode()
        if isinstance(self.body, str):
            return self.body.encode()
        return self.body or b""


@dataclass
class Recorded:
    """One request as the server saw it, and what it answered (``fault``: the queued fault's kind or ``"ok"``;
    ``status`` and ``size``: the answer's status and full body length, ``None`` when there was none)."""

    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    raw_path: str = ""
    n: int = 0
    t: float = 0.0
    fault: str = "ok"
    status: int | None = None
    size: int | None = None

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name)
        return values[0] if values else default

    @property
    def key(self) -> tuple:
        """Identity of a request: method, path, every parameter and the body's sha256 (for "was anything sent
        twice?")."""
        return (self.method, self.path, tuple(sorted((k, tuple(v)) for k, v in self.params.items())),
                hashlib.sha256(self.body).hexdigest())


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
    request_queue_size = 256

    def handle_error(self, request, client_address):  # broken pipes after client timeouts are expected here
        pass


class HttpTestServer:
    """See the module docstring. ``with Server() as srv:`` serves on :attr:`url` until the block ends."""

    protocol_version = "HTTP/1.1"
    thread_name = "http-testserver"
    error_label = "test server"        # the error body of a ``status`` fault names it
    content_type = "application/json; charset=utf-8"   # when a reply names none

    def __init__(self):
        self.counts: collections.Counter = collections.Counter()      # per path
        self.distinct: collections.Counter = collections.Counter()    # per Recorded.key
        self.requests: list[Recorded] = []
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._httpd: _Server | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def bind(self, port: int = 0) -> None:
        """Bind 127.0.0.1:``port`` (0: a free one) without accepting connections: a client gets "connection
        refused" until :meth:`start`."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = self.protocol_version
            disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms ACK stalls

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):  # noqa: N802 - http.server API
                server._handle(self)

            do_POST = do_GET  # noqa: N815
            do_HEAD = do_GET  # noqa: N815

        self._httpd = _Server(("127.0.0.1", port), Handler, bind_and_activate=False)
        self._httpd.server_bind()
        self._port = self._httpd.server_address[1]

    def start(self, port: int = 0) -> "HttpTestServer":
        """Serve on 127.0.0.1:``port`` (0: a free one, see :attr:`url`); nothing happens when already serving."""
        if self._thread is not None:
            return self
        if self._httpd is None:
            self.bind(port)
        self._released.clear()
        self._httpd.server_activate()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End every hold in progress, stop serving and free the port."""
        self.release()
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
            self._httpd.server_close()
        self._httpd = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (kept after :meth:`stop`: a client then gets "connection refused")."""
        assert self._port is not None, "server not started"
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_until_interrupted(self, port: int = 0, what: str = "serving") -> None:
        """Serve on ``port`` until Ctrl-C (manual checks, benchmarks)."""
        self.start(port)
        print(f"{what} at {self.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.stop()

    # -- faults ---------------------------------------------------------------------------------------------------
    def add_fault(self, kind: str, times: int = 1, *, skip: int = 0, status: int = 503,
                  retry_after: str | Callable[[], str] | None = None, delay: float = 0.0, hold_s: float = 10.0,
                  drip_s: float = 0.2) -> None:
        """Queue ``times`` faults of ``kind``, the first one after ``skip`` normal requests."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {KINDS}")
        self._released.clear()  # re-arm: holds queued from now on last until release() or their time
        with self._lock:
            for n in range(times):
                self._faults.append(Fault(kind, status, retry_after, delay, hold_s, drip_s, skip if n == 0 else 0))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def release(self) -> None:
        """End every ``slow``/``hang``/``stall``/``drip`` in progress (they close their connection)."""
        self._released.set()

    # -- request log ----------------------------------------------------------------------------------------------
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
    def reply(self, req: Recorded) -> Reply:
        """The normal answer to ``req``."""
        return Reply(404, {"error": f"no route {req.path}"})

    def fault_reply(self, fault: Fault) -> Reply:
        """The error answer of a ``status`` fault."""
        return Reply(fault.status, {"error": f"{self.error_label} fault: HTTP {fault.status}"},
                     self.retry_after_header(fault))

    @staticmethod
    def retry_after_header(fault: Fault) -> dict[str, str]:
        """``{"Retry-After": …}`` for a fault that asks for one (a function is called now), else ``{}``."""
        value = fault.retry_after() if callable(fault.retry_after) else fault.retry_after
        return {"Retry-After": value} if value is not None else {}

    # -- request handling -----------------------------------------------------------------------------------------
    def _record(self, h: BaseHTTPRequestHandler) -> tuple[Recorded, Fault | None]:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        req = Recorded(h.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                       {k.lower(): v for k, v in h.headers.items()}, body, h.path, t=time.monotonic())
        with self._lock:
            fault = None
            if self._faults and self._faults[0].skip > 0:
                self._faults[0].skip -= 1
            elif self._faults:
                fault = self._faults.popleft()
            req.n, req.fault = len(self.requests) + 1, fault.kind if fault else "ok"
            self.counts[req.path] += 1
            self.distinct[req.key] += 1
            self.requests.append(req)
        return req, fault

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        req, fault = self._record(h)
        try:
            self._answer(h, req, fault)
        except OSError:  # the client gave up (timeout) and closed the socket
            h.close_connection = True

    def _answer(self, h: BaseHTTPRequestHandler, req: Recorded, fault: Fault | None) -> None:
        kind = fault.kind if fault else "ok"
        if kind == "reset":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if kind == "hang":
            self._released.wait(fault.hold_s)
            h.close_connection = True
            return
        if kind == "slow":
            self._released.wait(fault.delay)
        reply = self.fault_reply(fault) if kind == "status" else self.reply(req)
        self._send(h, req, reply, fault or reply.fault)

    def _send(self, h: BaseHTTPRequestHandler, req: Recorded, reply: Reply, fault: Fault | None) -> None:
        data = reply.data()
        req.status, req.size = reply.status, len(data)
        kind = fault.kind if fault else "ok"
        sent, declared = data, len(data)
        if kind == "truncate":
            sent = cut_inside_record(data)
            declared = len(sent)
        elif kind in ("cut", "stall"):
            sent = data[: len(data) // 2]
        elif kind == "drip":
            sent = b""
        h.send_response(reply.status, reply.reason)
        if not any(k.lower() == "content-type" for k in reply.headers):
            h.send_header("Content-Type", self.content_type)
        h.send_header("Content-Length", str(declared))
        for k, v in reply.headers.items():
            h.send_header(k, v)
        if fault is not None:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(sent)
        h.wfile.flush()
        if kind == "stall":
            self._released.wait(fault.hold_s)
        elif kind == "drip":
            self._drip(h, data, fault)

    def _drip(self, h: BaseHTTPRequestHandler, data: bytes, fault: Fault) -> None:
        deadline = time.monotonic() + fault.hold_s
        for i in range(len(data)):
            if self._released.is_set() or time.monotonic() > deadline:
                break
            h.wfile.write(data[i:i + 1])
            h.wfile.flush()
            self._released.wait(fault.drip_s)
