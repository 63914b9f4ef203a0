"""KG texts per entity on the released route, before and after the released entity table is imported.

    .venv/bin/python perf/released_text_sources.py                 # the fixture (tests/fixtures/released/)
    .venv/bin/python perf/released_text_sources.py --scale 169000  # + import time/size of a synthetic entity table

"Before" is the route as it was: ``queries.parquet`` with WordNet entities as ``wn:wordnet:<synset>`` and
``wd-attr-*`` rows without their entity, and no entity texts from the release (on the fixture there is no KG to
fill them in: a real run would take them from a fresh KG extract, which misses the authors' WordNet entities and
their own synonym/description lists). "After" is this branch: ``import_released_entities`` + the query import with
the authors' keys. Both feed ``lib.train.text_mix.build_text_candidates`` with the shipped weights; figures are the
candidate texts of each query apart from the query itself, grouped by the authors' entity of that query.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from lib.search import released as ir  # noqa: E402
from lib.search import released_entities as ire  # noqa: E402
from lib.train import text_mix as tm  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "released"


def legacy_queries(queries: pd.DataFrame) -> pd.DataFrame:
    """queries.parquet as the importer wrote it before: ``wn:``-prefixed WordNet keys, empty ``wd-attr-*`` qids."""
    q = queries.copy()
    q["qids"] = [[] if k.startswith("wd-attr-") else [f"wn:{x}" if k.startswith("wordnet") else x for x in qids]
                 for k, qids in zip(q["kind"], q["qids"])]
    return q


def kg_texts(entities: pd.DataFrame, attributes: pd.DataFrame | None, queries: pd.DataFrame) -> pd.DataFrame:
    cand = tm.build_text_candidates(entities, attributes, queries, kg_text_queries="all", with_sources=True)
    out = queries[["query_id", "text", "kind", "author_entities"]].merge(cand, on="query_id")
    out["n_kg"] = [sum(s != "original_query" for s in src) for src in out["sources"]]
    return out


def fixture_figures() -> None:
    author_q = pd.read_parquet(FIXTURE / "entitynet-queries.parquet")
    queries, _ = ir.released_queries(author_q, source="fixture queries")
    with tempfile.TemporaryDirectory() as d:
        ire.import_released_entities(str(FIXTURE / "entitynet-entities.parquet"),
                                    str(FIXTURE / "entitynet-queries.parquet"), f"{d}/e.parquet", f"{d}/a.parquet")
        ents, attrs = pd.read_parquet(f"{d}/e.parquet"), pd.read_parquet(f"{d}/a.parquet")
    empty = pd.DataFrame(columns=ire.ENTITY_COLUMNS)
    before = kg_texts(empty, None, legacy_queries(queries))
    after = kg_texts(ents, attrs, queries)
    print(f"fixture: {len(queries)} queries, {len(ents)} released entities")
    print(f"{'query (kind)':42s} {'entity':24s} {'before':>6s} {'after':>6s}")
    for (_, b), (_, a) in zip(before.iterrows(), after.iterrows()):
        ent = ",".join(a["author_entities"])
        print(f"{a['text'] + ' (' + a['kind'] + ')':42s} {ent:24s} {b['n_kg']:6d} {a['n_kg']:6d}")
    per_entity = {}
    for name, df in (("before", before), ("after", after)):
        ex = df.explode("author_entities").groupby("author_entities")["n_kg"].sum()
        per_entity[name] = ex
    ent = pd.DataFrame(per_entity)
    print(f"KG texts per entity (summed over its queries): mean before {ent['before'].mean():.2f}, "
          f"after {ent['after'].mean():.2f}; median before {ent['before'].median():.0f}, "
          f"after {ent['after'].median():.0f} ({len(ent)} entities)")
    print(f"KG texts per query: mean before {before['n_kg'].mean():.2f}, after {after['n_kg'].mean():.2f}")
    src = Counter(s for srcs in after["sources"] for s in srcs if s != "original_query")
    src_b = Counter(s for srcs in before["sources"] for s in srcs if s != "original_query")
    print("after, texts by source:", dict(sorted(src.items())))
    print("before, texts by source:", dict(sorted(src_b.items())))


def scale_figures(n: int, seed: int = 0) -> None:
    """Import time and output size of a synthetic entity table of ``n`` rows in the released schema (the release
    has ≈169k entity names): a name plus Poisson(3.03) further texts each, drawn by the authors' source counts
    (681,535 texts, 168,981 of them names)."""
    rng = np.random.default_rng(seed)
    sources = ["aliases", "description", "type_description", "common_names", "taxon_names"]
    p = np.array([216109, 164212, 95459, 36394, 380], float)
    p /= p.sum()
    per = rng.poisson((681535 - 168981) / 168981, n)
    keys = [f"Q{i + 1}" for i in range(n)]
    rows = []
    for i, k in enumerate(keys):
        src = ["name"] + list(rng.choice(sources, per[i], p=p))
        vals = [f"entity {i}"] + [f"{s} {j} of {i}" for j, s in enumerate(src[1:])]
        rows.append({"entity": k, "entity_name": f"entity {i}", "textvalues": vals, "textsources": src,
                     "naturalentity": keys[int(rng.integers(0, min(n, 200)))]})
    author_e = pd.DataFrame(rows)
    author_q = pd.DataFrame({"query_hash": [f"h{i}" for i in range(n)], "query": [f"entity {i}" for i in range(n)],
                             "query_type": ["wd-noun-living" if i % 3 else "wd-noun-world" for i in range(n)],
                             "entity": keys, "attribute": None, "api": "google"})
    with tempfile.TemporaryDirectory() as d:
        author_e.to_parquet(f"{d}/ents.parquet")
        author_q.to_parquet(f"{d}/q.parquet")
        t0 = time.perf_counter()
        ire.import_released_entities(f"{d}/ents.parquet", f"{d}/q.parquet", f"{d}/e.parquet", f"{d}/a.parquet")
        dt = time.perf_counter() - t0
        size = Path(f"{d}/e.parquet").stat().st_size
    print(f"scale: {n} entities ({int(per.sum()) + n} texts) imported in {dt:.1f} s, entities.parquet "
          f"{size / 1e6:.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=0, help="also import a synthetic entity table of this many rows")
    args = ap.parse_args()
    fixture_figures()
    if args.scale:
        scale_figures(args.scale)


if __name__ == "__main__":
    main()
