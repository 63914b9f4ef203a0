"""What the two text-mix switches change, measured on a dataset's own tables (default: the demo's).

    .venv/bin/python -m snakemake --cores 1 results/demo/urls.parquet     # once: KG, queries and search of the demo
    .venv/bin/python perf/text_mix_effects.py                             # then this (a few seconds)
    .venv/bin/python perf/text_mix_effects.py --results results/entitynet --alt-text-chance 0.5

Reads ``entities.parquet``, ``attributes.parquet``, ``queries.parquet`` and ``urls.parquet`` of ``--results`` and
builds the candidates in-process with ``lib.train.text_mix.build_text_candidates`` (so the figures are the rule's own).

1. ``text_mix.synonym_guard`` (default false, as the authors' runs; true: the guard as intended). Candidates are
   built both ways; printed: queries whose weights differ, candidate weights that differ, and the mean and maximum
   total-variation distance between a query's two text distributions (the share of that query's KG draws that
   would go to a different text).
2. ``datasets.<name>.kg_text_queries: living`` (the LivingThings subset; the authors' ``query2allowflag``). Over the
   images a LivingThings subset keeps (``is_living``), each image's exact per-draw text distribution (alt text
   with ``--alt-text-chance`` when it has alt texts, else a uniformly chosen query and that query's text mix; the
   sampler's rules) is computed with ``all`` and with ``living`` candidates. Printed: images that also have world
   queries, the share of all KG/alt draws that ``all`` takes from a world query, the mean total-variation distance
   per image, and the texts ``all`` can draw that ``living`` never does.
No sampling: every figure is exact arithmetic on the distributions.
"""
import argparse
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from lib.train import text_mix  # noqa: E402  (the library of rule text_candidates)


def key(text: str) -> str:
    """A text as the CLIP tokenizer sees it (whitespace collapsed, case-folded): "Cricetidae" and "cricetidae" are
    one training text, whichever variant the candidates keep."""
    return text_mix.text_key(text_mix.clean_text(text))


def candidate_map(df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """query_id -> {text key: probability} of a candidates frame."""
    out = {}
    for qid, texts, weights in zip(df["query_id"], df["texts"], df["weights"]):
        total = float(sum(weights))
        dist: dict[str, float] = defaultdict(float)
        for t, w in zip(texts, weights):
            dist[key(t)] += float(w) / total
        out[qid] = dict(dist)
    return out


def tv(a: dict[str, float], b: dict[str, float]) -> float:
    """Total-variation distance of two discrete distributions."""
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def image_distribution(alts, query_ids, cands: dict[str, dict[str, float]], p_alt: float) -> dict[str, float]:
    """Per-draw text distribution of one image under TextSampler.sample's rules."""
    alts = [a for a in (alts if alts is not None else []) if isinstance(a, str) and a.strip()]
    known = [q for q in (query_ids if query_ids is not None else []) if q in cands]
    dist: dict[str, float] = defaultdict(float)
    p = p_alt if alts else 0.0
    if not known:
        p = 1.0 if alts else 0.0
        if not alts:
            return {"": 1.0}
    for a in alts:
        dist[key(a)] += p / len(alts)
    for q in known:
        for t, w in cands[q].items():
            dist[t] += (1.0 - p) * w / len(known)
    return dict(dist)


def guard_effect(entities, attributes, queries, h_generic: float, h_living: float) -> dict:
    off = candidate_map(text_mix.build_text_candidates(entities, attributes, queries, h_generic, h_living,
                                                       kg_text_queries="all",
                                                       config=text_mix.TextMixConfig(guard=False)))
    on = candidate_map(text_mix.build_text_candidates(entities, attributes, queries, h_generic, h_living,
                                                      kg_text_queries="all",
                                                      config=text_mix.TextMixConfig(guard=True)))
    dists = {q: tv(off[q], on[q]) for q in off}
    changed = [q for q, d in dists.items() if d > 1e-12]
    weights_changed = sum(sum(1 for t in set(off[q]) | set(on[q]) if abs(off[q].get(t, 0) - on[q].get(t, 0)) > 1e-12)
                          for q in off)
    n_weights = sum(len(v) for v in off.values())
    kinds = queries.set_index("query_id")["kind"]
    by_kind = kinds.loc[changed].value_counts().to_dict() if changed else {}
    return {"queries": len(off), "queries_changed": len(changed), "changed_by_kind": by_kind,
            "weights": n_weights, "weights_changed": weights_changed,
            "mean_tv_all_queries": sum(dists.values()) / max(1, len(dists)),
            "mean_tv_changed_queries": sum(dists[q] for q in changed) / max(1, len(changed)),
            "max_tv": max(dists.values(), default=0.0)}


def living_effect(entities, attributes, queries, urls, h_generic: float, h_living: float, p_alt: float) -> dict:
    kw = dict(config=text_mix.TextMixConfig(guard=False))
    all_c = candidate_map(text_mix.build_text_candidates(entities, attributes, queries, h_generic, h_living,
                                                         kg_text_queries="all", **kw))
    liv_c = candidate_map(text_mix.build_text_candidates(entities, attributes, queries, h_generic, h_living,
                                                         kg_text_queries="living", **kw))
    world = set(queries.loc[~queries["is_living"].astype(bool), "query_id"])
    living_imgs = urls[urls["is_living"].astype(bool)]
    n_mixed, world_mass, tvs, texts_all, texts_liv = 0, 0.0, [], set(), set()
    for alts, qids in zip(living_imgs["alt_texts"], living_imgs["query_ids"]):
        qids = list(qids if qids is not None else [])
        known = [q for q in qids if q in all_c]
        n_world = sum(1 for q in known if q in world)
        n_mixed += n_world > 0
        has_alt = any(isinstance(a, str) and a.strip() for a in (alts if alts is not None else []))
        if known:
            world_mass += (1.0 - (p_alt if has_alt else 0.0)) * n_world / len(known)
        d_all = image_distribution(alts, qids, all_c, p_alt)
        d_liv = image_distribution(alts, qids, liv_c, p_alt)
        tvs.append(tv(d_all, d_liv))
        texts_all |= {t for t, w in d_all.items() if w > 0}
        texts_liv |= {t for t, w in d_liv.items() if w > 0}
    n = len(living_imgs)
    return {"images": len(urls), "living_images": n, "living_images_with_world_queries": n_mixed,
            "world_draw_share_under_all": world_mass / max(1, n),
            "mean_tv_per_image": sum(tvs) / max(1, n), "max_tv_per_image": max(tvs, default=0.0),
            "texts_drawable_all": len(texts_all), "texts_drawable_living": len(texts_liv),
            "texts_only_from_world_queries": len(texts_all - texts_liv),
            "candidate_queries_all": len(all_c), "candidate_queries_living": len(liv_c)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/demo", help="a dataset's results folder")
    ap.add_argument("--alt-text-chance", type=float, default=0.5)
    ap.add_argument("--hierarchy-chance-generic", type=float, default=0.2)
    ap.add_argument("--hierarchy-chance-living", type=float, default=0.1)
    args = ap.parse_args(argv)
    r = Path(args.results)
    entities = pd.read_parquet(r / "entities.parquet")
    attributes = pd.read_parquet(r / "attributes.parquet") if (r / "attributes.parquet").exists() else None
    queries = pd.read_parquet(r / "queries.parquet")
    urls = pd.read_parquet(r / "urls.parquet", columns=["uid", "alt_texts", "query_ids", "is_living"])
    h = (args.hierarchy_chance_generic, args.hierarchy_chance_living)

    g = guard_effect(entities, attributes, queries, *h)
    print(f"== synonym guard ({r}): off (default, authors) vs on")
    print(f"queries changed by the guard: {g['queries_changed']} of {g['queries']} "
          f"({g['queries_changed'] / max(1, g['queries']):.1%}); by kind {g['changed_by_kind']}")
    print(f"candidate weights changed: {g['weights_changed']} of {g['weights']} "
          f"({g['weights_changed'] / max(1, g['weights']):.1%})")
    print(f"TV distance per query: mean {g['mean_tv_all_queries']:.4f} over all queries, "
          f"{g['mean_tv_changed_queries']:.4f} over changed ones, max {g['max_tv']:.4f}")

    lv = living_effect(entities, attributes, queries, urls, *h, args.alt_text_chance)
    print(f"== kg_text_queries living vs all ({r}, LivingThings images = is_living; alt chance "
          f"{args.alt_text_chance})")
    print(f"LivingThings images: {lv['living_images']} of {lv['images']}; with at least one world query: "
          f"{lv['living_images_with_world_queries']} "
          f"({lv['living_images_with_world_queries'] / max(1, lv['living_images']):.1%})")
    print(f"share of all draws that 'all' takes from a world query: {lv['world_draw_share_under_all']:.2%} "
          f"(0 under 'living')")
    print(f"TV distance per image: mean {lv['mean_tv_per_image']:.4f}, max {lv['max_tv_per_image']:.4f}")
    print(f"texts drawable for LivingThings images: {lv['texts_drawable_all']} with 'all', "
          f"{lv['texts_drawable_living']} with 'living'; {lv['texts_only_from_world_queries']} only via world "
          f"queries; candidate queries {lv['candidate_queries_all']} -> {lv['candidate_queries_living']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
