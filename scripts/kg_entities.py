"""Entities from the frozen KG dump: world classes under the roots, living things, natural types.

Selection follows the authors' code (docs/PAPER_NOTES.md §3–§5):
- world: ``?ent wdt:P279* wd:<root>`` (root included), label in the configured language required, sitelinks ≥
  ``min_sitelinks`` (a missing count counts as 0), no instances; P18 optional.
- living: ``(P31/P279*)|P279+`` or ``P171+`` under each living root (or the root itself), plus fruits (P31|P279 of
  Q3314483 / Q1364) linked to a taxon ``P171*`` under the root via P1582 / P1672, minus the root's own exclusions
  (``living.exclude_by_root``, the authors' per-root MINUS: humans, mythical creatures, individuals for animals;
  cultivars, individuals for plants; ``living.exclude`` for roots not listed) and, under the roots of
  ``living.exclude_coordinates_roots`` (plants), anything with coordinates (P625, individual trees); P18 required
  unless ``living.require_image`` is false; then the living clean-up (``living.cleanup``: colour variants,
  products, named individuals, cultivars by their description, :func:`clean_living`); capped per root by sitelinks
  (ties by QID). Fungi are a living root only with ``living.include_fungi`` (the rule adds Q764).
- world visuality filter (``visual_filter``, :func:`visual_filter`): entities without an image (P18) are dropped
  when they descend from an abstract class or have fewer than ``min_sitelinks_without_image`` sitelinks.
- **Deviation**: an entity under several roots is kept once with *all* its roots (the authors kept the first root).
- **Deviation**: natural types come from a deterministic KG heuristic by default, not an LLM. World: among the
  ancestors 1–3 P279 hops up (generic classes excluded), the candidate with the most sitelinks, ties broken by
  fewer hops then by QID number. Living (``natural_types.living_rule``): ``nearest_common_name`` (default) takes
  the nearest ancestor over P31/P279/P171 whose label is a common name and that has ≥
  ``natural_types.living_min_sitelinks`` sitelinks (:func:`nearest_common_name_types`: lion → big cat);
  ``most_sitelinks`` (and the fallback) takes, among the ancestors that are P279* of the living root, the one with
  the most sitelinks (usually the root itself). Candidates need a label. Living things default to their root
  (animal / plant / fungus), world entities to their first root. P279 cycles are harmless (breadth-first search
  with a visited set).
- ``natural_types.mode: llm`` asks an OpenAI-compatible chat model instead (``kg_llm``, docs/PAPER_NOTES.md §5):
  the world prompt picks among the top-10 candidates by sitelinks and classes the entity visual / non-visual (non-visual
  world entities are dropped, as only visual entities became queries in the paper); the living prompt picks among
  the living candidates, and a true/false prompt drops non-living items (products, colour variants, named
  individuals) before the per-root cap. Any answer the model could not give validly keeps the KG result.

Implementation (vectorised: 1M entities in ~36 s on one core, 2.2 GiB; ``perf/bench_kg.py``, ``perf/README_kg.md``):
the rule reads the frozen dump (canonical N-Triples written by ``kg_dump``) straight into a few tables with pyarrow
(:func:`read_dump_tables`: edges, labels, descriptions, sitelinks in both shapes, images, coordinates, names), and
evaluates every path expression of the selection queries (``P279*``, ``P171+``, ``(P31/P279*)|P279+``, the MINUS,
the fruit links) and the natural-type searches on integer-coded edge arrays with numpy (breadth-first over CSR
adjacency, cycle-safe). The SPARQL texts of ``kg_queries`` stay the definition: :func:`select_world` /
:func:`select_living` run them on an Oxigraph store, :func:`fetch_tables` builds the same tables from SPARQL scans
of a store, and the tests check on random graphs with cycles that all routes give identical results. Loading a
1M-entity dump into an on-disk Oxigraph store alone costs about as much CPU as this whole step, and its SPARQL
scans several times more (every IRI is decoded through RocksDB), hence the direct reader; ``build_entities`` still
accepts a store (``sparql_client.embedded_store``) for dumps that are not N-Triples.
"""

import logging
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lib.kg import kg_queries as kq
from _helpers import configure_logging, rule_entry, write_parquet
from lib.kg.sparql_client import PREFIXES, WD, binding_value, check_lang, check_qid, qid_of

log = logging.getLogger("entitynet.kg_entities")

P279, P31, P171 = (f"http://www.wikidata.org/prop/direct/{p}" for p in ("P279", "P31", "P171"))
FRUIT_CLASSES = ("Q3314483", "Q1364")  # fruit, fruit (botany)
EDGE_PROPS = ("P279", "P31", "P171", "P1582", "P1672")
ENTITY_COLUMNS = ["qid", "label", "description", "aliases", "common_names", "taxon_names", "sitelinks", "roots",
                  "is_living", "natural_type_qid", "natural_type_label", "natural_type_description", "image",
                  "source"]


# ---------------------------------------------------------------------------------------------------------------
# Reference selection: the SPARQL texts of kg_queries, evaluated by the store (slow at scale; used by the tests)
# ---------------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------------
# Bulk tables: straight from the dump file (fast path) or by SPARQL scans of a store
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class KGTables:
    """What the selection needs from the dump, as plain DataFrames keyed by QID (non-Wikidata IRIs unchanged).

    ``edges``: s, p (``P279`` …), o (IRI objects only). ``info``: index qid, columns label (first label in the
    language), description, sitelinks (float, max over both shapes, NaN when absent), image (first P18); only
    nodes with a label are listed. ``coords``: nodes with P625. ``names``: aliases / common_names / taxon_names
    -> DataFrame(s, v).
    """

    edges: pd.DataFrame
    info: pd.DataFrame
    coords: set
    names: dict


def scan_queries(lang: str) -> dict[str, str]:
    """Whole-store SELECT scans (one triple pattern each, or a two-pattern join for data-node sitelinks)."""
    lang = check_lang(lang)
    flt = f'FILTER(LANG(?v) = "{lang}")'
    q = {f"edges_{p}": PREFIXES + f"SELECT ?s ?o WHERE {{ ?s wdt:{p} ?o . FILTER(isIRI(?o)) }}" for p in EDGE_PROPS}
    q.update({
        "labels": PREFIXES + f"SELECT ?s ?v WHERE {{ ?s rdfs:label ?v . {flt} }}",
        "descriptions": PREFIXES + f"SELECT ?s ?v WHERE {{ ?s schema:description ?v . {flt} }}",
        "sitelinks_data": PREFIXES + "SELECT ?s ?v WHERE { ?d schema:about ?s . ?d wikibase:sitelinks ?v }",
        "sitelinks_item": PREFIXES + "SELECT ?s ?v WHERE { ?s wikibase:sitelinks ?v }",
        "images": PREFIXES + "SELECT ?s ?v WHERE { ?s wdt:P18 ?v }",
        "coordinates": PREFIXES + "SELECT DISTINCT ?s WHERE { ?s wdt:P625 ?v }",
        "aliases": PREFIXES + f"SELECT ?s ?v WHERE {{ ?s skos:altLabel ?v . {flt} }}",
        "common_names": PREFIXES + f"SELECT ?s ?v WHERE {{ ?s wdt:P1843 ?v . {flt} }}",
        "taxon_names": PREFIXES + "SELECT ?s ?v WHERE { ?s wdt:P225 ?v }",
    })
    return q


def _strip_wd(s: pd.Series) -> pd.Series:
    return s.str.removeprefix(WD) if len(s) else s


def _assemble(frames: dict[str, pd.DataFrame]) -> KGTables:
    """KGTables from per-scan frames (columns s, o or s, v; values already plain, QIDs stripped)."""
    edges = pd.concat([frames[f"edges_{p}"].assign(p=p) for p in EDGE_PROPS], ignore_index=True)[["s", "p", "o"]]
    info = frames["labels"].drop_duplicates("s").set_index("s").rename(columns={"v": "label"})
    info["description"] = frames["descriptions"].drop_duplicates("s").set_index("s")["v"]
    links = pd.concat([frames["sitelinks_data"], frames["sitelinks_item"]], ignore_index=True)
    links["v"] = pd.to_numeric(links["v"], errors="coerce")
    info["sitelinks"] = links.groupby("s")["v"].max()
    info["image"] = frames["images"].drop_duplicates("s").set_index("s")["v"]
    info.index.name = "qid"
    names = {k: frames[k] for k in ("aliases", "common_names", "taxon_names")}
    return KGTables(edges=edges, info=info, coords=set(frames["coordinates"]["s"]), names=names)


def fetch_tables(store, lang: str, timings: dict | None = None) -> KGTables:
    """The tables by :func:`scan_queries` on a SPARQL store (anything with ``select_frame``)."""
    frames = {}
    for name, query in scan_queries(lang).items():
        t = time.perf_counter()
        df = store.select_frame(query)
        for c in df.columns:
            if c in ("s", "o"):
                df[c] = _strip_wd(df[c].astype(str))
        frames[name] = df
        if timings is not None:
            timings[f"scan_{name}"] = time.perf_counter() - t
    return _assemble(frames)


_NT_PREDICATES = {
    **{f"<http://www.wikidata.org/prop/direct/{p}>": f"edges_{p}" for p in EDGE_PROPS},
    "<http://www.w3.org/2000/01/rdf-schema#label>": "labels",
    "<http://schema.org/description>": "descriptions",
    "<http://schema.org/about>": "about",
    "<http://wikiba.se/ontology#sitelinks>": "sitelinks",
    "<http://www.wikidata.org/prop/direct/P18>": "images",
    "<http://www.wikidata.org/prop/direct/P625>": "coordinates",
    "<http://www.w3.org/2004/02/skos/core#altLabel>": "aliases",
    "<http://www.wikidata.org/prop/direct/P1843>": "common_names",
    "<http://www.wikidata.org/prop/direct/P225>": "taxon_names",
}
_NT_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[tbnrf\"'\\])")
_NT_SIMPLE = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def nt_unescape(text: str) -> str:
    """Undo N-Triples string escapes (``\\"``, ``\\n``, ``\\uXXXX`` …)."""
    return _NT_ESCAPE.sub(lambda m: _NT_SIMPLE.get(m.group(1)) or chr(int(m.group(1)[1:], 16)), text)


def _nt_node(arr):
    """N-Triples subject/IRI object -> plain value: ``<iri>`` -> iri (Wikidata items -> QID), ``_:b`` kept."""
    import pyarrow.compute as pc

    iri = pc.starts_with(arr, "<")
    arr = pc.if_else(iri, pc.utf8_slice_codeunits(arr, 1, -1), arr)
    wd = pc.starts_with(arr, WD)
    return pc.if_else(wd, pc.utf8_slice_codeunits(arr, len(WD)), arr)


def _nt_lang_literal(arr, lang: str):
    """Lexical values of the literals tagged exactly ``lang`` (others dropped); returns (mask, values)."""
    import pyarrow.compute as pc

    suffix = f'"@{lang}'
    m = pc.and_(pc.starts_with(arr, '"'), pc.ends_with(arr, suffix))
    vals = pc.utf8_slice_codeunits(pc.filter(arr, m), 1, -len(suffix))
    return m, vals


def _nt_value(arr):
    """Any object term -> plain value (IRI without brackets, literal lexical form), like SPARQL CSV."""
    import pyarrow.compute as pc

    lit = pc.starts_with(arr, '"')
    lex = pc.struct_field(pc.extract_regex(arr, r'^"(?P<lex>.*)"(?:@[^"]*|\^\^<[^>]*>)?$'), [0])
    return pc.if_else(lit, lex, _nt_node(arr))


def _to_series(arr, unescape: bool) -> pd.Series:
    s = pd.Series(arr.to_pylist() if len(arr) < 1000 else arr.to_pandas(), dtype=object)
    if unescape and len(s):
        has = s.str.contains("\\", regex=False, na=False)
        if has.any():
            s[has] = s[has].map(nt_unescape)
    return s


def read_dump_tables(path, lang: str, timings: dict | None = None) -> KGTables:
    """The tables straight from a dump in canonical N-Triples (``kg_dump``'s ``extract.nt.gz``, gzip or not).

    Streams the file through pyarrow's CSV reader (one column per line), splits each line at its first two
    spaces (subjects and predicates are IRIs or blank nodes, which contain none), keeps the predicates of
    ``_NT_PREDICATES`` and converts terms the way Oxigraph's SPARQL CSV output shows them; language filters are
    exact matches of the tag as stored, as ``FILTER(LANG(?v) = "…")`` is. A line that is not ``s p o .`` raises.
    Gives the same tables as :func:`fetch_tables` on a store loaded with the same file (tested).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    lang = check_lang(lang)
    t0 = time.perf_counter()
    wanted = pa.array(list(_NT_PREDICATES))
    kinds = list(_NT_PREDICATES.values())
    kept: list[tuple] = []
    reader = pcsv.open_csv(
        str(path), read_options=pcsv.ReadOptions(column_names=["line"], block_size=1 << 24),
        parse_options=pcsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False),
        convert_options=pcsv.ConvertOptions(column_types={"line": pa.string()}))
    n_lines = 0
    for batch in reader:
        line = batch.column(0)
        line = pc.filter(line, pc.invert(pc.starts_with(line, "#")))
        bad = pc.invert(pc.ends_with(line, " ."))
        if pc.any(bad).as_py():
            first = pc.filter(line, bad)[0].as_py()
            raise ValueError(f"{path}: not an N-Triples line (expected 's p o .'): {first[:200]!r}")
        split = pc.split_pattern(pc.utf8_slice_codeunits(line, 0, -2), " ", max_splits=2)
        if pc.any(pc.less(pc.list_value_length(split), 3)).as_py():
            raise ValueError(f"{path}: a line has fewer than three terms")
        code = pc.index_in(pc.list_element(split, 1), value_set=wanted)
        m = pc.is_valid(code)
        kept.append((pc.filter(code, m), pc.filter(pc.list_element(split, 0), m),
                     pc.filter(pc.list_element(split, 2), m)))
        n_lines += len(line)
    if timings is not None:
        timings["read_dump"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    all_code = pa.chunked_array([k[0] for k in kept], pa.int32())
    all_s = pa.chunked_array([k[1] for k in kept], pa.string())
    all_o = pa.chunked_array([k[2] for k in kept], pa.string())
    del kept

    def cols(kind):
        m = pc.equal(all_code, kinds.index(kind))
        return pc.filter(all_s, m).combine_chunks(), pc.filter(all_o, m).combine_chunks()

    frames: dict[str, pd.DataFrame] = {}
    for p in EDGE_PROPS:
        s, o = cols(f"edges_{p}")
        m = pc.starts_with(o, "<")
        frames[f"edges_{p}"] = pd.DataFrame({"s": _to_series(_nt_node(pc.filter(s, m)), False),
                                             "o": _to_series(_nt_node(pc.filter(o, m)), False)})
    for kind in ("labels", "descriptions", "aliases", "common_names"):
        s, o = cols(kind)
        m, v = _nt_lang_literal(o, lang)
        frames[kind] = pd.DataFrame({"s": _to_series(_nt_node(pc.filter(s, m)), False), "v": _to_series(v, True)})
    for kind in ("images", "taxon_names"):
        s, o = cols(kind)
        frames[kind] = pd.DataFrame({"s": _to_series(_nt_node(s), False), "v": _to_series(_nt_value(o), True)})
    s, _ = cols("coordinates")
    frames["coordinates"] = pd.DataFrame({"s": _to_series(_nt_node(s), False)}).drop_duplicates()
    d, x = cols("about")
    about = pd.DataFrame({"d": _to_series(d, False), "s": _to_series(_nt_node(x), False)})
    s, v = cols("sitelinks")
    links = pd.DataFrame({"d": _to_series(s, False), "v": _to_series(_nt_value(v), False)})
    frames["sitelinks_data"] = about.merge(links, on="d")[["s", "v"]]
    frames["sitelinks_item"] = pd.DataFrame({"s": _to_series(_nt_node(s), False), "v": links["v"]})
    tables = _assemble(frames)
    if timings is not None:
        timings["convert_dump"] = time.perf_counter() - t1
    log.info("read %d triples from %s", n_lines, path)
    return tables


def load_tables(source, lang: str, timings: dict | None = None) -> KGTables:
    """KGTables from a dump path (fast reader), an existing KGTables, or a store (SPARQL scans)."""
    if isinstance(source, KGTables):
        return source
    if isinstance(source, (str, Path)):
        return read_dump_tables(source, lang, timings)
    return fetch_tables(source, lang, timings)


# ---------------------------------------------------------------------------------------------------------------
# Graph evaluation on integer codes
# ---------------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------------
# Natural types (KG heuristic)
# ---------------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------------
# Names and assembly
# ---------------------------------------------------------------------------------------------------------------
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


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    llm = None
    if getattr(p, "natural_types_mode", "kg") == "llm":
        from lib.kg import kg_llm

        llm = kg_llm.KGLLM.from_params(dict(p.llm), cache_dir=p.llm_cache_dir, lang=p.language)
    timings: dict = {}
    ents = build_entities(snakemake.input.extract, list(p.roots), list(p.living_roots), p.language,
                          int(p.min_sitelinks), list(p.living_exclude), bool(p.require_image), p.max_living_per_root,
                          list(p.generic_classes), llm=llm, timings=timings,
                          allow_empty_roots=list(p.allow_empty_roots),
                          exclude_by_root=dict(getattr(p, "exclude_by_root", None) or {}) or None,
                          coordinate_roots=getattr(p, "coordinate_roots", None),
                          cleanup=list(getattr(p, "cleanup", None) or ()),
                          visual=dict(getattr(p, "visual_filter", None) or {}),
                          living_rule=getattr(p, "living_rule", "most_sitelinks"),
                          living_type_min_sitelinks=float(getattr(p, "living_type_min_sitelinks", 0) or 0))
    wn = snakemake.input.get("wordnet") if hasattr(snakemake.input, "get") else None
    if wn:
        ents = add_wordnet(ents, pd.read_parquet(wn if isinstance(wn, str) else wn[0]))
    log.info("%d entities (%d living, %d WordNet); step seconds: %s", len(ents), int(ents["is_living"].sum()),
             int((ents["source"] == "wordnet").sum()), {k: round(v, 1) for k, v in timings.items()})
    if llm is not None:
        log.info("LLM: %s", llm.stats())
    write_parquet(ents, snakemake.output.entities)


if __name__ == "__main__":
    rule_entry(main, globals())
