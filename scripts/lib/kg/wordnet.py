"""WordNet living things: the paper's ``wordnet-noun-living`` entities (docs/PAPER_NOTES.md §4.2), read offline
(rule ``kg_wordnet``).

Source: a local WordNet 3.0 database directory (``datasets.<name>.wordnet.dir``; Debian's ``wordnet-base``
installs one at ``/usr/share/wordnet``), read with nltk's ``WordNetCorpusReader`` — no download.

Selection, as in the authors' ``wordnet_livingthings_create_queries.py`` (their node typing from
``datasets/wordnet/nouns.py``):

1. The subtree below ``living_thing.n.01`` over hyponyms and instance hyponyms, not descending into the
   blacklist (:data:`BLACKLIST`: person, parent, individual, mutant, microorganism, cell, wildlife, biont, world,
   monster, abortus, cartoon / imaginary characters such as Donald Duck, Mickey Mouse, Easter Bunny, Yggdrasil …;
   the full list is the authors', which names a few more synsets than the paper's summary).
2. Drop the instances whose single parent is ``thoroughbred.n.02`` (named race horses). A synset is an instance
   when it has an instance hypernym (a synset with both kinds of hypernyms counts as an instance, as in the
   authors' code); its single parent is the hypernym of smallest ``min_depth``, instance hypernyms last.
3. Drop internal nodes (synsets with any hyponym or instance hyponym in WordNet).
4. Every lemma of every remaining leaf becomes a name; lemmas equal up to case share the casing seen first
   (synsets in name order), so "balm of Gilead" / "balm of gilead" become one query.

On WordNet 3.0 the subtree without the thoroughbred instances has 8,861 synsets (the authors' count); 6,983 leaves
remain, with 16,704 distinct lemmas.

Output: one row per leaf synset in the entities schema (``docs/CONTRACTS.md``): ``qid = wordnet:<synset name>`` (the authors' key),
``label`` its first lemma, ``aliases`` its other lemmas, ``description`` the gloss, ``is_living`` true,
``roots = [wordnet:living_thing.n.01]``, ``source = wordnet`` and a natural type from WordNet itself: the first of
animal.n.01, plant.n.02, fungus.n.01, organism.n.01 the synset lies under (any hypernym path). The query stage
turns these rows into ``wordnet-noun-living`` queries. One row per synset keeps ``qid`` unique (the text-mix index
needs that); a lemma shared by several synsets (homonyms) is one query carrying all their ids there.

Note: Debian's package lacks the ``lexnames`` file nltk's reader insists on (it only maps lexicographer file
numbers to names, documented in lexnames(5WN)), and nltk only opens files inside its allowed data roots; the
reader therefore works on a private copy of the database files plus a generated ``lexnames``.
"""

import logging
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

log = logging.getLogger("entitynet.kg_wordnet")

ROOT = "living_thing.n.01"
#: the authors' blacklist (their file lists these synsets; docs/PAPER_NOTES.md §4.2 summarises it)
BLACKLIST = frozenset({
    "person.n.01", "parent.n.02", "individual.n.02", "mutant.n.01", "stander.n.01", "utterer.n.01",
    "microorganism.n.01", "cell.n.02", "wildlife.n.01", "biont.n.01", "dihybrid.n.01", "world.n.08",
    "monster.n.05", "abortus.n.01", "church_mouse.n.01", "donald_duck.n.01", "easter_bunny.n.01", "lucy.n.01",
    "mickey_mouse.n.01", "mighty_mouse.n.01", "minnie_mouse.n.01", "yggdrasil.n.01",
})
DROP_INSTANCES_OF = ("thoroughbred.n.02",)
#: natural types, first match wins (text_candidates treats wordnet:animal.n.01 / wordnet:plant.n.02 like Q729 / Q756)
NATURAL_TYPES = ("animal.n.01", "plant.n.02", "fungus.n.01", "organism.n.01")
#: lexnames(5WN) of WordNet 3.0: file number -> (name, syntactic category)
LEXNAMES = [
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1), ("noun.animal", 1),
    ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1), ("noun.cognition", 1),
    ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1),
    ("noun.location", 1), ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1),
    ("noun.plant", 1), ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1),
    ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1), ("verb.body", 2),
    ("verb.change", 2), ("verb.cognition", 2), ("verb.communication", 2), ("verb.competition", 2),
    ("verb.consumption", 2), ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2),
    ("verb.perception", 2), ("verb.possession", 2), ("verb.social", 2), ("verb.stative", 2), ("verb.weather", 2),
    ("adj.ppl", 3),
]
REQUIRED_FILES = ("data.noun", "index.noun", "data.adj", "index.adj", "data.verb", "index.verb", "data.adv",
                  "index.adv", "noun.exc")


def check_wordnet_dir(db_dir: str | Path) -> Path:
    """The WordNet database directory, or a clear error naming what is missing."""
    d = Path(db_dir)
    if not d.is_dir():
        raise FileNotFoundError(
            f"WordNet directory {d} does not exist: install a WordNet 3.0 database (Debian/Ubuntu: "
            f"apt-get install wordnet-base, which fills /usr/share/wordnet) or set datasets.<name>.wordnet.dir: null")
    missing = [f for f in REQUIRED_FILES if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"WordNet directory {d} lacks {', '.join(missing)}: not a WordNet 3.0 database "
                                "directory (expected data.noun, index.noun, … as in Debian's wordnet-base)")
    return d


@contextmanager
def wordnet_reader(db_dir: str | Path):
    """An nltk ``WordNetCorpusReader`` over a private copy of ``db_dir`` (see the module note); no network."""
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class LocalWordNet(WordNetCorpusReader):
        """nltk maps other WordNet versions to 3.0 through its downloadable 'wordnet' corpus; this database is
        read as is, so no mapping is needed (or possible offline)."""

        def map_wn(self, version="wordnet"):
            return None

    src = check_wordnet_dir(db_dir)
    work = Path(tempfile.mkdtemp(prefix="wordnet-"))
    try:
        for f in src.iterdir():
            if f.is_file():
                shutil.copyfile(f, work / f.name)
        if not (work / "lexnames").is_file():
            (work / "lexnames").write_text("".join(f"{i:02d}\t{n}\t{c}\n" for i, (n, c) in enumerate(LEXNAMES)))
        if str(work) not in nltk.data.path:
            nltk.data.path.append(str(work))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "multilingual functions are not available"
            reader = LocalWordNet(str(work), None)
        version = reader.get_version()
        if version != "3.0":
            log.warning("WordNet at %s is version %s; the paper's counts are for 3.0", src, version)
        yield reader
    finally:
        if str(work) in nltk.data.path:
            nltk.data.path.remove(str(work))
        shutil.rmtree(work, ignore_errors=True)


def _children(s) -> list:
    return sorted(s.hyponyms() + s.instance_hyponyms(), key=lambda x: x.name())


def _single_parent(s):
    """The authors' single parent: among all hypernyms (type ones first), the one of smallest min_depth."""
    parents = s.hypernyms() + s.instance_hypernyms()
    if not parents:
        return None
    best = min(p.min_depth() for p in parents)
    return next(p for p in parents if p.min_depth() == best)


def living_leaves(wn, root: str = ROOT, blacklist=BLACKLIST, drop_instances_of=DROP_INSTANCES_OF) -> tuple[list, dict]:
    """Leaf synsets of the living subtree (steps 1–3 of the module docstring), sorted by name, and counts."""
    start = wn.synset(root)
    seen: dict[str, object] = {}
    stack = [start]
    while stack:  # depth-first over hyponyms + instance hyponyms, never entering a blacklisted synset
        s = stack.pop()
        if s.name() in blacklist or s.name() in seen:
            continue
        seen[s.name()] = s
        stack.extend(_children(s))
    dropped = {n for n, s in seen.items() if s.instance_hypernyms() and not _children(s)
               and (p := _single_parent(s)) is not None and p.name() in drop_instances_of}
    tree = {n: s for n, s in seen.items() if n not in dropped}
    leaves = [tree[n] for n in sorted(tree) if not _children(tree[n])]
    stats = {"subtree": len(seen), "dropped_instances": len(dropped), "subtree_kept": len(tree),
             "leaves": len(leaves)}
    return leaves, stats


def natural_type_of(synset, types=NATURAL_TYPES) -> str | None:
    """The first of ``types`` among the synset's hypernym closure (type and instance hypernyms)."""
    ancestors = {a.name() for a in synset.closure(lambda x: x.hypernyms() + x.instance_hypernyms())}
    return next((t for t in types if t in ancestors), None)


def wordnet_entities(wn, max_synsets: int | None = None, root: str = ROOT) -> tuple[pd.DataFrame, dict]:
    """The entities rows of the living leaves (``max_synsets``: an evenly spaced subset, for small demos)."""
    leaves, stats = living_leaves(wn, root)
    casing: dict[str, str] = {}  # lower-cased lemma -> first casing seen (authors' merge of mixed-case duplicates)
    rows = []
    for s in leaves:
        names = []
        for lemma in s.lemma_names():
            text = lemma.replace("_", " ")
            text = casing.setdefault(text.lower(), text)
            if text not in names:
                names.append(text)
        nt = natural_type_of(s)
        rows.append({"qid": f"wordnet:{s.name()}", "label": names[0], "description": s.definition() or None,
                     "aliases": names[1:], "common_names": [], "taxon_names": [], "sitelinks": None,
                     "roots": [f"wordnet:{root}"], "is_living": True, "natural_type_qid": f"wordnet:{nt}" if nt else None,
                     "natural_type_label": wn.synset(nt).lemma_names()[0].replace("_", " ") if nt else None,
                     "natural_type_description": wn.synset(nt).definition() if nt else None, "image": None,
                     "source": "wordnet"})
    stats["lemmas"] = len({n.lower() for r in rows for n in [r["label"], *r["aliases"]]})
    df = pd.DataFrame(rows)
    if max_synsets is not None and len(df) > max_synsets:
        step = len(df) / max_synsets
        df = df.iloc[[int(i * step) for i in range(max_synsets)]].reset_index(drop=True)
    df["sitelinks"] = df["sitelinks"].astype("Int64")
    return df, stats

