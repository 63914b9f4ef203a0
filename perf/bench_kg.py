"""Benchmark of the KG stage after the dump: on-disk Oxigraph load, entity selection, names, natural types.

    .venv/bin/python perf/bench_kg.py                       # 1M entities (the issue's target), ~3-5 min once
    .venv/bin/python perf/bench_kg.py --n 100000            # smaller
    .venv/bin/python perf/bench_kg.py --keep-dump /tmp/kg1m.nt.gz   # reuse a generated dump between runs

A synthetic dump in the shape ``kg_dump`` writes (gzip N-Triples, sitelinks on the data node as in the raw Wikidata
dump / QLever) is generated first (not timed): the paper's 21 world roots plus fungus (Q764) as the top of a random
P279 forest (each class picks a uniformly random earlier class as parent, so depth grows like ln n; 5 % of classes
have a second parent; 0.05 % close a 2-cycle and 0.05 % a 3-cycle), 3 % instances (P31 only, never selected), and a
taxon tree under animal / plant / fungus via P171 (P31 taxon, P225 names, P1843 common names, P18 images, some
individuals and some with P625 coordinates, which the living selection must drop). 95 % of nodes have an English
label, 70 % a description, 40 % one to three aliases, 80 % a sitelink count (Pareto-distributed) on the data node.

The timed part runs in a fresh child interpreter pinned to ONE core (``os.sched_setaffinity``), so the numbers are
the rule's own: ``EmbeddedSparql(store_dir=…)`` + ``load`` (RocksDB bulk load), then ``kg_entity_table.build_entities``
with the paper's settings (min_sitelinks 5, P18 required, 28k per living root). Peak memory is the child's
``ru_maxrss`` (RUSAGE_SELF; the child runs everything in-process, so RUSAGE_CHILDREN of the parent reports the same
figure). The child also checks a few invariants of the result (no instance selected, every cycle member selected
once, the excluded individuals and P625 taxa absent), so a fast but wrong run cannot pass unnoticed.
"""
import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

WORLD_ROOTS = ["Q729", "Q756", "Q34379", "Q41176", "Q42889", "Q2095", "Q14745", "Q11460", "Q747883", "Q10683158",
               "Q712378", "Q15324", "Q39546", "Q618123", "Q214609", "Q25257", "Q13226383", "Q811979", "Q4936952",
               "Q2424752", "Q11663"]
LIVING_ROOTS = ["Q729", "Q756", "Q764"]
GENERIC = ["Q223557", "Q488383", "Q35120", "Q4406616"]
EXCLUDE = ["Q5", "Q24334299", "Q795052", "Q4886"]
WD = "http://www.wikidata.org/entity/"
WDT = "http://www.wikidata.org/prop/direct/"
LABEL = "<http://www.w3.org/2000/01/rdf-schema#label>"
DESC = "<http://schema.org/description>"
ALT = "<http://www.w3.org/2004/02/skos/core#altLabel>"
ABOUT = "<http://schema.org/about>"
SITELINKS = "<http://wikiba.se/ontology#sitelinks>"
DATA = "https://www.wikidata.org/wiki/Special:EntityData/"
XSD_INT = "<http://www.w3.org/2001/XMLSchema#integer>"
OFFSET = 100_000_000  # synthetic QIDs: Q100000000 + i (never collide with the real roots)


def _iri(q: str) -> str:
    return f"<{WD}{q}>"


def synth_dump(path: Path, n: int, seed: int = 0, living_share: float = 0.15) -> dict:
    """Write a synthetic dump with ``n`` entities (roots included) to ``path`` (gzip N-Triples); return facts
    the benchmark checks afterwards."""
    rng = np.random.default_rng(seed)
    roots = list(dict.fromkeys(WORLD_ROOTS + LIVING_ROOTS))
    r = len(roots)
    n_taxa = int(n * living_share)
    n_world = n - r - n_taxa
    qids = np.array(roots + [f"Q{OFFSET + i}" for i in range(n - r)], dtype=object)
    iris = np.array([_iri(q) for q in qids], dtype=object)
    world = np.arange(r, r + n_world)
    taxa = np.arange(r + n_world, n)
    lines: list[str] = []
    add = lines.extend
    # -- world classes: P279 forest under the roots; instances with P31 only
    is_instance = rng.random(n_world) < 0.03
    parent = (rng.random(n_world) * (world - 1)).astype(np.int64)  # a uniformly random earlier node
    parent = np.where(parent < r, rng.integers(0, len(WORLD_ROOTS), n_world), parent)  # world roots only
    parent = np.where(is_instance[parent - r] & (parent >= r), rng.integers(0, len(WORLD_ROOTS), n_world), parent)
    p279 = f"<{WDT}P279>"
    p31 = f"<{WDT}P31>"
    cls = ~is_instance
    add(f"{s} {p279} {o} ." for s, o in zip(iris[world[cls]], iris[parent[cls]]))
    add(f"{s} {p31} {o} ." for s, o in zip(iris[world[is_instance]], iris[parent[is_instance]]))
    second = cls & (rng.random(n_world) < 0.05)
    p2 = (rng.random(n_world) * (world - 1)).astype(np.int64)
    ok2 = second & (p2 >= r) & ~is_instance[np.clip(p2 - r, 0, None)] & (p2 != parent)
    add(f"{s} {p279} {o} ." for s, o in zip(iris[world[ok2]], iris[p2[ok2]]))
    # cycles: parent P279 child (2-cycle), grandparent P279 child (3-cycle)
    cyc_members = set()
    cand = np.flatnonzero(cls & (parent >= r))
    two = rng.choice(cand, size=max(1, int(n_world * 0.0005)), replace=False)
    for k in two:
        add([f"{iris[parent[k]]} {p279} {iris[world[k]]} ."])
        cyc_members.update([qids[world[k]], qids[parent[k]]])
    gp = parent[np.clip(parent - r, 0, None)]
    cand3 = np.flatnonzero(cls & (parent >= r) & (gp >= r) & ~is_instance[np.clip(parent - r, 0, None)])
    three = rng.choice(cand3, size=max(1, int(n_world * 0.0005)), replace=False)
    for k in three:
        g = gp[k]
        add([f"{iris[g]} {p279} {iris[world[k]]} ."])
        cyc_members.update([qids[world[k]], qids[parent[k]], qids[g]])
    # -- taxa: P171 trees under animal (60 %), plant (35 %), fungus (5 %); each picks an earlier taxon of its tree
    bounds = np.cumsum([0, int(n_taxa * 0.6), int(n_taxa * 0.35), n_taxa - int(n_taxa * 0.6) - int(n_taxa * 0.35)])
    t_parent = np.empty(n_taxa, dtype=np.int64)
    for k, root in enumerate(LIVING_ROOTS):
        lo, hi = bounds[k], bounds[k + 1]
        off = np.arange(hi - lo)
        pick = (off * rng.random(hi - lo)).astype(np.int64)
        t_parent[lo:hi] = np.where((off == 0) | (rng.random(hi - lo) < 0.001), roots.index(root),
                                   taxa[0] + lo + pick)
    p171 = f"<{WDT}P171>"
    add(f"{s} {p171} {o} ." for s, o in zip(iris[taxa], iris[t_parent]))
    taxon_iri = _iri("Q16521")
    indiv = rng.random(n_taxa) < 0.02
    coords = rng.random(n_taxa) < 0.01
    add(f"{s} {p31} {taxon_iri} ." for s in iris[taxa[~indiv]])
    add(f"{s} {p31} {_iri('Q795052')} ." for s in iris[taxa[indiv]])
    add(f'{s} <{WDT}P625> "Point(1 2)"^^<http://www.opengis.net/ont/geosparql#wktLiteral> .'
        for s in iris[taxa[coords]])
    img = rng.random(n_taxa) < 0.7
    add(f"{s} <{WDT}P18> <http://commons.wikimedia.org/wiki/Special:FilePath/T{i}.jpg> ."
        for i, s in zip(taxa[img], iris[taxa[img]]))
    add(f'{s} <{WDT}P225> "Taxon {i}" .' for i, s in zip(taxa, iris[taxa]))
    common = rng.random(n_taxa) < 0.3
    add(f'{s} <{WDT}P1843> "common {i}"@en .' for i, s in zip(taxa[common], iris[taxa[common]]))
    add(f"{s} <{WDT}P105> {_iri('Q7432')} ." for s in iris[taxa])
    # -- names and sitelinks of every node
    idx = np.arange(n)
    has_label = (rng.random(n) < 0.95) | (idx < r)
    add(f'{s} {LABEL} "entity {i}"@en .' for i, s in zip(idx[has_label], iris[has_label]))
    de = rng.random(n) < 0.3
    add(f'{s} {LABEL} "Ding {i}"@de .' for i, s in zip(idx[de], iris[de]))
    has_desc = rng.random(n) < 0.7
    add(f'{s} {DESC} "synthetic \\"class\\" {i}"@en .' for i, s in zip(idx[has_desc], iris[has_desc]))
    n_alias = np.where(rng.random(n) < 0.4, rng.integers(1, 4, n), 0)
    for k in (1, 2, 3):
        m = n_alias >= k
        add(f'{s} {ALT} "alias {k} of {i}"@en .' for i, s in zip(idx[m], iris[m]))
    has_links = (rng.random(n) < 0.8) | (idx < r)
    links = (rng.pareto(1.1, n) * 4).astype(np.int64)
    links[:r] = 300
    add(f"<{DATA}{q}> {ABOUT} {s} .\n<{DATA}{q}> {SITELINKS} \"{k}\"^^{XSD_INT} ."
        for q, s, k in zip(qids[has_links], iris[has_links], links[has_links]))
    pos = {q: i for i, q in enumerate(qids)} if cyc_members else {}
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as fh:
        for chunk in range(0, len(lines), 200_000):
            fh.write("\n".join(lines[chunk:chunk + 200_000]))
            fh.write("\n")
    triples = sum(1 + line.count("\n") for line in lines)
    return {
        "n": n, "n_world": int(n_world), "n_taxa": int(n_taxa), "triples": int(triples),
        "instances": [str(q) for q in qids[world[is_instance]][:50]],
        "individuals": [str(q) for q in qids[taxa[indiv]][:50]],
        "with_coords": [str(q) for q in qids[taxa[coords & ~indiv]][:50]],
        "cycle_members": sorted(str(q) for q in cyc_members),
        # cycle members that the world selection must keep (English label, >= 5 sitelinks)
        "cycle_eligible": sorted(str(q) for q in cyc_members
                                 if has_label[pos[q]] and has_links[pos[q]] and links[pos[q]] >= 5),
        "bytes": path.stat().st_size,
    }


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(variant: str, dump: str, facts_path: str, store_dir: str, out: str) -> None:
    """One timed variant on ONE core, in a fresh interpreter (so ru_maxrss is this variant's own peak).

    ``rule``: what the ``kg_entities`` rule runs (the dump read directly, no store). ``store``: load the dump into
    an on-disk Oxigraph store (what ``kg_attributes`` does for large dumps), then the same selection from SPARQL
    scans of that store.
    """
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    from lib.kg.kg_entity_table import build_entities
    from lib.kg.sparql_client import EmbeddedSparql

    facts = json.loads(Path(facts_path).read_text())
    res: dict = {"variant": variant}
    cpu0, t0 = time.process_time(), time.perf_counter()
    source = dump
    if variant == "store":
        store = EmbeddedSparql(store_dir=store_dir)
        res["triples_loaded"] = store.load(dump, lenient=True)
        res["load_s"] = round(time.perf_counter() - t0, 2)
        res["load_cpu_s"] = round(time.process_time() - cpu0, 2)
        res["rss_after_load_mib"] = round(_rss_mib())
        res["store_dir_mib"] = round(sum(f.stat().st_size for f in Path(store_dir).rglob("*") if f.is_file()) / 2**20)
        source = store
    timings: dict = {}
    t1 = time.perf_counter()
    ents = build_entities(source, WORLD_ROOTS, LIVING_ROOTS, "en", 5, EXCLUDE, True, 28000, GENERIC,
                          timings=timings)
    res["entities_s"] = round(time.perf_counter() - t1, 2)
    res["total_s"] = round(time.perf_counter() - t0, 2)
    res["cpu_s"] = round(time.process_time() - cpu0, 2)
    res["steps_s"] = {k: round(v, 2) for k, v in timings.items()}
    res["peak_rss_mib"] = round(_rss_mib())
    sel = set(ents["qid"])
    res.update({
        "entities": len(ents), "living": int(ents["is_living"].sum()),
        "with_natural_type": int(ents["natural_type_qid"].notna().sum()),
        "checks": {
            "no_instance_selected": not (set(facts["instances"]) & sel),
            "no_individual_selected": not (set(facts["individuals"]) & sel),
            "no_p625_selected": not (set(facts["with_coords"]) & sel),
            "cycle_members_selected_once": bool(set(facts["cycle_eligible"]) <= sel and ents["qid"].is_unique),
            "natural_type_not_self": bool((ents["natural_type_qid"] != ents["qid"]).all()),
            "living_per_root_cap": bool(ents["is_living"].sum() <= 28000 * len(LIVING_ROOTS)),
        },
    })
    ents.to_parquet(out + ".parquet")
    Path(out).write_text(json.dumps(res, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-dump", help="path of the generated dump, reused when it exists (with <path>.json)")
    ap.add_argument("--workdir", help="where the on-disk store goes (default: a temp dir)")
    ap.add_argument("--variants", default="rule,store", help="comma-separated: rule (dump read directly), "
                    "store (on-disk Oxigraph load + SPARQL scans)")
    ap.add_argument("--child", nargs=5, metavar=("VARIANT", "DUMP", "FACTS", "STORE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    work = Path(tempfile.mkdtemp(prefix="bench_kg.", dir=args.workdir))
    try:
        dump = Path(args.keep_dump) if args.keep_dump else work / "extract.nt.gz"
        facts_path = Path(str(dump) + ".json")
        if dump.exists() and facts_path.exists() and json.loads(facts_path.read_text())["n"] == args.n:
            print(f"reusing {dump}", flush=True)
        else:
            t = time.perf_counter()
            facts = synth_dump(dump, args.n, args.seed)
            facts_path.write_text(json.dumps(facts))
            print(f"generated {dump}: {facts['triples']:,} triples, {facts['bytes'] / 2**20:.0f} MiB gz, "
                  f"{time.perf_counter() - t:.0f} s (not timed)", flush=True)
        results = {}
        for variant in args.variants.split(","):
            out = work / f"result-{variant}.json"
            cmd = [sys.executable, __file__, "--child", variant, str(dump), str(facts_path),
                   str(work / f"oxigraph-{variant}"), str(out)]
            subprocess.run(cmd, check=True)
            res = json.loads(out.read_text())
            res["pass"] = bool(res["total_s"] <= 120 and res["peak_rss_mib"] <= 4096 and all(res["checks"].values()))
            results[variant] = res
            print(json.dumps(res, indent=2), flush=True)
        if len(results) > 1:
            import pandas as pd

            frames = [pd.read_parquet(work / f"result-{v}.json.parquet") for v in results]
            same = all(f.equals(frames[0]) for f in frames[1:])
            print(f"variants give identical entity tables: {same}")
        summary = {"n": args.n, "target": {"total_s": 120, "peak_rss_mib": 4096},
                   "children_ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
                   **{v: {k: r.get(k) for k in ("total_s", "cpu_s", "load_s", "peak_rss_mib", "pass")}
                      for v, r in results.items()}}
        print(json.dumps(summary))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
