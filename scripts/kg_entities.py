"""Entities from the frozen KG dump: world classes under the roots, living things, natural types.

Selection follows the authors' code (PAPER.md §3–§5):
- world: ``?ent wdt:P279* wd:<root>`` (root included), label in the configured language required, sitelinks ≥
  ``min_sitelinks`` (a missing count counts as 0), no instances; P18 optional.
- living: ``(P31/P279*)|P279+`` or ``P171+`` under each living root, minus humans, mythical creatures, individuals,
  cultivars (``living.exclude``) and anything with coordinates (P625); P18 required unless
  ``living.require_image`` is false; plus fruits linked to plant taxa (P1582/P1672); capped per root by sitelinks.
- **Deviation**: an entity under several roots is kept once with *all* its roots (the authors kept the first root).
- **Deviation**: natural types come from a deterministic KG heuristic by default, not an LLM: among the ancestors
  1–3 P279 hops up (world; generic classes excluded) or the ancestors that are themselves P279* of the living root
  (living), take the candidate with the most sitelinks, ties broken by fewer hops then by QID. Living things default
  to their root (animal / plant / fungus). P279 cycles are harmless (breadth-first search with a visited set).
"""

import logging
from collections import defaultdict, deque

import pandas as pd

import kg_queries as kq
from _helpers import configure_logging, write_parquet
from sparql_client import EmbeddedSparql, binding_value, qid_of

log = logging.getLogger("entitynet.kg_entities")

P279, P31, P171 = (f"http://www.wikidata.org/prop/direct/{p}" for p in ("P279", "P31", "P171"))


def rows_to_frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    data = {c: [binding_value(r, c) for r in rows] for c in columns}
    df = pd.DataFrame(data, columns=columns)
    if "ent" in df:
        df["ent"] = df["ent"].map(qid_of)
    return df


def first_per_entity(df: pd.DataFrame) -> pd.DataFrame:
    """One row per entity: the max sitelinks and the first non-null description / image."""
    df = df.copy()
    df["links"] = pd.to_numeric(df["links"], errors="coerce")
    agg = df.groupby("ent", sort=False).agg(
        label=("label", "first"), description=("desc", "first"), sitelinks=("links", "max"), image=("image", "first"))
    return agg.reset_index().rename(columns={"ent": "qid"})


def select_world(store: EmbeddedSparql, roots: list[str], lang: str, min_sitelinks: int) -> pd.DataFrame:
    frames = []
    for root in roots:
        df = rows_to_frame(store.select(kq.world_entities_query(root, lang)), ["ent", "label", "desc", "links", "image"])
        if df.empty:
            log.warning("world root %s: no entity with a %s label in the dump", root, lang)
            continue
        df = first_per_entity(df)
        df = df[df["sitelinks"].fillna(0) >= min_sitelinks]
        df["root"] = root
        frames.append(df)
        log.info("world root %s: %d entities", root, len(df))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["qid", "label", "description", "sitelinks", "image", "root"])


def select_living(store: EmbeddedSparql, roots: list[str], lang: str, exclude: list[str], require_image: bool,
                  max_per_root: int | None) -> pd.DataFrame:
    frames = []
    for root in roots:
        rows = store.select(kq.living_entities_query(root, lang, exclude, require_image))
        rows += store.select(kq.fruits_query(root, lang, require_image))
        df = rows_to_frame(rows, ["ent", "label", "desc", "links", "image"])
        if df.empty:
            log.warning("living root %s: no entity found in the dump", root)
            continue
        df = first_per_entity(df)
        df = df.sort_values(["sitelinks", "qid"], ascending=[False, True], na_position="last", kind="stable")
        if max_per_root:
            df = df.head(int(max_per_root))
        df["root"] = root
        frames.append(df)
        log.info("living root %s: %d entities", root, len(df))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["qid", "label", "description", "sitelinks", "image", "root"])


def multi_values(store: EmbeddedSparql, prop_pattern: str, lang: str | None) -> pd.Series:
    """qid -> sorted list of distinct values."""
    df = rows_to_frame(store.select(kq.multi_value_query(prop_pattern, lang)), ["ent", "v"])
    if df.empty:
        return pd.Series(dtype=object)
    return df.groupby("ent")["v"].agg(lambda s: sorted(set(s)))


def load_graph(store: EmbeddedSparql) -> tuple[dict[str, list[tuple[str, str]]], pd.DataFrame]:
    """Parent adjacency ``child -> [(property, parent)]`` and node info (label, description, sitelinks)."""
    edges = store.select(kq.EDGES_QUERY)
    up: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in edges:
        up[qid_of(r["s"]["value"])].append((r["p"]["value"], qid_of(r["o"]["value"])))
    return up, info_frame(store)


def info_frame(store: EmbeddedSparql, lang: str = "en") -> pd.DataFrame:
    df = rows_to_frame(store.select(kq.node_info_query(lang)), ["x", "label", "desc", "links"])
    df["x"] = df["x"].map(qid_of)
    df["links"] = pd.to_numeric(df["links"], errors="coerce")
    return df.groupby("x").agg(label=("label", "first"), description=("desc", "first"),
                               sitelinks=("links", "max"))


def ancestors(up: dict, start: str, props: set[str], max_hops: int | None) -> dict[str, int]:
    """Breadth-first ancestors over ``props`` with their hop distance; cycle-safe."""
    seen = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        d = seen[node]
        if max_hops is not None and d >= max_hops:
            continue
        for p, parent in up.get(node, ()):
            if p in props and parent not in seen:
                seen[parent] = d + 1
                queue.append(parent)
    seen.pop(start)
    return seen


def pick_natural_type(cands: dict[str, int], info: pd.DataFrame) -> str | None:
    """The most-sitelinked candidate; ties by fewer hops, then QID order. Candidates need a label."""
    best, best_key = None, None
    for q, hops in cands.items():
        if q not in info.index:
            continue
        links = info.at[q, "sitelinks"]
        links = 0 if pd.isna(links) else int(links)
        key = (-links, hops, int(q[1:]) if q[1:].isdigit() else 0)
        if best_key is None or key < best_key:
            best, best_key = q, key
    return best


def natural_types(entities: pd.DataFrame, up: dict, info: pd.DataFrame, generic: set[str]) -> pd.Series:
    """Natural-type QID per entity row (see module docstring)."""
    living_members: dict[str, set[str]] = {}
    out = []
    for row in entities.itertuples(index=False):
        if row.is_living:
            root = row.living_root
            if root not in living_members:
                # classes that are P279* of the living root: valid living natural types
                members = {q for q in info.index if q == root or root in ancestors(up, q, {P279}, None)}
                living_members[root] = members
            cands = {q: h for q, h in ancestors(up, row.qid, {P31, P279, P171}, None).items()
                     if q in living_members[root] and q not in generic}
            nt = pick_natural_type(cands, info) or root
        else:
            cands = {q: h for q, h in ancestors(up, row.qid, {P279}, 3).items() if q not in generic}
            nt = pick_natural_type(cands, info)
            if nt is None:
                nt = row.roots[0] if row.roots and row.roots[0] != row.qid else None
        out.append(nt)
    return pd.Series(out, index=entities.index, dtype=object)


def build_entities(store: EmbeddedSparql, roots: list[str], living_roots: list[str], lang: str, min_sitelinks: int,
                   living_exclude: list[str], require_image: bool, max_living_per_root: int | None,
                   generic_classes: list[str]) -> pd.DataFrame:
    world = select_world(store, roots, lang, min_sitelinks)
    world["is_living"] = False
    living = select_living(store, living_roots, lang, living_exclude, require_image, max_living_per_root)
    living["is_living"] = True
    both = pd.concat([living, world], ignore_index=True)
    if both.empty:
        raise RuntimeError(f"no entity selected for roots {roots} / living roots {living_roots}")
    # One row per entity, all its roots kept (deviation from the authors' first-root-wins).
    grouped = both.groupby("qid", sort=False)
    ents = grouped.agg(label=("label", "first"), description=("description", "first"),
                       sitelinks=("sitelinks", "max"), image=("image", "first"), is_living=("is_living", "max"))
    ents["roots"] = grouped["root"].agg(lambda s: list(dict.fromkeys(s)))
    ents["living_root"] = both[both["is_living"]].groupby("qid")["root"].first()
    ents = ents.reset_index()
    ents["aliases"] = ents["qid"].map(multi_values(store, "skos:altLabel", lang))
    ents["common_names"] = ents["qid"].map(multi_values(store, "wdt:P1843", lang))
    ents["taxon_names"] = ents["qid"].map(multi_values(store, "wdt:P225", None))
    for c in ("aliases", "common_names", "taxon_names"):
        ents[c] = ents[c].map(lambda v: list(v) if isinstance(v, list) else [])
    up, info = load_graph(store)
    ents["natural_type_qid"] = natural_types(ents, up, info, set(generic_classes))
    ents["natural_type_label"] = ents["natural_type_qid"].map(info["label"])
    ents["natural_type_description"] = ents["natural_type_qid"].map(info["description"])
    ents["sitelinks"] = ents["sitelinks"].astype("Int64")
    ents["source"] = "wikidata"
    ents = ents.sort_values(["sitelinks", "qid"], ascending=[False, True], na_position="last", kind="stable")
    cols = ["qid", "label", "description", "aliases", "common_names", "taxon_names", "sitelinks", "roots",
            "is_living", "natural_type_qid", "natural_type_label", "natural_type_description", "image", "source"]
    return ents[cols].reset_index(drop=True)


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    store = EmbeddedSparql()
    n = store.load(snakemake.input.extract)
    log.info("loaded %d triples from %s", n, snakemake.input.extract)
    ents = build_entities(store, list(p.roots), list(p.living_roots), p.language, int(p.min_sitelinks),
                          list(p.living_exclude), bool(p.require_image), p.max_living_per_root,
                          list(p.generic_classes))
    log.info("%d entities (%d living)", len(ents), int(ents["is_living"].sum()))
    write_parquet(ents, snakemake.output.entities)


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821
