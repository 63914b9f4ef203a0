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
  products, named individuals, cultivars by their description, ``kg_selection.clean_living``); capped per root by
  sitelinks (ties by QID). Fungi are a living root only with ``living.include_fungi`` (the rule adds Q764).
- world visuality filter (``visual_filter``, ``kg_selection.visual_filter``): entities without an image (P18) are
  dropped when they descend from an abstract class or have fewer than ``min_sitelinks_without_image`` sitelinks.
- **Deviation**: an entity under several roots is kept once with *all* its roots (the authors kept the first root).
- **Deviation**: natural types come from a deterministic KG heuristic by default, not an LLM. World: among the
  ancestors 1–3 P279 hops up (generic classes excluded), the candidate with the most sitelinks, ties broken by
  fewer hops then by QID number. Living (``natural_types.living_rule``): ``nearest_common_name`` (default) takes
  the nearest ancestor over P31/P279/P171 whose label is a common name and that has ≥
  ``natural_types.living_min_sitelinks`` sitelinks (``kg_natural_types.nearest_common_name_types``: lion → big cat);
  ``most_sitelinks`` (and the fallback) takes, among the ancestors that are P279* of the living root, the one with
  the most sitelinks (usually the root itself). Candidates need a label. Living things default to their root
  (animal / plant / fungus), world entities to their first root. P279 cycles are harmless (breadth-first search
  with a visited set).
- ``natural_types.mode: llm`` asks an OpenAI-compatible chat model instead (``kg_llm``, docs/PAPER_NOTES.md §5):
  the world prompt picks among the top-10 candidates by sitelinks and classes the entity visual / non-visual (non-visual
  world entities are dropped, as only visual entities became queries in the paper); the living prompt picks among
  the living candidates, and a true/false prompt drops non-living items (products, colour variants, named
  individuals) before the per-root cap. Any answer the model could not give validly keeps the KG result.

Implementation (vectorised: 1M entities in ~36 s on one core, 2.2 GiB; ``perf/bench_kg.py``, ``perf/README_kg.md``)
in ``scripts/lib/kg/``; this entry reads the snakemake object, calls ``kg_entity_table.build_entities`` and writes
the table. ``kg_tables`` reads the frozen dump (canonical N-Triples written by ``kg_dump``) straight into a few
tables with pyarrow; ``kg_graph`` evaluates every path expression of the selection queries (``P279*``, ``P171+``,
``(P31/P279*)|P279+``, the MINUS, the fruit links) and the natural-type searches on integer-coded edge arrays with
numpy (breadth-first over CSR adjacency, cycle-safe); ``kg_selection`` and ``kg_natural_types`` select and type.
The SPARQL texts of ``kg_queries`` stay the definition: ``kg_selection.select_world`` / ``select_living`` run them
on an Oxigraph store, ``kg_tables.fetch_tables`` builds the same tables from SPARQL scans of a store, and the tests
check on random graphs with cycles that all routes give identical results; ``build_entities`` still accepts a
store (``sparql_client.embedded_store``) for dumps that are not N-Triples.
"""

import logging

import pandas as pd

from _helpers import configure_logging, rule_entry, write_parquet
from lib.kg.kg_entity_table import add_wordnet, build_entities

log = logging.getLogger("entitynet.kg_entities")


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    llm = None
    if p.natural_types_mode == "llm":
        from lib.kg import kg_llm

        llm = kg_llm.KGLLM.from_params(dict(p.llm), cache_dir=p.llm_cache_dir, lang=p.language)
    timings: dict = {}
    ents = build_entities(snakemake.input.extract, list(p.roots), list(p.living_roots), p.language,
                          int(p.min_sitelinks), list(p.living_exclude), bool(p.require_image), p.max_living_per_root,
                          list(p.generic_classes), llm=llm, timings=timings,
                          allow_empty_roots=list(p.allow_empty_roots),
                          exclude_by_root=dict(p.exclude_by_root), coordinate_roots=p.coordinate_roots,
                          cleanup=list(p.cleanup), visual=dict(p.visual_filter), living_rule=p.living_rule,
                          living_type_min_sitelinks=float(p.living_type_min_sitelinks))
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
