"""Real local servers for the integration and reliability tests: a read-only oxigraph SPARQL endpoint and a photo
server (on the shared test-server base, ``tests/http_testserver.py``), on free loopback ports."""
from __future__ import annotations

import contextlib
import mimetypes
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

from http_testserver import HttpTestServer, Recorded, Reply

REPO = Path(__file__).resolve().parents[1]
DEMO_TTL = REPO / "resources/demo/kg/extract.ttl"
OXIGRAPH = Path(sys.executable).parent / "oxigraph"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout} s")


@contextlib.contextmanager
def oxigraph_server(workdir: Path, ttl: Path = DEMO_TTL, port: int = 0):
    """``oxigraph load`` + ``oxigraph serve-read-only`` on a loopback port (0: a free one); yields the ``/query``
    URL."""
    db = Path(workdir) / "db"
    load = subprocess.run([str(OXIGRAPH), "load", "--location", str(db), "--file", str(ttl)], capture_output=True,
                          text=True)
    if load.returncode != 0:
        raise RuntimeError(f"oxigraph load {ttl} failed: {load.stderr[-2000:]}")
    port = port or free_port()
    proc = subprocess.Popen([str(OXIGRAPH), "serve-read-only", "--location", str(db), "--bind", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(up, 20, 0.05, "oxigraph serve-read-only listening")
        yield f"http://127.0.0.1:{port}/query"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class PhotoServer(HttpTestServer):
    """Serve a directory (plus ``extra`` in-memory files) on 127.0.0.1 like
    ``lib.data.loopback_server.serve_directory`` (HTTP/1.0, one request per connection), serving from construction
    until :meth:`close`, with a brake: after :meth:`hold_after` ``n``, every further request waits unanswered until
    :meth:`release` (the base's ``hang`` fault, queued after ``n`` requests)."""

    protocol_version = "HTTP/1.0"
    thread_name = "photo-server"
    error_label = "photo server"
    HOLD_S = 120.0
    HOLD_MAX = 10_000  # requests held after the n-th: far more than any test sends

    def __init__(self, directory: Path, extra: dict[str, bytes] | None = None, port: int = 0):
        super().__init__()
        self.directory = Path(directory).resolve()
        self.extra = dict(extra or {})  # URL path -> JPEG bytes served in addition to the directory
        self.start(port)

    @property
    def count(self) -> int:
        """Requests since the start or the last :meth:`hold_after`, held ones included."""
        return self.request_count()

    @property
    def paths(self) -> list[str]:
        """Their paths as sent, in order."""
        with self._lock:
            return [r.raw_path for r in self.requests]

    def reply(self, req: Recorded) -> Reply:
        data = self.extra.get(req.raw_path)
        if data is not None:
            return Reply(200, data, {"Content-Type": "image/jpeg"})
        file = (self.directory / unquote(req.path).lstrip("/")).resolve()
        if not file.is_file() or not file.is_relative_to(self.directory):
            return Reply(404, b"File not found", {"Content-Type": "text/plain"})
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return Reply(200, file.read_bytes(), {"Content-Type": ctype})

    def hold_after(self, n: int | None) -> None:
        """Count afresh; from the (``n`` + 1)-th request on, hold every request (``None``: hold none)."""
        self.reset_counts()
        self.clear_faults()
        if n is not None:
            self.add_fault("hang", times=self.HOLD_MAX, skip=n, hold_s=self.HOLD_S)

    def release(self) -> None:
        """Lift the brake: held requests close unanswered, later ones are served."""
        self.clear_faults()
        super().release()

    def close(self) -> None:
        self.stop()
