"""A real threaded HTTP image server on 127.0.0.1 that serves good images and the faults web crawls meet.

Used by ``tests/integration/test_download_faults.py`` (img2dataset through ``scripts/download.py``) and by
``perf/bench_download.py``. Routes (``GET``):

=========================  ==========================================================================================
``/good/<name>``           a registered image (:meth:`FaultyImageServer.add_image`), else a synthetic JPEG (q95,
                           ``good_size``, default 320x240, pixels seeded by ``<name>``: distinct names give
                           perceptually distinct images; ``distinct=N`` cycles N images, for benchmarks)
``/missing/<name>``        404
``/html/<name>``           an HTML page served as ``Content-Type: image/jpeg`` (hotlink-protection pages do this)
``/truncated/<name>``      the first half of a good JPEG, ``Content-Length`` = the half (a file cut on disk)
``/short/<name>``          a good JPEG whose ``Content-Length`` promises the whole file, connection closed at half
``/zero/<name>``           200 with a zero-byte body
``/loop/<name>``           302 to ``/loop2/<name>``, which 302s back: a redirect loop
``/huge/<name>``           a 12000x12000 greyscale PNG (144 Mpx, ~0.4 MB on the wire): above PIL's
                           decompression-bomb warning limit (``Image.MAX_IMAGE_PIXELS`` = 89.5 Mpx)
``/drip/<name>``           a good JPEG sent 1 byte per ``drip_interval_s`` (default 1 s) after a full
                           ``Content-Length``; the connection is closed after ``drip_close_s`` (default 60 s)
``/noai/<name>``           a good JPEG with ``X-Robots-Tag: noai`` (opt-out from AI training)
=========================  ==========================================================================================

Every request is counted per path (:meth:`FaultyImageServer.count`). Use as a context manager::

    with FaultyImageServer(drip_close_s=5) as srv:
        url = srv.url("/good/a.jpg")

``python tests/faulty_image_server.py --port 8000`` serves until interrupted (manual checks, benchmarks).
"""

import argparse
import collections
import hashlib
import io
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

ROUTES = ("good", "missing", "html", "truncated", "short", "zero", "loop", "loop2", "huge", "drip", "noai")
HTML = b"<!DOCTYPE html><html><head><title>Hotlinking forbidden</title></head><body>No.</body></html>\n"


def synthetic_jpeg(name: str, size: tuple[int, int] = (320, 240), quality: int = 95) -> bytes:
    """A deterministic JPEG whose content depends on ``name``: coarse random blocks (distinct pHashes per name)."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    w, h = size
    blocks = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(blocks, "RGB").resize((w, h), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def huge_png(width: int = 12000, height: int = 12000) -> bytes:
    """A valid 8-bit greyscale PNG of ``width`` x ``height`` built row by row (no full raster in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(6)
    row = b"\x00" + bytes((x // 47) % 256 for x in range(width))   # filter 0 + a horizontal ramp
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


class FaultyImageServer:
    """Threaded HTTP/1.0 server on ``127.0.0.1`` (ephemeral port) serving the routes of the module docstring."""

    def __init__(self, *, drip_interval_s: float = 1.0, drip_close_s: float = 60.0, huge_side: int = 12000,
                 good_size: tuple[int, int] = (320, 240), distinct: int | None = None):
        if drip_close_s > 60:
            raise ValueError("drip_close_s must be <= 60 s")
        self.good_size = (int(good_size[0]), int(good_size[1]))
        self.distinct = distinct           # serve only this many distinct synthetic images (names hashed onto them)
        self.drip_interval_s = float(drip_interval_s)
        self.drip_close_s = float(drip_close_s)
        self.huge_side = int(huge_side)
        self.images: dict[str, bytes] = {}
        self.counts: collections.Counter = collections.Counter()
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- content ------------------------------------------------------------------------------------------------
    def add_image(self, name: str, data: bytes) -> None:
        """Serve ``data`` at ``/good/<name>`` (and as the body of the other routes' ``<name>``)."""
        with self._lock:
            self.images[name] = bytes(data)

    def image(self, name: str) -> bytes:
        with self._lock:
            if name in self.images:
                return self.images[name]
            if self.distinct:
                name = f"__img{int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % self.distinct}"
            if name not in self._cache:
                self._cache[name] = synthetic_jpeg(name, self.good_size)
            return self._cache[name]

    def warm(self) -> None:
        """Encode every synthetic image of a ``distinct`` server now (not during a timed run)."""
        with self._lock:
            for i in range(self.distinct or 0):
                self._cache.setdefault(f"__img{i}", synthetic_jpeg(f"__img{i}", self.good_size))

    def _huge(self) -> bytes:
        with self._lock:
            if "__huge__" not in self._cache:
                self._cache["__huge__"] = huge_png(self.huge_side, self.huge_side)
            return self._cache["__huge__"]

    def count(self, path: str) -> int:
        """Requests received on ``path`` (e.g. ``"/missing/a.jpg"``)."""
        with self._lock:
            return self.counts[path]

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def start(self, port: int = 0) -> "FaultyImageServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"          # one request per connection, as urllib does
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server API
                server._handle(self)

        self._stop.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.request_queue_size = 256
        self._httpd.handle_error = lambda request, client_address: None   # broken pipes from client timeouts
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="faulty-image-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()                     # ends running drips
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FaultyImageServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- handling -----------------------------------------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "image/jpeg",
              headers: dict | None = None, length: int | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        with self._lock:
            self.counts[path] += 1
        route, _, name = path.strip("/").partition("/")
        if route not in ROUTES or not name:
            return self._send(h, 404, b"no such route\n", "text/plain")
        if route == "good":
            ctype = "image/png" if self.image(name)[:4] == b"\x89PNG" else "image/jpeg"
            return self._send(h, 200, self.image(name), ctype)
        if route == "missing":
            return self._send(h, 404, b"not found\n", "text/plain")
        if route == "html":
            return self._send(h, 200, HTML, "image/jpeg")
        if route == "truncated":
            data = self.image(name)
            return self._send(h, 200, data[: len(data) // 2])
        if route == "short":
            data = self.image(name)
            self._send(h, 200, data[: len(data) // 2], length=len(data))
            h.close_connection = True
            return None
        if route == "zero":
            return self._send(h, 200, b"")
        if route in ("loop", "loop2"):
            h.send_response(302)
            h.send_header("Location", f"/{'loop2' if route == 'loop' else 'loop'}/{name}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return None
        if route == "huge":
            return self._send(h, 200, self._huge(), "image/png")
        if route == "noai":
            return self._send(h, 200, self.image(name), headers={"X-Robots-Tag": "noai"})
        if route == "drip":
            return self._drip(h, self.image(name))
        return None

    def _drip(self, h: BaseHTTPRequestHandler, data: bytes) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.flush()
        t_end = time.monotonic() + self.drip_close_s
        i = 0
        try:
            while i < len(data) and time.monotonic() < t_end and not self._stop.is_set():
                h.wfile.write(data[i:i + 1])
                h.wfile.flush()
                i += 1
                self._stop.wait(self.drip_interval_s)
        except OSError:
            pass                                 # the client gave up
        h.close_connection = True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--drip-close-s", type=float, default=60.0)
    ap.add_argument("--good-size", default="320x240", help="WxH of the synthetic /good/ JPEGs")
    ap.add_argument("--distinct", type=int, default=None, help="serve at most this many distinct synthetic images")
    args = ap.parse_args()
    w, h = (int(x) for x in args.good_size.lower().split("x"))
    srv = FaultyImageServer(drip_close_s=args.drip_close_s, good_size=(w, h), distinct=args.distinct).start(args.port)
    print(f"serving on {srv.url('/')}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
