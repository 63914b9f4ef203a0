"""A real threaded HTTP image server on 127.0.0.1 that serves good images and the faults web crawls meet.

Used by ``tests/integration/test_download_faults.py`` (img2dataset through ``lib.data.chunk_download``) and by
``perf/bench_download.py``. Routes (``GET``):

=========================  ==========================================================================================
``/good/<name>``           a registered image (:meth:`FaultyImageServer.add_image`), else a synthetic JPEG (q95,
                           ``good_size``, default 320x240, pixels seeded by ``<name>``: distinct names give
                           perceptually distinct images; ``distinct=N`` cycles N images, for benchmarks)
``/missing/<name>``        404
``/html/<name>``           an HTML page served as ``Content-Type: image/jpeg`` (hotlink-protection pages do this)
``/truncated/<name>``      about the first half of a good JPEG, ``Content-Length`` = that part (a file cut on disk)
``/short/<name>``          a good JPEG whose ``Content-Length`` promises the whole file, connection closed at half
``/zero/<name>``           200 with a zero-byte body
``/loop/<name>``           302 to ``/loop2/<name>``, which 302s back: a redirect loop
``/huge/<name>``           a 12000x12000 greyscale PNG (144 Mpx, ~0.4 MB on the wire): above PIL's
                           decompression-bomb warning limit (``Image.MAX_IMAGE_PIXELS`` = 89.5 Mpx)
``/drip/<name>``           a good JPEG sent 1 byte per ``drip_interval_s`` (default 1 s) after a full
                           ``Content-Length``; the connection is closed after ``drip_close_s`` (default 60 s)
``/noai/<name>``           a good JPEG with ``X-Robots-Tag: noai`` (opt-out from AI training)
=========================  ==========================================================================================

An :class:`http_testserver.HttpTestServer` (HTTP/1.0, one request per connection, as urllib does) whose faulty
routes carry that module's faults (``/truncated/``: ``truncate``, ``/short/``: ``cut``, ``/drip/``: ``drip``). Every
request is counted per path (:meth:`FaultyImageServer.request_count`). Use as a context manager::

    with FaultyImageServer(drip_close_s=5) as srv:
        url = srv.url + "/good/a.jpg"

``python tests/faulty_image_server.py --port 8000`` serves until interrupted (manual checks, benchmarks).
"""

import argparse
import hashlib
import io
import struct
import threading
import zlib

import numpy as np
from PIL import Image

from http_testserver import Fault, HttpTestServer, Recorded, Reply

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


class FaultyImageServer(HttpTestServer):
    """Threaded HTTP/1.0 server on ``127.0.0.1`` (ephemeral port) serving the routes of the module docstring."""

    protocol_version = "HTTP/1.0"          # one request per connection, as urllib does
    thread_name = "faulty-image-server"
    content_type = "image/jpeg"

    def __init__(self, *, drip_interval_s: float = 1.0, drip_close_s: float = 60.0, huge_side: int = 12000,
                 good_size: tuple[int, int] = (320, 240), distinct: int | None = None):
        if drip_close_s > 60:
            raise ValueError("drip_close_s must be <= 60 s")
        super().__init__()
        self.good_size = (int(good_size[0]), int(good_size[1]))
        self.distinct_images = distinct    # serve only this many distinct synthetic images (names hashed onto them)
        self.drip = Fault("drip", hold_s=float(drip_close_s), drip_s=float(drip_interval_s))
        self.huge_side = int(huge_side)
        self.images: dict[str, bytes] = {}
        self._cache: dict[str, bytes] = {}
        self._content_lock = threading.Lock()

    # -- content ------------------------------------------------------------------------------------------------
    def add_image(self, name: str, data: bytes) -> None:
        """Serve ``data`` at ``/good/<name>`` (and as the body of the other routes' ``<name>``)."""
        with self._content_lock:
            self.images[name] = bytes(data)

    def image(self, name: str) -> bytes:
        with self._content_lock:
            if name in self.images:
                return self.images[name]
            if self.distinct_images:
                name = f"__img{int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % self.distinct_images}"
            if name not in self._cache:
                self._cache[name] = synthetic_jpeg(name, self.good_size)
            return self._cache[name]

    def warm(self) -> None:
        """Encode every synthetic image of a ``distinct`` server now (not during a timed run)."""
        with self._content_lock:
            for i in range(self.distinct_images or 0):
                self._cache.setdefault(f"__img{i}", synthetic_jpeg(f"__img{i}", self.good_size))

    def _huge(self) -> bytes:
        with self._content_lock:
            if "__huge__" not in self._cache:
                self._cache["__huge__"] = huge_png(self.huge_side, self.huge_side)
            return self._cache["__huge__"]

    # -- handling -----------------------------------------------------------------------------------------------
    def reply(self, req: Recorded) -> Reply:
        route, _, name = req.path.strip("/").partition("/")
        if route not in ROUTES or not name:
            return Reply(404, b"no such route\n", {"Content-Type": "text/plain"})
        if route == "missing":
            return Reply(404, b"not found\n", {"Content-Type": "text/plain"})
        if route == "html":
            return Reply(200, HTML)
        if route == "zero":
            return Reply(200, b"")
        if route in ("loop", "loop2"):
            return Reply(302, b"", {"Location": f"/{'loop2' if route == 'loop' else 'loop'}/{name}"})
        if route == "huge":
            return Reply(200, self._huge(), {"Content-Type": "image/png"})
        data = self.image(name)
        if route == "good":
            return Reply(200, data, {"Content-Type": "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"})
        if route == "noai":
            return Reply(200, data, {"X-Robots-Tag": "noai"})
        faults = {"truncated": Fault("truncate"), "short": Fault("cut"), "drip": self.drip}
        return Reply(200, data, fault=faults[route])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--drip-close-s", type=float, default=60.0)
    ap.add_argument("--good-size", default="320x240", help="WxH of the synthetic /good/ JPEGs")
    ap.add_argument("--distinct", type=int, default=None, help="serve at most this many distinct synthetic images")
    args = ap.parse_args()
    w, h = (int(x) for x in args.good_size.lower().split("x"))
    srv = FaultyImageServer(drip_close_s=args.drip_close_s, good_size=(w, h), distinct=args.distinct)
    srv.serve_until_interrupted(args.port)


if __name__ == "__main__":
    main()
