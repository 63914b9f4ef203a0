"""The paper's LLM steps (docs/PAPER_NOTES.md §4–§6) over an OpenAI-compatible chat API: natural types, the
visuality filter, the living-things clean-up and attribute generation. Optional: ``natural_types.mode: llm`` /
``attributes.mode: llm``; the default workflow never calls an LLM.

Every call is one JSON-schema-constrained chat request through :class:`llm_client.ChatClient` (disk cache, so a
rerun costs nothing; bounded retries). Constraints replace the authors' regex-constrained decoding: the natural
type is an enum of the candidate QIDs, the visuality class an enum, the clean-up answer a boolean, attributes
at most 10 per category. Whenever the model gives no valid answer the KG result is kept (and counted).

- **World natural type + visuality** (authors: ``world_type_and_classifiy_entities_pregenerate_inputs.py``): the
  candidates are the ancestors 1–3 P279 hops up minus the generic classes, the top ``world_top_k`` (10) by
  sitelinks (the entity itself when there is none); answer ``{natural_type: {explanation, id}, visuality_class:
  {explanation, class}}``. Non-visual world entities are dropped when ``visual_filter`` is on.
- **Living natural type** (``living_generate_natural_types.py``): the candidates are the entity's ancestors that are
  P279* of its living root; few-shot examples Q140 → Q729, Q2092297 → Q5113, Q25326 → Q729 (animals) and Q503 →
  Q3314483, Q34687 → Q756, Q7540 → Q756 (plants), each used when the example and its answer are in the dump;
  default: the root.
- **Living clean-up** (``living_filter_entities.py``): "is this really an animal / a plant or fruit / a fungus?",
  few-shot with the paper's kinds of negatives (products, colour variants, named individuals).
- **Attributes** (``world_generate_attributes.py``, ``living_generate_attributes.py``): 6 world categories, 7 for
  animals, 6 for plants (fungi use the plant set), ≤ 10 per category, each with a search query; the entity's KG
  hints (docs/PAPER_NOTES.md §6 properties) are in the prompt; worked examples for apple, elephant and laptop.
  Living search queries must contain the entity's name or one of its names (others are dropped).
"""

import logging

import numpy as np
import pandas as pd

from lib.kg.kg_natural_types import living_type_candidates, world_type_candidates
from lib.kg.llm_client import ChatClient, LLMAnswerError, LLMConfig

log = logging.getLogger("entitynet.kg_llm")

#: Version of the prompts, few-shot examples, answer schemas and answer parsing below. It is part of every LLM cache
#: key (with the model name), so bump it whenever any of them changes; docs/LLM_PROMPTS.md shows them verbatim
#: (``prompt_reference()``; a test keeps the document equal to the code).
PROMPT_VERSION = "1"

WORLD_CATEGORIES = ["Color", "Pattern and texture", "Parts", "Shape and size", "Environment", "Other"]
ANIMAL_CATEGORIES = ["Color", "Pattern and texture", "Body parts", "Behavior and movement", "Shape and size",
                     "Habitat and environment", "Other"]
PLANT_CATEGORIES = ["Color", "Pattern and texture", "Plant parts", "Shape and size", "Habitat and environment",
                    "Other"]
KIND_OF_ROOT = {"Q729": "animal", "Q756": "plant", "Q764": "fungus"}
HINT_NAMES = {
    "P462": "color", "P1672": "this taxon is source of", "P1552": "has characteristic", "P1535": "used by",
    "P4733": "produced sound", "P1034": "main food source", "P3095": "practiced by", "P361": "part of",
    "P527": "has part", "P1542": "has effect", "P1963": "properties for this type", "P136": "genre",
    "P793": "significant event", "P1056": "product or material produced", "P186": "made from material",
    "P2079": "fabrication method", "P137": "operator", "P2283": "uses", "P366": "has use", "P5869": "model item",
}
LIVING_TYPE_EXAMPLES = {"Q729": [("Q140", "Q729"), ("Q2092297", "Q5113"), ("Q25326", "Q729")],
                        "Q756": [("Q503", "Q3314483"), ("Q34687", "Q756"), ("Q7540", "Q756")]}
JUNK = {"none", "not applicable", "n/a", "unknown", "note", "notes", "-"}

NATURAL_TYPE_INTRO = (
    "The natural type of an entity is the superclass of the entity that a human would most likely associate "
    "with it. The natural type is neither too general, nor too specific, and can be used to disambiguate the "
    "entity from other entities with the same name.")
VISUALITY_INTRO = (
    "The visuality class of an entity is either 'visual' or 'non-visual'. Abstract concepts like 'justice' or "
    "non-physical entities are typically non-visual; concrete physical entities like 'cat' are visual.")
FILTER_PROMPTS = {
    "animal": ("Given the name and description of an entity, decide whether the entity is an animal. Species, "
               "breeds and similar entities are animals. Specific named animals like famous horses are not. "
               "Products like leather, colour variants, and other entities only loosely related to animals are not.",
               [("house cat (domesticated feline), also known as \"cat\", \"domestic cat\"", True),
                ("black tiger (color variant of tiger)", False),
                ("alligator leather (leather from alligator skin)", False),
                ("Pomeranian Show Crest Highflyer (pigeon breed)", True),
                ("Tuna (house cat and internet celebrity)", False)]),
    "plant": ("Given the name and description of an entity, decide whether the entity is a plant or a fruit. "
              "Species, varieties and similar entities are plants. Specific named plants like famous trees are "
              "not. Products like oils, and other entities only loosely related to plants, are not.",
              [("banana (elongated, edible fruit of plants in the genus Musa), also known as \"banana fruit\"", True),
               ("cottonseed oil (cooking oil extracted from the seeds of cotton plants)", False),
               ("Quercus ilex (oak species native to the Mediterranean), also known as \"holm oak\"", True),
               ("bouquet garni (bundle of herbs used in cooking)", False),
               ("Moon Tree (tree grown from seeds flown around the Moon on Apollo 14)", False)]),
    "fungus": ("Given the name and description of an entity, decide whether the entity is a fungus (a mushroom, "
               "mould, yeast or other fungal species or group). Specific named individuals are not. Products like "
               "truffle oil or drugs made from fungi, and entities only loosely related to fungi, are not.",
               [("fly agaric (species of fungus in the genus Amanita)", True),
                ("truffle oil (cooking oil flavoured with truffles)", False),
                ("baker's yeast (yeast used in baking), also known as \"Saccharomyces cerevisiae\"", True),
                ("penicillin (group of antibiotics)", False)]),
}
ATTRIBUTE_INTRO = (
    "For a given object, generate visual attributes for different attribute categories. A visual attribute is "
    "a characteristic or additional context that can be observed in images of the object. You get the object's "
    "name and description, aliases, and attribute hints from a knowledge graph if available; the hints may be "
    "incomplete or unsuitable and should only serve as additional information. For each category give at most "
    "ten attributes, as many as are diverse and fitting (none is fine). For each attribute also give a search "
    "query that finds images of the object where the attribute is visible.")
ATTRIBUTE_EXAMPLES = [
    ("apple, also known as \"apple fruit\": fruit of the apple tree", "", {
        "Color": [("red", "red apple"), ("green", "green apple"), ("yellow", "yellow apple")],
        "Pattern and texture": [("shiny", "shiny apple"), ("wrinkled", "wrinkled apple")],
        "Parts": [("core", "apple core"), ("seeds", "apple seeds"), ("stem", "apple stem")],
        "Shape and size": [("small", "small apple"), ("round", "round apple")],
        "Environment": [("orchard", "apple in an orchard"), ("tree", "apple on a tree")],
        "Other": [("sliced", "sliced apple"), ("rotten", "rotten apple"), ("peeled", "peeled apple")]}),
    ("elephant: large terrestrial mammal with a trunk from Africa and Asia", "color: gray", {
        "Color": [("gray", "gray elephant"), ("brown", "brown elephant covered in mud")],
        "Pattern and texture": [("wrinkled", "elephant with wrinkled skin")],
        "Parts": [("tusks", "elephant tusks"), ("trunk", "elephant trunk"), ("ears", "elephant ears")],
        "Shape and size": [("small", "small elephant")],
        "Environment": [("savanna", "elephant in the savanna"), ("herd", "herd of elephants")],
        "Other": [("walking", "walking elephant"), ("bathing", "elephant bathing"), ("baby", "baby elephant")]}),
    ("laptop, also known as \"notebook computer\": portable personal computer", "has part: keyboard, screen", {
        "Color": [("black", "black laptop"), ("silver", "silver laptop")],
        "Pattern and texture": [("stickers", "laptop with stickers")],
        "Parts": [("keyboard", "laptop keyboard"), ("screen", "laptop screen"), ("hinge", "laptop hinge")],
        "Shape and size": [("thin", "thin laptop")],
        "Environment": [("desk", "laptop on a desk"), ("lap", "laptop on a lap")],
        "Other": [("open", "open laptop"), ("closed", "closed laptop"), ("gaming", "gaming laptop")]}),
]


def describe(label: str, description, names: list[str] | None = None, qid: str | None = None) -> str:
    """``label, also known as "a", "b" (QID): description`` as in the authors' prompts."""
    s = str(label)
    names = [n for n in (names or []) if n and n != label]
    if names:
        s += ", also known as " + ", ".join(f'"{n}"' for n in names[:5])
    if qid:
        s += f" ({qid})"
    if isinstance(description, str) and description:
        s += f": {description[:200]}"
    return s


def category_key(category: str) -> str:
    return category.lower().replace(" ", "_")


def attribute_schema(categories: list[str], max_per_category: int) -> dict:
    item = {"type": "object", "additionalProperties": False, "required": ["attribute", "search_query"],
            "properties": {"attribute": {"type": "string"}, "search_query": {"type": "string"}}}
    props = {category_key(c): {"type": "array", "items": item, "maxItems": int(max_per_category)} for c in categories}
    return {"type": "object", "additionalProperties": False, "required": list(props), "properties": props}


def world_type_schema(ids: list[str]) -> dict:
    return {"type": "object", "additionalProperties": False, "required": ["natural_type", "visuality_class"],
            "properties": {
                "natural_type": {"type": "object", "additionalProperties": False, "required": ["explanation", "id"],
                                 "properties": {"explanation": {"type": "string"}, "id": {"enum": ids}}},
                "visuality_class": {"type": "object", "additionalProperties": False,
                                    "required": ["explanation", "class"],
                                    "properties": {"explanation": {"type": "string"},
                                                   "class": {"enum": ["visual", "non-visual"]}}}}}


def living_type_schema(ids: list[str]) -> dict:
    return {"type": "object", "additionalProperties": False, "required": ["id"], "properties": {"id": {"enum": ids}}}


BOOL_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["answer"],
               "properties": {"answer": {"type": "boolean"}}}


class KGLLM:
    """The LLM modes of the KG stage (see module docstring)."""

    def __init__(self, client: ChatClient, world_top_k: int = 10, visual_filter: bool = True,
                 living_filter: bool = True, living_limit: int | None = 500):
        self.client = client
        self.world_top_k = int(world_top_k)
        self.visual_filter = bool(visual_filter)
        self.living_filter = bool(living_filter)
        self.living_limit = living_limit
        self.counts = {"fallbacks": 0, "dropped_non_visual": 0, "dropped_not_living": 0}
        self.names: dict[str, list[str]] = {}

    @classmethod
    def from_params(cls, llm: dict, cache_dir, lang: str | None = None, **overrides) -> "KGLLM":
        llm = dict(llm or {})
        client = ChatClient(LLMConfig.from_dict(llm, "datasets.<name>.llm"), cache_dir, prompt_version=PROMPT_VERSION)
        kw = {k: llm[k] for k in ("world_top_k", "visual_filter", "living_filter") if llm.get(k) is not None}
        kw.update(overrides)
        return cls(client, **kw)

    def stats(self) -> dict:
        return {**self.client.stats(), **self.counts}

    def _ask(self, jobs: list[tuple]) -> list:
        answers = self.client.map_json(jobs)
        bad = sum(isinstance(a, LLMAnswerError) for a in answers)
        self.counts["fallbacks"] += bad
        return [None if isinstance(a, LLMAnswerError) else a for a in answers]

    def set_names(self, names: dict[str, pd.DataFrame]) -> None:
        """Aliases / common / taxon names per QID (KGTables.names) for the prompts."""
        frames = [df for df in names.values() if len(df)]
        if frames:
            all_names = pd.concat(frames, ignore_index=True).dropna().drop_duplicates()
            self.names = all_names.groupby("s")["v"].agg(lambda s: sorted(s)).to_dict()

    # -- living clean-up ------------------------------------------------------------------------------------------
    def filter_living(self, living: pd.DataFrame) -> pd.DataFrame:
        """Drop rows the model says are not animals / plants or fruits / fungi (products, colour variants, named
        individuals). Rows of other roots, and rows without a valid answer, are kept."""
        if not self.living_filter or living.empty:
            return living
        jobs, idx = [], []
        for i, row in enumerate(living.itertuples(index=False)):
            kind = KIND_OF_ROOT.get(row.root)
            if kind is None:
                continue
            intro, examples = FILTER_PROMPTS[kind]
            shots = "\n\n".join(f"Entity:\n{e}\nAnswer: {str(a).lower()}" for e, a in examples)
            ent = describe(row.label, row.description, self.names.get(row.qid))
            prompt = f"{intro}\n\n{shots}\n\nEntity:\n{ent}\nAnswer with true or false."
            jobs.append(([{"role": "user", "content": prompt}], BOOL_SCHEMA, f"is_{kind}"))
            idx.append(i)
        keep = np.ones(len(living), dtype=bool)
        for i, ans in zip(idx, self._ask(jobs)):
            if ans is not None and ans["answer"] is False:
                keep[i] = False
        self.counts["dropped_not_living"] += int((~keep).sum())
        log.info("LLM living clean-up: dropped %d of %d", int((~keep).sum()), len(living))
        return living[keep].reset_index(drop=True)

    # -- natural types -------------------------------------------------------------------------------------------
    def natural_types(self, ents: pd.DataFrame, g, generic: set[str]) -> pd.DataFrame:
        """Replace ``natural_type_qid`` by the model's choice; drop non-visual world entities (visual_filter)."""
        ents = ents.copy()
        info = g.info
        living = ents["is_living"].to_numpy(dtype=bool)
        drop = np.zeros(len(ents), dtype=bool)
        # world
        wp = np.flatnonzero(~living)
        if len(wp):
            src, anc, hops = world_type_candidates(g, ents["qid"].to_numpy(dtype=object)[wp], generic)
            ok = g.has_label[anc]
            src, anc, hops = src[ok], anc[ok], hops[ok]
            order = np.lexsort((g.qnum[anc], hops, -g.links[anc], src))
            cands = pd.DataFrame({"src": src[order], "anc": g.nodes[anc[order]]})
            cands = cands.groupby("src", sort=False).head(self.world_top_k)
            by_src = cands.groupby("src")["anc"].agg(list).to_dict()
            jobs = []
            for k, pos in enumerate(wp):
                row = ents.iloc[pos]
                ids = by_src.get(k) or [row["qid"]]
                jobs.append(self._world_job(row, ids, info))
            for pos, ans in zip(wp, self._ask(jobs)):
                if ans is None:
                    continue
                chosen = ans["natural_type"]["id"]
                ents.iat[pos, ents.columns.get_loc("natural_type_qid")] = (
                    chosen if chosen != ents["qid"].iat[pos] else ents["natural_type_qid"].iat[pos])
                if self.visual_filter and ans["visuality_class"]["class"] == "non-visual":
                    drop[pos] = True
        # living
        lp = np.flatnonzero(living)
        if len(lp):
            qids = ents["qid"].to_numpy(dtype=object)[lp]
            roots = ents["living_root"].to_numpy(dtype=object)[lp]
            src, anc, hops = living_type_candidates(g, qids, roots, generic)
            ok = g.has_label[anc]
            src, anc = src[ok], anc[ok]
            order = np.lexsort((g.qnum[anc], -g.links[anc], src))
            cands = pd.DataFrame({"src": src[order], "anc": g.nodes[anc[order]]})
            by_src = cands.groupby("src")["anc"].agg(list).to_dict()
            jobs, where = [], []
            for k, pos in enumerate(lp):
                ids = by_src.get(k, [])
                if roots[k] not in ids and roots[k] in info.index and pd.notna(info.at[roots[k], "label"]):
                    ids = ids + [roots[k]]
                if len(ids) <= 1:
                    continue  # nothing to choose
                jobs.append(self._living_job(ents.iloc[pos], ids, roots[k], g, generic))
                where.append(pos)
            for pos, ans in zip(where, self._ask(jobs)):
                if ans is not None:
                    ents.iat[pos, ents.columns.get_loc("natural_type_qid")] = ans["id"]
        self.counts["dropped_non_visual"] += int(drop.sum())
        log.info("LLM natural types: %d world, %d living asked; %d non-visual dropped", len(wp), len(lp),
                 int(drop.sum()))
        return ents[~drop].reset_index(drop=True)

    def _entity_text(self, row, info) -> str:
        return describe(row["label"], row["description"], self.names.get(row["qid"]))

    def _world_job(self, row, ids: list[str], info) -> tuple:
        lines = [describe(info.at[q, "label"] if q in info.index else q,
                          info.at[q, "description"] if q in info.index else None, qid=q) for q in ids]
        prompt = (f"{NATURAL_TYPE_INTRO}\n{VISUALITY_INTRO}\n\nEntity information:\n{self._entity_text(row, info)}"
                  f"\n\nList of possible natural types:\n" + "\n".join(lines) +
                  "\n\nGive a short explanation (at most 20 words) and the id of the natural type, and the "
                  "visuality class with a short explanation.")
        return [{"role": "user", "content": prompt}], world_type_schema(list(ids)), "natural_type_and_visuality"

    def _living_job(self, row, ids: list[str], root: str, g, generic) -> tuple:
        info = g.info
        shots = []
        for ex, answer in LIVING_TYPE_EXAMPLES.get(root, []):
            if ex not in info.index or answer not in info.index or pd.isna(info.at[ex, "label"]):
                continue
            _, a, _ = living_type_candidates(g, [ex], [root], generic)
            a = a[g.has_label[a]]
            a = a[np.lexsort((g.qnum[a], -g.links[a]))]
            ex_ids = list(dict.fromkeys(list(g.nodes[a]) + [root]))
            if answer not in ex_ids:
                continue
            shots.append(self._living_block(info.at[ex, "label"], info.at[ex, "description"], ex_ids, info)
                         + f"{info.at[answer, 'label']} {answer}")
        block = self._living_block(row["label"], row["description"], ids, info, self.names.get(row["qid"]))
        prompt = NATURAL_TYPE_INTRO + "\n\n" + "".join(s + "\n\n" for s in shots) + block + \
            "(answer with the id of one listed type)"
        return [{"role": "user", "content": prompt}], living_type_schema(list(ids)), "living_natural_type"

    @staticmethod
    def _living_block(label, description, ids, info, names=None) -> str:
        types = "\n".join(describe(info.at[q, "label"], info.at[q, "description"], qid=q) for q in ids)
        return f"Entity:\n{describe(label, description, names)}\n\nList of types:\n{types}\n\nNatural type:\n"

    # -- attributes ----------------------------------------------------------------------------------------------
    def attributes(self, entities: pd.DataFrame, hints: pd.DataFrame, max_per_category: int) -> pd.DataFrame:
        """LLM attributes (qid, category, attribute, query, source='llm') for the world entities and the top
        ``living_limit`` living entities per living root (by sitelinks; the paper's ATTRIBUTE_LIMIT)."""
        ents = entities[entities["source"] != "wordnet"]
        living = ents[ents["is_living"]]
        if self.living_limit:
            root = living["roots"].map(lambda r: r[0] if len(r) else None)
            living = (living.assign(_root=root)
                      .sort_values(["sitelinks", "qid"], ascending=[False, True], na_position="last", kind="stable")
                      .groupby("_root", sort=False).head(int(self.living_limit)).drop(columns="_root"))
        chosen = pd.concat([ents[~ents["is_living"]], living])
        hint_text = {}
        if len(hints):
            h = hints.assign(pid=hints["p"].str.rsplit("/", n=1).str[-1])
            h = h[h["ent"].isin(chosen["qid"])]
            for qid, g in h.groupby("ent"):
                hint_text[qid] = "\n".join(f"{HINT_NAMES.get(pid, pid)}: {', '.join(sorted(set(v)))}"
                                           for pid, v in g.groupby("pid")["vlabel"])
        jobs, kinds = [], []
        for row in chosen.itertuples(index=False):
            kind = KIND_OF_ROOT.get(row.roots[0]) if row.is_living and len(row.roots) else None
            cats = ANIMAL_CATEGORIES if kind == "animal" else PLANT_CATEGORIES if kind else WORLD_CATEGORIES
            names = [n for n in [*row.aliases, *row.common_names, *row.taxon_names] if n]
            jobs.append(self._attribute_job(row, names, hint_text.get(row.qid, "None"), cats, max_per_category))
            kinds.append((row.qid, cats, bool(row.is_living), [row.label, *names]))
        rows = []
        for (qid, cats, is_living, names), ans in zip(kinds, self._ask(jobs)):
            if ans is None:
                continue
            lowered = [str(n).lower() for n in names if n]
            for cat in cats:
                for item in ans.get(category_key(cat), [])[:max_per_category]:
                    attr, query = item["attribute"].strip(), item["search_query"].strip()
                    if not attr or not query or attr.lower() in JUNK or len(attr) > 100 or len(query) > 100:
                        continue
                    if is_living and not any(n in query.lower() for n in lowered):
                        continue  # living queries must name the entity (authors' rule)
                    rows.append({"qid": qid, "category": cat, "attribute": attr.lower(), "query": query.lower(),
                                 "source": "llm"})
        out = pd.DataFrame(rows, columns=["qid", "category", "attribute", "query", "source"])
        out = out.drop_duplicates(["qid", "attribute"]).drop_duplicates(["qid", "query"]).reset_index(drop=True)
        log.info("LLM attributes: %d for %d entities", len(out), out["qid"].nunique())
        return out

    def _attribute_job(self, row, names, hints: str, cats: list[str], max_per_category: int) -> tuple:
        def block(obj, hint, answer=None):
            s = f"Object:\n{obj}\n\nAttribute hints:\n{hint or 'None'}\n"
            if answer is not None:
                s += "\nAttributes:\n" + "\n".join(
                    f"{i + 1}. {c}\n" + "".join(f"{a}: {q}\n" for a, q in answer.get(c, []))
                    for i, c in enumerate(WORLD_CATEGORIES))
            return s

        shots = "\n\n".join(f"Example {i + 1}:\n" + block(o, h, a) for i, (o, h, a) in enumerate(ATTRIBUTE_EXAMPLES))
        cat_list = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(cats))
        extra = ("\nEvery search query must contain the object's name or one of its other names."
                 if row.is_living else "")
        prompt = (f"{ATTRIBUTE_INTRO}{extra}\n\nAttribute categories:\n{cat_list}\n\n{shots}\n\n"
                  + block(describe(row.label, row.description, names), hints))
        return ([{"role": "user", "content": prompt}], attribute_schema(cats, max_per_category),
                "attributes_" + ("living" if row.is_living else "world"))


# ---------------------------------------------------------------------------------------------- prompt reference
class _Recorder:
    """A stand-in client that records the jobs it is given and answers none (for :func:`prompt_reference`)."""

    def __init__(self):
        self.jobs: list[tuple] = []

    def map_json(self, jobs):
        self.jobs.extend(jobs)
        return [LLMAnswerError("recorded only")] * len(jobs)


def prompt_reference() -> str:
    """Markdown with every prompt the LLM modes send, for one example entity each, and its answer schema.

    Built by the same methods that build the real requests, so docs/LLM_PROMPTS.md (which embeds this text) shows
    exactly what a model is asked. The living natural-type prompt is shown without its few-shot blocks, which are
    added only when the example entities and their answers are in the KG dump (module docstring).
    """
    import json

    rec = _Recorder()
    llm = KGLLM(rec)
    info = pd.DataFrame({"label": ["hand tool", "tool"], "description": ["tool used by hand", None]},
                        index=["Q2", "Q1"])
    world = {"qid": "Q3", "label": "hammer", "description": "tool for striking"}
    jobs = [("World natural type and visuality", llm._world_job(world, ["Q2", "Q1"], info))]
    llm.filter_living(pd.DataFrame([{"qid": "Q140", "label": "lion", "description": "species of big cat",
                                     "root": root} for root in KIND_OF_ROOT]))
    jobs += [(f"Living clean-up ({KIND_OF_ROOT[r]})", j) for r, j in zip(KIND_OF_ROOT, rec.jobs)]
    info2 = pd.DataFrame({"label": ["big cat", "mammal", "animal"], "description": [None, "class of animals", None]},
                         index=["Q1075183", "Q7377", "Q729"])
    block = llm._living_block("lion", "species of big cat", ["Q1075183", "Q7377", "Q729"], info2, ["Panthera leo"])
    jobs.append(("Living natural type (few-shot blocks omitted)",
                 ([{"role": "user", "content": NATURAL_TYPE_INTRO + "\n\n" + block +
                    "(answer with the id of one listed type)"}], living_type_schema(["Q1075183", "Q7377", "Q729"]),
                  "living_natural_type")))
    Row = type("Row", (), {})
    for label, living, desc in (("hammer", False, "tool for striking"), ("lion", True, "species of big cat")):
        row = Row()
        row.qid, row.label, row.description, row.is_living = "Q0", label, desc, living
        cats = ANIMAL_CATEGORIES if living else WORLD_CATEGORIES
        jobs.append((f"Attributes ({'animal' if living else 'world'})",
                     llm._attribute_job(row, [], "color: brown" if not living else "None", cats, 10)))
    out = [f"Prompt version: `{PROMPT_VERSION}`. Plant and fungus attributes use the categories "
           f"{', '.join(PLANT_CATEGORIES)}.\n"]
    for title, (messages, schema, name) in jobs:
        out.append(f"### {title}\n\nSchema name `{name}`; prompt (one user message):\n\n```text\n"
                   f"{messages[0]['content']}\n```\n\nAnswer schema:\n\n```json\n"
                   f"{json.dumps(schema, sort_keys=True)}\n```\n")
    return "\n".join(out)


if __name__ == "__main__":  # print the prompt reference (docs/LLM_PROMPTS.md embeds it)
    print(prompt_reference())
