"""The vectorised KG path of kg_entities against its references, on random graphs with cycles and every shape the
selection queries care about: SPARQL selection texts (kg_queries) evaluated by Oxigraph, a plain breadth-first
natural-type search, and SPARQL scans of a store vs the direct N-Triples reader of the dump."""
import gzip
import random
from collections import deque

import numpy as np
import pandas as pd
import pyoxigraph as ox
import pytest

from lib.kg.kg_entity_table import build_entities, combine
from lib.kg.kg_graph import Graph
from lib.kg.kg_selection import cap_per_root, living_candidates, select_living, select_world, select_world_fast
from lib.kg.kg_tables import KGTables, fetch_tables, read_dump_tables
from lib.kg.sparql_client import EmbeddedSparql, embedded_store

WD = "http://www.wikidata.org/entity/"
WDT = "http://www.wikidata.org/prop/direct/"
ROOTS = ["Q1", "Q2"]
LIVING = ["Q3", "Q4"]
EXCLUDE = ["Q5", "Q6"]
GENERIC = ["Q7"]
FRUIT = ["Q3314483", "Q1364"]


def random_graph(seed: int, n: int = 120) -> list[str]:
    """N-Triples lines of a random KG: P279 forest with multi-parents and cycles, P31 instances, P171 taxa,
    exclusions, coordinates, fruits linked to taxa, labels (also in German, with escapes and non-ASCII), sitelinks
    in both shapes (some non-numeric), images, aliases, common and taxon names."""
    rng = random.Random(seed)
    fixed = ROOTS + LIVING + EXCLUDE + GENERIC + FRUIT
    nodes = fixed + [f"Q{100 + i}" for i in range(n)]
    lines = []

    def t(s, p, o):
        lines.append(f"<{WD}{s}> <{WDT}{p}> <{WD}{o}> .")

    t("Q5", "P279", "Q3")  # the excluded classes are themselves living members (the MINUS must drop them)
    t("Q6", "P171", "Q4")
    t("Q7", "P279", "Q1")  # a generic class inside a world root
    lines.append(f'<{WD}Q7> <http://wikiba.se/ontology#sitelinks> "99"^^<http://www.w3.org/2001/XMLSchema#integer> .')
    for i, q in enumerate(nodes[len(fixed):], start=len(fixed)):
        earlier = nodes[:i]
        r = rng.random()
        if r < 0.55:
            t(q, "P279", rng.choice(earlier))
            if rng.random() < 0.2:
                t(q, "P279", rng.choice(earlier))
        elif r < 0.75:
            t(q, "P171", rng.choice(earlier))
        else:
            t(q, "P31", rng.choice(earlier))
        if rng.random() < 0.05:  # cycle: an ancestor points back down
            t(rng.choice(earlier), "P279", q)
        if rng.random() < 0.05:
            t(rng.choice(earlier), "P171", q)
        if rng.random() < 0.04:
            lines.append(f'<{WD}{q}> <{WDT}P625> "Point(1 2)" .')
        if rng.random() < 0.05:
            t(q, rng.choice(["P31", "P279"]), rng.choice(FRUIT))
            t(q, "P1582", rng.choice(earlier)) if rng.random() < 0.5 else t(rng.choice(earlier), "P1672", q)
    for q in nodes:
        if rng.random() < 0.85:
            label = rng.choice([f"thing {q}", f'the "{q}" one', f"caf\u00e9 {q}", f"line\nbreak {q}", f"back\\slash {q}", f"tab\t{q}"])
            lines.append(f"<{WD}{q}> <http://www.w3.org/2000/01/rdf-schema#label> {ox.Literal(label, language='en')} .")
        if rng.random() < 0.3:
            lines.append(f'<{WD}{q}> <http://www.w3.org/2000/01/rdf-schema#label> "Ding {q}"@de .')
        if rng.random() < 0.5:
            lines.append(f'<{WD}{q}> <http://schema.org/description> "about {q}, a \\"thing\\""@en .')
        r = rng.random()
        if r < 0.4:
            lines.append(f"<https://www.wikidata.org/wiki/Special:EntityData/{q}> <http://schema.org/about> <{WD}{q}> .")
            lines.append(f"<https://www.wikidata.org/wiki/Special:EntityData/{q}> <http://wikiba.se/ontology#sitelinks> "
                         f'"{rng.randint(0, 9)}"^^<http://www.w3.org/2001/XMLSchema#integer> .')
        elif r < 0.7:
            lines.append(f'<{WD}{q}> <http://wikiba.se/ontology#sitelinks> '
                         f'"{rng.randint(0, 9)}"^^<http://www.w3.org/2001/XMLSchema#integer> .')
        if rng.random() < 0.6:
            lines.append(f"<{WD}{q}> <{WDT}P18> <http://commons.wikimedia.org/wiki/Special:FilePath/{q}.jpg> .")
        for k in range(rng.choice([0, 0, 1, 2])):
            lines.append(f'<{WD}{q}> <http://www.w3.org/2004/02/skos/core#altLabel> "alias {k} {q}"@en .')
        if rng.random() < 0.2:
            lines.append(f'<{WD}{q}> <{WDT}P1843> "common {q}"@en .')
        if rng.random() < 0.2:
            lines.append(f'<{WD}{q}> <{WDT}P225> "Taxon {q}" .')
    return sorted(set(lines))


def write_dump(lines: list[str], path) -> str:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return str(path)


def store_of(path) -> EmbeddedSparql:
    s = EmbeddedSparql()
    s.load(path)
    return s


# -- reference natural types: breadth-first search per entity (the original per-row implementation) --------------
def bfs(up, start, props, max_hops):
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


def reference_natural_types(ents: pd.DataFrame, tables: KGTables, generic: set) -> list:
    up: dict = {}
    for s, p, o in tables.edges[tables.edges["p"].isin(["P279", "P31", "P171"])].itertuples(index=False):
        up.setdefault(s, []).append((p, o))
    info = tables.info

    def pick(cands):
        best, key = None, None
        for q, h in cands.items():
            if q not in info.index:
                continue
            links = info.at[q, "sitelinks"]
            k = (-(0 if pd.isna(links) else links), h, int(q[1:]) if q[1:].isdigit() else 0)
            if key is None or k < key:
                best, key = q, k
        return best

    out = []
    for row in ents.itertuples(index=False):
        if row.is_living:
            root = row.living_root
            members = {q for q in info.index if q == root or root in bfs(up, q, {"P279"}, None)}
            c = {q: h for q, h in bfs(up, row.qid, {"P31", "P279", "P171"}, None).items()
                 if q in members and q not in generic}
            out.append(pick(c) or root)
        else:
            c = {q: h for q, h in bfs(up, row.qid, {"P279"}, 3).items() if q not in generic}
            nt = pick(c)
            out.append(nt if nt is not None else (row.roots[0] if row.roots[0] != row.qid else None))
    return out


def canon(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["sitelinks"] = pd.to_numeric(df["sitelinks"], errors="coerce")
    df = df.sort_values(["root", "qid"]).reset_index(drop=True)
    return df.astype(object).where(df.notna(), None)


@pytest.mark.parametrize("seed", range(6))
def test_fast_selection_equals_sparql_reference(tmp_path, seed):
    path = write_dump(random_graph(seed), tmp_path / "d.nt.gz")
    store = store_of(path)
    tables = read_dump_tables(path, "en")
    g = Graph(tables.edges, tables.info, extra_nodes=ROOTS + LIVING)
    for min_links in (0, 3):
        ref = select_world(store, ROOTS, "en", min_links)
        fast = select_world_fast(g, ROOTS, min_links)
        pd.testing.assert_frame_equal(canon(ref), canon(fast))
    for require_image, cap in ((False, None), (True, 4)):
        ref = select_living(store, LIVING, "en", EXCLUDE, require_image, cap)
        fast = cap_per_root(living_candidates(g, tables.coords, LIVING, EXCLUDE, require_image), cap)
        assert len(ref) > 0
        pd.testing.assert_frame_equal(canon(ref), canon(fast))


@pytest.mark.parametrize("seed", range(6))
def test_fast_natural_types_equal_breadth_first_reference(tmp_path, seed):
    path = write_dump(random_graph(seed), tmp_path / "d.nt.gz")
    tables = read_dump_tables(path, "en")
    ents = build_entities(tables, ROOTS, LIVING, "en", 0, EXCLUDE, False, None, GENERIC)
    g = Graph(tables.edges, tables.info, extra_nodes=ROOTS + LIVING)
    world = select_world_fast(g, ROOTS, 0)
    living = living_candidates(g, tables.coords, LIVING, EXCLUDE, False)
    combined = combine(living, world)
    expected = dict(zip(combined["qid"], reference_natural_types(combined, tables, set(GENERIC))))
    got = dict(zip(ents["qid"], ents["natural_type_qid"]))
    assert got == expected
    assert any(v is not None and v not in ROOTS + LIVING for v in got.values())  # not only the defaults


@pytest.mark.parametrize("seed", range(4))
def test_dump_reader_equals_sparql_scans(tmp_path, seed):
    path = write_dump(random_graph(seed), tmp_path / "d.nt.gz")
    a = read_dump_tables(path, "en")
    b = fetch_tables(store_of(path), "en")

    def norm(df, cols):
        return df[cols].astype(str).sort_values(cols).reset_index(drop=True)

    pd.testing.assert_frame_equal(norm(a.edges, ["s", "p", "o"]), norm(b.edges, ["s", "p", "o"]))
    ia, ib = a.info.sort_index(), b.info.sort_index()
    assert list(ia.index) == list(ib.index)
    for col in ("label", "description", "sitelinks", "image"):
        pd.testing.assert_series_equal(ia[col], ib[col], check_dtype=False)
    assert ia["label"].str.contains("\n").any() and ia["label"].str.contains('"').any()  # escapes undone
    assert ia["label"].str.contains("\\", regex=False).any()
    assert ia["label"].str.contains("café").any()
    assert a.coords == b.coords
    for k in a.names:
        pd.testing.assert_frame_equal(norm(a.names[k], ["s", "v"]), norm(b.names[k], ["s", "v"]))


def test_build_entities_same_from_dump_store_and_on_disk_store(tmp_path):
    path = write_dump(random_graph(11, 200), tmp_path / "d.nt.gz")
    args = (ROOTS, LIVING, "en", 2, EXCLUDE, True, 10, GENERIC)
    from_dump = build_entities(path, *args)
    from_store = build_entities(store_of(path), *args)
    with embedded_store(path, mode="disk", disk_min_mb=float("inf"), lenient=True) as disk:
        assert disk.store_dir is not None and disk.store_dir.parent == tmp_path
        from_disk = build_entities(disk, *args)
    assert not list(tmp_path.glob(".oxigraph-*"))  # temporary store removed
    pd.testing.assert_frame_equal(from_dump, from_store)
    pd.testing.assert_frame_equal(from_dump, from_disk)
    assert from_dump["is_living"].any() and (~from_dump["is_living"]).any()


def test_embedded_store_auto_threshold(tmp_path):
    path = write_dump(random_graph(1), tmp_path / "d.nt.gz")
    with embedded_store(path, mode="auto", disk_min_mb=1000) as s:
        assert s.store_dir is None
    with embedded_store(path, mode="auto", disk_min_mb=0) as s:
        assert s.store_dir is not None and s.store_dir.exists()
    with pytest.raises(ValueError, match="auto, memory or disk"):
        with embedded_store(path, mode="fast", disk_min_mb=0):
            pass


def test_dump_reader_refuses_malformed_lines(tmp_path):
    p = tmp_path / "bad.nt"
    p.write_text(f"<{WD}Q1> <{WDT}P279> <{WD}Q2> .\nnot a triple\n")
    with pytest.raises(ValueError, match="not an N-Triples line"):
        read_dump_tables(p, "en")


def test_graph_ancestor_hops_cycles_and_limits():
    edges = pd.DataFrame({"s": ["a", "b", "c", "c", "d"], "p": ["P279"] * 5, "o": ["b", "c", "a", "d", "e"]})
    info = pd.DataFrame({"label": [], "sitelinks": []}, index=pd.Index([], name="qid"))
    g = Graph(edges, info)
    src, anc, hops = g.ancestor_hops(g.code(["a"]), ("P279",), None)
    got = dict(zip(g.nodes[anc], hops))
    assert got == {"b": 1, "c": 2, "d": 3, "e": 4}  # a itself never reported though c -> a closes a cycle
    src, anc, hops = g.ancestor_hops(g.code(["a", "zzz"]), ("P279",), 2)
    assert set(src) == {0} and set(hops) == {1, 2}
    assert np.flatnonzero(g.reach(g.code(["a"]), ("P279",), 1)).size == 3  # a, b, c (a via the cycle)
