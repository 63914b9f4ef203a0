"""Search queries from entities and attributes, with the paper's query kinds and per-engine syntax
(docs/PAPER_NOTES.md §7). A library (no rule entry): rule ``build_queries`` (``scripts/build_queries.py``) calls
:func:`build_queries`.

Kinds: ``wd-noun-world`` / ``wd-noun-living`` (entity label; aliases are not queries), ``wd-attrnoun-*`` (the
attribute's search query), ``wd-attr-*`` ("{attribute} {natural type}", aggregated over entities and sorted by
frequency; no entity field), ``wordnet-noun-living`` (WordNet rows of entities.parquet).
``query_id`` = first 16 hex digits of sha256("{kind}\\t{normalised text}"): independent of backend and of order
(the kinds, the normalisation and ``query_id`` live in ``lib.search.queries``).

Search terms of world queries (``queries.world_search_terms``): ``authors`` (default) gives every ``*-world`` query
the authors' world shape, the query text and the photo type only (empty ``or_terms`` and ``exclude_terms``), as
their world query builder writes ``{entity, query, type: Photo}``; ``extended`` gives world queries the living
queries' Google syntax as well (names and natural type as alternatives, the drawing/clipart exclude list).
Living and WordNet queries are the same under both.
"""

import pandas as pd

from lib.search.queries import normalise, query_id

EXCLUDE_TERMS = "drawing clipart illustration cartoon vector painting"
WORLD_SEARCH_TERMS = ("authors", "extended")


def _names(row) -> list[str]:
    names = []
    for col in ("aliases", "common_names", "taxon_names"):
        v = row.get(col)
        if v is not None:
            names.extend(list(v))
    return names


def noun_queries(entities: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for row in entities.to_dict("records"):
        living = bool(row["is_living"])
        kind = "wordnet-noun-living" if row.get("source") == "wordnet" else (
            "wd-noun-living" if living else "wd-noun-world")
        label = normalise(row["label"])
        extra = [normalise(n) for n in _names(row) if normalise(n) != label]
        nt = row.get("natural_type_label")
        nt = normalise(nt) if isinstance(nt, str) and nt else None
        # Wikidata: the label is the query (aliases are not queries, docs/PAPER_NOTES.md §7.1). WordNet: every lemma
        # of the leaf synset is its own query (the authors' wordnet_livingthings_create_queries.py).
        texts = [label] + (list(dict.fromkeys(extra)) if kind == "wordnet-noun-living" else [])
        for text in texts:
            others = [n for n in [label] + extra if n != text]
            or_terms = list(dict.fromkeys(others + ([nt] if nt and nt != text else [])))
            rows.append({"text": text, "kind": kind, "qids": [row["qid"]], "attribute": None, "natural_type": nt,
                         "is_living": living, "or_terms": " ".join(or_terms), "count": 1})
    return pd.DataFrame(rows)


def attribute_queries(entities: pd.DataFrame, attributes: pd.DataFrame) -> pd.DataFrame:
    if attributes.empty:
        return pd.DataFrame()
    ents = entities.set_index("qid")
    a = attributes[attributes["qid"].isin(ents.index)].copy()
    a["is_living"] = a["qid"].map(ents["is_living"]).astype(bool)
    a["natural_type"] = a["qid"].map(ents["natural_type_label"]).map(
        lambda s: normalise(s) if isinstance(s, str) else None)
    rows = []
    for r in a.to_dict("records"):
        ent = ents.loc[r["qid"]]
        names = [normalise(ent["label"])] + [normalise(n) for n in _names(ent)]
        q = normalise(r["query"])
        or_terms = [n for n in dict.fromkeys(names) if n not in q]
        rows.append({"text": q, "kind": "wd-attrnoun-living" if r["is_living"] else "wd-attrnoun-world",
                     "qids": [r["qid"]], "attribute": normalise(r["attribute"]), "natural_type": r["natural_type"],
                     "is_living": r["is_living"], "or_terms": " ".join(or_terms), "count": 1})
    attrnoun = pd.DataFrame(rows)
    # attribute + natural type, aggregated across entities (no entity field), sorted by frequency
    t = a.dropna(subset=["natural_type"]).copy()
    t["text"] = t["attribute"].map(normalise) + " " + t["natural_type"]
    agg = (t.groupby(["text", "is_living"], sort=False)
           .agg(attribute=("attribute", lambda s: normalise(s.iloc[0])), natural_type=("natural_type", "first"),
                count=("qid", "nunique")).reset_index())
    agg["kind"] = agg["is_living"].map({True: "wd-attr-living", False: "wd-attr-world"})
    agg["qids"] = [[] for _ in range(len(agg))]
    agg["or_terms"] = ""
    agg = agg.sort_values("count", ascending=False, kind="stable")
    return pd.concat([attrnoun, agg], ignore_index=True)


def build_queries(entities: pd.DataFrame, attributes: pd.DataFrame, kinds: list[str],
                  max_per_kind: dict[str, int] | None = None, seed: int = 0,
                  world_search_terms: str = "authors") -> pd.DataFrame:
    if world_search_terms not in WORLD_SEARCH_TERMS:
        raise ValueError(f"world_search_terms must be one of {WORLD_SEARCH_TERMS}, got {world_search_terms!r}")
    q = pd.concat([noun_queries(entities), attribute_queries(entities, attributes)], ignore_index=True)
    q = q[q["kind"].isin(kinds) & (q["text"].str.len() > 0)]
    # same (kind, text) from several entities: one query carrying all their QIDs
    q = (q.groupby(["kind", "text"], sort=False)
         .agg(qids=("qids", lambda s: sorted({x for v in s for x in v})), attribute=("attribute", "first"),
              natural_type=("natural_type", "first"), is_living=("is_living", "max"),
              or_terms=("or_terms", "first"), count=("count", "sum")).reset_index())
    if max_per_kind:
        parts = []
        for kind, g in q.groupby("kind", sort=False):
            cap = max_per_kind.get(kind)
            parts.append(g.sample(n=cap, random_state=seed).sort_index() if cap is not None and len(g) > cap else g)
        q = pd.concat(parts)
    q["query_id"] = [query_id(k, t) for k, t in zip(q["kind"], q["text"])]
    q["exclude_terms"] = EXCLUDE_TERMS
    if world_search_terms == "authors":  # world queries: text + photo type only (see the module docstring)
        world = q["kind"].str.endswith("-world")
        q.loc[world, "or_terms"] = ""
        q.loc[world, "exclude_terms"] = ""
    q["image_type"] = "photo"
    cols = ["query_id", "text", "kind", "qids", "attribute", "natural_type", "is_living", "or_terms",
            "exclude_terms", "image_type", "count"]
    q = q[cols].sort_values(["kind", "query_id"]).reset_index(drop=True)
    assert q["query_id"].is_unique, "query_id collision"
    return q
