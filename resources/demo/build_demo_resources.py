"""Build the embedded demo's frozen inputs from the project's offline data collection.

Run once by a maintainer (the outputs are committed; the workflow never runs this, and users do not need it):

    .venv/bin/python resources/demo/build_demo_resources.py --shared <collection folder>

``--shared`` is a folder with that collection's layout (README.md beside this file names the upstream source and
commit of each file):
- ``entitynet/manual_entities.csv``                  the authors' root classes (``wikidata,name,include``)
- ``molrn_imagenet_wikidata/synset_mapping.json``     ImageNet class -> Wikidata QID records
- ``molrn_imagenet_wikidata/graph_arcs.csv``          animal hierarchy arcs under Q729
- ``wikidata/entity_facts_razrfly.json``              real statements of Q107411 and Q257102
- ``gcompris_pd_cc0_photos/``                         the photos, ``manifest.tsv`` and ``zero_shot_labels.tsv``

Writes, next to this file:
- ``kg/extract.ttl``          a small real Wikidata extract (Turtle, Wikidata RDF dump shape)
- ``kg/hand_added.tsv``       every triple that is NOT taken from a source file, with the reason
- ``photos/…``                 the PD/CC0 photos, copied unchanged, plus ``photos/manifest.tsv`` (licences, authors)
- ``pool.csv``                 the search pool: one row per pool photo (url, alt_text = Commons file title, …)
- ``eval_heldout.tsv``         the held-out evaluation photos with their zero-shot labels (never in the pool)

See README.md beside this file for provenance and the decisions taken here.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
WD = "http://www.wikidata.org/entity/"
POOL_BASE_URL = "http://127.0.0.1:18765/"  # the demo's loopback image server (config: datasets.demo.download.serve_local)

# The 21 included EntityNet roots (entitynet/manual_entities.csv of the collection, include=1) are read from the file.
# Hand-added subclass edges connecting the demo's object photos (QIDs from the Molrn ImageNet→Wikidata mapping) to
# an EntityNet root. These edges are NOT Wikidata statements; they shortcut the real (longer) P279 chains.
HAND_EDGES = [
    ("Q25294", "P279", "Q39546", "hammer -> physical tool (shortcut of the real P279 chain)"),
    ("Q161071", "P279", "Q39546", "screwdriver -> physical tool (shortcut)"),
    ("Q134566", "P279", "Q39546", "weighing scale -> physical tool (shortcut; really a measuring instrument)"),
    ("Q47107", "P279", "Q2424752", "bucket -> product (shortcut)"),
    ("Q81727", "P279", "Q2424752", "cup -> product (shortcut)"),
    ("Q57216", "P279", "Q2424752", "plate -> product (shortcut)"),
    ("Q99895", "P279", "Q14745", "pillow -> furniture (shortcut; really a textile product)"),
    ("Q791187", "P279", "Q2424752", "baseball (ball) -> product (shortcut)"),
    ("Q927924", "P279", "Q2424752", "volleyball (ball) -> product (shortcut)"),
]

LATIN_SUFFIXES = ("idae", "inae", "formes", "oidea", "ata", "ia", "ae", "a", "us", "es", "um", "i")


def turtle_literal(text: str) -> str:
    """Escape a string as a Turtle literal body."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def looks_like_taxon(label: str) -> bool:
    """Heuristic used only for arcs whose child has no mapping record: a single Latin-looking word."""
    return bool(re.fullmatch(r"[A-Z][a-z]+", label)) and label.lower().endswith(LATIN_SUFFIXES)


def arc_property(child_pattern: str | None, child_label: str) -> str:
    """Decide the Wikidata property of an unlabelled Molrn arc (see README.md, "Arc properties")."""
    if child_pattern == "taxon":
        return "P171"
    if child_pattern in ("subclass", "subclass_instance", "subclass_taxon_subclass"):
        return "P279"
    return "P171" if looks_like_taxon(child_label) else "P279"


def build(shared: Path) -> None:
    kg_dir = HERE / "kg"
    kg_dir.mkdir(exist_ok=True)
    roots = [r for r in csv.DictReader(open(shared / "entitynet/manual_entities.csv")) if r["include"] == "1"]
    mapping = json.load(open(shared / "molrn_imagenet_wikidata/synset_mapping.json"))
    arcs = list(csv.DictReader(open(shared / "molrn_imagenet_wikidata/graph_arcs.csv")))

    labels: dict[str, str] = {}
    aliases: dict[str, set[str]] = defaultdict(set)
    pattern: dict[str, str | None] = {}
    for rec in mapping:
        if not rec.get("wdid"):
            continue
        q = rec["wdid"]
        labels.setdefault(q, rec.get("label") or rec["synset"][0])
        pattern.setdefault(q, rec.get("animal_pattern"))
        for lemma in rec["synset"]:
            aliases[q].add(lemma)
    for arc in arcs:
        labels.setdefault(arc["parent"], arc["parentLabel"])
        labels.setdefault(arc["child"], arc["childLabel"])
    for r in roots:
        labels.setdefault(r["wikidata"], r["name"])

    triples: list[str] = []
    hand: list[tuple[str, str, str, str]] = []
    seen_edges = set()
    for arc in arcs:
        prop = arc_property(pattern.get(arc["child"]), arc["childLabel"])
        key = (arc["child"], prop, arc["parent"])
        if key in seen_edges:
            continue
        seen_edges.add(key)
        triples.append(f"wd:{arc['child']} wdt:{prop} wd:{arc['parent']} .")
    for s, p, o, why in HAND_EDGES:
        triples.append(f"wd:{s} wdt:{p} wd:{o} .  # HAND-ADDED: {why}")
        hand.append((f"wd:{s}", f"wdt:{p}", f"wd:{o}", why))

    # Real statements of Q107411 (oyster) and Q257102 (disambiguation page "Seal") from entity_facts_razrfly.json.
    facts = json.load(open(shared / "wikidata/entity_facts_razrfly.json"))
    for ent in facts["entities"]:
        q = ent["id"]
        for prop in ("P31", "P279", "P171", "P105"):
            for val in ent.get("claims", {}).get(prop, []):
                triples.append(f"wd:{q} wdt:{prop} wd:{val} .")
        for val in ent.get("claims", {}).get("P225", []):
            triples.append(f'wd:{q} wdt:P225 "{turtle_literal(val)}" .')
        for val in ent.get("claims", {}).get("P18", []):
            iri = "http://commons.wikimedia.org/wiki/Special:FilePath/" + val.replace(" ", "%20")
            triples.append(f"wd:{q} wdt:P18 <{iri}> .")
        for a in ent.get("aliases_en", []):
            aliases[q].add(a)
        if ent.get("label_en"):
            labels.setdefault(q, ent["label_en"])

    for q, label in sorted(labels.items()):
        triples.append(f'wd:{q} rdfs:label "{turtle_literal(label)}"@en .')
        for a in sorted(aliases.get(q, ())):
            if a.lower() != label.lower():
                triples.append(f'wd:{q} skos:altLabel "{turtle_literal(a)}"@en .')
    for q, a in aliases.items():
        if q not in labels:
            for alias in sorted(a):
                triples.append(f'wd:{q} skos:altLabel "{turtle_literal(alias)}"@en .')

    header = """# EntityNet embedded demo: a small real Wikidata extract in the Wikidata RDF dump shape.
# Built by resources/demo/build_demo_resources.py from the project's offline data collection (see resources/demo/README.md).
# Lines marked HAND-ADDED are not Wikidata statements; kg/hand_added.tsv lists them with the reason.
# No sitelink counts are included (the sources carry none): the demo config sets min_sitelinks: 0.
@prefix wd: <http://www.wikidata.org/entity/> .
@prefix wdt: <http://www.wikidata.org/prop/direct/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix schema: <http://schema.org/> .
@prefix wikibase: <http://wikiba.se/ontology#> .
"""
    (kg_dir / "extract.ttl").write_text(header + "\n".join(triples) + "\n")
    with open(kg_dir / "hand_added.tsv", "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["subject", "predicate", "object", "reason"])
        w.writerows(hand)

    # Photos, pool and held-out evaluation split.
    src = shared / "gcompris_pd_cc0_photos"
    photos = HERE / "photos"
    if photos.exists():
        shutil.rmtree(photos)
    manifest = list(csv.DictReader(open(src / "manifest.tsv"), delimiter="\t"))
    labels_tsv = {r["local_file"]: r for r in csv.DictReader(open(src / "zero_shot_labels.tsv"), delimiter="\t")}
    for row in manifest:
        dst = photos / row["local_file"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / row["local_file"], dst)
    shutil.copy2(src / "manifest.tsv", photos / "manifest.tsv")
    shutil.copy2(src / "zero_shot_labels.tsv", photos / "zero_shot_labels.tsv")

    # Held out: the first file (sorted) of every zero-shot label with at least two photos.
    by_label: dict[str, list[str]] = defaultdict(list)
    for f, r in labels_tsv.items():
        by_label[r["label"]].append(f)
    heldout = {sorted(files)[0] for files in by_label.values() if len(files) >= 2}
    with open(HERE / "eval_heldout.tsv", "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["local_file", "label", "license"])
        for f in sorted(heldout):
            w.writerow([f, labels_tsv[f]["label"], labels_tsv[f]["license"]])
    with open(HERE / "pool.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["url", "alt_text", "page_url", "licence", "author"])
        for row in sorted(manifest, key=lambda r: r["local_file"]):
            if row["local_file"] in heldout:
                continue
            w.writerow([POOL_BASE_URL + row["local_file"], row["commons_title"], row["commons_source"],
                        row["license"], row["author"]])
    print(f"{len(triples)} triples, {len(hand)} hand-added, {len(manifest) - len(heldout)} pool photos, "
          f"{len(heldout)} held-out photos")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, required=True,
                    help="folder with the offline data collection's layout (see this script's docstring)")
    build(ap.parse_args().shared)
