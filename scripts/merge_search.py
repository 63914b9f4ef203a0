"""Merge raw search hits of all backends into one row per unique (normalised) image URL.

As the paper stores them (PAPER.md §8): every query that found the image, every distinct alt text, every raw URL and
page URL, the entity QIDs and ``is_living`` (any living query). The result is shuffled with a seed so that one
entity's images do not cluster in one download shard.
"""

import hashlib
import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd

from _helpers import configure_logging, write_parquet

log = logging.getLogger("entitynet.merge_search")

TRACKING_PARAMS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


def normalise_url(url: str) -> str:
    """Lower-case scheme and host, drop default ports, fragments and tracking parameters."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in TRACKING_PARAMS])
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def url_uid(normalised: str) -> str:
    return hashlib.sha256(normalised.encode()).hexdigest()[:16]


def _uniq(series: pd.Series) -> list:
    return list(dict.fromkeys(x for x in series if isinstance(x, str) and x))


def _uniq_flat(series: pd.Series) -> list:
    return list(dict.fromkeys(x for v in series for x in v))


def merge_hits(hits: pd.DataFrame, queries: pd.DataFrame, seed: int) -> pd.DataFrame:
    cols = ["uid", "url", "urls", "query_ids", "alt_texts", "page_urls", "qids", "kinds", "backends", "is_living",
            "licence", "width", "height"]
    if hits.empty:
        return pd.DataFrame(columns=cols)
    q = queries.set_index("query_id")
    h = hits.copy()
    h["norm"] = h["image_url"].map(normalise_url)
    h["kind"] = h["query_id"].map(q["kind"])
    h["is_living"] = h["query_id"].map(q["is_living"]).fillna(False).astype(bool)
    h["qids"] = h["query_id"].map(q["qids"]).map(lambda v: list(v) if v is not None else [])
    h = h.sort_values(["norm", "backend", "query_id", "rank"], kind="stable")
    g = h.groupby("norm", sort=False)
    merged = pd.DataFrame({
        "url": g["image_url"].first(),
        "urls": g["image_url"].agg(_uniq),
        "query_ids": g["query_id"].agg(_uniq),
        "alt_texts": g["alt_text"].agg(_uniq),
        "page_urls": g["page_url"].agg(_uniq),
        "qids": g["qids"].agg(_uniq_flat),
        "kinds": g["kind"].agg(_uniq),
        "backends": g["backend"].agg(_uniq),
        "is_living": g["is_living"].max(),
        "licence": g["licence"].first(),
        "width": pd.to_numeric(g["width"].max(), errors="coerce").astype("Int64"),
        "height": pd.to_numeric(g["height"].max(), errors="coerce").astype("Int64"),
    })
    merged["uid"] = [url_uid(n) for n in merged.index]
    merged = merged.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return merged[cols]


def main(snakemake) -> None:
    configure_logging(snakemake)
    frames = [pd.read_parquet(f) for f in snakemake.input.hits]
    hits = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    queries = pd.read_parquet(snakemake.input.queries)
    merged = merge_hits(hits, queries, int(snakemake.params.seed))
    log.info("%d hits -> %d unique image URLs", len(hits), len(merged))
    if merged.empty:
        raise RuntimeError("search found no image at all; nothing to download (check the backends and queries)")
    write_parquet(merged, snakemake.output.urls)


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821
