"""The KG as a graph on integer codes: per-property CSR adjacency and the path expressions of the selection.

:class:`Graph` evaluates the SPARQL path expressions of ``kg_queries`` (``P279*``, ``P171+``,
``(P31/P279*)|P279+``, the fruit links) and the natural-type ancestor searches with numpy: breadth-first over
CSR adjacency with visited sets, so cycles are harmless. :func:`living_member_mask` and :func:`fruit_mask` are the
node masks of the living-things queries.
"""

import numpy as np
import pandas as pd

FRUIT_CLASSES = ("Q3314483", "Q1364")  # fruit, fruit (botany)


class Graph:
    """Edges as integer codes with per-property CSR adjacency (forward: child -> parent, reverse: parent -> child),
    plus per-node arrays from ``info`` (``has_label``, ``links`` with missing = 0, ``qnum`` for tie-breaks)."""

    def __init__(self, edges: pd.DataFrame, info: pd.DataFrame, extra_nodes=()):
        edges = edges.drop_duplicates(["s", "p", "o"])
        codes, uniques = pd.factorize(pd.concat([edges["s"], edges["o"], pd.Series(list(extra_nodes), dtype=object)],
                                                ignore_index=True))
        n_e = len(edges)
        self.nodes = pd.Index(uniques, name="qid")
        self.n = len(uniques)
        self.s = codes[:n_e].astype(np.int64)
        self.o = codes[n_e:2 * n_e].astype(np.int64)
        pcodes, self.props = pd.factorize(edges["p"])
        self.p = pcodes.astype(np.int16)
        self._csr: dict = {}
        self.info = info.reindex(self.nodes)
        self.has_label = self.info["label"].notna().to_numpy()
        self.links = self.info["sitelinks"].fillna(0).to_numpy(dtype=np.float64)
        self.qnum = _qid_number(pd.Series(self.nodes, dtype=object))

    def code(self, names) -> np.ndarray:
        """Codes of node names (-1 when a name is not in the graph)."""
        return self.nodes.get_indexer(pd.Index(list(names), dtype=object))

    def mask_of(self, names) -> np.ndarray:
        m = np.zeros(self.n, dtype=bool)
        c = self.code(names)
        m[c[c >= 0]] = True
        return m

    def csr(self, props: tuple[str, ...], reverse: bool) -> tuple[np.ndarray, np.ndarray]:
        key = (tuple(sorted(props)), reverse)
        if key not in self._csr:
            pc = [i for i, p in enumerate(self.props) if p in props]
            m = np.isin(self.p, pc)
            src, dst = (self.o[m], self.s[m]) if reverse else (self.s[m], self.o[m])
            order = np.argsort(src, kind="stable")
            indptr = np.zeros(self.n + 1, dtype=np.int64)
            np.cumsum(np.bincount(src, minlength=self.n), out=indptr[1:])
            self._csr[key] = (indptr, dst[order])
        return self._csr[key]

    def expand(self, frontier: np.ndarray, props: tuple[str, ...], reverse: bool) -> tuple[np.ndarray, np.ndarray]:
        """All (position in frontier, neighbour) pairs one step from ``frontier``."""
        indptr, idx = self.csr(props, reverse)
        starts = indptr[frontier]
        counts = indptr[frontier + 1] - starts
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        pos = np.repeat(np.arange(len(frontier)), counts)
        offs = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        return pos, idx[np.repeat(starts, counts) + offs]

    def reach(self, targets: np.ndarray, props: tuple[str, ...], min_hops: int = 0, reverse: bool = True) -> np.ndarray:
        """Boolean mask of nodes with a path of length ≥ ``min_hops`` (0 or 1) to one of ``targets``
        (``reverse=True``: walking edges backwards, i.e. the SPARQL ``?x path* target`` / ``path+``)."""
        seen = np.zeros(self.n, dtype=bool)
        targets = np.asarray(targets, dtype=np.int64)
        targets = targets[targets >= 0]
        if min_hops == 0:
            seen[targets] = True
            frontier = targets
        else:
            _, frontier = self.expand(targets, props, reverse)
            frontier = np.unique(frontier)
            seen[frontier] = True
        while len(frontier):
            _, nxt = self.expand(frontier, props, reverse)
            nxt = np.unique(nxt)
            nxt = nxt[~seen[nxt]]
            seen[nxt] = True
            frontier = nxt
        return seen

    def depth_below(self, targets: np.ndarray, props: tuple[str, ...]) -> np.ndarray:
        """Shortest number of (reversed) ``props`` edges from ``targets`` down to every node (-1: unreachable)."""
        depth = np.full(self.n, -1, dtype=np.int64)
        frontier = np.asarray(targets, dtype=np.int64)
        frontier = frontier[frontier >= 0]
        depth[frontier] = 0
        level = 0
        while len(frontier):
            level += 1
            _, nxt = self.expand(frontier, props, reverse=True)
            nxt = np.unique(nxt)
            nxt = nxt[depth[nxt] < 0]
            depth[nxt] = level
            frontier = nxt
        return depth

    def ancestor_hops(self, sources: np.ndarray, props: tuple[str, ...], max_hops: int | None,
                      allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Breadth-first ancestors of every source (forward edges) with their hop distance, the source itself
        excluded even on a cycle. Returns arrays ``src`` (position in ``sources``), ``anc`` (code), ``hops``.
        ``allowed``: node mask; other nodes are neither reported nor walked through."""
        sources = np.asarray(sources, dtype=np.int64)
        n = np.int64(self.n)
        src = np.flatnonzero(sources >= 0).astype(np.int64)
        node = sources[src]
        levels = [np.sort(src * n + node)]  # (src, node) keys found per hop, each sorted
        out_src, out_anc, out_hops = [], [], []
        hops = 0
        while len(node) and (max_hops is None or hops < max_hops):
            hops += 1
            pos, nbr = self.expand(node, props, reverse=False)
            if allowed is not None:
                ok = allowed[nbr]
                pos, nbr = pos[ok], nbr[ok]
            keys = np.unique(src[pos] * n + nbr)
            for seen in levels:
                keys = keys[~_in_sorted(keys, seen)]
            if not len(keys):
                break
            levels.append(keys)
            src, node = keys // n, keys % n
            out_src.append(src)
            out_anc.append(node)
            out_hops.append(np.full(len(src), hops, dtype=np.int64))
        if not out_src:
            e = np.empty(0, dtype=np.int64)
            return e, e, e
        return np.concatenate(out_src), np.concatenate(out_anc), np.concatenate(out_hops)

    def pick_best(self, src: np.ndarray, anc: np.ndarray, hops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per src the labelled candidate with the most sitelinks (missing = 0), ties by fewer hops, then by QID
        number (non-Wikidata IRIs count as 0). Returns (src values, best codes)."""
        ok = self.has_label[anc]
        src, anc, hops = src[ok], anc[ok], hops[ok]
        if not len(src):
            return src, anc
        order = np.lexsort((self.qnum[anc], hops, -self.links[anc], src))
        s = src[order]
        first = np.r_[True, s[1:] != s[:-1]]
        return s[first], anc[order][first]


def _in_sorted(a: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    """Mask of the elements of ``a`` found in the sorted array ``sorted_b``."""
    if not len(sorted_b) or not len(a):
        return np.zeros(len(a), dtype=bool)
    idx = np.searchsorted(sorted_b, a)
    idx[idx == len(sorted_b)] = 0
    return sorted_b[idx] == a


def _qid_number(q: pd.Series) -> np.ndarray:
    """``int(q[1:])`` when all digits, else 0 (the tie-break of the reference implementation)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tail = pc.utf8_slice_codeunits(pa.array(q.astype(str).to_numpy(dtype=object), pa.string()), 1)
    digits = pc.and_(pc.match_substring_regex(tail, "^[0-9]+$"), pc.less_equal(pc.utf8_length(tail), 15))
    num = pc.cast(pc.if_else(digits, tail, "0"), pa.float64())
    return num.to_numpy(zero_copy_only=False)


def living_member_mask(g: Graph, target: str, include_target: bool) -> np.ndarray:
    """``{ ?ent (wdt:P31/wdt:P279*)|wdt:P279+ target } UNION { ?ent wdt:P171+ target }`` (+ the target itself)."""
    t = g.code([target])
    if t[0] < 0:
        return np.zeros(g.n, dtype=bool)
    classes = g.reach(t, ("P279",), 0)
    mask = g.reach(t, ("P279",), 1) | g.reach(t, ("P171",), 1)
    _, inst = g.expand(np.flatnonzero(classes), ("P31",), reverse=True)
    mask[inst] = True
    if include_target:
        mask[t] = True
    return mask


def fruit_mask(g: Graph, root: str) -> np.ndarray:
    """Fruits (P31|P279 of Q3314483 / Q1364) linked via P1582 / P1672 to a taxon ``P171*`` under ``root``."""
    mask = np.zeros(g.n, dtype=bool)
    fc = g.code(list(FRUIT_CLASSES))
    fc = fc[fc >= 0]
    r = g.code([root])
    if not len(fc) or r[0] < 0:
        return mask
    _, fruits = g.expand(fc, ("P31", "P279"), reverse=True)
    taxa = np.flatnonzero(g.reach(r, ("P171",), 0))
    linked = np.zeros(g.n, dtype=bool)
    linked[g.expand(taxa, ("P1582",), reverse=True)[1]] = True  # ?ent wdt:P1582 ?t
    linked[g.expand(taxa, ("P1672",), reverse=False)[1]] = True  # ?t wdt:P1672 ?ent
    mask[fruits] = True
    return mask & linked
