"""Run the ``search`` rule's entry point (``search.main``) outside Snakemake, for the reliability tests.

``python _search_job.py '<json spec>'`` (spec keys: backend, params, queries, hits, cache_dir, chunk, n_chunks) or
``run(spec)`` in-process. The ``snakemake`` object is a stand-in with exactly the attributes ``main`` reads.
"""
import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import search  # noqa: E402


class _Named(SimpleNamespace):
    def get(self, key, default=None):
        return getattr(self, key, default)


def fake_snakemake(spec: dict) -> SimpleNamespace:
    return SimpleNamespace(
        input=_Named(queries=spec["queries"]),
        output=_Named(hits=spec["hits"]),
        params=_Named(backend=dict(spec["params"]), n_chunks=int(spec.get("n_chunks", 1)),
                      cache_dir=spec["cache_dir"]),
        wildcards=_Named(backend=spec["backend"], chunk=f"{int(spec.get('chunk', 0)):05d}"),
        log=[], threads=1)


def run(spec: dict) -> None:
    """``search.main`` in this process; the logging setup it changes is restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, sys.excepthook)
    try:
        search.main(fake_snakemake(spec))
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        sys.excepthook = saved[2]


if __name__ == "__main__":
    search.main(fake_snakemake(json.loads(sys.argv[1])))
