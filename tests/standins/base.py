"""Base class of the local stand-in servers (NOT the real APIs) used to test ``scripts/lib/search/search_web.py``.

A stand-in is a :class:`http_testserver.HttpTestServer` (threaded, 127.0.0.1, ephemeral port, request log, fault
queue: see that module for the fault kinds, e.g. ``add_fault("status", status=429, retry_after="1")``,
``add_fault("truncate")``, ``add_fault("cut")``, ``add_fault("slow", delay=2.0)``). It serves canned,
deterministic responses shaped like the documented wire format of one API; a ``status`` fault answers in the API's
error shape (:meth:`StandinServer.fault_reply`).

Subclasses implement :meth:`StandinServer.respond` (and optionally :meth:`StandinServer.check_auth` and
:meth:`StandinServer.respond_post`).
"""
from __future__ import annotations

import hashlib
import re
from typing import Mapping

from http_testserver import Fault, HttpTestServer, Recorded, Reply

__all__ = ["Fault", "Recorded", "Reply", "StandinServer", "fake_items", "slug"]


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


class StandinServer(HttpTestServer):
    """A threaded local HTTP server standing in for a real API (see module docstring). Use as a context manager."""

    api_name = "generic"
    error_label = "stand-in"

    def __init__(self, *, api_key: str | None = None, n_results: int | Mapping[str, int] = 45):
        super().__init__()
        self.api_key = api_key
        self.n_results = n_results
        self.thread_name = f"standin-{self.api_name}"

    def results_for(self, q: str) -> int:
        """How many results the stand-in has for query ``q``."""
        if isinstance(self.n_results, Mapping):
            return int(self.n_results.get(q, self.n_results.get("*", 0)))
        return int(self.n_results)

    def items(self, q: str) -> list[dict]:
        """The image records the stand-in has for query ``q`` (:func:`fake_items`; a subclass may serve real ones)."""
        return fake_items(q, self.results_for(q))

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

    def reply(self, req: Recorded) -> Reply:
        if req.method == "POST":
            return self.respond_post(req, req.body)
        return self.check_auth(req) or self.respond(req)
