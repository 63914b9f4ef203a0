"""Natural types by the deterministic KG heuristic (the default; ``natural_types.mode: llm`` refines them).

World: among the ancestors 1–3 P279 hops up (generic classes excluded), the one with the most sitelinks.
Living: ``nearest_common_name`` (the nearest ancestor whose label is a common name) or ``most_sitelinks``.
:func:`world_type_candidates` / :func:`living_type_candidates` are also the candidate lists of the LLM prompts
(``kg_llm``). Semantics: ``scripts/kg_entities.py``.
"""

import re

import numpy as np
import pandas as pd

from lib.kg.kg_graph import Graph


def world_type_candidates(g: Graph, qids, generic: set[str], max_hops: int = 3):
    """Ancestors 1..``max_hops`` P279 hops up, generic classes excluded: arrays (src position, anc code, hops)."""
    src, anc, hops = g.ancestor_hops(g.code(qids), ("P279",), max_hops)
    keep = ~g.mask_of(generic)[anc]
    return src[keep], anc[keep], hops[keep]


def living_type_candidates(g: Graph, qids, roots, generic: set[str]):
    """Ancestors over P31/P279/P171 (any distance) that are P279* of the entity's living root, generic excluded.

    The walk only visits nodes that have a path to the root (every node on a shortest path to a candidate has
    one, since candidates are P279* of the root), so hop distances are those of the unpruned search.
    """
    roots = np.asarray(roots, dtype=object)
    qids = np.asarray(qids, dtype=object)
    props = ("P31", "P279", "P171")
    generic_mask = g.mask_of(generic)
    out = []
    for root in pd.unique(roots):
        rc = g.code([root])
        sel = np.flatnonzero(roots == root)
        member = g.reach(rc, ("P279",), 0)
        src, anc, hops = g.ancestor_hops(g.code(qids[sel]), props, None, allowed=g.reach(rc, props, 0))
        keep = member[anc] & ~generic_mask[anc]
        out.append((sel[src[keep]], anc[keep], hops[keep]))
    if not out:
        e = np.empty(0, dtype=np.int64)
        return e, e, e
    return tuple(np.concatenate(x) for x in zip(*out))


LATIN_TAXON = re.compile(r"^[A-Z][a-z]+(idae|inae|ini|oidea|formes|aceae|ales|phyta|mycota|opsida|ata|ia|ae|poda|ptera|"
                         r"phora|zoa|morpha|cea|vora)$")
LIVING_RULES = ("nearest_common_name", "most_sitelinks")


def common_name_mask(g: Graph, names: dict | None) -> np.ndarray:
    """Nodes whose label is a common (vernacular) name: the label is one of their common names (P1843, in the
    language), or it differs from each of their taxon names (P225, case-insensitive; "lion" vs "Panthera leo"); a
    node with no P225 at all counts unless its label is one Latin-looking word ("Felidae", "Vertebrata"). Panthera,
    labelled with its taxon name, does not count even though it has the common name "big cats"."""
    labels = g.info["label"]
    ok = g.has_label.copy()
    names = names or {}
    taxon = names.get("taxon_names")
    common = names.get("common_names")
    has_taxon = np.zeros(g.n, dtype=bool)
    if taxon is not None and len(taxon):
        t = taxon.dropna()
        code = g.code(t["s"])
        t = t[code >= 0].assign(c=code[code >= 0])
        has_taxon[t["c"].to_numpy()] = True
        same = t["v"].astype(str).str.casefold().to_numpy() == labels.iloc[t["c"]].astype(str).str.casefold().to_numpy()
        ok[t["c"].to_numpy()[same]] = False
    latin = labels.astype(str).str.match(LATIN_TAXON.pattern).to_numpy() & g.has_label
    ok &= ~(latin & ~has_taxon)
    if common is not None and len(common):
        c = common.dropna()
        code = g.code(c["s"])
        c = c[code >= 0].assign(c=code[code >= 0])
        same = c["v"].astype(str).str.casefold().to_numpy() == labels.iloc[c["c"]].astype(str).str.casefold().to_numpy()
        ok[c["c"].to_numpy()[same]] = True
        ok &= g.has_label
    return ok


def nearest_common_name_types(g: Graph, qids, roots, generic: set[str], names: dict | None,
                              min_sitelinks: float):
    """The living rule ``nearest_common_name``: the nearest ancestor (over P31/P279/P171, staying inside the
    entity's living root) whose label is a common name (:func:`common_name_mask`) with at least ``min_sitelinks``
    sitelinks, generic classes excluded. Ties at the same distance (a dump with shortcut edges links a species
    straight to its genus, family and class) go to the most specific candidate, the one farthest from the root
    (shortest downward path), then most sitelinks, then QID number. Gives "big cat" for the lion, "bird" for a
    songbird, not the root "animal". Returns (src positions, best codes)."""
    roots = np.asarray(roots, dtype=object)
    qids = np.asarray(qids, dtype=object)
    props = ("P31", "P279", "P171")
    good = common_name_mask(g, names) & (g.links >= min_sitelinks) & ~g.mask_of(generic)
    out_s, out_b = [], []
    for root in pd.unique(roots):
        sel = np.flatnonzero(roots == root)
        src, anc, hops = g.ancestor_hops(g.code(qids[sel]), props, None, allowed=g.reach(g.code([root]), props, 0))
        keep = good[anc]
        src, anc, hops = src[keep], anc[keep], hops[keep]
        if not len(src):
            continue
        depth = g.depth_below(g.code([root]), props)
        order = np.lexsort((g.qnum[anc], -g.links[anc], -depth[anc], hops, src))
        s_ = src[order]
        first = np.r_[True, s_[1:] != s_[:-1]]
        out_s.append(sel[s_[first]])
        out_b.append(anc[order][first])
    if not out_s:
        e = np.empty(0, dtype=np.int64)
        return e, e
    return np.concatenate(out_s), np.concatenate(out_b)


def natural_types(ents: pd.DataFrame, g: Graph, generic: set[str], living_rule: str = "most_sitelinks",
                  names: dict | None = None, living_min_sitelinks: float = 0) -> pd.Series:
    """Natural-type QID per row of ``ents`` (columns qid, is_living, living_root, roots); see module docstring.
    ``living_rule``: ``nearest_common_name`` (:func:`nearest_common_name_types`; entities it finds nothing for
    fall back to ``most_sitelinks``) or ``most_sitelinks`` (the candidate with the most sitelinks, often the root)."""
    if living_rule not in LIVING_RULES:
        raise ValueError(f"natural_types.living_rule must be one of {LIVING_RULES}, not {living_rule!r}")
    out = np.full(len(ents), None, dtype=object)
    living = ents["is_living"].to_numpy(dtype=bool)
    qids = ents["qid"].to_numpy(dtype=object)
    if living.any():
        lp = np.flatnonzero(living)
        lroots = ents["living_root"].to_numpy(dtype=object)[lp]
        nt = lroots.copy()
        src, best = g.pick_best(*living_type_candidates(g, qids[lp], lroots, generic))
        nt[src] = g.nodes[best]
        if living_rule == "nearest_common_name":
            src, best = nearest_common_name_types(g, qids[lp], lroots, generic, names, living_min_sitelinks)
            nt[src] = g.nodes[best]
        out[lp] = nt
    if (~living).any():
        wp = np.flatnonzero(~living)
        first_root = np.array([r[0] if len(r) else None for r in ents["roots"].to_numpy()[wp]], dtype=object)
        nt = np.where(first_root != qids[wp], first_root, None)
        src, best = g.pick_best(*world_type_candidates(g, qids[wp], generic))
        nt[src] = g.nodes[best]
        out[wp] = nt
    return pd.Series(out, index=ents.index, dtype=object)
