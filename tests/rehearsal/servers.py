"""The rehearsal's local endpoints, each speaking the real service's protocol on 127.0.0.1:

- **SPARQL**: ``oxigraph serve-read-only`` over the bundled Wikidata-shaped extract (the same HTTP SPARQL client path
  as QLever/WDQS);
- **image search**: :class:`PhotoSerpApi`, a *stand-in* for SerpAPI's ``/search.json`` (Google Images and Bing
  Images engines, the documented wire format of ``tests/standins``) whose results are the bundled demo photos;
- **image host**: the photos served over HTTP for img2dataset;
- **benchmarks**: tiny fixtures of the paper's 12 benchmarks in each one's on-disk format.

:func:`rehearsal_endpoints` starts them all and yields the config overlay that points the ``rehearsal`` dataset at
them: endpoints and benchmark roots only, nothing else.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

from loopback import PhotoServer, oxigraph_server
from standins.apis import SerpApiStandin

REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO / "resources/demo/photos"
POOL = REPO / "resources/demo/pool.csv"
API_KEY_ENV = "SERPAPI_API_KEY"
API_KEY = "rehearsal-not-a-real-key"
DATASET = "rehearsal"


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2}


class PhotoSerpApi(SerpApiStandin):
    """SerpAPI stand-in whose image results are real photos on the loopback image host: for a query, the pool photos
    whose titles share the most words with it, then a fixed pseudo-random order (sha256 of query and photo), so the
    same query always gets the same images and different queries share some (as real engines do)."""

    def __init__(self, photo_base_url: str, per_query: int = 6, **kw):
        super().__init__(**kw)
        self.per_query = per_query
        self.photos = []
        with open(POOL, newline="") as fh:
            for row in csv.DictReader(fh):
                path = row["url"].split("/", 3)[3]  # the pool's URL path below the host
                self.photos.append((path, row["alt_text"], row["page_url"], _words(row["alt_text"])))
        self.base = photo_base_url.rstrip("/")

    def items(self, q: str) -> list[dict]:
        qw = _words(q)

        def rank(p):
            return (-len(qw & p[3]), hashlib.sha256(f"{q}\t{p[0]}".encode()).hexdigest())

        out = []
        for i, (path, title, page, _) in enumerate(sorted(self.photos, key=rank)[:self.per_query]):
            out.append({"i": i, "id": f"{i}-{hashlib.sha1(path.encode()).hexdigest()[:8]}", "title": title,
                        "image_url": f"{self.base}/{path}", "page_url": page, "width": 640, "height": 480})
        return out


def port_of(url: str) -> int:
    return int(urlsplit(url).port)


def endpoint_ports(ds: dict, port_base: int | None) -> dict[str, int]:
    """``{"sparql", "search", "photos"}`` ports: the rehearsal dataset's config (SPARQL ``kg.endpoint``, the SerpAPI
    backends' shared ``base_url``; the image host one above the search port), or ``port_base`` + 0, 1, 2."""
    if port_base:
        return {"sparql": port_base, "search": port_base + 1, "photos": port_base + 2}
    search = {port_of(b["base_url"]) for b in ds["search"]["backends"].values()}
    if len(search) != 1:
        raise ValueError(f"datasets.{DATASET}: the SerpAPI backends must share one stand-in port, got {search}")
    port = search.pop()
    return {"sparql": port_of(ds["kg"]["endpoint"]), "search": port, "photos": port + 1}


def check_free(ports: dict[str, int]) -> None:
    import socket

    for name, port in ports.items():
        with socket.socket() as sock:
            # SO_REUSEADDR, as the servers bind (http.server's allow_reuse_address; Rust's std on Unix for oxigraph):
            # a live listener still makes bind fail, but the TIME_WAIT sockets that a just-finished run's servers leave
            # for up to 60 s do not (without it, a rerun on the same ports within a minute failed here)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                raise RuntimeError(f"rehearsal: port {port} ({name}) on 127.0.0.1 is in use: another rehearsal "
                                   "running? Give this one other ports with --port-base N") from None


def free_port_base() -> int:
    """A base N with N, N+1, N+2 free on 127.0.0.1 (for a rehearsal beside another one, e.g. in a test)."""
    import socket

    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + 2 < 65536:
            try:
                check_free({"sparql": base, "search": base + 1, "photos": base + 2})
                return base
            except RuntimeError:
                continue
    raise RuntimeError("no three consecutive free loopback ports")


def overlay(benchmark_roots: dict[str, str], benchmarks: dict, ports: dict[str, int] | None = None) -> dict:
    """The config overlay: the benchmarks' roots (relative to the working directory, so that two runs in two
    directories plan identical jobs) and, only when the ports are not the config's, the endpoints."""
    out: dict = {}
    if ports:
        backends = {b: {"base_url": f"http://127.0.0.1:{ports['search']}"} for b in ("serpapi_google", "serpapi_bing")}
        out["datasets"] = {DATASET: {"kg": {"endpoint": f"http://127.0.0.1:{ports['sparql']}/query"},
                                     "search": {"backends": backends}}}
    bench = {}
    for name, root in benchmark_roots.items():
        b = {"root": str(root)}
        variants = benchmarks[name].get("classname_variants")
        if variants:
            b["classname_variants"] = {k: f"{root}/{Path(v).name}" for k, v in variants.items()}
        bench[name] = b
    out["benchmarks"] = bench
    return out


@contextlib.contextmanager
def rehearsal_endpoints(workdir: Path, state: str, config: dict, port_base: int | None = None):
    """Start every endpoint on its port (:func:`endpoint_ports`); write the benchmark fixtures under
    ``workdir/state``. Yields ``(overlay, env)``: the config overlay and the environment (the stand-in's API key).
    Everything stops on exit."""
    from benchmark_fixtures import write_benchmark_fixtures

    import workflow_config as wc

    ports = endpoint_ports(wc.dataset_config(config, DATASET), port_base)
    check_free(ports)
    state_dir = Path(workdir) / state
    state_dir.mkdir(parents=True, exist_ok=True)
    suite = config["evaluation"]["suites"]["paper"]
    written = write_benchmark_fixtures(state_dir / "benchmarks", PHOTOS, suite)
    roots = {b: f"{state}/benchmarks/{Path(p).name}" for b, p in written.items()}
    (state_dir / "oxigraph").mkdir(exist_ok=True)
    photos = PhotoServer(PHOTOS, port=ports["photos"])
    search = PhotoSerpApi(photos.url, api_key=API_KEY)
    try:
        search.start(ports["search"])
        with oxigraph_server(state_dir / "oxigraph", port=ports["sparql"]):
            yield (overlay(roots, config["benchmarks"], ports if port_base else None), {API_KEY_ENV: API_KEY})
    finally:
        search.stop()
        photos.close()
