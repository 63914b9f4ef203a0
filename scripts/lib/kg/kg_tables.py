"""The KG tables the entity selection needs, straight from the frozen dump or by SPARQL scans of a store.

:func:`read_dump_tables` streams the canonical N-Triples written by ``kg_dump`` with pyarrow into a few tables
(edges, labels, descriptions, sitelinks in both shapes, images, coordinates, names); :func:`fetch_tables` builds
the same tables from whole-store SPARQL scans (:func:`scan_queries`) of an Oxigraph store, and the tests check on
random graphs that both give identical tables. Loading a 1M-entity dump into an on-disk Oxigraph store alone
costs about as much CPU as the whole ``kg_entities`` step, and its SPARQL scans several times more (every IRI is
decoded through RocksDB), hence the direct reader (``perf/bench_kg.py``, ``perf/README_kg.md``).
"""

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lib.kg.sparql_client import PREFIXES, WD, check_lang

log = logging.getLogger("entitynet.kg_tables")

EDGE_PROPS = ("P279", "P31", "P171", "P1582", "P1672")


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
