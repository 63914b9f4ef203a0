"""LLM modes of the KG stage against a local stand-in of an OpenAI-compatible chat API (tests/standins/llm_chat.py;
not a real LLM service): request format, cache (a rerun sends zero requests), key handling, retries, invalid
answers, and the natural-type / visuality / living clean-up / attribute steps end to end."""
import json
import sys
from pathlib import Path

import pandas as pd
import pyoxigraph as ox
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (for the stand-ins)

import kg_attributes as ka  # noqa: E402
from lib.kg.kg_entity_table import build_entities  # noqa: E402
from lib.kg import kg_llm  # noqa: E402
from lib.kg.llm_client import ChatClient, LLMAnswerError, LLMConfig, LLMError  # noqa: E402
from lib.kg.sparql_client import EmbeddedSparql  # noqa: E402
from standins.llm_chat import LLMChatStandin  # noqa: E402

KEY = "sk-standin-0123456789abcdef"
PREFIX = """@prefix wd: <http://www.wikidata.org/entity/> .
@prefix wdt: <http://www.wikidata.org/prop/direct/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix schema: <http://schema.org/> .
@prefix wikibase: <http://wikiba.se/ontology#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
"""
KG = """
wd:Q1 rdfs:label "tool"@en ; wikibase:sitelinks 90 .
wd:Q2 wdt:P279 wd:Q1 ; rdfs:label "hand tool"@en ; wikibase:sitelinks 50 .
wd:Q3 wdt:P279 wd:Q2 ; rdfs:label "hammer"@en ; schema:description "tool for striking"@en ; wikibase:sitelinks 40 ;
      skos:altLabel "mallet"@en ; wdt:P462 wd:Q20 ; wdt:P527 wd:Q21 .
wd:Q20 rdfs:label "brown"@en .  wd:Q21 rdfs:label "handle"@en .
wd:Q4 wdt:P279 wd:Q3 ; rdfs:label "claw hammer"@en ; wikibase:sitelinks 12 .
wd:Q5 wdt:P279 wd:Q1 ; rdfs:label "toolness"@en ; schema:description "the abstract concept of being a tool"@en ;
      wikibase:sitelinks 8 .
wd:Q729 rdfs:label "animal"@en ; schema:description "kingdom of multicellular eukaryotes"@en ; wikibase:sitelinks 300 ;
      wdt:P18 "a.jpg" .
wd:Q7377 wdt:P279 wd:Q729 ; wdt:P171 wd:Q729 ; rdfs:label "mammal"@en ; wikibase:sitelinks 200 ; wdt:P18 "m.jpg" .
wd:Q140 wdt:P171 wd:Q7377 ; wdt:P31 wd:Q7377 ; rdfs:label "lion"@en ; schema:description "big cat"@en ;
      wikibase:sitelinks 150 ; wdt:P18 "l.jpg" ; wdt:P1843 "lion"@en .
wd:Q11 wdt:P171 wd:Q7377 ; wdt:P31 wd:Q7377 ; rdfs:label "alligator leather"@en ; schema:description "leather"@en ;
      wdt:P18 "x.jpg" .
wd:Q12 wdt:P171 wd:Q140 ; rdfs:label "Barbary lion"@en ; schema:description "lion subspecies"@en ;
      wikibase:sitelinks 30 ; wdt:P18 "b.jpg" ; wdt:P225 "Panthera leo leo" .
"""


def store() -> EmbeddedSparql:
    s = EmbeddedSparql()
    s.store.load(input=(PREFIX + KG).encode(), format=ox.RdfFormat.TURTLE)
    return s


@pytest.fixture
def server():
    with LLMChatStandin(api_key=KEY) as s:
        yield s


def config(server, **kw) -> dict:
    base = {"base_url": f"{server.url}/v1", "model": "standin-model", "api_key_env": "STANDIN_KEY",
            "max_retries": 2, "timeout_s": 5, "workers": 2}
    base.update(kw)
    return base


def client(server, cache, **kw) -> ChatClient:
    c = ChatClient(LLMConfig.from_dict(config(server, **kw)), cache, environ={"STANDIN_KEY": KEY})
    for cc in [c._client()]:  # fast backoff in tests
        cc.backoff_base_s, cc.backoff_max_s = 0.01, 0.02
    return c


SCHEMA = kg_llm.BOOL_SCHEMA
MSG = [{"role": "user", "content": "Entity:\nhouse cat (domesticated feline)\nAnswer with true or false."}]


def test_request_wire_format_cache_and_key_never_stored(server, tmp_path):
    c = client(server, tmp_path / "cache")
    assert c.complete_json(MSG, SCHEMA, "is_animal") == {"answer": True}
    body = server.bodies[0]
    assert body["model"] == "standin-model" and body["messages"] == MSG and body["temperature"] == 0.0
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "is_animal", "strict": True, "schema": SCHEMA}}
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    # a fresh client on the same cache: zero requests
    c2 = client(server, tmp_path / "cache")
    assert c2.complete_json(MSG, SCHEMA, "is_animal") == {"answer": True}
    assert server.request_count() == 1 and c2.stats()["cache_hits"] == 1 and c2.stats()["requests"] == 0
    for f in (tmp_path / "cache").rglob("*"):
        if f.is_file():
            raw = f.read_bytes()
            import gzip
            text = gzip.decompress(raw).decode() if f.suffix == ".gz" else raw.decode(errors="replace")
            assert KEY not in text


def test_retries_on_429_and_5xx_then_clear_errors(server, tmp_path):
    server.add_fault("status", status=429, retry_after="0")
    server.add_fault("status", status=503)
    c = client(server, tmp_path / "c1")
    assert c.complete_json(MSG, SCHEMA, "is_animal") == {"answer": True}
    assert server.request_count() == 3
    server.add_fault("status", times=5, status=500)
    with pytest.raises(LLMError, match="failed after 3 attempt"):
        client(server, tmp_path / "c2").complete_json(MSG, SCHEMA, "is_animal")
    bad = ChatClient(LLMConfig.from_dict(config(server)), tmp_path / "c3", environ={"STANDIN_KEY": "sk-wrong-key-123"})
    with pytest.raises(LLMError, match="HTTP 401"):
        bad.complete_json(MSG, SCHEMA, "is_animal")


def test_invalid_answers_are_asked_again_with_a_seed_and_replayed_from_cache(tmp_path):
    with LLMChatStandin(bad_answers=2) as server:
        c = client(server, tmp_path / "cache", api_key_env=None, max_invalid_answers=2)
        assert c.complete_json(MSG, SCHEMA, "is_animal") == {"answer": True}
        assert [b.get("seed") for b in server.bodies] == [None, 1, 2]
        assert c.stats()["invalid_answers"] == 2
        c2 = client(server, tmp_path / "cache", api_key_env=None, max_invalid_answers=2)
        assert c2.complete_json(MSG, SCHEMA, "is_animal") == {"answer": True}
        assert server.request_count() == 3  # the rerun replays all three from the cache
    with LLMChatStandin(bad_answers=5) as server:
        c = client(server, tmp_path / "c2", api_key_env=None, max_invalid_answers=1)
        with pytest.raises(LLMAnswerError, match="no valid answer"):
            c.complete_json(MSG, SCHEMA, "is_animal")


def test_config_errors_are_clear(server, tmp_path):
    with pytest.raises(LLMError, match="base_url is required"):
        LLMConfig.from_dict({"model": "m"})
    with pytest.raises(LLMError, match="not an http"):
        LLMConfig.from_dict({"base_url": "ftp://x", "model": "m"})
    with pytest.raises(LLMError, match="STANDIN_KEY.*not set"):
        ChatClient(LLMConfig.from_dict(config(server)), tmp_path, environ={})


def run_entities(server, cache):
    llm = kg_llm.KGLLM.from_params(config(server), cache_dir=cache)  # key from the environment
    ents = build_entities(store(), ["Q1"], ["Q729"], "en", 0, ["Q795052"], True, None, [], llm=llm)
    return ents, llm


def test_llm_natural_types_visuality_and_living_cleanup(server, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_KEY", KEY)
    kg = build_entities(store(), ["Q1"], ["Q729"], "en", 0, ["Q795052"], True, None, []).set_index("qid")
    ents, llm = run_entities(server, tmp_path / "cache")
    e = ents.set_index("qid")
    # world: the stand-in picks the LAST of the candidates (ordered by sitelinks), the KG heuristic the first
    assert kg.at["Q4", "natural_type_qid"] == "Q1" and e.at["Q4", "natural_type_qid"] == "Q3"
    assert "Q5" in kg.index and "Q5" not in e.index  # non-visual ("abstract concept") dropped
    assert "Q11" in kg.index and "Q11" not in e.index  # "alligator leather" is not an animal
    # living: the stand-in picks the last listed candidate (fewest sitelinks): mammal, where the KG takes animal
    assert kg.at["Q12", "natural_type_qid"] == "Q729"
    assert e.at["Q12", "natural_type_qid"] == "Q7377" and e.at["Q12", "natural_type_label"] == "mammal"
    names = {b["response_format"]["json_schema"]["name"] for b in server.bodies}
    assert names == {"natural_type_and_visuality", "living_natural_type", "is_animal"}
    living_prompts = [b["messages"][0]["content"] for b in server.bodies
                      if b["response_format"]["json_schema"]["name"] == "living_natural_type"]
    assert any("lion" in p and "Natural type:\nanimal Q729" in p for p in living_prompts)  # Q140 few-shot example
    n = server.request_count()
    assert n > 0 and llm.stats()["fallbacks"] == 0
    again, llm2 = run_entities(server, tmp_path / "cache")
    pd.testing.assert_frame_equal(ents, again)
    assert server.request_count() == n and llm2.stats()["requests"] == 0  # rerun: zero requests


def test_llm_attributes_and_rerun_from_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_KEY", KEY)
    s = store()
    ents = build_entities(s, ["Q1"], ["Q729"], "en", 0, [], True, None, [])
    hints = ka.load_hints(s, "en")
    assert {"brown", "handle"} <= set(hints["vlabel"])

    def run():
        llm = kg_llm.KGLLM.from_params(config(server), cache_dir=tmp_path / "cache", living_limit=1)
        return llm.attributes(ents, hints, max_per_category=10), llm

    attrs, llm = run()
    assert (attrs["source"] == "llm").all() and not (attrs["attribute"] == "none").any()
    ham = attrs[attrs["qid"] == "Q3"]
    assert set(ham["category"]) == set(kg_llm.WORLD_CATEGORIES)
    assert ("Color", "spotted", "spotted hammer") in set(zip(ham["category"], ham["attribute"], ham["query"]))
    prompts = {json.dumps(b["messages"]) for b in server.bodies}
    assert any("color: brown" in p and "has part: handle" in p for p in prompts)  # KG hints in the prompt
    living = attrs[attrs["qid"].isin(ents.loc[ents["is_living"], "qid"])]
    assert living["qid"].nunique() == 1  # living_limit: top 1 living entity per root (by sitelinks)
    assert set(living["category"]) == set(kg_llm.ANIMAL_CATEGORIES)
    n = server.request_count()
    again, llm2 = run()
    pd.testing.assert_frame_equal(attrs, again)
    assert server.request_count() == n and llm2.stats()["requests"] == 0


# ------------------------------------------------------------------------------------ reproducibility of the LLM mode
def test_prompt_document_is_the_code():
    """docs/LLM_PROMPTS.md embeds kg_llm.prompt_reference(): a prompt, example or schema changed in the code without
    the document (or the other way round) fails here."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "LLM_PROMPTS.md").read_text()
    begin, end = "<!-- BEGIN GENERATED: python scripts/lib/kg/kg_llm.py -->\n", "<!-- END GENERATED -->"
    embedded = doc[doc.index(begin) + len(begin):doc.index(end)]
    assert embedded.strip() == kg_llm.prompt_reference().strip(), "run: python scripts/lib/kg/kg_llm.py, paste into the doc"
    for text in (kg_llm.NATURAL_TYPE_INTRO, kg_llm.VISUALITY_INTRO, kg_llm.ATTRIBUTE_INTRO,
                 *(intro for intro, _ in kg_llm.FILTER_PROMPTS.values())):
        assert text in embedded


def test_cache_key_includes_model_and_prompt_version(tmp_path):
    """Same question, other model or other prompt version: a new request; same both: a cache hit, no request.
    Also records the model name the server reports (the snapshot behind an alias)."""
    with LLMChatStandin(served_model="snap-2026-01-01") as s:
        def ask(model, version):
            c = ChatClient(LLMConfig(base_url=f"{s.url}/v1", model=model), tmp_path, prompt_version=version)
            c.complete_json([{"role": "user", "content": "is a lion an animal?"}], kg_llm.BOOL_SCHEMA, "is_animal")
            return c.stats()

        first = ask("m1", "1")
        assert first["requests"] == 1 and first["served_models"] == ["snap-2026-01-01"]
        assert ask("m1", "1")["requests"] == 0  # cached
        assert ask("m1", "2")["requests"] == 1  # new prompt version: asked again
        assert ask("m2", "2")["requests"] == 1  # new model: asked again
    assert kg_llm.KGLLM.from_params({"base_url": "http://127.0.0.1:9/v1", "model": "m"}, tmp_path) \
        .client.prompt_version == kg_llm.PROMPT_VERSION
