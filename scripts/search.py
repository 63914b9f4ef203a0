"""Run one search backend over one chunk of the queries (rule ``search``).

Queries are assigned to ``n_chunks`` chunks by their stable ``query_id`` (hash modulo n), so the chunking — and
hence the DAG — is fixed before anything runs, and a cluster can fan the chunks out. Web backends cache every
request on disk (``scripts/lib/common/http_cache.py``), so a rerun of a killed chunk resumes without repeating requests.
"""

import logging

import pandas as pd
from tqdm import tqdm

from _helpers import configure_logging, rule_entry, write_parquet
from lib.common.artifact_columns import HIT_COLUMNS

log = logging.getLogger("entitynet.search")

WEB_BACKENDS = ("openverse", "commons", "inaturalist", "brave", "serpapi_google", "serpapi_bing")


def chunk_of(query_ids: pd.Series, n_chunks: int) -> pd.Series:
    return query_ids.map(lambda q: int(q, 16) % n_chunks)


def make_backend(name: str, params: dict, pool_index: str | None, cache_dir: str):
    if name == "pool":
        from lib.search.search_pool import PoolBackend

        return PoolBackend(pool_index, match=params.get("match", PoolBackend.DEFAULT_MATCH))
    if name in WEB_BACKENDS:
        from lib.search import search_web

        return search_web.make_backend(name, params, cache_dir)
    raise ValueError(f"unknown search backend {name!r}; known: pool, {', '.join(WEB_BACKENDS)}")


def run_chunk(queries: pd.DataFrame, backend, max_results: int, chunk: int, n_chunks: int) -> pd.DataFrame:
    mine = queries[chunk_of(queries["query_id"], n_chunks) == chunk]
    hits: list[dict] = []
    for q in tqdm(mine.to_dict("records"), desc=f"search {backend.name} chunk {chunk}", unit="query"):
        hits.extend(backend.search(q, max_results))
    df = pd.DataFrame(hits, columns=list(HIT_COLUMNS))
    df["rank"] = df["rank"].astype("int64")
    for c in ("width", "height"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    log.info("%s chunk %d/%d: %d queries, %d hits", backend.name, chunk, n_chunks, len(mine), len(df))
    return df


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    queries = pd.read_parquet(snakemake.input.queries)
    pool_index = snakemake.input.get("pool_index") if hasattr(snakemake.input, "get") else None
    backend = make_backend(snakemake.wildcards.backend, dict(p.backend), pool_index, p.cache_dir)
    try:
        df = run_chunk(queries, backend, int(p.backend.get("max_results", 50)), int(snakemake.wildcards.chunk),
                       int(p.n_chunks))
    finally:
        backend.close()
    write_parquet(df, snakemake.output.hits)


if __name__ == "__main__":
    rule_entry(main, globals())
