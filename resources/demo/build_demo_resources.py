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
- ``wikidata_records/``                               verbatim Wikidata records: ``globalbioticinteractions__nomer__items.json``,
  ``OneZoom__tree-build__Felidae_latest-all.json``, ``HeardLibrary__vandycite__superclasses.ttl``

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

# Labels of attribute-hint values that the verbatim records point at but do not carry (a record holds only its own
# labels). Each is Wikidata's English label of that item as known to the maintainer; NOT copied from a source file.
HAND_VALUE_LABELS = [
    ("Q23445", "black", "colour (P462) value of tiger and jaguar"),
    ("Q23444", "white", "colour (P462) value of tiger"),
    ("Q39338", "orange", "colour (P462) value of tiger"),
    ("Q4421", "forest", "habitat (P2974) value of tiger, leopard and snow leopard"),
    ("Q8502", "mountain", "habitat (P2974) value of snow leopard"),
]
# World attribute hints: the records hold none for world classes. Illustrative, true of the class, NOT a copied record.
HAND_WORLD_HINTS = [
    ("Q99895", "P186", "Q28823", "pillow made from (P186) textile: illustrative world attribute hint"),
]
RECORD_PROPS = ("P31", "P279", "P171", "P105", "P141", "P1034", "P2974", "P462", "P527")
RECORDS = "wikidata_records/globalbioticinteractions__nomer__items.json"
FELIDAE = "wikidata_records/OneZoom__tree-build__Felidae_latest-all.json"
SUPERCLASSES = "wikidata_records/HeardLibrary__vandycite__superclasses.ttl"
COMMONS = "http://commons.wikimedia.org/wiki/Special:FilePath/"

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


def dump_lines(path: Path) -> list[dict]:
    """Entities of a Wikidata JSON dump file (one entity per line between ``[`` and ``]``); first copy of a QID wins."""
    out, seen = [], set()
    for line in open(path, encoding="utf-8"):
        line = line.strip().rstrip(",")
        if line in ("[", "]", ""):
            continue
        ent = json.loads(line)
        if ent["id"] not in seen:
            seen.add(ent["id"])
            out.append(ent)
    return out


def truthy(claims: list[dict]) -> list[dict]:
    """The statements the ``wdt:`` (truthy) mapping keeps: preferred rank if any, else normal; never deprecated."""
    preferred = [c for c in claims if c.get("rank") == "preferred"]
    return preferred or [c for c in claims if c.get("rank", "normal") == "normal"]


def commons_path(name: str) -> str:
    """A Commons file name as Wikidata's RDF writes it after Special:FilePath/ (rawurlencode: ``,`` -> %2C …)."""
    from urllib.parse import quote

    return quote(name, safe="")


def snak_term(snak: dict) -> str | None:
    """Turtle term of a statement value: item -> wd:Q…, commonsMedia -> FilePath IRI, string -> literal."""
    dv = snak.get("datavalue")
    if not dv:
        return None
    v = dv["value"]
    if dv["type"] == "wikibase-entityid":
        return f"wd:{v['id']}"
    if snak.get("datatype") == "commonsMedia":
        return f"<{COMMONS}{commons_path(v)}>"
    if dv["type"] == "string":
        return f'"{turtle_literal(v)}"'
    if dv["type"] == "monolingualtext" and v.get("language") == "en":
        return f'"{turtle_literal(v["text"])}"@en'
    return None


def record_triples(shared: Path) -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """Triples converted one to one from the verbatim Wikidata records (RDF dump mapping: truthy ``wdt:``,
    English labels, descriptions and aliases, sitelink counts on the data node). Returns (triples, labels, aliases)."""
    triples: list[str] = []
    labels: dict[str, str] = {}
    aliases: dict[str, list[str]] = {}
    seen_records = set()
    for ent in dump_lines(shared / RECORDS):
        q = ent["id"]
        seen_records.add(q)
        claims = ent.get("claims", {})
        for prop in RECORD_PROPS + ("P225", "P1843", "P18"):
            for c in truthy(claims.get(prop, [])):
                term = snak_term(c["mainsnak"])
                if term and (prop != "P1843" or term.endswith("@en")):
                    triples.append(f"wd:{q} wdt:{prop} {term} .")
        if "en" in ent.get("labels", {}):
            labels[q] = ent["labels"]["en"]["value"]
        if "en" in ent.get("descriptions", {}):
            triples.append(f'wd:{q} schema:description "{turtle_literal(ent["descriptions"]["en"]["value"])}"@en .')
        aliases[q] = [a["value"] for a in ent.get("aliases", {}).get("en", [])]
        data = f"<https://www.wikidata.org/wiki/Special:EntityData/{q}>"
        triples.append(f"{data} schema:about wd:{q} .")
        triples.append(f"{data} wikibase:sitelinks {len(ent.get('sitelinks', {}))} .")
    # OneZoom's abridged cat-family lines: P31 and P18 are unabridged; labels only where the richer records lack one.
    for ent in dump_lines(shared / FELIDAE):
        q = ent["id"]
        # abridged shape: no datavalue types, items as {"numeric-id": n}, no ranks; sitelink keys kept (titles emptied)
        for c in ent.get("claims", {}).get("P31", []):
            triples.append(f"wd:{q} wdt:P31 wd:Q{c['mainsnak']['datavalue']['value']['numeric-id']} .")
        for c in ent.get("claims", {}).get("P18", []):
            triples.append(f"wd:{q} wdt:P18 <{COMMONS}{commons_path(c['mainsnak']['datavalue']['value'])}> .")
        if "en" in ent.get("labels", {}):
            labels.setdefault(q, ent["labels"]["en"]["value"])
        if q not in seen_records and ent.get("sitelinks"):
            data = f"<https://www.wikidata.org/wiki/Special:EntityData/{q}>"
            triples.append(f"{data} schema:about wd:{q} .")
            triples.append(f"{data} wikibase:sitelinks {len(ent['sitelinks'])} .")
    # The WDQS CONSTRUCT of upward P279 closures: its P279 edges and English labels.
    import pyoxigraph

    for t in pyoxigraph.parse(path=str(shared / SUPERCLASSES), format=pyoxigraph.RdfFormat.TURTLE):
        s, p, o = str(t.subject.value), str(t.predicate.value), t.object
        if not s.startswith(WD):
            continue
        q = s[len(WD):]
        if p == "http://www.wikidata.org/prop/direct/P279" and str(o.value).startswith(WD):
            triples.append(f"wd:{q} wdt:P279 wd:{str(o.value)[len(WD):]} .")
        elif p == "http://www.w3.org/2000/01/rdf-schema#label" and getattr(o, "language", None) == "en":
            labels.setdefault(q, o.value)
    return list(dict.fromkeys(triples)), labels, aliases


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

    # Verbatim Wikidata records (VERBATIM block of the Turtle): their labels replace the mapping's title-cased ones.
    rec_triples, rec_labels, rec_aliases = record_triples(shared)
    labels.update(rec_labels)
    for q, al in rec_aliases.items():
        aliases[q].update(al)
    for q, label, why in HAND_VALUE_LABELS:
        labels.setdefault(q, label)
        hand.append((f"wd:{q}", "rdfs:label", f'"{label}"@en', f"value label: {why}"))
    for s_, p_, o_, why in HAND_WORLD_HINTS:
        hand.append((f"wd:{s_}", f"wdt:{p_}", f"wd:{o_}", why))

    hand_labels = {q for q, _, _ in HAND_VALUE_LABELS}
    for q, label in sorted(labels.items()):
        if q in hand_labels and q not in rec_labels:
            triples.append(f'wd:{q} rdfs:label "{turtle_literal(label)}"@en .  # HAND-ADDED: value label')
            continue
        triples.append(f'wd:{q} rdfs:label "{turtle_literal(label)}"@en .')
        for a in sorted(aliases.get(q, ())):
            if a.lower() != label.lower():
                triples.append(f'wd:{q} skos:altLabel "{turtle_literal(a)}"@en .')
    for q, a in aliases.items():
        if q not in labels:
            for alias in sorted(a):
                triples.append(f'wd:{q} skos:altLabel "{turtle_literal(alias)}"@en .')

    triples.append("# VERBATIM: converted one to one from the verbatim Wikidata records of " + RECORDS + ", " + FELIDAE
                   + " and " + SUPERCLASSES + " (resources/demo/README.md, 'Wikidata records')")
    triples.extend(rec_triples)
    triples.append("# END VERBATIM")
    for s_, p_, o_, why in HAND_WORLD_HINTS:
        triples.append(f"wd:{s_} wdt:{p_} wd:{o_} .  # HAND-ADDED: {why}")

    header = """# EntityNet embedded demo: a small real Wikidata extract in the Wikidata RDF dump shape.
# Built by resources/demo/build_demo_resources.py from the project's offline data collection (see resources/demo/README.md).
# Lines marked HAND-ADDED are not Wikidata statements; kg/hand_added.tsv lists them with the reason.
# Sitelink counts exist only for the verbatim records (the other sources carry none): the demo sets min_sitelinks: 0.
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
