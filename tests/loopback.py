"""Real local servers for the integration and reliability tests: a read-only oxigraph SPARQL endpoint and a photo
server, on free loopback ports."""
from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

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


class PhotoServer:
    """Serve a directory (plus ``extra`` in-memory files) on 127.0.0.1 like
    ``lib.data.loopback_server.serve_directory``, counting GETs, with a brake: after :meth:`hold_after` ``n``, every
    further request waits unanswered until :meth:`release`."""

    def __init__(self, directory: Path, extra: dict[str, bytes] | None = None, port: int = 0):
        self.extra = dict(extra or {})  # URL path -> JPEG bytes served in addition to the directory
        self.count = 0
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._hold_after: int | None = None
        self._released = threading.Event()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                with server._lock:
                    server.count += 1
                    server.paths.append(self.path)
                    n = server.count
                    hold = server._hold_after is not None and n > server._hold_after
                if hold:
                    server._released.wait(120)
                    self.close_connection = True
                    return
                data = server.extra.get(self.path)
                if data is None:
                    return super().do_GET()
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", port), functools.partial(Handler, directory=str(directory)))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def hold_after(self, n: int | None) -> None:
        with self._lock:
            self._hold_after = n
            self.count = 0
            self.paths.clear()
        self._released.clear()

    def release(self) -> None:
        with self._lock:
            self._hold_after = None
        self._released.set()

    def close(self) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()
