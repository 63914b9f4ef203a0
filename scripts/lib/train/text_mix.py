"""The paper's per-sample text mix: KG text candidates per query (a library: no rule entry).

Two halves, this module the first:

1. :func:`build_text_candidates` turns ``entities.parquet``, ``attributes.parquet`` and ``queries.parquet`` into one
   row per ``query_id`` holding the candidate KG texts and their normalised weights (``text_candidates.parquet``).
   It runs once per dataset, in rule ``text_candidates`` (``scripts/text_candidates.py``).
2. :class:`TextSampler` (``lib.train.text_sampler``) draws exactly one text per image per step at training time:
   with probability ``alt_text_chance`` (and only if the image has alt texts) a uniformly chosen alt text, otherwise
   a KG text of one of the image's source queries (the query chosen uniformly, the text from that query's
   distribution).

Weights (authors' train config ``train_clip_vitb32_entityneturl_webds.yaml`` @63da7db, loader
``entitynet_textloader.py`` @1346597), with ``h`` the hierarchy-replacement chance:

* noun queries (``wd-noun-*``, ``wordnet-noun-*``): original query ``1 - 0.6``; entity synonyms ``0.6·(1-h)``;
  parent (natural type) synonyms ``0.6·h``; entity definitions ``0.1·(1-h)``; parent definitions ``0.1·h``.
* attribute queries (``wd-attr-*``, ``wd-attrnoun-*``): keep the query ``1.0``; a synonym instead of the query
  ``0.2`` (entity ``·(1-h)``, parent ``·h``); "attribute synonym" and "synonym attribute" ``0.2`` (same split);
  the entity name inside the query swapped for a synonym ``0.2`` (same split); the attribute alone ``0.2``;
  a definition ``0.05`` (same split).
* ``h = 0.1`` when the natural type is animal/plant (Q729, Q756, ``wordnet:animal.n.01``, ``wordnet:plant.n.02``),
  else 0.2.
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
import math
import operator
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import pandas as pd

from lib.train.text_sampler import ATTR_SOURCES, NOUN_SOURCES

#: Natural types whose hierarchy replacement uses the lower ``hierarchy_chance_living`` (authors:
#: ``NATURALENTITY_LIVING``; both WordNet prefixes are accepted).
LIVING_NATURAL_TYPES = frozenset({"Q729", "Q756", "wn:animal.n.01", "wn:plant.n.02",
                                  "wordnet:animal.n.01", "wordnet:plant.n.02"})



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
                          kg_text_queries: str, config: TextMixConfig | None = None,
                          with_sources: bool = False) -> pd.DataFrame:
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
        kg_text_queries: the dataset's ``kg_text_queries`` (config/schema.yaml): ``all``, or ``living``: only
            queries with ``is_living`` get candidates, so the sampler (which skips query ids without candidates)
            draws KG texts from an image's living queries only, uniformly among them, as the authors' LivingThings
            run did. An image with no living query then gets an alt text (or ``""``); in a LivingThings subset
            every image has one.

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
