"""SPARQL query texts of the KG stage, in one place.

Every value pasted into a query is validated first (QIDs by ``check_qid``, language tags by ``check_lang``,
integers by ``int``): no string from config reaches SPARQL unchecked. The same texts run on QLever, WDQS and
Oxigraph (no ``SERVICE wikibase:label``; labels are fetched with explicit ``rdfs:label`` + ``LANG`` filters).

Sitelinks come in two shapes: the raw dump / QLever keep them on the data node
(``?ent ^schema:about/wikibase:sitelinks ?n``), WDQS on the item (``?ent wikibase:sitelinks ?n``). Queries here
accept both (a UNION), so one text serves every endpoint.
"""

import re

from lib.kg.sparql_client import PREFIXES, check_lang, check_qid

# Wikidata properties the paper used as attribute hints (docs/PAPER_NOTES.md §6), direct ones.
ATTRIBUTE_HINT_PROPERTIES = [
    "P462", "P1672", "P1552", "P1535", "P4733", "P1034", "P3095", "P361", "P527", "P1542", "P1963",
    "P136", "P793", "P1056", "P186", "P2079", "P137", "P2283", "P366", "P5869",
    "P2974",  # habitat: a living attribute hint (the paper's Environment category for animals and plants)
]

# Three hops up P279 (zero to three): natural-type candidates and their names.
UP_TO_3 = "wdt:P279?/wdt:P279?/wdt:P279?"
LIVING_MEMBER = "{{ ?ent (wdt:P31/wdt:P279*)|wdt:P279+ wd:{root} }} UNION {{ ?ent wdt:P171+ wd:{root} }} UNION {{ VALUES ?ent {{ wd:{root} }} }}"


def world_member(root: str) -> str:
    return f"?ent wdt:P279* wd:{check_qid(root, 'root')} ."


def living_member(root: str) -> str:
    return LIVING_MEMBER.format(root=check_qid(root, "living root"))


def living_dump_member(root: str) -> str:
    """What the dump keeps under a living root: every node with a mixed P31/P279/P171 path to it (a superset of
    :func:`living_member`). It holds the natural-type candidates that are reached through mixed paths, e.g.
    "big cat" (P279 of the taxon Felidae, which is P171+ of animal), with their edges, names and sitelinks."""
    q = check_qid(root, "living root")
    return f"{{ ?ent (wdt:P31|wdt:P279|wdt:P171)+ wd:{q} }} UNION {{ VALUES ?ent {{ wd:{q} }} }}"


def _names_template(lang: str) -> tuple[str, str]:
    lang = check_lang(lang)
    template = """?x rdfs:label ?label . ?x schema:description ?desc . ?x skos:altLabel ?alias .
  ?x wdt:P1843 ?common . ?x wdt:P225 ?taxon . ?x wdt:P18 ?image . ?x wdt:P105 ?rank .
  ?data schema:about ?x . ?data wikibase:sitelinks ?links . ?x wikibase:sitelinks ?links2 ."""
    where = f"""{{ ?x rdfs:label ?label . FILTER(LANG(?label) = "{lang}") }}
  UNION {{ ?x schema:description ?desc . FILTER(LANG(?desc) = "{lang}") }}
  UNION {{ ?x skos:altLabel ?alias . FILTER(LANG(?alias) = "{lang}") }}
  UNION {{ ?x wdt:P1843 ?common . FILTER(LANG(?common) = "{lang}") }}
  UNION {{ ?x wdt:P225 ?taxon }} UNION {{ ?x wdt:P18 ?image }} UNION {{ ?x wdt:P105 ?rank }}
  UNION {{ ?data schema:about ?x . ?data wikibase:sitelinks ?links }}
  UNION {{ ?x wikibase:sitelinks ?links2 }}"""
    return template, where


def dump_queries(roots: list[str], living_roots: list[str], lang: str, abstract_classes=()) -> dict[str, str]:
    """CONSTRUCT queries whose union is the sub-graph later steps need, partitioned per root and facet.

    Keys are stable facet names (``world/<root>/edges`` …) used in the provenance file and for paging. Living roots
    get a ``hints`` facet too (colour, habitat, main food source, parts …), so that the KG mode has living
    attributes (``wd-attr-living`` / ``wd-attrnoun-living`` queries), and their ``names`` facet carries the
    ancestors' names (taxon names, common names, sitelinks) that the living natural-type rule reads.
    ``abstract_classes`` (the visuality filter's): a ``world/<root>/abstract`` facet keeps the real P279 edges on
    every path from a member up to one of them, however long, so the filter can test the ancestry on the dump.
    """
    names_tpl, names_where = _names_template(lang)
    hints = " ".join(f"wdt:{p}" for p in ATTRIBUTE_HINT_PROPERTIES)
    out: dict[str, str] = {}
    for root in roots:
        member = world_member(root)
        out[f"world/{root}/edges"] = PREFIXES + f"""CONSTRUCT {{ ?ent wdt:P279 ?p1 . ?p1 wdt:P279 ?p2 . ?p2 wdt:P279 ?p3 . ?ent wdt:P31 ?cls . }}
WHERE {{ {member} ?ent wdt:P279 ?p1 . OPTIONAL {{ ?p1 wdt:P279 ?p2 . OPTIONAL {{ ?p2 wdt:P279 ?p3 . }} }}
  OPTIONAL {{ ?ent wdt:P31 ?cls }} }}"""
        out[f"world/{root}/names"] = PREFIXES + f"""CONSTRUCT {{ {names_tpl} }}
WHERE {{ {{ SELECT DISTINCT ?x WHERE {{ {member} ?ent {UP_TO_3} ?x . }} }}
  {names_where} }}"""
        if abstract_classes:
            values = " ".join(f"wd:{check_qid(q, 'abstract class')}" for q in abstract_classes)
            out[f"world/{root}/abstract"] = PREFIXES + f"""CONSTRUCT {{ ?x wdt:P279 ?y . }}
WHERE {{ VALUES ?a {{ {values} }} {member} ?ent wdt:P279* ?x . ?x wdt:P279 ?y . ?y wdt:P279* ?a . }}"""
        out[f"world/{root}/hints"] = PREFIXES + f"""CONSTRUCT {{ ?ent ?p ?v . ?v rdfs:label ?vl . }}
WHERE {{ {member} VALUES ?p {{ {hints} }} ?ent ?p ?v .
  OPTIONAL {{ ?v rdfs:label ?vl . FILTER(LANG(?vl) = "{check_lang(lang)}") }} }}"""
    for root in living_roots:
        member = living_dump_member(root)
        out[f"living/{root}/edges"] = PREFIXES + f"""CONSTRUCT {{ ?ent wdt:P31 ?a . ?ent wdt:P279 ?b . ?ent wdt:P171 ?c . ?ent wdt:P625 ?coord . ?a wdt:P279 ?a2 . }}
WHERE {{ {member}
  {{ ?ent wdt:P31 ?a . OPTIONAL {{ ?a wdt:P279 ?a2 }} }} UNION {{ ?ent wdt:P279 ?b }} UNION {{ ?ent wdt:P171 ?c }} UNION {{ ?ent wdt:P625 ?coord }} }}"""
        out[f"living/{root}/names"] = PREFIXES + f"""CONSTRUCT {{ {names_tpl} }}
WHERE {{ {{ SELECT DISTINCT ?x WHERE {{ {member} BIND(?ent AS ?x) }} }}
  {names_where} }}"""
        out[f"living/{root}/hints"] = PREFIXES + f"""CONSTRUCT {{ ?ent ?p ?v . ?v rdfs:label ?vl . }}
WHERE {{ {member} VALUES ?p {{ {hints} }} ?ent ?p ?v .
  OPTIONAL {{ ?v rdfs:label ?vl . FILTER(LANG(?vl) = "{check_lang(lang)}") }} }}"""
        out[f"living/{root}/fruits"] = PREFIXES + f"""CONSTRUCT {{ ?f wdt:P31 ?fc . ?f wdt:P1582 ?t . ?t wdt:P1672 ?f . ?f rdfs:label ?fl . ?f wdt:P18 ?fi . }}
WHERE {{ VALUES ?fc {{ wd:Q3314483 wd:Q1364 }} ?f wdt:P31|wdt:P279 ?fc .
  {{ ?f wdt:P1582 ?t }} UNION {{ ?t wdt:P1672 ?f }}
  {{ ?t wdt:P171* wd:{check_qid(root, 'living root')} }}
  OPTIONAL {{ ?f rdfs:label ?fl . FILTER(LANG(?fl) = "{check_lang(lang)}") }} OPTIONAL {{ ?f wdt:P18 ?fi }} }}"""
    return out


def paged(query: str, page_size: int, page: int) -> str:
    """Add stable paging to a CONSTRUCT: ORDER BY *every* variable of the pattern (a total order of solutions), so
    an endpoint that returns tied rows in varying order (QLever, say) can neither repeat nor skip rows between pages."""
    where = query.split("WHERE", 1)[1]
    variables = sorted(set(re.findall(r"\?[A-Za-z_][A-Za-z0-9_]*", where)))
    return f"{query}\nORDER BY {' '.join(variables)}\nLIMIT {int(page_size)} OFFSET {int(page_size) * int(page)}"


def world_entities_query(root: str, lang: str) -> str:
    """Classes under ``root`` (P279*, root included) with a label; sitelinks in either shape; P18 optional."""
    lang = check_lang(lang)
    return PREFIXES + f"""SELECT ?ent ?label ?desc ?links ?image WHERE {{
  {world_member(root)}
  ?ent rdfs:label ?label . FILTER(LANG(?label) = "{lang}")
  OPTIONAL {{ ?ent schema:description ?desc . FILTER(LANG(?desc) = "{lang}") }}
  OPTIONAL {{ {{ ?ent ^schema:about/wikibase:sitelinks ?links }} UNION {{ ?ent wikibase:sitelinks ?links }} }}
  OPTIONAL {{ ?ent wdt:P18 ?image }}
}}"""


def _living_minus(exclude: list[str], exclude_coordinates: bool) -> str:
    excl = " ".join(f"wd:{check_qid(q, 'living exclude')}" for q in exclude)
    minus = (f"MINUS {{ VALUES ?ex {{ {excl} }} {{ ?ent (wdt:P31/wdt:P279*)|wdt:P279+ ?ex }} UNION {{ ?ent wdt:P171+ ?ex }} }}"
             if exclude else "")
    if exclude_coordinates:
        minus += "\n  MINUS { ?ent wdt:P625 ?coord }"
    return minus


def living_entities_query(root: str, lang: str, exclude: list[str], require_image: bool,
                          exclude_coordinates: bool = True) -> str:
    """Animals / plants / fungi under ``root`` as in the paper: (P31/P279*)|P279+ or P171+, minus ``exclude``
    (the root's own list: humans, mythical creatures, individuals for animals; cultivars, individuals for plants)
    and, when ``exclude_coordinates`` (the authors: plants only), anything with coordinates (P625, individual trees)."""
    lang = check_lang(lang)
    image = "?ent wdt:P18 ?image ." if require_image else "OPTIONAL { ?ent wdt:P18 ?image }"
    return PREFIXES + f"""SELECT ?ent ?label ?desc ?links ?image WHERE {{
  {{ {living_member(root)} }}
  ?ent rdfs:label ?label . FILTER(LANG(?label) = "{lang}")
  {_living_minus(exclude, exclude_coordinates)}
  {image}
  OPTIONAL {{ ?ent schema:description ?desc . FILTER(LANG(?desc) = "{lang}") }}
  OPTIONAL {{ {{ ?ent ^schema:about/wikibase:sitelinks ?links }} UNION {{ ?ent wikibase:sitelinks ?links }} }}
}}"""


def fruits_query(root: str, lang: str, require_image: bool, exclude: list[str] = (),
                 exclude_coordinates: bool = False) -> str:
    """Fruits linked to a plant taxon under ``root`` via P1582 / P1672 (docs/PAPER_NOTES.md §4.1), under the same
    MINUS as the root's other living things (the authors' plant query applies it to fruits too)."""
    lang = check_lang(lang)
    image = "?ent wdt:P18 ?image ." if require_image else "OPTIONAL { ?ent wdt:P18 ?image }"
    return PREFIXES + f"""SELECT ?ent ?label ?desc ?links ?image WHERE {{
  VALUES ?fc {{ wd:Q3314483 wd:Q1364 }} ?ent wdt:P31|wdt:P279 ?fc .
  {{ ?ent wdt:P1582 ?t }} UNION {{ ?t wdt:P1672 ?ent }}
  ?t wdt:P171* wd:{check_qid(root, 'living root')} .
  ?ent rdfs:label ?label . FILTER(LANG(?label) = "{lang}")
  {_living_minus(list(exclude), exclude_coordinates)}
  {image}
  OPTIONAL {{ ?ent schema:description ?desc . FILTER(LANG(?desc) = "{lang}") }}
  OPTIONAL {{ {{ ?ent ^schema:about/wikibase:sitelinks ?links }} UNION {{ ?ent wikibase:sitelinks ?links }} }}
}}"""


def multi_value_query(prop_pattern: str, lang: str | None) -> str:
    """All (?ent, ?v) for one multi-valued name property over the whole (frozen) store."""
    flt = f'FILTER(LANG(?v) = "{check_lang(lang)}")' if lang else ""
    return PREFIXES + f"SELECT ?ent ?v WHERE {{ ?ent {prop_pattern} ?v . {flt} }}"


EDGES_QUERY = PREFIXES + """SELECT ?s ?p ?o WHERE { VALUES ?p { wdt:P279 wdt:P31 wdt:P171 } ?s ?p ?o . FILTER(isIRI(?o)) }"""

NODE_INFO_QUERY_TEMPLATE = """SELECT ?x ?label ?desc ?links WHERE {{
  ?x rdfs:label ?label . FILTER(LANG(?label) = "{lang}")
  OPTIONAL {{ ?x schema:description ?desc . FILTER(LANG(?desc) = "{lang}") }}
  OPTIONAL {{ {{ ?x ^schema:about/wikibase:sitelinks ?links }} UNION {{ ?x wikibase:sitelinks ?links }} }}
}}"""


def node_info_query(lang: str) -> str:
    return PREFIXES + NODE_INFO_QUERY_TEMPLATE.format(lang=check_lang(lang))


def hints_query(lang: str) -> str:
    """(entity, property, value label) for every attribute-hint statement in the store."""
    props = " ".join(f"wdt:{p}" for p in ATTRIBUTE_HINT_PROPERTIES)
    return PREFIXES + f"""SELECT ?ent ?p ?vlabel WHERE {{ VALUES ?p {{ {props} }} ?ent ?p ?v .
  {{ ?v rdfs:label ?vlabel . FILTER(LANG(?vlabel) = "{check_lang(lang)}") }} UNION {{ FILTER(isLiteral(?v)) BIND(STR(?v) AS ?vlabel) }} }}"""
