"""The text-candidates table and the per-sample text sampler (a library: no rule entry).

Rule ``text_candidates`` (``lib.train.text_mix`` builds the rows and documents the paper's text mix) writes one row per
query: ``query_id``, its KG ``texts`` and their ``weights``, and optionally the ``sources`` each weight came from.
Training draws one text per sample and step from it with :class:`TextSampler` (inside the dataloader workers of
``scripts/lib/train/train_openclip.py``), so this module imports nothing of the workflow's rule scripts.
"""

import itertools
import json
import zlib
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from _helpers import atomic_path

CANDIDATE_COLUMNS = ["query_id", "texts", "weights"]
CANDIDATE_SCHEMA = pa.schema([("query_id", pa.string()), ("texts", pa.list_(pa.string())),
                              ("weights", pa.list_(pa.float64()))])
#: Optional column of the candidates table: ``list[str]``, the source of each text (a name of
#: :data:`NOUN_SOURCES` / :data:`ATTR_SOURCES`); a null cell or a table without it gives source :data:`KG_SOURCE`.
SOURCES_COLUMN = "sources"
#: Sources of a drawn text that are not a KG candidate's own: an alt text, nothing (empty string), and the generic
#: KG source of a candidates table without ``sources``.
ALT_SOURCE, NONE_SOURCE, KG_SOURCE = "alt", "none", "kg"

NOUN_SOURCES = ["original_query", "entity_synonym", "parent_synonym", "entity_definition", "parent_definition"]
ATTR_SOURCES = ["original_query", "entity_synonym", "parent_synonym", "attribute_plus_entity_synonym",
                "attribute_plus_parent_synonym", "swap_entity_synonym", "swap_parent_synonym", "attribute_only",
                "entity_definition", "parent_definition"]
#: Every KG source :func:`build_text_candidates` writes (noun and attribute lists, first-seen order).
KG_SOURCES = list(dict.fromkeys(NOUN_SOURCES + ATTR_SOURCES))


def is_kg_source(source: str) -> bool:
    """True for a drawn text that is a KG text (any source but ``alt`` and ``none``)."""
    return source not in (ALT_SOURCE, NONE_SOURCE)


# ----------------------------------------------------------------------------------------------------------------
# save / load


def _list_array(cells: Sequence[Sequence], value_type: pa.DataType) -> pa.ListArray:
    """A list<value_type> Arrow array built from flat values and offsets (fast for 1e5..1e6 rows)."""
    lengths = np.fromiter((len(c) for c in cells), dtype=np.int64, count=len(cells))
    offsets = np.zeros(len(cells) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError("candidates table too large for one Arrow list array")
    if pa.types.is_floating(value_type):
        flat = np.fromiter(itertools.chain.from_iterable(cells), dtype=np.float64, count=int(offsets[-1]))
        values = pa.array(flat, value_type)
    else:
        values = pa.array(list(itertools.chain.from_iterable(cells)), value_type)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def candidates_to_table(df: pd.DataFrame) -> pa.Table:
    """Check a candidates DataFrame and convert it to Arrow (schema :data:`CANDIDATE_SCHEMA` + extra columns).

    Raises ValueError naming the first bad query.
    """
    missing = [c for c in CANDIDATE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"candidates table lacks columns {missing}")
    ids = df["query_id"]
    if ids.duplicated().any():
        raise ValueError(f"candidates table has duplicated query_id, e.g. {ids[ids.duplicated()].iloc[0]!r}")
    texts, weights = df["texts"].tolist(), df["weights"].tolist()
    for qid, t, w in zip(ids, texts, weights):
        if t is None or w is None or len(t) != len(w):
            raise ValueError(f"query {qid!r}: texts and weights missing or of different lengths")
    arrays = {"query_id": pa.array(ids.tolist(), pa.string()),
              "texts": _list_array(texts, pa.string()),
              "weights": _list_array(weights, pa.float64())}
    if arrays["texts"].flatten().null_count:
        raise ValueError("candidates table has null texts")
    flat_w = arrays["weights"].flatten().to_numpy(zero_copy_only=False)
    if len(flat_w) and (not np.all(np.isfinite(flat_w)) or flat_w.min() < 0):
        raise ValueError("candidates table has negative or non-finite weights")
    if SOURCES_COLUMN in df.columns:
        arrays[SOURCES_COLUMN] = _sources_array(ids.tolist(), texts, df[SOURCES_COLUMN].tolist())
    for c in df.columns:
        if c not in arrays:
            arrays[c] = pa.array(df[c].tolist())
    return pa.table(arrays)


def _sources_array(ids: Sequence[str], texts: Sequence[Sequence[str]], sources: Sequence) -> pa.Array:
    """The optional ``sources`` column as ``list<string>``: one non-empty name per text, or a null cell."""
    for qid, t, src in zip(ids, texts, sources):
        if src is None:
            continue
        if len(src) != len(t) or not all(isinstance(x, str) and x for x in src):
            raise ValueError(f"query {qid!r}: sources must name each of its {len(t)} texts, got {list(src)!r}")
    if any(src is None for src in sources):
        return pa.array([None if src is None else list(src) for src in sources], pa.list_(pa.string()))
    return _list_array(sources, pa.string())


def save_candidates(df: pd.DataFrame, path) -> None:
    """Write the candidates table (``query_id, texts, weights``, optional ``sources`` + extra columns) to parquet
    atomically."""
    table = candidates_to_table(df)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def load_sampler(path, alt_text_chance: float, seed: int | None = 0) -> "TextSampler":
    """Read ``text_candidates.parquet`` into a :class:`TextSampler` (with the ``sources`` column if it has one)."""
    names = pq.read_schema(path).names
    table = pq.read_table(path, columns=CANDIDATE_COLUMNS + ([SOURCES_COLUMN] if SOURCES_COLUMN in names else []))
    return TextSampler.from_table(table, alt_text_chance, seed)


def candidate_sources(path) -> list[str]:
    """Every source :meth:`TextSampler.sample` can return for the candidates file at ``path``: ``alt``, ``none``,
    and the KG sources (the names in its ``sources`` column, or ``kg`` without one; :data:`KG_SOURCES` first)."""
    names = pq.read_schema(path).names
    kg = [KG_SOURCE]
    if SOURCES_COLUMN in names:
        col = pq.read_table(path, columns=[SOURCES_COLUMN]).column(SOURCES_COLUMN).combine_chunks()
        flat = col.flatten()
        found = set(pc.unique(flat).drop_null().to_pylist()) if len(flat) else set()
        if flat.null_count or col.null_count:
            found.add(KG_SOURCE)
        kg = [s for s in KG_SOURCES if s in found] + sorted(found - set(KG_SOURCES))
    return [ALT_SOURCE, NONE_SOURCE] + kg


# ----------------------------------------------------------------------------------------------------------------
# sampler


def _flat_sources(col: pa.Array, n_t: np.ndarray, ids: Sequence[str]) -> pa.Array:
    """The ``sources`` column flattened to one string (or null) per text, aligned with the flattened ``texts``.

    A null cell stands for ``kg`` for each text of its row; a non-null cell must have one name per text."""
    n_s = pc.fill_null(pc.list_value_length(col), -1).to_numpy(zero_copy_only=False).astype(np.int64)
    bad = np.flatnonzero((n_s != n_t) & (n_s >= 0))
    if len(bad):
        raise ValueError(f"query {ids[bad[0]]!r}: {n_t[bad[0]]} texts but {n_s[bad[0]]} sources")
    if not col.null_count:
        return col.flatten()
    cells = zip(col.to_pylist(), n_t.tolist())
    return pa.array([x for s, t in cells for x in ([None] * int(t) if s is None else s)], pa.string())


def _encode_sources(flat: pa.Array) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per-text source strings (null or empty = ``kg``) -> (int16 index per text, source names)."""
    flat = pc.fill_null(flat.cast(pa.string()), KG_SOURCE)
    flat = pc.if_else(pc.equal(flat, ""), KG_SOURCE, flat)
    enc = flat.dictionary_encode()
    names = tuple(enc.dictionary.to_pylist())
    if len(names) > np.iinfo(np.int16).max:
        raise ValueError(f"candidates table has {len(names)} distinct sources")
    idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int16)
    return idx, names if names else (KG_SOURCE,)


class TextSampler:
    """One text per image per step: alt text with probability ``alt_text_chance`` (if any), else a KG text.

    Storage is compact and fork/pickle friendly: all candidate texts in one UTF-8 ``bytes`` buffer with int64
    offsets, per-query cumulative weights in one float64 array, a dict ``query_id -> row``, and, when the table has
    a ``sources`` column, one small int per text indexing the source names.

    ``rng`` arguments accept anything with a ``random()`` method returning floats in [0, 1)
    (``numpy.random.Generator``, ``random.Random``); None uses the sampler's own generator (seeded by ``seed``).
    In dataloader workers either pass a per-sample generator (:meth:`rng_for`) or call :meth:`reseed` in the
    worker init function, otherwise every worker draws the same stream.
    """

    def __init__(self, candidates: Mapping[str, tuple], alt_text_chance: float, seed: int | None = 0):
        """``candidates``: ``query_id -> (texts, cumulative weights)`` or ``(texts, cumulative weights, sources)``;
        cumulative weights must be non-decreasing with a positive last value (they are rescaled to end at 1).
        Queries without texts are skipped. Texts without a source (2-tuples, None) have source ``kg``."""
        ids, row_ptr, cum_parts, texts_all, sources_all = [], [0], [], [], []
        for qid, value in candidates.items():
            texts, cum = value[0], value[1]
            sources = value[2] if len(value) > 2 else None
            cum = np.asarray(cum, dtype=np.float64)
            texts = list(texts)
            if len(texts) != len(cum):
                raise ValueError(f"query {qid!r}: {len(texts)} texts but {len(cum)} cumulative weights")
            if sources is not None and len(sources) != len(texts):
                raise ValueError(f"query {qid!r}: {len(texts)} texts but {len(sources)} sources")
            if not texts:
                continue
            if not np.all(np.isfinite(cum)) or cum[0] < 0 or np.any(np.diff(cum) < 0) or cum[-1] <= 0:
                raise ValueError(f"query {qid!r}: cumulative weights must be finite, non-decreasing, end > 0")
            ids.append(qid)
            cum_parts.append(cum / cum[-1])
            texts_all.extend(texts)
            sources_all.extend(sources if sources is not None else [None] * len(texts))
            row_ptr.append(row_ptr[-1] + len(texts))
        encoded = [t.encode("utf-8") for t in texts_all]
        toff = np.zeros(len(encoded) + 1, dtype=np.int64)
        if encoded:
            np.cumsum([len(b) for b in encoded], out=toff[1:])
        cum_all = np.concatenate(cum_parts) if cum_parts else np.zeros(0)
        src = None
        if any(x is not None for x in sources_all):
            src = _encode_sources(pa.array([x or None for x in sources_all], pa.string()))
        self._setup(ids, np.asarray(row_ptr, dtype=np.int64), cum_all, toff, b"".join(encoded),
                    alt_text_chance, seed, src)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, alt_text_chance: float, seed: int | None = 0) -> "TextSampler":
        """From a candidates DataFrame (``query_id, texts, weights``, optional ``sources``; weights need not be
        normalised)."""
        cols = CANDIDATE_COLUMNS + ([SOURCES_COLUMN] if SOURCES_COLUMN in df.columns else [])
        return cls.from_table(candidates_to_table(df[cols]), alt_text_chance, seed)

    @classmethod
    def from_table(cls, table: pa.Table, alt_text_chance: float, seed: int | None = 0) -> "TextSampler":
        """From an Arrow table ``query_id, texts, weights`` and optional ``sources`` (vectorised; 500k queries in
        about a second)."""
        for c in CANDIDATE_COLUMNS:
            if c not in table.column_names:
                raise ValueError(f"candidates table lacks column {c!r}")
        ids = table.column("query_id").to_pylist()
        if len(set(ids)) != len(ids):
            raise ValueError("candidates table has duplicated query_id values")
        texts = table.column("texts").combine_chunks()
        weights = table.column("weights").combine_chunks()
        n_t = pc.fill_null(pc.list_value_length(texts), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        n_w = pc.fill_null(pc.list_value_length(weights), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        bad = np.flatnonzero(n_t != n_w)
        if len(bad):
            raise ValueError(f"query {ids[bad[0]]!r}: {n_t[bad[0]]} texts but {n_w[bad[0]]} weights")
        flat_t = texts.flatten().cast(pa.large_string())
        if flat_t.null_count:
            raise ValueError("candidates table has null texts")
        w = weights.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        if len(w) and (not np.all(np.isfinite(w)) or w.min() < 0):
            raise ValueError("candidates table has negative or non-finite weights")
        row_ptr = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(n_t, out=row_ptr[1:])
        cw = np.concatenate([[0.0], np.cumsum(w)])
        base = cw[row_ptr[:-1]]
        total = cw[row_ptr[1:]] - base
        keep_rows = (n_t > 0) & (total > 0)
        # per-row cumulative weights in [0, 1], last one exactly 1
        safe_total = np.where(total > 0, total, 1.0)
        cum = (cw[1:] - np.repeat(base, n_t)) / np.repeat(safe_total, n_t)
        ends = row_ptr[1:][n_t > 0] - 1
        cum[ends] = 1.0
        src = None
        if SOURCES_COLUMN in table.column_names:
            src = _encode_sources(_flat_sources(table.column(SOURCES_COLUMN).combine_chunks(), n_t, ids))
        bufs = flat_t.buffers()
        offs = np.frombuffer(bufs[1], dtype=np.int64)[flat_t.offset:flat_t.offset + len(flat_t) + 1].copy()
        data = bufs[2].to_pybytes()[offs[0]:offs[-1]] if bufs[2] is not None else b""
        offs -= offs[0]
        obj = cls.__new__(cls)
        if not keep_rows.all():
            ids = [q for q, k in zip(ids, keep_rows) if k]
            row_index = np.flatnonzero(keep_rows)
            starts, stops = row_ptr[:-1][row_index], row_ptr[1:][row_index]
        else:
            starts, stops = row_ptr[:-1], row_ptr[1:]
        obj._setup_rows(ids, starts, stops, cum, offs, data, alt_text_chance, seed, src)
        return obj

    def _setup(self, ids, row_ptr, cum, toff, buf, alt_text_chance, seed, src=None) -> None:
        self._setup_rows(ids, row_ptr[:-1], row_ptr[1:], cum, toff, buf, alt_text_chance, seed, src)

    def _setup_rows(self, ids, starts, stops, cum, toff, buf, alt_text_chance, seed, src=None) -> None:
        """``src``: None (every KG text has source ``kg``) or ``(per-text index array, source names)``."""
        if not (isinstance(alt_text_chance, (int, float)) and 0.0 <= float(alt_text_chance) <= 1.0):
            raise ValueError(f"alt_text_chance must be in [0, 1], got {alt_text_chance!r}")
        self.alt_text_chance = float(alt_text_chance)
        self.seed = seed
        self._index = {q: i for i, q in enumerate(ids)}
        self._starts = np.asarray(starts, dtype=np.int64)
        self._stops = np.asarray(stops, dtype=np.int64)
        self._cum = np.asarray(cum, dtype=np.float64)
        self._toff = np.asarray(toff, dtype=np.int64)
        self._buf = bytes(buf)
        self._src, self._src_names = (None, (KG_SOURCE,)) if src is None else src
        self.rng = np.random.default_rng(seed)

    # -- info
    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, query_id: str) -> bool:
        return query_id in self._index

    def candidates(self, query_id: str) -> list[tuple[str, float]]:
        """(text, probability) of one query, as stored."""
        r = self._index[query_id]
        lo, hi = int(self._starts[r]), int(self._stops[r])
        cum = self._cum[lo:hi]
        probs = np.diff(np.concatenate([[0.0], cum]))
        return [(self._text(lo + i), float(p)) for i, p in enumerate(probs)]

    def _text(self, j: int) -> str:
        return self._buf[self._toff[j]:self._toff[j + 1]].decode("utf-8")

    def _source(self, j: int) -> str:
        return KG_SOURCE if self._src is None else self._src_names[self._src[j]]

    @property
    def sources(self) -> list[str]:
        """Every source :meth:`sample` can return: ``alt``, ``none`` and the KG sources of the table."""
        return [ALT_SOURCE, NONE_SOURCE, *self._src_names]

    def candidate_sources(self, query_id: str) -> list[str]:
        """The source of each text of :meth:`candidates` (``kg`` for a table without ``sources``)."""
        r = self._index[query_id]
        return [self._source(j) for j in range(int(self._starts[r]), int(self._stops[r]))]

    # -- randomness
    def reseed(self, *keys: int) -> None:
        """Replace the own generator by one derived from ``(seed, *keys)``, e.g. ``reseed(worker_id, epoch)``."""
        self.rng = np.random.default_rng([0 if self.seed is None else int(self.seed), *map(int, keys)])

    def rng_for(self, key: str, epoch: int = 0) -> np.random.Generator:
        """A generator fixed by (seed, epoch, sample key): the same text choice whichever worker draws it."""
        return np.random.default_rng([0 if self.seed is None else int(self.seed), int(epoch),
                                      zlib.crc32(key.encode("utf-8"))])

    # -- sampling
    def sample_kg(self, query_id: str, rng=None) -> str:
        """One KG text of ``query_id`` drawn from its distribution (KeyError if unknown)."""
        return self.sample_kg_source(query_id, rng)[0]

    def sample_kg_source(self, query_id: str, rng=None) -> tuple[str, str]:
        """:meth:`sample_kg` with the drawn text's source: ``(text, source)``."""
        rng = self.rng if rng is None else rng
        r = self._index[query_id]
        lo, hi = int(self._starts[r]), int(self._stops[r])
        j = min(lo + int(np.searchsorted(self._cum[lo:hi], rng.random(), side="right")), hi - 1)
        return self._text(j), self._source(j)

    def sample(self, alt_texts: Sequence[str] | None, query_ids: Sequence[str] | None, rng=None
               ) -> tuple[str, str]:
        """One training text for an image: ``(text, source)`` with source ``"alt"``, ``"none"`` or the KG text's
        source (its ``sources`` entry, e.g. ``"entity_synonym"``; ``"kg"`` for a table without that column).

        With probability ``alt_text_chance``, and only if the image has non-empty alt texts, a uniformly chosen
        alt text. Otherwise one of the image's query ids that has candidates, chosen uniformly, and a KG text from
        its distribution. If none has candidates: an alt text if there is one, else ``("", "none")``.
        """
        rng = self.rng if rng is None else rng
        alts = [a for a in (alt_texts or ()) if isinstance(a, str) and a.strip()]
        p = self.alt_text_chance
        if alts and p > 0.0 and (p >= 1.0 or rng.random() < p):
            return alts[min(int(rng.random() * len(alts)), len(alts) - 1)], "alt"
        known = [q for q in (query_ids or ()) if q in self._index]
        if known:
            q = known[min(int(rng.random() * len(known)), len(known) - 1)]
            return self.sample_kg_source(q, rng)
        if alts:  # no KG text for this image: fall back to an alt text
            return alts[min(int(rng.random() * len(alts)), len(alts) - 1)], "alt"
        return "", "none"

    def sample_for_json(self, sample_json: Mapping[str, Any] | str | bytes, rng=None) -> tuple[str, str]:
        """:meth:`sample` on a shard sample's ``.json`` (dict, or its raw text), reading ``alt_texts`` and
        ``query_ids``."""
        if isinstance(sample_json, (str, bytes, bytearray)):
            sample_json = json.loads(sample_json)
        return self.sample(sample_json.get("alt_texts") or (), sample_json.get("query_ids") or (), rng)
