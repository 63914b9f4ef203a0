"""A fault-injecting HTTP reverse proxy on 127.0.0.1, for driving real clients against real local servers.

``FaultProxy(upstream)`` forwards every request (any method, body and query string) to ``upstream`` (e.g. a real
``oxigraph serve-read-only`` or a search-API stand-in) and relays the answer with a ``Content-Length`` -- unless a
queued fault applies. It is an :class:`http_testserver.HttpTestServer`, with that module's faults: ``status``,
``reset`` and ``hang`` answer without forwarding; ``truncate``, ``cut``, ``stall`` and ``drip`` forward, then break
the upstream's answer on its way back.

Counters (server side): :attr:`received` (requests that reached the proxy), :attr:`forwarded` (requests passed to
the upstream), :attr:`by_key` (how often each distinct request -- method, path, parameters, sha256 of the body --
arrived) and :attr:`requests` (one :class:`http_testserver.Recorded` per request: index, monotonic time ``t``,
``key``, ``fault``, ``status`` and ``size`` of the answer).

A proxy created with ``listen=False`` has its port bound but does not accept connections yet: a client gets
"connection refused" until :meth:`listen` is called.
"""
from __future__ import annotations

import http.client
import sys
from pathlib import Path
from urllib.parse import urlsplit

TESTS = str(Path(__file__).resolve().parents[1])  # tests/ (http_testserver)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
from http_testserver import HttpTestServer, Recorded, Reply  # noqa: E402

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "host", "content-length", "accept-encoding"}


class FaultProxy(HttpTestServer):
    """See the module docstring. Use as a context manager; :attr:`url` is ``http://127.0.0.1:<port>``."""

    thread_name = "fault-proxy"
    error_label = "fault proxy"

    def __init__(self, upstream: str, *, listen: bool = True):
        super().__init__()
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_prefix = parts.path.rstrip("/")
        self.forwarded = 0
        self.bind(0)
        if listen:
            self.listen()

    def listen(self) -> None:
        """Start accepting connections (until now a client got "connection refused")."""
        self.start()

    def close(self) -> None:
        self.stop()

    @property
    def received(self) -> int:
        """Requests that reached the proxy."""
        with self._lock:
            return len(self.requests)

    @property
    def by_key(self):
        """How often each distinct request (:attr:`http_testserver.Recorded.key`) arrived."""
        return self.distinct

    def reply(self, req: Recorded) -> Reply:
        """The upstream's answer to ``req`` (hop-by-hop headers dropped)."""
        headers = {k: v for k, v in req.headers.items() if k not in HOP_BY_HOP}
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            conn.request(req.method, self.upstream_prefix + req.raw_path, body=req.body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            kept = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
            with self._lock:
                self.forwarded += 1
            return Reply(resp.status, data, kept, resp.reason)
        finally:
            conn.close()
