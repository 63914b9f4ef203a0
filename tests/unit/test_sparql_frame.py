"""EmbeddedSparql.select_frame (the fast SELECT path of the KG rules) against select() (one object per binding).

Bug this catches: Oxigraph 0.5 writes an IRI containing a comma into SPARQL CSV unquoted, so with the CSV path a
Commons file name like ``Lion,_Kenya.jpg`` shifted every later column of its row (a P18 value read as the label).
Also: escapes inside literals, language tags and datatypes dropped, unbound values NaN.
"""
from __future__ import annotations

import pandas as pd
import pyoxigraph as ox

from lib.kg.sparql_client import EmbeddedSparql

P18 = "http://commons.wikimedia.org/wiki/Special:FilePath/Lion,_Kenya_(2009).jpg"


def _store() -> EmbeddedSparql:
    e = EmbeddedSparql()
    wd, p = "http://www.wikidata.org/entity/", "http://www.wikidata.org/prop/direct/"
    add = e.store.add
    add(ox.Quad(ox.NamedNode(wd + "Q140"), ox.NamedNode(p + "P18"), ox.NamedNode(P18)))
    add(ox.Quad(ox.NamedNode(wd + "Q140"), ox.NamedNode("http://www.w3.org/2000/01/rdf-schema#label"),
                ox.Literal('lion "king",\tof\\beasts\nsecond line', language="en")))
    add(ox.Quad(ox.NamedNode(wd + "Q140"), ox.NamedNode("http://wikiba.se/ontology#sitelinks"),
                ox.Literal("226", datatype=ox.NamedNode("http://www.w3.org/2001/XMLSchema#integer"))))
    return e


QUERY = """SELECT ?item ?image ?label ?links ?none WHERE {
  ?item <http://www.wikidata.org/prop/direct/P18> ?image ;
        <http://www.w3.org/2000/01/rdf-schema#label> ?label ;
        <http://wikiba.se/ontology#sitelinks> ?links .
  OPTIONAL { ?item <http://example.org/absent> ?none }
}"""


def test_frame_equals_the_plain_values_of_select():
    e = _store()
    df = e.select_frame(QUERY)
    rows = e.select(QUERY)
    assert list(df.columns) == ["item", "image", "label", "links", "none"]
    assert len(df) == len(rows) == 1
    for col in ("item", "image", "label", "links"):
        assert df.at[0, col] == rows[0][col]["value"], col
    assert df.at[0, "image"] == P18  # the comma did not split the row
    assert df.at[0, "label"] == 'lion "king",\tof\\beasts\nsecond line'
    assert pd.isna(df.at[0, "none"])


def test_no_solution_gives_the_columns_and_no_row():
    df = _store().select_frame("SELECT ?a ?b WHERE { ?a <http://example.org/absent> ?b }")
    assert list(df.columns) == ["a", "b"] and len(df) == 0
