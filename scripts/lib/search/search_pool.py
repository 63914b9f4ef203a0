"""The ``pool`` search backend: full-text search over a local pool of (image url, alt text) rows.

A pool is a CSV or parquet file with at least ``url`` and ``alt_text`` columns (optionally ``page_url``,
``licence``, ``width``, ``height``) — e.g. a CommonPool / LAION / DataComp metadata shard, or the demo's bundled
photos. ``build_index`` loads it once into an SQLite FTS5 index (a rule output); ``PoolBackend.search`` answers a
query with the pool rows whose alt text contains every query token (FTS5, BM25-ranked) or, in ``substring`` mode,
the whole query as a word-bounded substring (MetaCLIP-style matching). ``max_results`` is the per-query balancing
cap t.
"""

import logging
import re
import sqlite3
from pathlib import Path

import pandas as pd

from _helpers import atomic_path

log = logging.getLogger("entitynet.search_pool")

POOL_COLUMNS = ["url", "alt_text", "page_url", "licence", "width", "height"]


def read_pool(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"search pool {path} does not exist")
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"url", "alt_text"} - set(df.columns)
    if missing:
        raise ValueError(f"search pool {path} lacks column(s) {sorted(missing)}")
    for c in POOL_COLUMNS:
        if c not in df.columns:
            df[c] = None
    return df[POOL_COLUMNS]


def build_index(pool_path: str | Path, index_path: str | Path) -> int:
    """Build the FTS5 index atomically; returns the number of rows indexed."""
    df = read_pool(pool_path)
    with atomic_path(index_path, suffix=".sqlite") as tmp:
        con = sqlite3.connect(tmp)
        con.execute("CREATE TABLE pool(id INTEGER PRIMARY KEY, url TEXT, alt_text TEXT, page_url TEXT, licence TEXT,"
                    " width INTEGER, height INTEGER)")
        con.execute("CREATE VIRTUAL TABLE pool_fts USING fts5(alt_text, content='pool', content_rowid='id',"
                    " tokenize='unicode61 remove_diacritics 2')")
        rows = [(i, r.url, r.alt_text, r.page_url, r.licence, _int(r.width), _int(r.height))
                for i, r in enumerate(df.itertuples(index=False))]
        con.executemany("INSERT INTO pool VALUES (?,?,?,?,?,?,?)", rows)
        con.execute("INSERT INTO pool_fts(pool_fts) VALUES ('rebuild')")
        con.commit()
        con.close()
    return len(df)


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def fts_expression(text: str) -> str | None:
    """Every token of ``text`` as a quoted FTS5 term, ANDed; None when the text has no token."""
    tokens = re.findall(r"\w+", text.lower())
    return " AND ".join(f'"{t}"' for t in tokens) if tokens else None


class PoolBackend:
    name = "pool"
    DEFAULT_MATCH = "fts"

    def __init__(self, index_path: str | Path, match: str = DEFAULT_MATCH):
        if match not in ("fts", "substring"):
            raise ValueError(f"pool backend: match must be 'fts' or 'substring', not {match!r}")
        self.con = sqlite3.connect(f"file:{index_path}?mode=ro", uri=True)
        self.match = match

    def search(self, query: dict, max_results: int) -> list[dict]:
        text = query["text"]
        expr = fts_expression(text)
        if expr is None:
            return []
        cur = self.con.execute(
            "SELECT p.url, p.page_url, p.alt_text, p.width, p.height, p.licence FROM pool_fts f"
            " JOIN pool p ON p.id = f.rowid WHERE pool_fts MATCH ? ORDER BY bm25(pool_fts), p.id", (expr,))
        hits = []
        pattern = re.compile(r"(?<!\w)" + re.escape(text.lower()) + r"(?!\w)") if self.match == "substring" else None
        for url, page, alt, w, h, lic in cur:
            if pattern is not None and not pattern.search(alt.lower()):
                continue
            hits.append({"query_id": query["query_id"], "backend": self.name, "rank": len(hits), "image_url": url,
                         "page_url": page or None, "alt_text": alt, "width": w, "height": h, "licence": lic or None})
            if len(hits) >= max_results:
                break
        return hits

    def close(self) -> None:
        self.con.close()
