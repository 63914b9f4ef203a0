"""Merge raw search hits of all backends into one row per unique (normalised) image URL (the engine of rule
``merge_search``, and of ``import_released_metadata`` for the released image rows).

As the paper stores them (docs/PAPER_NOTES.md §8): every query that found the image, every distinct alt text, every raw
URL and page URL, the entity QIDs and ``is_living`` (any living query). The result is shuffled with a seed so that one
entity's images do not cluster in one download shard. Output contract: ``docs/CONTRACTS.md`` (urls.parquet).

Scale (tens of millions of hits on one core, bounded memory) comes from an external hash partition:

1. **Partition.** The hit files are streamed in record batches. Each image URL is normalised — vectorised with
   ``pyarrow.compute`` for the common shape ``http(s)://host/path?k=v&…`` and by :func:`normalise_url` (Python) for
   everything else (ports, user info, percent-escapes in the query, tracking parameters, non-ASCII) — and hashed to
   its 64-bit ``uid`` (the first 8 bytes of sha256, once per distinct URL in a batch). A seeded bijective mix of
   the uid gives the row's *shuffle key*; the key's top bits pick one of K partitions. Rows go to compressed Arrow
   IPC files in a temporary folder next to the output, with query ids and backends as small integer codes.
2. **Aggregate.** Partition by partition (K chosen so each holds ~``partition_rows`` hits), rows are sorted by
   (shuffle key, backend, query_id, rank, input order) and aggregated per uid: ``Table.group_by`` for ``first``,
   ``any`` and ``max``; distinct lists in first-seen order from the first row of each (uid, value) pair. Because
   partitions are ranges of the shuffle key and each is sorted by it, appending them in order writes the final
   table already shuffled: a seeded random-key sort, never held in memory whole.

"First" (``url``, ``licence``) and list orders follow the sort above, so the result depends only on the hits and
the seed, not on file or row order (except for exact ties, broken by input order). Rows are grouped by ``uid``,
the contract's key: two normalised URLs whose sha256 share the first 64 bits (p ≈ 3e-5 at 33M URLs) become one row.
"""

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from _helpers import atomic_path

log = logging.getLogger("entitynet.merge_search")

TRACKING_PARAMS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
OUT_COLUMNS = ["uid", "url", "urls", "query_ids", "alt_texts", "page_urls", "qids", "kinds", "backends", "is_living",
               "licence", "width", "height"]
_STR_LIST = pa.list_(pa.string())
OUT_SCHEMA = pa.schema([
    ("uid", pa.string()), ("url", pa.string()), ("urls", _STR_LIST), ("query_ids", _STR_LIST),
    ("alt_texts", _STR_LIST), ("page_urls", _STR_LIST), ("qids", _STR_LIST), ("kinds", _STR_LIST),
    ("backends", _STR_LIST), ("is_living", pa.bool_()), ("licence", pa.string()), ("width", pa.int64()),
    ("height", pa.int64()),
])
# What a partition file holds per hit (query ids and backends as codes; see _Codes).
PART_SCHEMA = pa.schema([
    ("uid", pa.uint64()), ("key", pa.uint64()), ("backend", pa.int16()), ("qidx", pa.int32()), ("rank", pa.int64()),
    ("seq", pa.int64()), ("image_url", pa.string()), ("page_url", pa.string()), ("alt_text", pa.string()),
    ("licence", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
])
HIT_STRING_COLUMNS = ("query_id", "backend", "image_url", "page_url", "alt_text", "licence")


def out_schema(extra_lists: dict[str, str] | None = None) -> pa.Schema:
    """OUT_SCHEMA plus one list<string> column per ``extra_lists`` entry (hit column -> output column)."""
    return pa.schema(list(OUT_SCHEMA) + [pa.field(o, _STR_LIST) for o in (extra_lists or {}).values()])


def part_schema(extra: Iterable[str] = ()) -> pa.Schema:
    return pa.schema(list(PART_SCHEMA) + [pa.field(c, pa.string()) for c in extra])
HIT_INT_COLUMNS = ("rank", "width", "height")

# The common URL shape whose normalisation is pure case-folding: http(s), an ASCII host without port or user info,
# a printable-ASCII path, and a query of k=v pairs that parse_qsl/urlencode reproduce byte for byte.
_QPAIR = r"[A-Za-z0-9_.~\-]+=[A-Za-z0-9_.~\-]*"
FAST_URL_RE = (r"^(?P<scheme>[Hh][Tt][Tt][Pp][Ss]?)://(?P<host>[A-Za-z0-9.\-]+)"
               r"(?P<path>/[\x21\x22\x24-\x3e\x40-\x7e]*)?"
               rf"(?:\?(?P<query>(?:{_QPAIR}(?:&{_QPAIR})*)?))?"
               r"(?:#[\x20-\x7e]*)?$")
_TRACKING_RE = r"(?:^|&)(?:" + "|".join(TRACKING_PARAMS) + r")="
_M64 = (1 << 64) - 1


def normalise_url(url: str) -> str:
    """Lower-case scheme and host, drop default ports, fragments and tracking parameters (reference, in Python).

    Raises ``ValueError`` for URLs ``urllib`` cannot parse (e.g. a port out of range).
    """
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
    """The contract's ``uid``: first 16 hex digits of sha256 of the normalised URL."""
    return hashlib.sha256(normalised.encode()).hexdigest()[:16]


def normalise_urls(urls: pa.Array) -> tuple[pa.Array, int]:
    """Vectorised :func:`normalise_url` over a string array: ``(normalised, n_unparseable)``.

    The fast path covers the common URL shape (see ``FAST_URL_RE``) in ``pyarrow.compute``; every other URL goes
    through :func:`normalise_url` once per distinct value. Null input, and URLs that cannot be parsed, give null.
    """
    urls = pc.cast(urls, pa.string())
    if len(urls) == 0:
        return urls, 0
    parts = pc.extract_regex(urls, FAST_URL_RE)  # null where the fast shape does not match (or input null)
    scheme, host, path, query = (parts.field(n) for n in ("scheme", "host", "path", "query"))
    path = pc.if_else(pc.equal(path, ""), "/", path)
    query = pc.if_else(pc.equal(query, ""), "", pc.binary_join_element_wise("?", query, ""))
    fast = pc.binary_join_element_wise(pc.utf8_lower(scheme), "://", pc.utf8_lower(host), path, query, "")
    ok = pc.and_(pc.is_valid(parts), pc.invert(pc.match_substring_regex(parts.field("query"), _TRACKING_RE)))
    ok = pc.fill_null(ok, False)
    slow_mask = pc.and_(pc.invert(ok), pc.is_valid(urls))
    if not pc.any(slow_mask).as_py():
        return pc.if_else(ok, fast, pa.scalar(None, pa.string())), 0
    slow_urls = pc.filter(urls, slow_mask)
    distinct = pc.unique(slow_urls).to_pylist()
    mapped: dict[str, str | None] = {}
    for u in distinct:
        try:
            mapped[u] = normalise_url(u)
        except ValueError:
            mapped[u] = None
    slow_norm = pa.array([mapped[u] for u in slow_urls.to_pylist()], pa.string())
    bad = slow_norm.null_count
    # scatter the slow results back into place
    pos = np.flatnonzero(slow_mask.to_numpy(zero_copy_only=False))
    idx = np.full(len(urls), -1, dtype=np.int64)
    idx[pos] = np.arange(len(pos))
    from_slow = pc.take(slow_norm, pa.array(np.where(idx < 0, 0, idx)))
    out = pc.if_else(ok, fast, pc.if_else(pa.array(idx >= 0), from_slow, pa.scalar(None, pa.string())))
    return out, bad


def uid64(normalised: pa.Array) -> np.ndarray:
    """The uid as uint64 (big-endian first 8 bytes of sha256), hashing each distinct value once. No nulls."""
    enc = pc.dictionary_encode(normalised)
    values = enc.dictionary.to_pylist()
    digests = b"".join(hashlib.sha256(s.encode()).digest()[:8] for s in values)
    table = np.frombuffer(digests, dtype=">u8").astype(np.uint64)
    return table[enc.indices.to_numpy(zero_copy_only=False)]


def uid_hex(uids: np.ndarray) -> pa.Array:
    """16-character lower-case hex strings of uint64 uids (vectorised; equals :func:`url_uid`)."""
    n = len(uids)
    raw = np.ascontiguousarray(uids, dtype=">u8").view(np.uint8).reshape(n, 8)
    lut = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    chars = np.empty((n, 16), dtype=np.uint8)
    chars[:, 0::2] = lut[raw >> 4]
    chars[:, 1::2] = lut[raw & 15]
    offsets = np.arange(0, 16 * n + 1, 16, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(chars.tobytes()))


def shuffle_key(uids: np.ndarray, seed: int) -> np.ndarray:
    """Seeded bijective mix (splitmix64 finaliser) of the uids: sorting by it is a seeded random permutation."""
    z = uids.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += np.uint64((int(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _M64)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def _as_string(col) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    return pc.cast(col, pa.string())


def _as_int64(col, name: str) -> pa.Array:
    """Integers from int, float (NaN -> null, truncated) or string columns (unparseable -> null)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_integer(t) or pa.types.is_null(t) or pa.types.is_boolean(t):
        return pc.cast(col, pa.int64())
    if pa.types.is_floating(t):
        col = pc.if_else(pc.is_nan(col), pa.scalar(None, t), col)
        return pc.cast(pc.trunc(col), pa.int64())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        s = pd.to_numeric(pd.Series(_as_string(col).to_pylist(), dtype=object), errors="coerce")
        return pa.array(np.trunc(s.to_numpy(dtype=float)), pa.float64(), from_pandas=True).cast(pa.int64())
    raise TypeError(f"hit column {name!r} has type {t}; expected an integer, float or string column")


def canonical_hits(batch: pa.RecordBatch | pa.Table, extra: Iterable[str] = ()) -> pa.Table:
    """The hit columns of ``docs/CONTRACTS.md`` with fixed types; missing optional columns become null.

    An optional ``merge_url`` column, where not null, is the URL a row is grouped by instead of its ``image_url``
    (the released-metadata import groups all links of one released image under its first link). ``extra``
    names further string columns to keep (missing: null).
    """
    t = pa.table(batch) if isinstance(batch, pa.RecordBatch) else batch
    n = t.num_rows
    for need in ("query_id", "image_url"):
        if need not in t.column_names:
            raise ValueError(f"search hits lack the required column {need!r} (have {t.column_names})")
    cols = {}
    for c in HIT_STRING_COLUMNS:
        cols[c] = _as_string(t[c]) if c in t.column_names else pa.nulls(n, pa.string())
    for c in HIT_INT_COLUMNS:
        cols[c] = _as_int64(t[c], c) if c in t.column_names else pa.nulls(n, pa.int64())
    for c in ("merge_url", *extra):
        if c in t.column_names or c != "merge_url":
            cols[c] = _as_string(t[c]) if c in t.column_names else pa.nulls(n, pa.string())
    return pa.table(cols)


class _Codes:
    """Small integer codes for query ids (sorted lexicographically, so code order = id order) and backends."""

    def __init__(self, queries: pd.DataFrame | pa.Table):
        q = queries if isinstance(queries, pa.Table) else pa.Table.from_pandas(queries, preserve_index=False)
        for need in ("query_id", "kind", "is_living", "qids"):
            if need not in q.column_names:
                raise ValueError(f"queries table lacks the column {need!r} (have {q.column_names})")
        q = q.select(["query_id", "kind", "is_living", "qids"])
        ids = _as_string(q["query_id"])
        if ids.null_count:
            raise ValueError("queries table has a null query_id")
        if len(pc.unique(ids)) != len(ids):
            raise ValueError("queries table has duplicate query_id values")
        order = pc.sort_indices(ids)
        q = q.take(order)
        self.ids = _as_string(q["query_id"])
        kinds = _as_string(q["kind"])
        self.kind_names = pc.unique(pc.drop_null(kinds)) if len(kinds) else pa.array([], pa.string())
        self.kind_code = pc.index_in(kinds, value_set=self.kind_names)
        self.is_living = pc.fill_null(pc.cast(q["is_living"].combine_chunks(), pa.bool_()), False)
        qids = q["qids"].combine_chunks()
        if pa.types.is_null(qids.type):
            qids = pa.nulls(len(qids), _STR_LIST)
        qids = pc.cast(qids, _STR_LIST)
        # a null qids list counts as empty
        self.qids = pc.if_else(pc.is_valid(qids), qids, pa.scalar([], _STR_LIST)) if len(qids) else qids
        self.n_known = len(self.ids)
        self.unknown: list[str] = []
        self.backends: dict[str, int] = {}

    def query_codes(self, query_ids: pa.Array) -> pa.Array:
        idx = pc.index_in(query_ids, value_set=self.ids)
        missing = pc.and_(pc.is_null(idx), pc.is_valid(query_ids))
        if pc.any(missing).as_py():
            new = pc.unique(pc.filter(query_ids, missing)).to_pylist()
            log.warning("%d query_id(s) of the hits are not in queries.parquet (e.g. %s): kept without kind/qids",
                        len(new), new[:3])
            self.unknown.extend(new)
            n_new = len(new)
            self.ids = pa.concat_arrays([self.ids, pa.array(new, pa.string())])
            self.kind_code = pa.concat_arrays([self.kind_code, pa.nulls(n_new, self.kind_code.type)])
            self.is_living = pa.concat_arrays([self.is_living, pa.array([False] * n_new)])
            self.qids = pa.concat_arrays([self.qids, pa.array([[]] * n_new, _STR_LIST)])
            idx = pc.index_in(query_ids, value_set=self.ids)
        return pc.cast(idx, pa.int32())

    def backend_codes(self, backends: pa.Array) -> pa.Array:
        for b in pc.unique(pc.drop_null(backends)).to_pylist():
            self.backends.setdefault(b, len(self.backends))
        names = pa.array(list(self.backends), pa.string())
        return pc.cast(pc.index_in(backends, value_set=names), pa.int16())

    def backend_names(self) -> pa.Array:
        return pa.array(list(self.backends), pa.string())

    def backend_sort_rank(self) -> np.ndarray:
        """Rank of each backend code in name order (the merge sorts hits by backend name)."""
        names = list(self.backends)
        rank = np.empty(max(len(names), 1), dtype=np.int16)
        for r, i in enumerate(sorted(range(len(names)), key=names.__getitem__)):
            rank[i] = r
        return rank


def _empty_to_null(a: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(a, ""), pa.scalar(None, pa.string()), a)


def partition_batch(hits: pa.Table, codes: _Codes, seed: int, seq0: int,
                    extra: Iterable[str] = ()) -> tuple[pa.Table, np.ndarray, dict]:
    """Phase 1 on one batch of canonical hits: the partition-file rows (``part_schema``) and their shuffle keys.

    Rows without a URL to group by (``merge_url`` else ``image_url``), or whose URL cannot be parsed, are dropped
    and counted.
    """
    stats = {"rows": hits.num_rows, "no_url": 0, "bad_url": 0}
    image_url = _empty_to_null(hits["image_url"].combine_chunks())
    group_url = image_url
    if "merge_url" in hits.column_names:
        group_url = pc.coalesce(_empty_to_null(hits["merge_url"].combine_chunks()), image_url)
    present = pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(group_url), ""), False)
    stats["no_url"] = len(group_url) - pc.sum(present).as_py() if len(group_url) else 0
    norm, bad = normalise_urls(pc.if_else(present, group_url, pa.scalar(None, pa.string())))
    stats["bad_url"] = bad
    keep = pc.is_valid(norm)
    seq = pa.array(np.arange(seq0, seq0 + hits.num_rows, dtype=np.int64))
    if not pc.all(keep).as_py():
        hits, norm, seq = hits.filter(keep), pc.filter(norm, keep), pc.filter(seq, keep)
        image_url = pc.filter(image_url, keep)
    uid = uid64(norm)
    key = shuffle_key(uid, seed)
    qidx = codes.query_codes(hits["query_id"].combine_chunks())
    rows = pa.table({
        "uid": pa.array(uid), "key": pa.array(key), "backend": codes.backend_codes(hits["backend"].combine_chunks()),
        "qidx": qidx, "rank": hits["rank"], "seq": seq, "image_url": image_url,
        "page_url": _empty_to_null(hits["page_url"].combine_chunks()),
        "alt_text": _empty_to_null(hits["alt_text"].combine_chunks()),
        "licence": _empty_to_null(hits["licence"].combine_chunks()), "width": hits["width"], "height": hits["height"],
        **{c: _empty_to_null(hits[c].combine_chunks()) for c in extra},
    }, schema=part_schema(extra))
    return rows, key, stats


def _rebuild_lists(lengths: np.ndarray, values: pa.Array) -> pa.Array:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _map_lists(lists, lut: pa.Array) -> pa.Array:
    """Replace the integer codes in a list column by ``lut[code]``."""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    flat = pc.list_flatten(lists)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    return _rebuild_lists(lengths, pc.take(lut, flat) if len(flat) else pa.array([], lut.type))


def distinct_lists(gid: np.ndarray, values: pa.Array, n_groups: int) -> pa.Array:
    """Per group (``gid``: non-decreasing group index of each row), the distinct non-null values, first-seen order.

    (``hash_distinct`` of ``group_by`` does not keep first-seen order; this does, via the first row of each pair.)
    """
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    t = pa.table({"g": gid, "x": values, "p": np.arange(len(values), dtype=np.int64)})
    t = t.filter(pc.is_valid(values))
    if t.num_rows == 0:
        return _rebuild_lists(np.zeros(n_groups, dtype=np.int64), pa.array([], values.type))
    first = np.sort(t.group_by(["g", "x"], use_threads=False).aggregate([("p", "min")])["p_min"].to_numpy())
    return _rebuild_lists(np.bincount(gid[first], minlength=n_groups), values.take(pa.array(first)))


def _union_qids(gid: np.ndarray, qidx: pa.Array, codes: _Codes, n_groups: int) -> pa.Array:
    """Per output row: the union (first-seen order) of the qids of all its hits' queries."""
    per = pc.take(codes.qids, qidx)  # the qids list of each hit's query, rows in sorted order
    vals = pc.list_flatten(per)
    return distinct_lists(gid[pc.list_parent_indices(per).to_numpy()], vals, n_groups)


def aggregate_partition(rows: pa.Table, codes: _Codes, extra_lists: dict[str, str] | None = None) -> pa.Table:
    """Phase 2 on one partition's rows: one ``out_schema`` row per uid, sorted by the shuffle key."""
    schema = out_schema(extra_lists)
    if rows.num_rows == 0:
        return schema.empty_table()
    brank = pc.take(pa.array(codes.backend_sort_rank()), rows["backend"])
    rows = rows.append_column("brank", brank)
    order = pc.sort_indices(rows, sort_keys=[("key", "ascending"), ("brank", "ascending"), ("qidx", "ascending"),
                                             ("rank", "ascending"), ("seq", "ascending")])
    rows = rows.take(order).combine_chunks()
    uid = rows["uid"].to_numpy()
    start = np.r_[True, uid[1:] != uid[:-1]]  # rows of one uid are contiguous (sorted by its shuffle key)
    gid = np.cumsum(start) - 1
    n = int(gid[-1]) + 1
    qidx = rows["qidx"].chunk(0)
    rows = rows.append_column("gid", pa.array(gid))
    rows = rows.append_column("living", pc.take(codes.is_living, qidx))
    agg = rows.group_by("gid", use_threads=False).aggregate([
        ("image_url", "first"), ("living", "any"), ("licence", "first"), ("width", "max"), ("height", "max"),
    ])
    agg = agg.take(pc.sort_indices(agg["gid"]))
    col = rows.column
    qidx_lists = distinct_lists(gid, qidx, n)
    kinds = pc.take(codes.kind_code, qidx)
    out = pa.table({
        "uid": uid_hex(uid[start]),
        "url": agg["image_url_first"],
        "urls": distinct_lists(gid, col("image_url"), n),
        "query_ids": _map_lists(qidx_lists, codes.ids),
        "alt_texts": distinct_lists(gid, col("alt_text"), n),
        "page_urls": distinct_lists(gid, col("page_url"), n),
        "qids": _union_qids(gid, qidx, codes, n),
        "kinds": _map_lists(distinct_lists(gid, kinds, n), codes.kind_names),
        "backends": _map_lists(distinct_lists(gid, col("backend").chunk(0), n), codes.backend_names()),
        "is_living": pc.fill_null(agg["living_any"], False),
        "licence": agg["licence_first"],
        "width": agg["width_max"],
        "height": agg["height_max"],
        **{o: distinct_lists(gid, col(c), n) for c, o in (extra_lists or {}).items()},
    })
    return out.cast(schema)


class _Partitioner:
    """Buffers phase-1 rows per partition and spills them to compressed Arrow IPC files."""

    def __init__(self, tmp_dir: Path, n_parts: int, flush_rows: int, schema: pa.Schema = PART_SCHEMA):
        self.dir, self.n, self.flush_rows, self.schema = tmp_dir, n_parts, flush_rows, schema
        self.bits = int(n_parts).bit_length() - 1
        assert 1 << self.bits == n_parts, "n_parts must be a power of two"
        self.buf: list[list[pa.Table]] = [[] for _ in range(n_parts)]
        self.files: list[list[Path]] = [[] for _ in range(n_parts)]
        self.buffered = 0
        self.opts = pa.ipc.IpcWriteOptions(compression="lz4")

    def add(self, rows: pa.Table, key: np.ndarray) -> None:
        if rows.num_rows == 0:
            return
        part = (key >> np.uint64(64 - self.bits)).astype(np.int64) if self.bits else np.zeros(len(key), np.int64)
        order = np.argsort(part, kind="stable")
        counts = np.bincount(part, minlength=self.n)
        rows = rows.take(pa.array(order))
        start = 0
        for p in np.flatnonzero(counts):
            self.buf[p].append(rows.slice(start, int(counts[p])))
            start += int(counts[p])
        self.buffered += rows.num_rows
        if self.buffered >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        for p in range(self.n):
            if not self.buf[p]:
                continue
            path = self.dir / f"part{p:05d}_{len(self.files[p]):05d}.arrow"
            t = pa.concat_tables(self.buf[p]).combine_chunks()
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, self.schema, options=self.opts) as w:
                w.write_table(t)
            self.files[p].append(path)
            self.buf[p] = []
        self.buffered = 0

    def read(self, p: int) -> pa.Table:
        tables = []
        for path in self.files[p]:
            with pa.memory_map(str(path)) as src:
                tables.append(pa.ipc.open_file(src).read_all())
            path.unlink()
        return pa.concat_tables(tables) if tables else self.schema.empty_table()


def _n_partitions(total_rows: int, partition_rows: int) -> int:
    want = max(1, -(-int(total_rows) // max(1, int(partition_rows))))
    return min(1 << 12, 1 << (want - 1).bit_length())


def merge_batches(batches: Iterable[pa.Table | pa.RecordBatch], queries: pd.DataFrame | pa.Table, seed: int,
                  total_rows: int, tmp_dir: str | os.PathLike, partition_rows: int = 750_000,
                  flush_rows: int = 1_000_000, extra_lists: dict[str, str] | None = None) -> Iterator[pa.Table]:
    """Stream the merge: yields ``out_schema(extra_lists)`` tables whose concatenation is the shuffled urls table.

    ``batches`` are hit tables of any (compatible) column types; ``total_rows`` (an estimate is fine) sets the
    number of partitions. ``extra_lists`` maps further hit columns to output columns holding their distinct
    values per image. Temporary files live in a fresh folder under ``tmp_dir`` and are removed at the end.
    """
    codes = _Codes(queries)
    extra = tuple(extra_lists or {})
    work = Path(tempfile.mkdtemp(prefix=".merge_search.", dir=tmp_dir))
    stats = {"rows": 0, "no_url": 0, "bad_url": 0, "urls": 0}
    try:
        n_parts = _n_partitions(total_rows, partition_rows)
        parts = _Partitioner(work, n_parts, flush_rows, part_schema(extra))
        t0 = time.monotonic()
        for b in batches:
            hits = canonical_hits(b, extra)
            rows, key, s = partition_batch(hits, codes, seed, stats["rows"], extra)
            for k in ("rows", "no_url", "bad_url"):
                stats[k] += s[k]
            parts.add(rows, key)
        parts.flush()
        log.info("partitioned %d hits into %d partitions in %.1fs (%d without URL, %d unparseable URLs)",
                 stats["rows"], n_parts, time.monotonic() - t0, stats["no_url"], stats["bad_url"])
        t1 = time.monotonic()
        for p in range(n_parts):
            out = aggregate_partition(parts.read(p), codes, extra_lists)
            stats["urls"] += out.num_rows
            if out.num_rows:
                yield out
        log.info("aggregated %d unique image URLs in %.1fs", stats["urls"], time.monotonic() - t1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def merge_hits(hits: pd.DataFrame, queries: pd.DataFrame, seed: int) -> pd.DataFrame:
    """In-memory merge of a hit frame (same code path as :func:`merge_files`); returns the urls.parquet frame."""
    if hits.empty:
        return pd.DataFrame(columns=OUT_COLUMNS)
    table = pa.Table.from_pandas(hits, preserve_index=False)
    with tempfile.TemporaryDirectory() as tmp:
        parts = list(merge_batches([table], queries, seed, total_rows=len(hits), tmp_dir=tmp))
    out = pa.concat_tables(parts) if parts else OUT_SCHEMA.empty_table()
    return out.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def iter_hit_files(paths: list[str], batch_size: int = 262_144) -> Iterator[pa.RecordBatch]:
    """Record batches of the hit parquet files, in order; files with no rows are skipped."""
    for i, path in enumerate(paths):
        f = pq.ParquetFile(path)
        if f.metadata.num_rows == 0:
            continue
        yield from f.iter_batches(batch_size=batch_size)
        if (i + 1) % 100 == 0:
            log.info("read %d/%d hit files", i + 1, len(paths))


def write_merged(batches: Iterable[pa.Table | pa.RecordBatch], queries: pd.DataFrame | pa.Table,
                 out_path: str | os.PathLike, seed: int, total_rows: int, extra_lists: dict[str, str] | None = None,
                 partition_rows: int = 750_000, flush_rows: int = 1_000_000, allow_empty: bool = False,
                 what: str = "the hits") -> dict:
    """Run :func:`merge_batches` into ``out_path`` (parquet, written atomically); returns ``{"urls": n}``.

    Temporary partitions live in the output's folder. Raises ``RuntimeError`` (and leaves no output) if no image
    URL at all was found, unless ``allow_empty``.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    n_urls = 0
    with atomic_path(out_path) as tmp:
        with pq.ParquetWriter(str(tmp), out_schema(extra_lists)) as writer:
            for table in merge_batches(batches, queries, seed, total_rows, out_path.parent,
                                       partition_rows=partition_rows, flush_rows=flush_rows,
                                       extra_lists=extra_lists):
                writer.write_table(table, row_group_size=256_000)
                n_urls += table.num_rows
        if n_urls == 0 and not allow_empty:
            raise RuntimeError(f"no image URL at all in {what}; nothing to download")
    log.info("%s -> %d unique image URLs -> %s", what, n_urls, out_path)
    return {"urls": n_urls}


def merge_files(hit_paths: list[str], queries_path: str, out_path: str, seed: int, partition_rows: int = 750_000,
                flush_rows: int = 1_000_000, allow_empty: bool = False) -> dict:
    """Merge hit parquet files (rule ``search`` outputs) into ``out_path`` (urls.parquet); ``{"hits", "urls"}``.

    Streaming and atomic (see :func:`write_merged`). Raises ``RuntimeError`` if no image URL at all was found,
    unless ``allow_empty``: search found nothing to download (check the backends and queries).
    """
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in hit_paths)
    queries = pq.read_table(queries_path, columns=["query_id", "kind", "is_living", "qids"])
    stats = write_merged(iter_hit_files(hit_paths), queries, out_path, seed, total, partition_rows=partition_rows,
                         flush_rows=flush_rows, allow_empty=allow_empty,
                         what=f"search: {len(hit_paths)} hit files ({total} rows)")
    return {"hits": total, **stats}

