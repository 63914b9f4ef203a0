"""The entities table (``docs/CONTRACTS.md``) from the frozen KG: tables, graph, selections, names, natural types.

:func:`build_entities` chains :mod:`lib.kg.kg_tables`, :mod:`lib.kg.kg_graph`, :mod:`lib.kg.kg_selection` and
:mod:`lib.kg.kg_natural_types` (with an optional ``kg_llm.KGLLM``), checks for roots that select nothing and
assembles one row per entity with all its roots; :func:`add_wordnet` appends the ``kg_wordnet`` rows.
"""

import logging
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd

from lib.kg.kg_graph import Graph
from lib.kg.kg_natural_types import natural_types
from lib.kg.kg_selection import cap_per_root, clean_living, living_candidates, select_world_fast, visual_filter
from lib.kg.kg_tables import load_tables
from lib.kg.sparql_client import check_qid

log = logging.getLogger("entitynet.kg_entity_table")

ENTITY_COLUMNS = ["qid", "label", "description", "aliases", "common_names", "taxon_names", "sitelinks", "roots",
                  "is_living", "natural_type_qid", "natural_type_label", "natural_type_description", "image",
                  "source"]


def group_lists(keys: pd.Series, values: pd.Series) -> pd.Series:
    """key -> list of its values in input order (a fast ``groupby(keys)[values].agg(list)``)."""
    codes, uniques = pd.factorize(keys, sort=False)
    if not len(codes):
        return pd.Series(dtype=object)
    order = np.argsort(codes, kind="stable")
    c = codes[order]
    bounds = np.flatnonzero(c[1:] != c[:-1]) + 1
    groups = np.split(values.to_numpy(dtype=object)[order], bounds)
    return pd.Series([g.tolist() for g in groups], index=pd.Index(uniques), dtype=object)


def name_lists(names: pd.DataFrame, qids: pd.Series) -> pd.Series:
    """qid -> sorted list of distinct values, for the given qids (others get [])."""
    n = names[names["s"].isin(qids)].dropna().drop_duplicates()
    lists = group_lists(n["s"], n["v"]).map(sorted) if len(n) else pd.Series(dtype=object)
    mapped = qids.map(lists) if len(lists) else pd.Series([None] * len(qids), index=qids.index, dtype=object)
    return mapped.map(lambda v: v if isinstance(v, list) else [])


def combine(living: pd.DataFrame, world: pd.DataFrame) -> pd.DataFrame:
    """One row per entity, all its roots kept (deviation from the authors' first-root-wins)."""
    living = living.assign(is_living=True)
    world = world.assign(is_living=False)
    both = pd.concat([x for x in (living, world) if not x.empty], ignore_index=True) if (
        not living.empty or not world.empty) else pd.DataFrame()
    if both.empty:
        return both
    both["sitelinks"] = pd.to_numeric(both["sitelinks"], errors="coerce")
    grouped = both.groupby("qid", sort=False)
    ents = grouped.agg(label=("label", "first"), description=("description", "first"),
                       sitelinks=("sitelinks", "max"), image=("image", "first"), is_living=("is_living", "max"))
    r = both[["qid", "root"]].drop_duplicates()
    ents["roots"] = group_lists(r["qid"], r["root"])
    ents["living_root"] = both[both["is_living"]].groupby("qid", sort=False)["root"].first()
    return ents.reset_index()


def finish(ents: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Natural-type label/description, dtypes, source, final order (sitelinks desc, missing last, then QID)."""
    ents = ents.copy()
    ents["natural_type_label"] = ents["natural_type_qid"].map(info["label"])
    ents["natural_type_description"] = ents["natural_type_qid"].map(info["description"])
    ents["sitelinks"] = pd.to_numeric(ents["sitelinks"], errors="coerce").round().astype("Int64")
    ents["is_living"] = ents["is_living"].astype(bool)
    ents["source"] = "wikidata"
    ents = ents.sort_values(["sitelinks", "qid"], ascending=[False, True], na_position="last", kind="stable")
    return ents[ENTITY_COLUMNS].reset_index(drop=True)


@contextmanager
def _timed(timings: dict | None, name: str):
    t = time.perf_counter()
    yield
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t


class EmptyRootError(RuntimeError):
    """A configured root selects no entity from the dump (a mistyped QID, or a dump without that part)."""


def check_empty_roots(info: pd.DataFrame, world: pd.DataFrame, living: pd.DataFrame, roots: list[str],
                      living_roots: list[str], allowed=()) -> list[str]:
    """The roots that select nothing; an error naming each (with its label, or the dump's nearest QIDs and their
    labels) unless it is in ``allowed`` (``kg.allow_empty_roots``). Returns the allowed empty ones."""
    import difflib

    def empty(frame, qids):
        have = set(frame["root"]) if not frame.empty else set()
        return [q for q in qids if q not in have]

    found = empty(world, roots) + empty(living, living_roots)
    bad = [q for q in found if q not in set(allowed)]
    if not bad:
        return found
    labels = info["label"] if "label" in info else pd.Series(dtype=object)
    lines = []
    for q in bad:
        if q in labels.index and isinstance(labels[q], str):
            lines.append(f"{q} ({labels[q]!r}) is in the dump but selects no entity (too few sitelinks or images?)")
            continue
        near = [c for c in labels.index if isinstance(c, str) and abs(len(c) - len(q)) <= 1]
        close = difflib.get_close_matches(q, near, n=3, cutoff=0.7)
        hint = ", ".join(f"{c} ({labels[c]!r})" for c in close) or "none"
        lines.append(f"{q} is not in the dump; nearest QIDs in it: {hint}")
    raise EmptyRootError("root(s) that select no entity: " + "; ".join(lines)
                         + ". Fix the QID, or list it in kg.allow_empty_roots when the dump rightly lacks it")


def build_entities(source, roots: list[str], living_roots: list[str], lang: str, min_sitelinks: int,
                   living_exclude: list[str], require_image: bool, max_living_per_root: int | None,
                   generic_classes: list[str], llm=None, timings: dict | None = None,
                   allow_empty_roots=None, exclude_by_root: dict | None = None, coordinate_roots=None,
                   cleanup=(), visual: dict | None = None, living_rule: str = "most_sitelinks",
                   living_type_min_sitelinks: float = 0) -> pd.DataFrame:
    """The entities table (``docs/CONTRACTS.md``).

    ``source``: the dump path (read directly, :func:`read_dump_tables`), a loaded store (SPARQL scans,
    :func:`fetch_tables`) or a :class:`KGTables`. ``llm``: a ``kg_llm.KGLLM`` for ``natural_types.mode: llm``
    (None: the KG heuristic only). ``timings``: filled with seconds per step when given. ``allow_empty_roots``:
    None (no check) or the QIDs that may select nothing; any other empty root raises :class:`EmptyRootError`.
    ``exclude_by_root`` / ``coordinate_roots``: per-root exclusions (:func:`root_exclusions`). ``cleanup``: the
    living clean-up kinds (:func:`clean_living`). ``visual``: ``{enabled, abstract_classes,
    min_sitelinks_without_image}`` for world entities (:func:`visual_filter`; None: off). ``living_rule`` /
    ``living_type_min_sitelinks``: the living natural-type rule (:func:`natural_types`).
    """
    for q in list(roots) + list(living_roots) + list(living_exclude) + list(generic_classes):
        check_qid(q, "roots / living roots / exclude / generic classes")
    with _timed(timings, "tables"):
        tables = load_tables(source, lang, timings)
    with _timed(timings, "graph"):
        g = Graph(tables.edges, tables.info, extra_nodes=list(roots) + list(living_roots))
    with _timed(timings, "select_world"):
        world = select_world_fast(g, list(roots), int(min_sitelinks))
        if visual and visual.get("enabled"):
            world = visual_filter(world, g, list(visual.get("abstract_classes") or []),
                                  float(visual.get("min_sitelinks_without_image") or 0))
    with _timed(timings, "select_living"):
        living = living_candidates(g, tables.coords, list(living_roots), list(living_exclude), bool(require_image),
                                   exclude_by_root, coordinate_roots)
        living = clean_living(living, list(cleanup or ()))
        if llm is not None:
            llm.set_names(tables.names)
            living = llm.filter_living(living)
        living = cap_per_root(living, max_living_per_root)
        for root, n in living.groupby("root", sort=False).size().items():
            log.info("living root %s: %d entities", root, n)
    if allow_empty_roots is not None:
        check_empty_roots(tables.info, world, living, list(roots), list(living_roots), allow_empty_roots)
    ents = combine(living, world)
    if ents.empty:
        raise RuntimeError(f"no entity selected for roots {roots} / living roots {living_roots}")
    with _timed(timings, "names"):
        for kind in ("aliases", "common_names", "taxon_names"):
            ents[kind] = name_lists(tables.names[kind], ents["qid"])
    with _timed(timings, "natural_types"):
        generic = set(generic_classes)
        ents["natural_type_qid"] = natural_types(ents, g, generic, living_rule, tables.names,
                                                 float(living_type_min_sitelinks))
        if llm is not None:
            ents = llm.natural_types(ents, g, generic)
    return finish(ents, tables.info)


def add_wordnet(ents: pd.DataFrame, wordnet: pd.DataFrame | None) -> pd.DataFrame:
    """Append WordNet rows (``kg_wordnet``) after the Wikidata rows; a QID present twice is an error."""
    if wordnet is None or wordnet.empty:
        return ents
    out = pd.concat([ents, wordnet[ENTITY_COLUMNS]], ignore_index=True)
    dup = out["qid"][out["qid"].duplicated()]
    if len(dup):
        raise ValueError(f"entities: qid {dup.iloc[0]!r} appears twice after adding the WordNet rows")
    out["sitelinks"] = out["sitelinks"].astype("Int64")
    return out
