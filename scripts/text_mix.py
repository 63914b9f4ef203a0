"""The paper's per-sample text mix: KG text candidates per query, and the per-image text sampler.

Two halves:

1. :func:`build_text_candidates` turns ``entities.parquet``, ``attributes.parquet`` and ``queries.parquet`` into one
   row per ``query_id`` holding the candidate KG texts and their normalised weights (``text_candidates.parquet``).
   It runs once per dataset, in a Snakemake rule.
2. :class:`TextSampler` draws exactly one text per image per step at training time: with probability
   ``alt_text_chance`` (and only if the image has alt texts) a uniformly chosen alt text, otherwise a KG text of one
   of the image's source queries (the query chosen uniformly, the text from that query's distribution).

Weights (authors' train config ``train_clip_vitb32_entityneturl_webds.yaml`` @63da7db, loader
``entitynet_textloader.py`` @1346597), with ``h`` the hierarchy-replacement chance:

* noun queries (``wd-noun-*``, ``wordnet-noun-*``): original query ``1 - 0.6``; entity synonyms ``0.6·(1-h)``;
  parent (natural type) synonyms ``0.6·h``; entity definitions ``0.1·(1-h)``; parent definitions ``0.1·h``.
* attribute queries (``wd-attr-*``, ``wd-attrnoun-*``): keep the query ``1.0``; a synonym instead of the query
  ``0.2`` (entity ``·(1-h)``, parent ``·h``); "attribute synonym" and "synonym attribute" ``0.2`` (same split);
  the entity name inside the query swapped for a synonym ``0.2`` (same split); the attribute alone ``0.2``;
  a definition ``0.05`` (same split).
* ``h = 0.1`` when the natural type is animal/plant (Q729, Q756, ``wordnet:animal.n.01``, ``wordnet:plant.n.02``), else 0.2.
* Each weight is spread equally over its list; a string reached from several lists keeps its **highest** weight
  (not the sum); lists that are empty contribute nothing (their weight is dropped before normalising); then the
  weights of a query are normalised to sum to 1.

Synonyms of an entity row are ``label``, ``aliases``, ``common_names``, ``taxon_names``; its definitions are its
``description`` and its ``natural_type_description``. The parent is the natural type: if an entity row with
``qid == natural_type_qid`` exists its synonyms and definitions are used, otherwise just ``natural_type_label``
(synonym) and ``natural_type_description`` (definition).

Choices and deviations (each also marked in the code):

* **Synonym guard, off by default.** The authors meant "if the per-synonym chance would exceed the keep-query
  chance, set both to 0.5", but their code divides by the size of the *global* synonym dict, so it never fires: the
  paper's numbers were made without it, and so is the default here (``TextMixConfig(guard=False)``, workflow key
  ``text_mix.synonym_guard: false``). Switched on, it is applied as intended: ``synonym_chance / #distinct entity
  synonyms of this query`` is compared with the keep chance of this query; with the paper's 0.6/0.4 it fires
  exactly for entities with a single synonym (0.6 > 0.4).
* **No single entity.** ``wd-attr-*`` queries ("{attribute} {natural type}") are aggregated over entities (``qids``
  empty or several): an image they found is not known to show any one of those entities, and the query's noun *is*
  the natural type. So the natural type takes the entity role (its synonyms/definitions with weight ``·(1-h)``, ``h``
  from the natural type) and there is no parent list. Any other query with several ``qids`` (e.g. a WordNet lemma of
  two synsets) uses the union of their synonyms/definitions as entity lists; one with no known entity has empty
  entity lists and keeps the natural type as parent.
* **Duplicates** are detected after collapsing whitespace and case-folding: open_clip's tokenizer lower-cases and
  collapses whitespace, so "European rabbit" and "european rabbit" are the same training text. The variant kept is
  the one with the highest weight (the first one met among equals). Within a list, repeated strings are counted once
  before the weight is spread. Empty/blank strings are dropped.
* **Entity swap inside the query.** The authors replace the first synonym (in table order) found as a plain,
  case-sensitive substring. Here the *longest* entity synonym that occurs as a whole word (case-insensitive) is
  replaced, at every whole-word occurrence, so "ant" never matches inside "giant" and "European rabbit" wins over
  "rabbit". If no synonym occurs in the query, this list is empty (as in the authors' code).
* CLIP prompt templates are off in the paper (``clip_prompts = 0``) and not implemented.

Living-only KG texts: a dataset with ``kg_text_queries: living`` (LivingThings) builds candidates for its living
queries only (``is_living``), so its images draw KG texts from their living queries alone, as the authors'
living-only run (their loader's ``query2allowflag``); alt texts are unaffected.

Sampler fallback: if none of an image's ``query_ids`` has candidates, an alt text is used if there is one (even when
the alt-text roll said "KG"), else the empty string with source ``"none"``.

Sources: the candidates table has an optional ``sources`` column (``list[str]``, one per text: the list of
:data:`NOUN_SOURCES` / :data:`ATTR_SOURCES` its kept weight came from), written by the ``text_candidates`` rule.
:meth:`TextSampler.sample` returns the drawn text's source: ``"alt"``, ``"none"``, or the KG text's source from that
column (``"kg"`` for a table without it). Training counts these per epoch (``train_summary.json``, ``text_sources``).
"""

import gc
import itertools
import json
import logging
import math
import operator
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from _helpers import atomic_path, configure_logging, rule_entry

log = logging.getLogger("entitynet.text_mix")

#: Natural types whose hierarchy replacement uses the lower ``hierarchy_chance_living`` (authors:
#: ``NATURALENTITY_LIVING``; both WordNet prefixes are accepted).
LIVING_NATURAL_TYPES = frozenset({"Q729", "Q756", "wn:animal.n.01", "wn:plant.n.02",
                                  "wordnet:animal.n.01", "wordnet:plant.n.02"})

CANDIDATE_COLUMNS = ["query_id", "texts", "weights"]
CANDIDATE_SCHEMA = pa.schema([("query_id", pa.string()), ("texts", pa.list_(pa.string())),
                              ("weights", pa.list_(pa.float64()))])
#: Optional column of the candidates table: ``list[str]``, the source of each text (a name of
#: :data:`NOUN_SOURCES` / :data:`ATTR_SOURCES`); a null cell or a table without it gives source :data:`KG_SOURCE`.
SOURCES_COLUMN = "sources"
#: Sources of a drawn text that are not a KG candidate's own: an alt text, nothing (empty string), and the generic
#: KG source of a candidates table without ``sources``.
ALT_SOURCE, NONE_SOURCE, KG_SOURCE = "alt", "none", "kg"


@dataclass(frozen=True)
class TextMixConfig:
    """Weights of the text mix; defaults are the authors' ViT-B/32 train config (module docstring)."""

    hierarchy_chance_generic: float = 0.2
    hierarchy_chance_living: float = 0.1
    noun_synonym: float = 0.6          # replace_noun_synonym_chance; the original query keeps 1 - this
    noun_definition: float = 0.1       # replace_noun_definition_chance
    attr_keep_query: float = 1.0       # att*_keep_query
    attr_synonym_instead: float = 0.2  # att*_replace_query_with_synonym
    attr_pseudo_query: float = 0.2     # att*_build_pseudo_query ("attr syn", "syn attr")
    attr_swap_entity: float = 0.2      # att*_strgf_replace_entity
    attr_attribute_only: float = 0.2   # att*_attribute_only
    attr_definition: float = 0.05      # att*_replace_with_definition
    guard: bool = False                # the per-synonym guard (off: as the authors ran it; module docstring)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name == "guard":
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"TextMixConfig.{name} must be a finite number >= 0, got {value!r}")
        for name in ("hierarchy_chance_generic", "hierarchy_chance_living", "noun_synonym"):
            if getattr(self, name) > 1:
                raise ValueError(f"TextMixConfig.{name} is a probability (0..1), got {getattr(self, name)!r}")


# ----------------------------------------------------------------------------------------------------------------
# small pure helpers


def clean_text(text: str) -> str:
    """Whitespace collapsed to single spaces and stripped (every input string goes through this once)."""
    return " ".join(text.split())


def text_key(text: str) -> str:
    """Identity of a *cleaned* text as the CLIP tokenizer sees it (case-folded)."""
    return text.casefold()


def _str_list(value: Any) -> list[str]:
    """A cell that may be None/NaN, a string, a list or a numpy array -> list of cleaned non-empty strings."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, float):
        return []  # NaN from pandas
    out = []
    for v in value:
        if isinstance(v, str):
            v = clean_text(v)
            if v:
                out.append(v)
    return out


def _opt_str(value: Any) -> str | None:
    if isinstance(value, str):
        value = clean_text(value)
        return value or None
    return None


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    """Order-preserving de-duplication of cleaned strings by :func:`text_key` (first spelling wins)."""
    seen: dict[str, str] = {}
    for s in items:
        k = s.casefold()
        if k and k not in seen:
            seen[k] = s
    return tuple(seen.values())


def hierarchy_chance(natural_type_qid: str | None, config: TextMixConfig) -> float:
    """``h`` of the text mix (module docstring): the living value for animal/plant natural types, else the
    generic one."""
    if natural_type_qid in LIVING_NATURAL_TYPES:
        return config.hierarchy_chance_living
    return config.hierarchy_chance_generic


def pseudo_queries(attribute: str, synonyms: Sequence[str]) -> list[str]:
    """"attribute synonym" and "synonym attribute" for every synonym."""
    out = []
    for s in synonyms:
        out.append(f"{attribute} {s}")
        out.append(f"{s} {attribute}")
    return out


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def swap_template(query: str, synonyms_by_length: Sequence[str]) -> list[str] | None:
    """Split ``query`` around the whole-word, case-insensitive occurrences of the longest synonym found in it.

    Returns the pieces between occurrences (``len(pieces) - 1`` occurrences; join them with a replacement), or
    None if no synonym occurs. ``synonyms_by_length`` must be sorted longest first.
    """
    low = query.casefold()
    if len(low) != len(query):  # case-folding changed lengths (e.g. "ß"): positions would not line up
        low = query.lower()
        if len(low) != len(query):
            return None
    for syn in synonyms_by_length:
        s = syn.casefold()
        if not s or len(s) > len(low):
            continue
        pieces, start, pos = [], 0, low.find(s)
        while pos != -1:
            end = pos + len(s)
            if (pos == 0 or not _is_word_char(low[pos - 1])) and (end == len(low) or not _is_word_char(low[end])):
                pieces.append(query[start:pos])
                start = end
                pos = low.find(s, end)
            else:
                pos = low.find(s, pos + 1)
        if pieces:
            pieces.append(query[start:])
            return pieces
    return None


def _keyed(texts: Sequence[str]) -> tuple[Sequence[str], Sequence[str]]:
    """(texts, keys) with repeated keys and empty strings removed (first spelling wins)."""
    keys = [t.casefold() for t in texts]
    if len(set(keys)) == len(keys) and all(keys):
        return texts, keys
    pairs: dict[str, str] = {}
    for k, t in zip(keys, texts):
        if k and k not in pairs:
            pairs[k] = t
    return list(pairs.values()), list(pairs.keys())


_first = operator.itemgetter(0)


def mix_lists(lists: Sequence[tuple], sources: Sequence[str] | None = None
              ) -> tuple[list[str], list[float], list[str]]:
    """Spread each weight over its list, keep the highest weight per text, drop empties, normalise.

    ``lists`` is ``[(weight, texts), ...]`` or ``[(weight, texts, keys), ...]`` of cleaned strings
    (:func:`clean_text`); ``keys`` (the :func:`text_key` of each text, all distinct) may be given to save work.
    Returns texts, weights (summing to 1) and, if ``sources`` names each list, the source of the kept weight;
    sorted by weight descending (ties: list order). Empty result if nothing has a positive weight.
    """
    prepared = []
    for i, item in enumerate(lists):
        w, texts = item[0], item[1]
        if w <= 0 or not texts:
            continue
        keys = item[2] if len(item) > 2 else None
        if keys is None:
            if len(texts) == 1:
                keys = (texts[0].casefold(),)
                if not keys[0]:
                    continue
            else:
                texts, keys = _keyed(texts)
                if not texts:
                    continue
        prepared.append((w / len(texts), i, texts, keys))
    # Visiting lists in descending per-text weight, the first weight a text gets is its highest one.
    prepared.sort(key=_first, reverse=True)  # stable (also with reverse): ties keep list order
    best: dict[str, tuple[str, float, int]] = {}
    for per, i, texts, keys in prepared:
        for k, t in zip(keys, texts):
            if k not in best:
                best[k] = (t, per, i)
    if not best:
        return [], [], []
    items = list(best.values())
    total = sum(x[1] for x in items)
    texts_out = [x[0] for x in items]
    weights_out = [x[1] / total for x in items]
    src = [sources[x[2]] for x in items] if sources is not None else []
    return texts_out, weights_out, src


# ----------------------------------------------------------------------------------------------------------------
# candidates per query


class _Node:
    """Synonyms and definitions of one entity (or natural type), with their :func:`text_key` keys."""

    __slots__ = ("qid", "synonyms", "definitions", "nt_qid", "nt_label", "nt_description", "syn", "defs")

    def __init__(self, qid: str | None, synonyms: tuple[str, ...], definitions: tuple[str, ...],
                 nt_qid: str | None = None, nt_label: str | None = None, nt_description: str | None = None):
        self.qid, self.synonyms, self.definitions = qid, synonyms, definitions
        self.nt_qid, self.nt_label, self.nt_description = nt_qid, nt_label, nt_description
        # (texts, keys) pairs as :func:`mix_lists` takes them; the texts are already unique by key
        self.syn = (synonyms, tuple(t.casefold() for t in synonyms))
        self.defs = (definitions, tuple(t.casefold() for t in definitions))


_EMPTY: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())


class _EntityIndex:
    """Entities table reduced to what the mix reads, plus natural-type lookups by label."""

    def __init__(self, entities: pd.DataFrame):
        required = ["qid", "label", "description", "aliases", "common_names", "taxon_names",
                    "natural_type_qid", "natural_type_label", "natural_type_description"]
        missing = [c for c in required if c not in entities.columns]
        if missing:
            raise ValueError(f"entities table lacks columns {missing} (see docs/CONTRACTS.md, entities.parquet)")
        self.nodes: dict[str, _Node] = {}
        label_qids: dict[str, Counter] = {}
        label_desc: dict[str, str] = {}
        cols = [entities[c].tolist() for c in required]
        for qid, label, desc, aliases, common, taxon, ntq, ntl, ntd in zip(*cols):
            if not isinstance(qid, str) or not qid:
                raise ValueError(f"entities table has a row with an invalid qid {qid!r}")
            label = _opt_str(label)
            desc = _opt_str(desc)
            ntq, ntl, ntd = _opt_str(ntq), _opt_str(ntl), _opt_str(ntd)
            syn = _unique(([label] if label else []) + _str_list(aliases) + _str_list(common) + _str_list(taxon))
            defs = _unique([d for d in (desc, ntd) if d])
            if qid in self.nodes:
                raise ValueError(f"entities table has qid {qid!r} more than once")
            self.nodes[qid] = _Node(qid, syn, defs, ntq, ntl, ntd)
            if ntl:
                k = text_key(ntl)
                if ntq:
                    label_qids.setdefault(k, Counter())[ntq] += 1
                if ntd and k not in label_desc:
                    label_desc[k] = ntd
        self.label_to_nt_qid = {k: c.most_common(1)[0][0] for k, c in label_qids.items()}
        self.label_to_nt_desc = label_desc
        self._nt_cache: dict[tuple, _Node] = {}

    def natural_type(self, rows: Sequence[_Node], label: str | None) -> _Node:
        """The natural type of a query: from its entity rows (matching the query's natural-type label if given),
        else by label over the whole table; as an entity row when one exists."""
        key = (tuple((r.nt_qid, r.nt_label, r.nt_description) for r in rows), label)
        hit = self._nt_cache.get(key)
        if hit is not None:
            return hit
        lk = text_key(label) if label else None
        cands = [r for r in rows if r.nt_qid or r.nt_label]
        if lk is not None:
            matching = [r for r in cands if r.nt_label and text_key(r.nt_label) == lk]
            cands = matching
        qid = desc = None
        nt_label = label
        if cands:
            counts = Counter(r.nt_qid for r in cands if r.nt_qid)
            qid = counts.most_common(1)[0][0] if counts else None
            chosen = next((r for r in cands if r.nt_qid == qid), cands[0])
            desc = chosen.nt_description
            nt_label = chosen.nt_label or nt_label  # the table's spelling of the same label
        elif lk is not None:
            qid = self.label_to_nt_qid.get(lk)
            desc = self.label_to_nt_desc.get(lk)
        row = self.nodes.get(qid) if qid else None
        if row is not None:
            syn = _unique(row.synonyms + ((nt_label,) if nt_label else ()))
            node = _Node(qid, syn, row.definitions or ((desc,) if desc else ()), row.nt_qid, row.nt_label,
                         row.nt_description)
        else:
            node = _Node(qid, (nt_label,) if nt_label else (), (desc,) if desc else (), None, None, None)
        self._nt_cache[key] = node
        return node


NOUN_SOURCES = ["original_query", "entity_synonym", "parent_synonym", "entity_definition", "parent_definition"]
ATTR_SOURCES = ["original_query", "entity_synonym", "parent_synonym", "attribute_plus_entity_synonym",
                "attribute_plus_parent_synonym", "swap_entity_synonym", "swap_parent_synonym", "attribute_only",
                "entity_definition", "parent_definition"]
#: Every KG source :func:`build_text_candidates` writes (noun and attribute lists, first-seen order).
KG_SOURCES = list(dict.fromkeys(NOUN_SOURCES + ATTR_SOURCES))


def is_kg_source(source: str) -> bool:
    """True for a drawn text that is a KG text (any source but ``alt`` and ``none``)."""
    return source not in (ALT_SOURCE, NONE_SOURCE)


def _pair(texts: Sequence[str] | tuple) -> tuple[Sequence[str], Sequence[str] | None]:
    """Plain list of cleaned strings -> (texts, None) (keys computed later); (texts, keys) pairs pass through."""
    if isinstance(texts, tuple) and len(texts) == 2 and isinstance(texts[0], tuple) and isinstance(texts[1], tuple):
        return texts
    texts = _unique(texts)
    return texts, None


def noun_lists(query: str, e_syn, p_syn, e_def, p_def, h: float, config: TextMixConfig) -> list[tuple]:
    """Weighted lists ``(weight, texts, keys|None)`` of a noun query, in :data:`NOUN_SOURCES` order.

    ``e_syn`` … ``p_def`` are lists of cleaned strings (entity/parent synonyms and definitions), or
    ``(texts, keys)`` pairs of tuples with precomputed :func:`text_key` keys (as the build loop passes them).
    """
    (es, esk), (ps, psk), (ed, edk), (pd_, pdk) = map(_pair, (e_syn, p_syn, e_def, p_def))
    syn_c = config.noun_synonym
    keep = 1.0 - syn_c
    # The authors' guard compares against len(<global synonym dict>) and so never fires (default: off); switched
    # on, it is applied as intended, per query: per-synonym chance vs keep chance (module docstring).
    if config.guard and es and syn_c / len(es) > keep:
        syn_c = keep = 0.5
    d = config.noun_definition
    return [(keep, (query,), None), (syn_c * (1 - h), es, esk), (syn_c * h, ps, psk),
            (d * (1 - h), ed, edk), (d * h, pd_, pdk)]


def attribute_lists(query: str, attribute: str | None, e_syn, p_syn, e_def, p_def, h: float,
                    config: TextMixConfig, e_syn_by_length: Sequence[str] | None = None) -> list[tuple]:
    """Weighted lists ``(weight, texts, keys|None)`` of an attribute query, in :data:`ATTR_SOURCES` order."""
    (es, esk), (ps, psk), (ed, edk), (pd_, pdk) = map(_pair, (e_syn, p_syn, e_def, p_def))
    c = config
    nh = 1 - h
    if attribute:
        pe, pp = pseudo_queries(attribute, es), pseudo_queries(attribute, ps)
    else:
        pe = pp = ()
    if e_syn_by_length is None:
        e_syn_by_length = sorted(es, key=len, reverse=True)
    pieces = swap_template(query, e_syn_by_length) if es else None
    if pieces is not None:
        se = [s.join(pieces) for s in es]
        sp = [s.join(pieces) for s in ps]
    else:
        se = sp = ()
    return [(c.attr_keep_query, (query,), None),
            (c.attr_synonym_instead * nh, es, esk), (c.attr_synonym_instead * h, ps, psk),
            (c.attr_pseudo_query * nh, pe, None), (c.attr_pseudo_query * h, pp, None),
            (c.attr_swap_entity * nh, se, None), (c.attr_swap_entity * h, sp, None),
            (c.attr_attribute_only, (attribute,) if attribute else (), None),
            (c.attr_definition * nh, ed, edk), (c.attr_definition * h, pd_, pdk)]


def _kind_class(kind: str) -> str:
    if kind.startswith("wd-attr-"):
        return "attr-only"
    if kind.startswith("wd-attrnoun-"):
        return "attrnoun"
    if kind.startswith("wd-noun-") or kind.startswith("wordnet-noun-"):
        return "noun"
    raise ValueError(f"unknown query kind {kind!r} (expected wd-noun-*, wordnet-noun-*, wd-attrnoun-*, wd-attr-*)")


def _attribute_lookup(attributes: pd.DataFrame | None) -> dict[str, str]:
    """query text key -> attribute, from attributes.parquet; used when a query row has no attribute."""
    if attributes is None or attributes.empty or not {"query", "attribute"} <= set(attributes.columns):
        return {}
    out: dict[str, str] = {}
    for q, a in zip(attributes["query"].tolist(), attributes["attribute"].tolist()):
        q, a = _opt_str(q), _opt_str(a)
        if q and a:
            out.setdefault(text_key(q), a)
    return out


#: Which queries give KG texts (``datasets.<name>.kg_text_queries``): all of an image's queries, or only its living
#: ones (the authors' LivingThings run: ``query2allowflag``).
KG_TEXT_QUERIES = ("all", "living")


def build_text_candidates(entities: pd.DataFrame, attributes: pd.DataFrame | None, queries: pd.DataFrame,
                          hierarchy_chance_generic: float = 0.2, hierarchy_chance_living: float = 0.1, *,
                          config: TextMixConfig | None = None, with_sources: bool = False,
                          kg_text_queries: str = "all") -> pd.DataFrame:
    """Candidate KG texts and normalised weights for every query (rules in the module docstring).

    Args:
        entities: ``entities.parquet`` (docs/CONTRACTS.md).
        attributes: ``attributes.parquet``, or None. Only used to fill the attribute of an attribute query whose
            ``attribute`` cell is empty (matched by query text).
        queries: ``queries.parquet``; ``query_id`` must be unique.
        hierarchy_chance_generic, hierarchy_chance_living: ``h`` for generic and animal/plant natural types.
        config: all other weights; if given, its hierarchy chances are replaced by the two arguments above.
        with_sources: add the ``sources`` column (list[str], which list each kept weight came from: a name of
            :data:`NOUN_SOURCES` / :data:`ATTR_SOURCES`). The ``text_candidates`` rule writes it.
        kg_text_queries: ``all``, or ``living``: only queries with ``is_living`` get candidates, so the sampler
            (which skips query ids without candidates) draws KG texts from an image's living queries only, uniformly
            among them, as the authors' LivingThings run did. An image with no living query then gets an alt text
            (or ``""``); in a LivingThings subset every image has one.

    Returns:
        DataFrame ``query_id, texts (list[str]), weights (list[float], sum 1)`` (+ ``sources``) in the order of
        ``queries``, texts sorted by weight descending. Every query kept has at least its own text.
    """
    if kg_text_queries not in KG_TEXT_QUERIES:
        raise ValueError(f"kg_text_queries must be one of {list(KG_TEXT_QUERIES)}, got {kg_text_queries!r}")
    if kg_text_queries == "living":
        if "is_living" not in queries.columns:
            raise ValueError("kg_text_queries='living' needs the is_living column of queries.parquet")
        queries = queries[queries["is_living"].fillna(False).astype(bool).to_numpy()]
    base = config or TextMixConfig()
    cfg = TextMixConfig(**{**asdict(base), "hierarchy_chance_generic": hierarchy_chance_generic,
                           "hierarchy_chance_living": hierarchy_chance_living})
    need = ["query_id", "text", "kind", "qids", "attribute", "natural_type"]
    missing = [c for c in need if c not in queries.columns]
    if missing:
        raise ValueError(f"queries table lacks columns {missing} (see docs/CONTRACTS.md, queries.parquet)")
    dup = queries["query_id"][queries["query_id"].duplicated()]
    if len(dup):
        raise ValueError(f"queries table has {len(dup)} duplicated query_id values, e.g. {dup.iloc[:3].tolist()}")

    index = _EntityIndex(entities)
    attr_lookup = _attribute_lookup(attributes)

    gc_was_enabled = gc.isenabled()
    gc.disable()  # the loop allocates millions of acyclic objects; cyclic-GC passes would only cost time
    try:
        out = _candidates_loop(queries, need, index, attr_lookup, cfg, with_sources)
    finally:
        if gc_was_enabled:
            gc.enable()
    df = pd.DataFrame({"query_id": out[0], "texts": out[1], "weights": out[2]})
    if with_sources:
        df["sources"] = out[3]
    return df


def _candidates_loop(queries: pd.DataFrame, need: list[str], index: _EntityIndex, attr_lookup: dict[str, str],
                     cfg: TextMixConfig, with_sources: bool) -> tuple[list, list, list, list]:
    by_length: dict[tuple[str, ...], list[str]] = {}
    out_ids, out_texts, out_weights, out_sources = [], [], [], []
    cols = [queries[c].tolist() for c in need]
    for qid, text, kind, qids, attribute, nt_label in zip(*cols):
        text = _opt_str(text)
        if text is None:
            raise ValueError(f"query {qid!r} has an empty or missing text")
        kc = _kind_class(str(kind))
        rows = [index.nodes[q] for q in _str_list(qids) if q in index.nodes]
        nt_label = _opt_str(nt_label)
        nt = index.natural_type(rows, nt_label)
        if kc == "attr-only":
            # Aggregated "{attribute} {natural type}": the natural type plays the entity role, no parent list
            # (module docstring, "No single entity").
            e_node, p_syn, p_def = nt, _EMPTY, _EMPTY
        else:
            if len(rows) == 1:
                e_node = rows[0]
            else:
                e_node = _Node(None, _unique(s for r in rows for s in r.synonyms),
                               _unique(s for r in rows for s in r.definitions))
            p_syn, p_def = nt.syn, nt.defs
        h = hierarchy_chance(nt.qid, cfg)
        if kc == "noun":
            lists = noun_lists(text, e_node.syn, p_syn, e_node.defs, p_def, h, cfg)
            sources = NOUN_SOURCES
        else:
            attribute = _opt_str(attribute) or attr_lookup.get(text_key(text))
            bl = by_length.get(e_node.synonyms)
            if bl is None:
                bl = by_length[e_node.synonyms] = sorted(e_node.synonyms, key=len, reverse=True)
            lists = attribute_lists(text, attribute, e_node.syn, p_syn, e_node.defs, p_def, h, cfg, bl)
            sources = ATTR_SOURCES
        texts, weights, src = mix_lists(lists, sources if with_sources else None)
        if not texts:  # every weight zero (custom config): fall back to the query itself
            texts, weights, src = [text], [1.0], ["original_query"]
        out_ids.append(qid)
        out_texts.append(texts)
        out_weights.append(weights)
        out_sources.append(src)
    return out_ids, out_texts, out_weights, out_sources


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


# ----------------------------------------------------------------------------------------------------------------
# Snakemake entry


def main(snakemake) -> None:
    """Rule ``text_candidates``: input ``entities``, ``queries`` (``attributes`` optional); output ``candidates``;
    params ``hierarchy_chance_generic``, ``hierarchy_chance_living``, optional ``weights`` (TextMixConfig fields)
    and ``kg_text_queries`` (``all`` or ``living``)."""
    configure_logging(snakemake)
    p = snakemake.params
    entities = pd.read_parquet(snakemake.input.entities)
    queries = pd.read_parquet(snakemake.input.queries)
    attributes = pd.read_parquet(snakemake.input.attributes) if "attributes" in snakemake.input.keys() else None
    weights = dict(getattr(p, "weights", None) or {})
    kg_text_queries = str(getattr(p, "kg_text_queries", None) or "all")
    t0 = time.perf_counter()
    df = build_text_candidates(entities, attributes, queries, float(p.hierarchy_chance_generic),
                               float(p.hierarchy_chance_living), config=TextMixConfig(**weights), with_sources=True,
                               kg_text_queries=kg_text_queries)
    n = df["texts"].map(len)
    log.info("text candidates (%s queries, synonym guard %s) for %d of %d queries in %.1f s: %.2f texts per query "
             "(max %d), %d in total", kg_text_queries, "on" if weights.get("guard") else "off", len(df),
             len(queries), time.perf_counter() - t0, n.mean() if len(df) else 0.0, n.max() if len(df) else 0,
             n.sum())
    save_candidates(df, snakemake.output.candidates)


if __name__ == "__main__":
    rule_entry(main, globals())
