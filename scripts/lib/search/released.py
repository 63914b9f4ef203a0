"""The authors' released EntityNet metadata -> ``urls.parquet`` and ``queries.parquet`` (rule
``import_released_metadata``), instead of running the search stage; also the entity keys that the released query and
entity tables share (:func:`entity_key`, used by ``lib.search.released_entities`` for rule
``import_released_entities``).

Inputs (docs/PAPER_NOTES.md §16; read from the authors' loader code, not checked against the files — every
column is validated here and a mismatch names the file and the columns it has):

* ``images_metadata/<split>-000NN-of-000MM.parquet``: one row per image as the authors merged it
  (docs/PAPER_NOTES.md §8): ``key`` (e.g. ``val000000000``), ``qh`` (every query hash that found it), ``texts``
  (every unique alt text), ``images_link`` (every duplicate URL), ``images_contextlink`` (their page URLs),
  ``images_width``, ``images_height`` (lists; a scalar is read as a one-element list).
* ``entitynet-queries.parquet``: ``query_hash, query, query_type, entity, attribute, api``.

Entity keys (:func:`entity_key`) are the authors': ``Q…`` for Wikidata (a trailing ``Q…`` id is taken from an IRI)
and ``wordnet:<synset>`` for WordNet, verbatim, so ``queries.parquet``'s ``qids`` and ``entities.parquet``'s
``qid`` join as the authors' query and entity tables do.

Mapping (docs/CONTRACTS.md):

* ``queries.parquet``: one row per *our* ``query_id`` = ``lib.search.queries.query_id(query_type, query)`` — the same
  stable hash of (kind, normalised text) that our own queries carry, so released and searched data join on it.
  ``kind`` is the authors' ``query_type`` verbatim (including types we do not generate, e.g.
  ``wd-noun-world-cartoon``); ``is_living`` is true for ``*-living`` types; ``qids`` are the authors' ``entity``
  keys, for every kind (``wd-attr-*`` rows keep theirs: the authors' text mix reads that entity's texts). Extra
  columns: ``author_query_hashes``, ``apis``, ``author_entities`` (lists).
* ``urls.parquet``: one row per released image, keyed like ours by the normalised *first* link: ``url`` is the first
  link, ``urls`` every link, ``page_urls`` the context links, ``alt_texts`` the texts, ``query_ids`` our ids of its
  query hashes, ``kinds``/``qids``/``is_living`` through the queries, ``backends`` ``released_<api>``, ``licence``
  null (not released), ``width``/``height`` the maxima. Released rows whose first links normalise alike are merged.
  Extra columns: ``author_query_hashes`` and ``author_keys`` (lists). Query hashes missing from the query table
  are kept in ``author_query_hashes`` and counted in the log.

The image rows go through the same streaming, partitioned merge as searched hits (``lib.search.merge.merge_batches``),
so the 33M-image release is imported in bounded memory and shuffled with the dataset's seed.
"""

import logging
import re
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from _helpers import write_parquet
from lib.search.merge import write_merged
from lib.search.queries import normalise, query_id

log = logging.getLogger("entitynet.import_released")

META_COLUMNS = ("key", "qh", "texts", "images_link", "images_contextlink", "images_width", "images_height")
QUERY_COLUMNS = ("query_hash", "query", "query_type", "entity", "attribute", "api")
EXTRA_LISTS = {"author_query_hash": "author_query_hashes", "author_key": "author_keys"}
HITS_PER_IMAGE = 4  # rough hit rows per released image (links + query hashes + texts), only sizes the partitions
LIVING = re.compile(r"-living(?:-|$)")  #: a ``*-living`` query type
_QID = re.compile(r"(Q[1-9][0-9]*)/?$")
WORDNET_PREFIX = "wordnet:"


def entity_key(entity) -> str | None:
    """The authors' entity key, as their entity table and query table share it (None for none or empty).

    Their keys are ``Q…`` for Wikidata (an IRI is reduced to its trailing ``Q…`` id, so both spellings join) and
    ``wordnet:<synset>`` for WordNet (e.g. ``wordnet:aardvark.n.01``), kept verbatim.
    """
    if entity is None or (isinstance(entity, float) and np.isnan(entity)):
        return None
    s = str(entity).strip()
    if not s:
        return None
    m = _QID.search(s)
    if m and not s.startswith(WORDNET_PREFIX):
        return m.group(1)
    return s


def entity_ref(kind: str, entity) -> str | None:
    """Our ``qids`` entry for an authors' ``entity`` value: their key (:func:`entity_key`), for every query kind
    (``wd-attr-*`` rows keep theirs too: the authors' text mix reads that entity's texts)."""
    return entity_key(entity)


def distinct(values) -> list:
    """The non-empty strings of ``values``, each once, in first-seen order."""
    return list(dict.fromkeys(v for v in values if isinstance(v, str) and v))


def released_queries(author: pd.DataFrame, source: str = "entitynet-queries.parquet") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The authors' query table -> (our ``queries.parquet`` frame, hash map).

    The hash map is indexed by ``query_hash`` with columns ``query_id`` (ours) and ``backend``
    (``released_<api>``). Rows without a hash, a query text or a type are dropped with a warning; a hash listed
    twice with different (type, text) keeps its first row.
    """
    missing = [c for c in QUERY_COLUMNS if c not in author.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; expected {list(QUERY_COLUMNS)}, "
                         f"have {list(author.columns)}")
    q = author[list(QUERY_COLUMNS)].copy()
    ok = q["query_hash"].notna() & q["query"].notna() & q["query_type"].notna()
    ok &= (q["query"].astype(str).str.strip() != "") & (q["query_type"].astype(str).str.strip() != "")
    if (~ok).any():
        log.warning("%s: %d of %d rows lack query_hash, query or query_type; dropped", source, int((~ok).sum()), len(q))
        q = q[ok]
    q["query_hash"] = q["query_hash"].astype(str)
    q["query_type"] = q["query_type"].astype(str).str.strip()
    q["text"] = q["query"].map(normalise)
    q["query_id"] = [query_id(k, t) for k, t in zip(q["query_type"], q["text"])]
    dup = q.duplicated("query_hash", keep="first")
    if dup.any():
        conflicting = q[q["query_hash"].isin(q.loc[dup, "query_hash"])].groupby("query_hash")["query_id"].nunique()
        if (conflicting > 1).any():
            log.warning("%s: %d query hashes are listed with different (query_type, query); the first row wins",
                        source, int((conflicting > 1).sum()))
    q["api"] = q["api"].where(q["api"].notna(), None)
    q["backend"] = q["api"].map(lambda a: f"released_{str(a).strip().lower()}" if isinstance(a, str) and a.strip()
                                else "released")
    q["qref"] = [entity_ref(k, e) for k, e in zip(q["query_type"], q["entity"])]
    hash_map = q[~dup].set_index("query_hash")[["query_id", "backend"]]
    rows = []
    for qid_, g in q.groupby("query_id", sort=True):
        kind = g["query_type"].iloc[0]
        refs = distinct(g["qref"])
        attr = g["attribute"].dropna()
        rows.append({
            "query_id": qid_, "text": g["text"].iloc[0], "kind": kind, "qids": refs,
            "attribute": normalise(attr.iloc[0]) if len(attr) else None, "natural_type": None,
            "is_living": bool(LIVING.search(kind)), "or_terms": "", "exclude_terms": "", "image_type": "photo",
            "count": max(1, len(refs)), "author_query_hashes": distinct(g["query_hash"]),
            "apis": distinct(g["api"]), "author_entities": distinct(g["entity"].map(
                lambda e: None if e is None or (isinstance(e, float) and np.isnan(e)) else str(e))),
        })
    queries = pd.DataFrame(rows, columns=["query_id", "text", "kind", "qids", "attribute", "natural_type",
                                          "is_living", "or_terms", "exclude_terms", "image_type", "count",
                                          "author_query_hashes", "apis", "author_entities"])
    log.info("%s: %d query hashes -> %d queries (%s)", source, len(hash_map), len(queries),
             ", ".join(f"{k} {n}" for k, n in queries["kind"].value_counts().sort_index().items()))
    return queries, hash_map


def _as_list(col: pa.ChunkedArray | pa.Array, item: pa.DataType | None = None) -> pa.Array:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_large_list(col.type):
        col = col.cast(pa.list_(col.type.value_type))
    if not pa.types.is_list(col.type):  # a scalar per row: a one-element list (null -> empty)
        lengths = pc.if_else(pc.is_valid(col), 1, 0).to_numpy(zero_copy_only=False)
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
        col = pa.ListArray.from_arrays(pa.array(offsets), pc.drop_null(col))
    if item is not None and col.type.value_type != item:
        col = col.cast(pa.list_(item))
    return col


def _list_positions(lists: pa.Array) -> np.ndarray:
    """Position of each flattened value within its list."""
    lens = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)


def _positions(lists: list[pa.Array], n: int) -> tuple[np.ndarray, np.ndarray, list[pa.Array]]:
    """Explode several list columns side by side: row index, position, and each column's value there (or null)."""
    lens = [pc.fill_null(pc.list_value_length(c), 0).to_numpy(zero_copy_only=False).astype(np.int64) for c in lists]
    width = np.maximum.reduce(lens) if lens else np.zeros(n, np.int64)
    parent = np.repeat(np.arange(n), width)
    pos = np.arange(len(parent)) - np.repeat(np.cumsum(width) - width, width)
    out = []
    for c, ln in zip(lists, lens):
        flat = pc.list_flatten(c)
        start = np.cumsum(ln) - ln
        ok = pos < ln[parent]
        idx = np.where(ok, start[parent] + pos, 0)
        vals = pc.take(flat, pa.array(idx)) if len(flat) else pa.nulls(len(idx), flat.type)
        out.append(pc.if_else(pa.array(ok), vals, pa.scalar(None, vals.type)))
    return parent, pos, out


def released_hits(batch: pa.RecordBatch | pa.Table, hash_map: pd.DataFrame, source: str = "metadata") -> tuple[pa.Table, dict]:
    """One batch of released image rows -> hit rows for ``lib.search.merge.merge_batches`` (with ``merge_url``).

    Three kinds of hit rows per image, all keyed by its first link (``merge_url``): one per link position (link,
    context link, width, height), one per query hash (our query id, backend, the hash), one per alt text.
    """
    t = pa.table(batch) if isinstance(batch, pa.RecordBatch) else batch
    missing = [c for c in META_COLUMNS if c not in t.column_names]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; expected {list(META_COLUMNS)}, have {t.column_names}")
    n = t.num_rows
    key = pc.cast(t["key"].combine_chunks(), pa.string())
    links = _as_list(t["images_link"], pa.string())
    flat = pc.list_flatten(links)
    par = pc.list_parent_indices(links).to_numpy(zero_copy_only=False)
    good = pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(flat), ""), False).to_numpy(zero_copy_only=False)
    rows_with, first_at = np.unique(par[good], return_index=True)
    primary_idx = np.full(n, -1, np.int64)
    primary_idx[rows_with] = np.flatnonzero(good)[first_at]
    has = primary_idx >= 0
    primary = pc.if_else(pa.array(has), pc.take(flat, pa.array(np.where(has, primary_idx, 0))) if len(flat)
                         else pa.nulls(n, pa.string()), pa.scalar(None, pa.string()))
    stats = {"images": n, "no_link": int((~has).sum()), "unknown_hashes": 0}

    # link positions
    parent, pos, (link, ctx, w, h) = _positions(
        [links, _as_list(t["images_contextlink"], pa.string()), _as_list(t["images_width"]),
         _as_list(t["images_height"])], n)
    empty = pa.scalar(None, pa.string())
    link = pc.if_else(pc.fill_null(pc.equal(link, ""), False), empty, link)
    pieces = [pa.table({"image_url": link, "page_url": ctx, "width": w, "height": h,
                        "rank": pa.array(pos), "author_key": pc.take(key, pa.array(parent)),
                        "merge_url": pc.take(primary, pa.array(parent))})]
    # query hashes
    qh = _as_list(t["qh"], pa.string())
    qflat = pc.list_flatten(qh)
    qpar = pc.list_parent_indices(qh)
    if len(qflat):
        hashes = pa.array(hash_map.index.to_numpy(dtype=object), pa.string())
        at = pc.index_in(qflat, value_set=hashes)
        stats["unknown_hashes"] = int(pc.sum(pc.and_(pc.is_null(at), pc.is_valid(qflat))).as_py() or 0)
        pieces.append(pa.table({
            "query_id": pc.take(pa.array(hash_map["query_id"].to_numpy(dtype=object), pa.string()), at),
            "backend": pc.take(pa.array(hash_map["backend"].to_numpy(dtype=object), pa.string()), at),
            "author_query_hash": qflat, "rank": pa.array(_list_positions(qh)),
            "merge_url": pc.take(primary, qpar)}))
    # alt texts
    texts = _as_list(t["texts"], pa.string())
    tflat = pc.list_flatten(texts)
    if len(tflat):
        pieces.append(pa.table({"alt_text": tflat, "merge_url": pc.take(primary, pc.list_parent_indices(texts))}))
    hits = pa.concat_tables(pieces, promote_options="permissive")
    # image rows without any link cannot be downloaded: dropped (the merge drops rows without merge_url)
    hits = hits.filter(pc.is_valid(hits["merge_url"]))
    for c in ("query_id", "backend"):
        if c not in hits.column_names:
            hits = hits.append_column(c, pa.nulls(hits.num_rows, pa.string()))
    return hits, stats


def iter_released_hits(paths: list[str], hash_map: pd.DataFrame, totals: dict,
                       batch_size: int = 65_536) -> Iterator[pa.Table]:
    for path in paths:
        f = pq.ParquetFile(path)
        missing = [c for c in META_COLUMNS if c not in f.schema_arrow.names]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected {list(META_COLUMNS)}, "
                             f"have {f.schema_arrow.names}")
        for b in f.iter_batches(batch_size=batch_size, columns=list(META_COLUMNS)):
            hits, s = released_hits(b, hash_map, source=path)
            for k, v in s.items():
                totals[k] = totals.get(k, 0) + v
            yield hits


def import_released(metadata_paths: list[str], queries_path: str, urls_out: str, queries_out: str, seed: int,
                    partition_rows: int = 750_000) -> dict:
    """Write ``queries_out`` and ``urls_out`` (atomically) from the released metadata; returns summary counts."""
    if not metadata_paths:
        raise FileNotFoundError("no released metadata files given (search.released_metadata.metadata_glob matched "
                                "nothing?)")
    author = pd.read_parquet(queries_path)
    queries, hash_map = released_queries(author, source=str(queries_path))
    n_images = sum(pq.ParquetFile(p).metadata.num_rows for p in metadata_paths)
    totals: dict = {}
    stats = write_merged(iter_released_hits(sorted(metadata_paths), hash_map, totals),
                         queries[["query_id", "kind", "is_living", "qids"]], urls_out, seed,
                         total_rows=n_images * HITS_PER_IMAGE, extra_lists=EXTRA_LISTS, partition_rows=partition_rows,
                         what=f"{len(metadata_paths)} released metadata files ({n_images} rows)")
    write_parquet(queries, queries_out)
    if totals.get("no_link"):
        log.warning("%d released images have no link; dropped", totals["no_link"])
    if totals.get("unknown_hashes"):
        log.warning("%d query-hash references are not in %s (kept in author_query_hashes only)",
                    totals["unknown_hashes"], queries_path)
    summary = {"images": n_images, "urls": stats["urls"], "queries": len(queries), **totals}
    log.info("released metadata: %s", summary)
    return summary
