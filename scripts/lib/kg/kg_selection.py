"""Entity selection per root: the SPARQL reference, its vectorised twin, the living clean-up and the filters.

:func:`select_world` / :func:`select_living` run the SPARQL texts of ``kg_queries`` on a store (the definition;
slow at scale, used by the tests); :func:`select_world_fast` / :func:`living_candidates` give the same rows from a
:class:`~lib.kg.kg_graph.Graph`. Then the living clean-up by description (:func:`clean_living`), the world
visuality filter (:func:`visual_filter`) and the per-root cap (:func:`cap_per_root`). Semantics:
``scripts/kg_entities.py``.
"""

import logging

import numpy as np
import pandas as pd

from lib.kg import kg_queries as kq
from lib.kg.kg_graph import Graph, fruit_mask, living_member_mask
from lib.kg.sparql_client import binding_value, check_qid, qid_of

log = logging.getLogger("entitynet.kg_selection")


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


def select_world(store, roots: list[str], lang: str, min_sitelinks: int) -> pd.DataFrame:
    """World entities per root with the SPARQL query of ``kg_queries.world_entities_query`` (reference)."""
    frames = []
    for root in roots:
        df = rows_to_frame(store.select(kq.world_entities_query(root, lang)), ["ent", "label", "desc", "links", "image"])
        if df.empty:
            continue
        df = first_per_entity(df)
        df = df[df["sitelinks"].fillna(0) >= min_sitelinks]
        df["root"] = root
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else _empty_selection()


def root_exclusions(root: str, exclude: list[str], exclude_by_root: dict | None) -> list[str]:
    """The classes excluded under ``root``: its own list in ``exclude_by_root`` (the authors' per-root MINUS), else
    the shared ``exclude`` list."""
    if exclude_by_root and root in exclude_by_root:
        return list(exclude_by_root[root])
    return list(exclude)


def coordinates_excluded(root: str, coordinate_roots) -> bool:
    """Whether P625 (coordinates) excludes under ``root``: ``coordinate_roots`` None = every root (old behaviour)."""
    return coordinate_roots is None or root in set(coordinate_roots)


def select_living(store, roots: list[str], lang: str, exclude: list[str], require_image: bool,
                  max_per_root: int | None, exclude_by_root: dict | None = None,
                  coordinate_roots=None) -> pd.DataFrame:
    """Living entities per root with the SPARQL queries of ``kg_queries`` (reference)."""
    frames = []
    for root in roots:
        ex, xc = root_exclusions(root, exclude, exclude_by_root), coordinates_excluded(root, coordinate_roots)
        rows = store.select(kq.living_entities_query(root, lang, ex, require_image, xc))
        rows += store.select(kq.fruits_query(root, lang, require_image, ex, xc))
        df = rows_to_frame(rows, ["ent", "label", "desc", "links", "image"])
        if df.empty:
            continue
        df = first_per_entity(df)
        df = df.sort_values(["sitelinks", "qid"], ascending=[False, True], na_position="last", kind="stable")
        if max_per_root:
            df = df.head(int(max_per_root))
        df["root"] = root
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else _empty_selection()


def _empty_selection() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in
                         ["qid", "label", "description", "sitelinks", "image", "root"]})


def _selection_frame(g: Graph, mask: np.ndarray, root: str) -> pd.DataFrame:
    df = g.info.iloc[np.flatnonzero(mask & g.has_label)].reset_index()
    df["root"] = root
    return df[["qid", "label", "description", "sitelinks", "image", "root"]]


def select_world_fast(g: Graph, roots: list[str], min_sitelinks: int) -> pd.DataFrame:
    """Same result as :func:`select_world` (labelled members of P279* root with enough sitelinks)."""
    frames = []
    enough = g.links >= min_sitelinks
    for root in roots:
        check_qid(root, "root")
        df = _selection_frame(g, g.reach(g.code([root]), ("P279",), 0) & enough, root)
        if df.empty:
            log.warning("world root %s: no entity with a label and ≥ %d sitelinks in the dump", root, min_sitelinks)
            continue
        frames.append(df)
        log.info("world root %s: %d entities", root, len(df))
    return pd.concat(frames, ignore_index=True) if frames else _empty_selection()


def living_candidates(g: Graph, coords: set, roots: list[str], exclude: list[str],
                      require_image: bool, exclude_by_root: dict | None = None, coordinate_roots=None) -> pd.DataFrame:
    """Living entities per root before the per-root cap: the SPARQL semantics of ``living_entities_query`` +
    ``fruits_query``; sorted per root by sitelinks (desc, missing last) then QID, as :func:`select_living`.
    Exclusions are per root (:func:`root_exclusions`, :func:`coordinates_excluded`) and apply to fruits too."""
    coord_mask = g.mask_of(coords)
    member_cache: dict[str, np.ndarray] = {}

    def member(ex):
        if ex not in member_cache:
            member_cache[ex] = living_member_mask(g, check_qid(ex, "living exclude"), include_target=False)
        return member_cache[ex]

    with_image = g.info["image"].notna().to_numpy() if require_image else np.ones(g.n, dtype=bool)
    frames = []
    for root in roots:
        check_qid(root, "living root")
        excluded = coord_mask.copy() if coordinates_excluded(root, coordinate_roots) else np.zeros(g.n, dtype=bool)
        for ex in root_exclusions(root, exclude, exclude_by_root):
            excluded |= member(ex)
        mask = (living_member_mask(g, root, include_target=True) | fruit_mask(g, root)) & ~excluded
        df = _selection_frame(g, mask & with_image, root)
        if df.empty:
            log.warning("living root %s: no entity found in the dump", root)
            continue
        df = df.sort_values(["sitelinks", "qid"], ascending=[False, True], na_position="last", kind="stable")
        frames.append(df.reset_index(drop=True))
    return pd.concat(frames, ignore_index=True) if frames else _empty_selection()


# Living clean-up (KG mode's stand-in for the paper's LLM true/false filter): patterns on the English
# description, the only place Wikidata says "color of tiger", "leather from alligator" or "Internet celebrity".
CLEANUP_PATTERNS: dict[str, str] = {
    "colour_variant": r"\bcolou?r (?:of|variant|variety|morph|form|phase)\b|\bcolou?r(?:ation)? (?:variant|morph)\b",
    "product": (r"^(?:[\w-]+ )?(?:leather|oil|meat|fur|wool|silk|product|dish|food|spice|juice|flour|extract|"
                r"honey|drug|medicine|beverage|condiment|cheese|sauce)s?(?=[\s,;(]|$)|\b(?:extracted|made|obtained|produced) "
                r"from\b|\bused in cooking\b|\bherb mixture\b"),
    "individual": r"\b(?:individual|specimen|celebrity|famous|mascot|racehorse|pet of|born|died|foaled)\b",
    "cultivar": r"\bcultivar\b|\bcultivated variety\b",
    "breed": r"\bbreed\b",
}
CLEANUP_DEFAULT = ("colour_variant", "product", "individual", "cultivar")


def cleanup_reasons(living: pd.DataFrame, kinds) -> pd.Series:
    """Per row the first clean-up kind its description matches (None: kept). ``kinds``: names of
    ``CLEANUP_PATTERNS``; ``breed`` is off by default because the authors' filter keeps breeds."""
    unknown = set(kinds) - set(CLEANUP_PATTERNS)
    if unknown:
        raise ValueError(f"living.cleanup: unknown kind(s) {sorted(unknown)}; known: {sorted(CLEANUP_PATTERNS)}")
    desc = living["description"].fillna("").astype(str) if "description" in living else pd.Series("", index=living.index)
    reason = pd.Series(None, index=living.index, dtype=object)
    for kind in kinds:
        hit = desc.str.contains(CLEANUP_PATTERNS[kind], case=False, regex=True) & reason.isna()
        reason[hit] = kind
    return reason


def clean_living(living: pd.DataFrame, kinds) -> pd.DataFrame:
    """Drop living rows whose description marks them as colour variants, products, individuals, cultivars …"""
    if living.empty or not kinds:
        return living
    reason = cleanup_reasons(living, list(kinds))
    for kind, n in reason.value_counts().items():
        log.info("living clean-up: dropped %d %s entities", n, kind)
    return living[reason.isna()].reset_index(drop=True)


def non_visual_mask(g: Graph, abstract_classes, min_sitelinks_without_image: float) -> np.ndarray:
    """Nodes the visuality filter drops, all of them without an image (P18; a depicted class is visual): instances
    or subclasses (P31/P279*, P279*) of an abstract class, and those with fewer than ``min_sitelinks_without_image``
    sitelinks. (Wikidata's hierarchy puts some objects under abstract classes too, e.g. hand fan under craft under
    artistic creation; their image keeps them.)"""
    bad = np.zeros(g.n, dtype=bool)
    for q in abstract_classes:
        bad |= living_member_mask(g, check_qid(q, "visual_filter.abstract_classes"), include_target=True)
    if min_sitelinks_without_image:
        bad |= g.links < float(min_sitelinks_without_image)
    return bad & g.info["image"].isna().to_numpy()


def visual_filter(world: pd.DataFrame, g: Graph, abstract_classes, min_sitelinks_without_image: float) -> pd.DataFrame:
    """World entities that pass the KG visuality filter (:func:`non_visual_mask`); the paper had an LLM judge it."""
    if world.empty:
        return world
    bad = non_visual_mask(g, abstract_classes, min_sitelinks_without_image)
    drop = bad[g.code(world["qid"])]
    if drop.any():
        log.info("visuality filter: dropped %d of %d world rows", int(drop.sum()), len(world))
    return world[~drop].reset_index(drop=True)


def cap_per_root(living: pd.DataFrame, max_per_root: int | None) -> pd.DataFrame:
    """The paper's ``FILTER_LIMIT``: the first ``max_per_root`` rows of each root (input sorted per root)."""
    if not max_per_root or living.empty:
        return living
    return living.groupby("root", sort=False).head(int(max_per_root)).reset_index(drop=True)
