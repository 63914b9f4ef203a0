"""The rehearsal's local endpoints, each speaking the real service's protocol on 127.0.0.1:

- **SPARQL**: ``oxigraph serve-read-only`` over the bundled Wikidata-shaped extract (the same HTTP SPARQL client path
  as QLever/WDQS);
- **image search**: :class:`PhotoSerpApi`, a *stand-in* for SerpAPI's ``/search.json`` (Google Images and Bing
  Images engines, the documented wire format of ``tests/standins``) whose results are the bundled demo photos;
- **image host**: the photos served over HTTP for img2dataset;
- **benchmark sources** (``benchmark_sources``): the paper's 12 benchmarks as tiny fixtures where rule
  ``prepare_benchmark`` fetches the real ones: a Hugging Face Hub *stand-in* (``tests/hf_hub_standin.py``, reached by
  the real client through ``HF_ENDPOINT``) serving ``clip-benchmark/wds_<name>`` repositories, the distributed
  archives of CUB-200-2011, iNaturalist 2021 and Crossmodal-3600 on the image host, Rare Species' image-folder
  repository (``metadata.csv`` + images) on the Hub stand-in, and a local folder for ImageNet-1k (never
  downloadable).

:func:`rehearsal_endpoints` starts them all and yields the config overlay that points the ``rehearsal`` dataset at
them: endpoints, benchmark sources and the fixtures' expected counts only, nothing else. The benchmark roots are the
config's ``data/benchmarks/<name>``, built by ``prepare_benchmark`` jobs as in the flagship run.
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
    """``{"sparql", "search", "photos", "hub"}`` ports: the rehearsal dataset's config (SPARQL ``kg.endpoint``, the
    SerpAPI backends' shared ``base_url``; the image host one above the search port, the Hub stand-in two above), or
    ``port_base`` + 0, 1, 2, 3."""
    if port_base:
        return {"sparql": port_base, "search": port_base + 1, "photos": port_base + 2, "hub": port_base + 3}
    search = {port_of(b["base_url"]) for b in ds["search"]["backends"].values()}
    if len(search) != 1:
        raise ValueError(f"datasets.{DATASET}: the SerpAPI backends must share one stand-in port, got {search}")
    port = search.pop()
    return {"sparql": port_of(ds["kg"]["endpoint"]), "search": port, "photos": port + 1, "hub": port + 2}


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
    """A base N with N .. N+3 free on 127.0.0.1 (for a rehearsal beside another one, e.g. in a test)."""
    import socket

    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + 3 < 65536:
            try:
                check_free({"sparql": base, "search": base + 1, "photos": base + 2, "hub": base + 3})
                return base
            except RuntimeError:
                continue
    raise RuntimeError("no four consecutive free loopback ports")


def overlay(benchmark_overlay: dict[str, dict], ports: dict[str, int] | None = None) -> dict:
    """The config overlay: the benchmarks' sources and expected counts (local paths relative to the working
    directory, so that two runs in two directories plan identical jobs) and, only when the ports are not the
    config's, the endpoints."""
    out: dict = {}
    if ports:
        backends = {b: {"base_url": f"http://127.0.0.1:{ports['search']}"} for b in ("serpapi_google", "serpapi_bing")}
        out["datasets"] = {DATASET: {"kg": {"endpoint": f"http://127.0.0.1:{ports['sparql']}/query"},
                                     "search": {"backends": backends}}}
    out["benchmarks"] = benchmark_overlay
    return out


@contextlib.contextmanager
def rehearsal_endpoints(workdir: Path, state: str, config: dict, port_base: int | None = None):
    """Start every endpoint on its port (:func:`endpoint_ports`); write the benchmark fixtures under
    ``workdir/state/benchmark_sources`` and serve them as the benchmarks' sources. Yields ``(overlay, env)``: the
    config overlay and the environment (the SerpAPI stand-in's API key; ``HF_ENDPOINT``, the Hub stand-in, with
    ``HF_HOME`` under ``workdir/state``). Everything stops on exit."""
    from hf_hub_standin import HubStandin

    from lib.common import workflow_config as wc
    from rehearsal.benchmark_sources import build_sources

    ports = endpoint_ports(wc.dataset_config(config, DATASET), port_base)
    check_free(ports)
    state_dir = Path(workdir) / state
    state_dir.mkdir(parents=True, exist_ok=True)
    suite = config["evaluation"]["suites"]["paper"]
    host = f"http://127.0.0.1:{ports['photos']}"
    repos, archives, bench_overlay = build_sources(state_dir / "benchmark_sources", PHOTOS, config["benchmarks"],
                                                   suite, host, f"{state}/benchmark_sources")
    (state_dir / "oxigraph").mkdir(exist_ok=True)
    photos = PhotoServer(PHOTOS, extra=archives, port=ports["photos"])
    search = PhotoSerpApi(photos.url, api_key=API_KEY)
    hub = HubStandin()
    for repo, (files, commit) in repos.items():
        hub.add_repo(repo, files, commit=commit)
    env = {API_KEY_ENV: API_KEY, "HF_ENDPOINT": f"http://127.0.0.1:{ports['hub']}",
           "HF_HOME": str(state_dir / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    try:
        search.start(ports["search"])
        hub.start(ports["hub"])
        with oxigraph_server(state_dir / "oxigraph", port=ports["sparql"]):
            yield (overlay(bench_overlay, ports if port_base else None), env)
    finally:
        hub.stop()
        search.stop()
        photos.close()
