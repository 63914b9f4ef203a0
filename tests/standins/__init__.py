"""Local stand-in servers (NOT the real APIs) for the web image-search backends of ``scripts/lib/search/search_web.py``.

Usage in tests::

    from standins import OpenverseStandin
    with OpenverseStandin(n_results=45) as server:
        backend = make_backend("openverse", {"base_url": server.url}, cache_dir=tmp_path)
        ...
        assert server.request_count("/v1/images/") == 3

Run one by hand (serves until interrupted): ``python -m standins openverse --port 8765`` from ``tests/``.
"""
from .apis import (STANDINS, BraveStandin, CommonsStandin, INaturalistStandin, OpenverseStandin,
                   SerpApiStandin)
from .base import Recorded, Reply, StandinServer, fake_items

__all__ = ["STANDINS", "StandinServer", "Reply", "Recorded", "fake_items", "OpenverseStandin", "CommonsStandin",
           "INaturalistStandin", "BraveStandin", "SerpApiStandin"]
