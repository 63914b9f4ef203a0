"""The authors' released entity and query tables -> ``entities.parquet`` and ``attributes.parquet`` (rule
``import_released_entities``), instead of running the KG stage.

Inputs (docs/PAPER_NOTES.md §16; read from the authors' loader code, not checked against the files — every
column is validated here and a mismatch names the file and the columns it has):

* ``entitynet-entities.parquet``: ``entity, entity_name, textvalues, textsources, naturalentity`` — per entity the
  texts (``textvalues``) and where each comes from (``textsources``: name, aliases, common_names, taxon_names,
  description, type_description), and its natural entity (the parent of the text mix).
* ``entitynet-queries.parquet``: ``query_hash, query, query_type, entity, attribute, api``.

Entity keys are the authors' (``lib.search.released.entity_key``), the same that the query import puts in
``queries.parquet``'s ``qids``. Mapping (docs/CONTRACTS.md):

* ``entities.parquet`` (:func:`released_entities`): one row per entity key, its texts split by source into
  ``label``/``aliases``/``common_names``/``taxon_names`` (synonyms) and ``description``/``natural_type_description``
  (definitions), ``natural_type_qid``/``natural_type_label`` from ``naturalentity``.
* ``attributes.parquet`` (:func:`released_attributes`): the query table's (entity, attribute, query) rows.
"""

import logging

import numpy as np
import pandas as pd

from _helpers import write_parquet
from lib.search.queries import normalise
from lib.search.released import LIVING, QUERY_COLUMNS, distinct, entity_key

log = logging.getLogger("entitynet.import_released")

ENTITY_SOURCE_COLUMNS = ("entity", "entity_name", "textvalues", "textsources", "naturalentity")
#: The text sources of the authors' entity table and the column of our entities table each one fills. The authors'
#: loader groups name/aliases/common_names/taxon_names as synonyms and description/type_description as
#: definitions; our text mix reads label/aliases/common_names/taxon_names as synonyms and
#: description/natural_type_description as definitions, so each source lands in the column with the same role.
TEXT_SOURCE_COLUMN = {"name": "label", "aliases": "aliases", "common_names": "common_names",
                      "taxon_names": "taxon_names", "description": "description",
                      "type_description": "natural_type_description"}
#: entities.parquet columns (docs/CONTRACTS.md; the same list as lib.kg.kg_entity_table.ENTITY_COLUMNS) and the extras
#: kept from the release.
ENTITY_COLUMNS = ["qid", "label", "description", "aliases", "common_names", "taxon_names", "sitelinks", "roots",
                  "is_living", "natural_type_qid", "natural_type_label", "natural_type_description", "image",
                  "source"]
ENTITY_EXTRA_COLUMNS = ["author_entity", "author_definitions"]
ATTRIBUTE_COLUMNS = ["qid", "category", "attribute", "query", "source"]
RELEASED_SOURCE = "released"


def _text_list(value) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        return [value]
    return [v if isinstance(v, str) else str(v) for v in list(value) if v is not None]


def released_entities(author: pd.DataFrame, author_queries: pd.DataFrame | None = None,
                      source: str = "entitynet-entities.parquet") -> pd.DataFrame:
    """The authors' entity table -> our ``entities.parquet`` frame (docs/CONTRACTS.md), one row per entity key.

    * ``qid`` = :func:`entity_key` of ``entity`` (``Q…`` or ``wordnet:<synset>``), the key the query import puts
      in ``queries.parquet``'s ``qids``, so the text mix finds every query's entity.
    * ``textvalues``/``textsources`` (parallel lists) are split by source (:data:`TEXT_SOURCE_COLUMN`): ``label`` is
      ``entity_name`` (a further ``name`` value becomes an alias), ``description`` the first ``description``,
      ``natural_type_description`` the first ``type_description``; every definition, in table order, is also kept
      in ``author_definitions``. Distinct values, first-seen order; empty strings left out.
    * ``natural_type_qid`` = key of ``naturalentity``; ``natural_type_label`` = that entity's ``entity_name`` when
      it is in the table.
    * ``is_living`` = named by a ``*-living`` query of ``author_queries`` (the release has no root information);
      ``roots`` empty, ``sitelinks``/``image`` null, ``source`` ``released``; ``author_entity`` the raw key.

    Rows without a key are dropped with a warning; a key listed twice keeps its first row (warning). An unknown
    text source raises (the loader would fail on it too).
    """
    missing = [c for c in ENTITY_SOURCE_COLUMNS if c not in author.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; expected {list(ENTITY_SOURCE_COLUMNS)}, "
                         f"have {list(author.columns)}")
    keys = [entity_key(e) for e in author["entity"].tolist()]
    living: set[str] = set()
    if author_queries is not None and len(author_queries):
        for kind, ent in zip(author_queries["query_type"].astype(str), author_queries["entity"].tolist()):
            k = entity_key(ent)
            if k and LIVING.search(kind.strip()):
                living.add(k)
    names: dict[str, str] = {}
    rows: list[dict] = []
    seen: set[str] = set()
    n_nokey = n_dup = n_mismatch = 0
    unknown: set[str] = set()
    for key, raw, name, values, sources, nat in zip(keys, author["entity"].tolist(), author["entity_name"].tolist(),
                                                    author["textvalues"].tolist(), author["textsources"].tolist(),
                                                    author["naturalentity"].tolist()):
        if key is None:
            n_nokey += 1
            continue
        if key in seen:
            n_dup += 1
            continue
        seen.add(key)
        values, sources = _text_list(values), _text_list(sources)
        if len(values) != len(sources):
            n_mismatch += 1
        by_col: dict[str, list[str]] = {c: [] for c in set(TEXT_SOURCE_COLUMN.values())}
        definitions: list[str] = []
        for value, src in zip(values, sources):
            col = TEXT_SOURCE_COLUMN.get(src)
            if col is None:
                unknown.add(src)
                continue
            value = value.strip()
            if not value:
                continue
            by_col[col].append(value)
            if src in ("description", "type_description"):
                definitions.append(value)
        name = name.strip() if isinstance(name, str) and name.strip() else None
        label_values = distinct(([name] if name else []) + by_col["label"])
        label = label_values[0] if label_values else None
        names[key] = label
        rows.append({
            "qid": key, "label": label, "description": (by_col["description"] or [None])[0],
            "aliases": [a for a in distinct(label_values[1:] + by_col["aliases"]) if a != label],
            "common_names": distinct(by_col["common_names"]), "taxon_names": distinct(by_col["taxon_names"]),
            "sitelinks": None, "roots": [], "is_living": key in living, "natural_type_qid": entity_key(nat),
            "natural_type_label": None,
            "natural_type_description": (by_col["natural_type_description"] or [None])[0], "image": None,
            "source": RELEASED_SOURCE, "author_entity": str(raw).strip(), "author_definitions": distinct(definitions),
        })
    if unknown:
        raise ValueError(f"{source}: unknown text source(s) {sorted(unknown)}; expected {sorted(TEXT_SOURCE_COLUMN)}")
    for r in rows:
        if r["natural_type_qid"]:
            r["natural_type_label"] = names.get(r["natural_type_qid"])
    if n_nokey:
        log.warning("%s: %d rows have no entity key; dropped", source, n_nokey)
    if n_dup:
        log.warning("%s: %d entity keys are listed more than once; the first row wins", source, n_dup)
    if n_mismatch:
        log.warning("%s: %d rows have textvalues and textsources of different lengths; the extra values are "
                    "dropped", source, n_mismatch)
    out = pd.DataFrame(rows, columns=ENTITY_COLUMNS + ENTITY_EXTRA_COLUMNS)
    no_parent = out["natural_type_qid"].notna() & out["natural_type_label"].isna()
    if no_parent.any():
        log.warning("%s: %d entities name a natural entity that is not in the table (no parent texts for them)",
                    source, int(no_parent.sum()))
    log.info("%s: %d entities (%d living), %d synonyms, %d definitions", source, len(out), int(out["is_living"].sum()),
             int(out["label"].notna().sum() + out["aliases"].map(len).sum() + out["common_names"].map(len).sum()
                 + out["taxon_names"].map(len).sum()), int(out["author_definitions"].map(len).sum()))
    return out


def released_attributes(author_queries: pd.DataFrame) -> pd.DataFrame:
    """``attributes.parquet`` (docs/CONTRACTS.md) from the authors' query table: one row per distinct (entity key,
    attribute, query) of the rows that have an attribute (``wd-attr-*``, ``wd-attrnoun-*``); ``category`` null (not
    released), ``source`` ``released``. Texts are normalised as in ``queries.parquet``."""
    rows = []
    for ent, attr, query in zip(author_queries["entity"].tolist(), author_queries["attribute"].tolist(),
                                author_queries["query"].tolist()):
        key = entity_key(ent)
        if not isinstance(attr, str) or not attr.strip() or not isinstance(query, str) or not query.strip():
            continue
        rows.append({"qid": key, "category": None, "attribute": normalise(attr), "query": normalise(query),
                     "source": RELEASED_SOURCE})
    out = pd.DataFrame(rows, columns=ATTRIBUTE_COLUMNS)
    return out.drop_duplicates(["qid", "attribute", "query"]).reset_index(drop=True)


def import_released_entities(entities_path: str, queries_path: str, entities_out: str, attributes_out: str) -> dict:
    """Write ``entities_out`` and ``attributes_out`` (atomically) from the released entity and query tables."""
    author_q = pd.read_parquet(queries_path)
    missing = [c for c in QUERY_COLUMNS if c not in author_q.columns]
    if missing:
        raise ValueError(f"{queries_path}: missing column(s) {missing}; expected {list(QUERY_COLUMNS)}, "
                         f"have {list(author_q.columns)}")
    entities = released_entities(pd.read_parquet(entities_path), author_q, source=str(entities_path))
    attributes = released_attributes(author_q)
    refs = {entity_key(e) for e in author_q["entity"].tolist()} - {None}
    absent = refs - set(entities["qid"])
    if absent:
        log.warning("%d entity keys of %s are not in %s (their queries get no entity texts), e.g. %s", len(absent),
                    queries_path, entities_path, sorted(absent)[:3])
    write_parquet(entities, entities_out)
    write_parquet(attributes, attributes_out)
    summary = {"entities": len(entities), "attributes": len(attributes), "query_entities_missing": len(absent)}
    log.info("released entities: %s", summary)
    return summary
