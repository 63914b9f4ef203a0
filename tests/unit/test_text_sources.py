"""The alt-text ablation is protected by a test that can fail (issue 14, item 5).

Training counts the source of every text the text mix draws (``alt``, the KG text's source list, ``none``) in the
dataloader workers, snapshots the counts per epoch in the training process, and ``lib.train.launch`` writes them to
``train_summary.json`` as ``text_sources``. The first tests check the parts on their own: the sampler's per-text
sources (the ``sources`` column of ``text_candidates.parquet``), the shared-memory counts in real DataLoader workers
(no worker, fork, spawn), the per-epoch snapshots and their merge with an earlier attempt's file, and the summary
over ranks. The last ones train the ``tiny`` recipe (config/config.yaml) through ``launch.run`` at the ablation's
three alt-text chances (``tiny-alt0``, ``tiny``, ``tiny-alt100``) on synthetic shards whose samples all have alt
texts and KG candidates, and check the drawn alt share; then a kill in the second epoch and a ``--resume latest``.

Mutation check: pinning the alt-text chance to 1.0 inside training (``text_sampler.load_sampler(self.candidates_path,
1.0, self.seed)`` in ``sample_stages.MixedText._init``) makes ``test_ablation_alt_share`` fail for ``tiny-alt0``
(alt share 1.0, no KG text drawn) and ``tiny`` (128 of 128 draws alt text, outside the band below).
"""
import io
import json
import math
import shutil
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from scipy.stats import binom

import text_candidates
from lib.train import launch
from lib.train import text_mix as tm
from lib.train import text_sampler
from lib.train import text_sources as ts
from lib.common import workflow_config as wc

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())

# The runs: samples_seen 128 over 2 epochs at the recipe's batch size 16 = 4 steps per epoch, 128 texts drawn.
SAMPLES_SEEN, EPOCHS = 128, 2
ABLATION = {"tiny-alt0": 0.0, "tiny": 0.5, "tiny-alt100": 1.0}
ALPHA = 1e-4  # false-alarm budget of one run of this file


def binomial_band(n: int, p: float, alpha: float) -> tuple[int, int, float]:
    """The narrowest band ``[n p - k, n p + k]`` (``n p`` an integer) whose two-sided binomial tail is below
    ``alpha``: returns ``(lo, hi, P(X outside))``."""
    centre = n * p
    assert centre == int(centre)
    for k in range(n + 1):
        lo, hi = int(centre) - k, int(centre) + k
        tail = binom.cdf(lo - 1, n, p) + binom.sf(hi, n, p)
        if tail < alpha:
            return lo, hi, float(tail)
    raise AssertionError("no band")


# ---------------------------------------------------------------------------------------------------------------
# synthetic KG and shards


def ent(qid, label, description=None, aliases=(), nt_qid=None, nt_label=None, nt_description=None):
    return dict(qid=qid, label=label, description=description, aliases=list(aliases), common_names=[],
                taxon_names=[], sitelinks=10, roots=[], is_living=False, natural_type_qid=nt_qid,
                natural_type_label=nt_label, natural_type_description=nt_description, image=None, source="wikidata")


def qry(query_id, text, kind, qids, attribute=None, natural_type=None):
    return dict(query_id=query_id, text=text, kind=kind, qids=list(qids), attribute=attribute,
                natural_type=natural_type, is_living=False, or_terms="", exclude_terms="", image_type="photo",
                count=1)


ENTITIES = pd.DataFrame([
    ent("Q1", "red fox", "species of fox", aliases=["Vulpes vulpes"], nt_qid="Q729", nt_label="animal",
        nt_description="multicellular organism"),
    ent("Q729", "animal", "multicellular organism", aliases=["Animalia"]),
    ent("Q2", "teapot", "vessel for tea", aliases=["tea pot"], nt_qid="Q987", nt_label="kitchenware",
        nt_description="tools used in the kitchen"),
])
QUERIES = pd.DataFrame([
    qry("qa", "red fox", "wd-noun-living", ["Q1"], natural_type="animal"),
    qry("qb", "teapot", "wd-noun-world", ["Q2"], natural_type="kitchenware"),
    qry("qc", "white teapot", "wd-attrnoun-world", ["Q2"], attribute="white", natural_type="kitchenware"),
])
QUERY_IDS = ["qa", "qb", "qc"]


def candidates_frame() -> pd.DataFrame:
    return tm.build_text_candidates(ENTITIES, None, QUERIES, kg_text_queries="all", with_sources=True)


def write_shards(root: Path, n: int = 32, seed: int = 0) -> Path:
    """``root/train/00000.tar`` + ``sizes.json``: ``n`` samples, each with two alt texts and all three query ids
    (so every draw can be an alt text or a KG text, at any chance)."""
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True)
    with tarfile.open(root / "train" / "00000.tar", "w") as tar:
        for k in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8)).save(buf, format="JPEG")
            meta = {"uid": f"u{k}", "url": f"http://synthetic/{k}.jpg", "query_ids": QUERY_IDS,
                    "alt_texts": [f"alt text {k}", f"another alt text {k}"], "qids": ["Q1", "Q2"],
                    "is_living": False, "licence": None}
            for ext, payload in (("jpg", buf.getvalue()), ("txt", meta["alt_texts"][0].encode()),
                                 ("json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(f"{k:06d}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    (root / "train" / "sizes.json").write_text(json.dumps({"00000.tar": n}))
    return root


# ---------------------------------------------------------------------------------------------------------------
# the sampler's sources


def test_sampler_returns_each_texts_source_from_the_table(tmp_path):
    df = candidates_frame()
    assert list(df.columns) == ["query_id", "texts", "weights", "sources"]
    path = tmp_path / "text_candidates.parquet"
    text_sampler.save_candidates(df, path)
    s = text_sampler.load_sampler(path, alt_text_chance=0.0, seed=0)
    table_sources = {}
    for qid, texts, sources in zip(df.query_id, df.texts, df.sources):
        assert s.candidate_sources(qid) == list(sources)
        table_sources.update({(qid, t): src for t, src in zip(texts, sources)})
    assert set(df.sources.explode()) <= set(text_sampler.KG_SOURCES)
    assert text_sampler.candidate_sources(path) == ["alt", "none"] + [x for x in text_sampler.KG_SOURCES
                                                                    if x in set(df.sources.explode())]
    assert set(s.sources) == set(text_sampler.candidate_sources(path))
    rng = np.random.default_rng(0)
    for qid in QUERY_IDS:
        for _ in range(300):
            text, source = s.sample(["an alt"], [qid], rng)
            assert table_sources[(qid, text)] == source and text_sampler.is_kg_source(source)
    assert text_sampler.load_sampler(path, 1.0).sample(["an alt"], ["qa"]) == ("an alt", "alt")
    assert s.sample([], ["unknown"]) == ("", "none") and not text_sampler.is_kg_source("none")


def test_tables_without_sources_give_kg_and_bad_sources_raise(tmp_path):
    df = candidates_frame()
    old = tmp_path / "old.parquet"
    text_sampler.save_candidates(df.drop(columns=["sources"]), old)  # a table written before the column existed
    s = text_sampler.load_sampler(old, 0.0)
    assert text_sampler.candidate_sources(old) == ["alt", "none", "kg"] and s.sources == ["alt", "none", "kg"]
    assert {s.sample(["x"], ["qa"])[1] for _ in range(50)} == {"kg"}
    # a null cell: that query's texts are "kg"; the others keep theirs
    mixed = df.copy()
    mixed["sources"] = [None] + list(df.sources[1:])
    s = text_sampler.TextSampler.from_frame(mixed, 0.0)
    assert set(s.candidate_sources("qa")) == {"kg"} and s.candidate_sources("qb") == list(df.sources[1])
    # the dict constructor takes (texts, cumulative weights, sources) too
    d = text_sampler.TextSampler({"q": (["a", "b"], [0.5, 1.0], ["original_query", "entity_synonym"]),
                                  "r": (["c"], [1.0])}, 0.0)
    assert d.candidate_sources("q") == ["original_query", "entity_synonym"] and d.candidate_sources("r") == ["kg"]
    bad = df.copy()
    bad["sources"] = [list(df.sources[0])[:-1]] + list(df.sources[1:])
    with pytest.raises(ValueError, match="'qa'.*sources"):
        text_sampler.save_candidates(bad, tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="'q'"):
        text_sampler.TextSampler({"q": (["a", "b"], [0.5, 1.0], ["original_query"])}, 0.0)


def test_text_candidates_rule_writes_the_sources_column(tmp_path, monkeypatch):
    """``text_candidates.main`` (rule ``text_candidates``) writes ``sources``, so training can count KG sources."""
    ENTITIES.to_parquet(tmp_path / "entities.parquet")
    QUERIES.to_parquet(tmp_path / "queries.parquet")

    class Files(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

    class FakeSnakemake:
        input = Files(entities=str(tmp_path / "entities.parquet"), queries=str(tmp_path / "queries.parquet"))
        output = Files(candidates=str(tmp_path / "text_candidates.parquet"))
        params = Files(hierarchy_chance_generic=0.2, hierarchy_chance_living=0.1, weights={"guard": False},
                       kg_text_queries="all")
        log: list = []

    monkeypatch.setattr(text_candidates, "configure_logging", lambda *a, **k: None)  # keep pytest's logging as it is
    text_candidates.main(FakeSnakemake())
    got = pd.read_parquet(tmp_path / "text_candidates.parquet")
    assert list(got.columns) == ["query_id", "texts", "weights", "sources"]
    assert [list(x) for x in got.sources] == [list(x) for x in candidates_frame().sources]


# ---------------------------------------------------------------------------------------------------------------
# counting in workers, snapshots, summary


class _Draws(torch.utils.data.IterableDataset):
    """Each worker "draws" the whole list once, counting each source, and yields it."""

    def __init__(self, counts, sources):
        self.counts, self.sources = counts, sources

    def __iter__(self):
        for s in self.sources:
            self.counts.add(s)
            yield s


@pytest.mark.parametrize("workers,context", [(0, None), (2, "fork"), (2, "spawn")])
def test_counts_reach_the_training_process_from_each_worker(workers, context):
    counts = ts.TextSourceCounts(["alt", "none", "original_query", "entity_synonym"], slots=max(1, workers))
    stream = ["alt"] * 5 + ["original_query"] * 3 + ["entity_synonym"] * 2 + ["parent_synonym"]  # last: unknown
    loader = torch.utils.data.DataLoader(_Draws(counts, stream), batch_size=None, num_workers=workers,
                                         multiprocessing_context=context)
    assert len(list(loader)) == len(stream) * max(1, workers)
    per_stream = [5, 0, 3, 2, 1]  # alt, none, original_query, entity_synonym, other
    assert counts.names == ["alt", "none", "original_query", "entity_synonym", "other"]
    assert counts.counts.tolist() == [per_stream] * max(1, workers)  # one row per worker, none lost or shared
    assert counts.totals().tolist() == [n * max(1, workers) for n in per_stream]


class _Epoch:
    def __init__(self):
        self.value = 0

    def get_value(self):
        return self.value


class _Loader:
    """A loader whose iteration draws texts (as the workers do): ``plan[epoch]`` sources per epoch."""
    num_batches, num_samples = 2, 4

    def __init__(self, counts, epoch, plan):
        self.counts, self.epoch, self.plan = counts, epoch, plan

    def __iter__(self):
        for s in self.plan[self.epoch.value]:
            self.counts.add(s)
            yield s


def test_epoch_snapshots_and_the_merge_with_an_earlier_attempt(tmp_path, caplog):
    path = tmp_path / "text_sources_rank0.json"
    counts = ts.TextSourceCounts(["alt", "none", "original_query"])
    epoch = _Epoch()
    plan = {0: ["alt", "alt", "original_query"], 1: ["alt"], 2: ["original_query"] * 4}
    log = ts.TextSourceLog(counts, path, start_epoch=0, alt_text_chance=0.5)
    loader = ts.SourceCountingLoader(_Loader(counts, epoch, plan), log, epoch)
    assert (loader.num_batches, loader.num_samples) == (2, 4)
    for e in (0, 1):
        epoch.value = e
        assert list(loader) == plan[e]
        # the file holds the epoch as soon as its data is exhausted (before upstream would save its checkpoint)
        assert json.loads(path.read_text())["per_epoch"][str(e + 1)] == dict(
            sorted({s: plan[e].count(s) for s in plan[e]}.items()))
    content = json.loads(path.read_text())
    assert content["per_epoch"] == {"1": {"alt": 2, "original_query": 1}, "2": {"alt": 1}}
    assert content["total"] == {"alt": 3, "original_query": 1} and content["draws"] == 4
    assert content["alt_share"] == 0.75 and content["alt_text_chance"] == 0.5 and content["rank"] == 0
    # an attempt killed in epoch 3 left a partial count; the rerun resumes from epoch_2.pt and redoes epoch 3
    content["per_epoch"]["3"] = {"alt": 999}
    path.write_text(json.dumps(content))
    counts2 = ts.TextSourceCounts(["alt", "none", "original_query"])
    log2 = ts.TextSourceLog(counts2, path, start_epoch=2)
    epoch.value = 2
    assert list(ts.SourceCountingLoader(_Loader(counts2, epoch, plan), log2, epoch)) == plan[2]
    assert log2.snapshot()["per_epoch"] == {"1": {"alt": 2, "original_query": 1}, "2": {"alt": 1},
                                            "3": {"original_query": 4}}  # final snapshot: nothing new
    merged = json.loads(path.read_text())
    assert merged["draws"] == 8 and merged["alt_share"] == 3 / 8
    # resuming from epoch_1.pt drops the earlier attempt's epochs 2 and 3; a fresh run (start 0) drops all
    assert set(ts.TextSourceLog(counts2, path, start_epoch=1).content()["per_epoch"]) == {"1"}
    assert ts.TextSourceLog(counts2, path, start_epoch=0).content()["per_epoch"] == {}
    path.write_text("{not json")
    assert ts.TextSourceLog(counts2, path, start_epoch=2).content()["draws"] == 0
    assert "ignoring unreadable" in caplog.text


def test_summary_sums_the_ranks_files(tmp_path):
    assert launch.collect_text_sources(tmp_path) is None
    for rank, per_epoch in ((0, {"1": {"alt": 3, "entity_synonym": 1}, "2": {"alt": 2}}),
                            (1, {"1": {"alt": 1, "original_query": 3}, "2": {"original_query": 2}}),
                            (2, {"1": {"alt": 100}})):  # stale: left by an earlier attempt with 3 ranks
        (tmp_path / f"text_sources_rank{rank}.json").write_text(json.dumps(
            {"rank": rank, "world_size": 2, "per_epoch": per_epoch}))
    got = launch.collect_text_sources(tmp_path)
    assert got["per_epoch"] == {"1": {"alt": 4, "entity_synonym": 1, "original_query": 3},
                                "2": {"alt": 2, "original_query": 2}}
    assert got["total"] == {"alt": 6, "entity_synonym": 1, "original_query": 5} and got["draws"] == 12
    assert got["alt_share"] == 0.5 and got["ranks"] == [0, 1]


# ---------------------------------------------------------------------------------------------------------------
# real trainings: the ablation's alt shares


def tiny_recipe(model: str) -> dict:
    return dict(wc.model_recipe(CONFIG, model), samples_seen=SAMPLES_SEEN, epochs=EPOCHS)


def draws_expected(recipe: dict) -> tuple[int, int]:
    """(texts drawn per epoch, in all): every step of the epoch trains on one batch of drawn texts."""
    per_epoch = math.ceil(recipe["samples_seen"] / recipe["epochs"] / recipe["batch_size"]) * recipe["batch_size"]
    return per_epoch, per_epoch * recipe["epochs"]


def train_tiny(model: str, shards: Path, candidates: Path, root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    return launch.run(tiny_recipe(model), str(shards), str(candidates), str(root / "openclip"),
                     str(root / "model.safetensors"), str(root / "train_summary.json"), gpus=0, nodes=1)


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    """The three trainings (in parallel: each is one small process plus one worker)."""
    base = tmp_path_factory.mktemp("ablation")
    shards = write_shards(base / "shards")
    candidates = base / "text_candidates.parquet"
    text_sampler.save_candidates(candidates_frame(), candidates)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # tiny tensors: more threads on shared cores only spin
        with ThreadPoolExecutor(len(ABLATION)) as pool:
            futures = {m: pool.submit(train_tiny, m, shards, candidates, base / m) for m in ABLATION}
            summaries = {m: f.result() for m, f in futures.items()}
    return {"base": base, "shards": shards, "candidates": candidates, "summaries": summaries}


def kg_source_probabilities(candidates: Path) -> dict[str, float]:
    """P(source | a KG draw) for a sample with all three query ids: the query uniform, then its weights."""
    s = text_sampler.load_sampler(candidates, 0.0)
    out: dict[str, float] = {}
    for q in QUERY_IDS:
        for (_, p), src in zip(s.candidates(q), s.candidate_sources(q)):
            out[src] = out.get(src, 0.0) + p / len(QUERY_IDS)
    return out


@pytest.mark.parametrize("model", list(ABLATION))
def test_ablation_alt_share(ablation, model):
    """The alt share the training drew: exactly 0 for ``-alt0``, exactly 1 for ``-alt100``, and for ``tiny``
    (chance 0.5) inside a binomial band.

    Every sample has alt texts and KG candidates, so each draw is an alt text with probability ``p`` =
    alt_text_chance, independently (one uniform of the worker's generator each): the alt count of the N = 128 draws
    is Binomial(128, 1/2). The band [42, 86] (64 ± 22) holds it with P(outside) = 2·P(X ≤ 41) = 5.9e-5. The KG
    sources ``original_query`` and ``entity_synonym`` must be drawn at chances 0 and 0.5: at 0.5 there are at least
    128 − 86 = 42 KG draws once the band holds, each of source s with probability P(s) (computed below from the
    table: about 0.52 and 0.24), so P(s never drawn) ≤ (1 − P(s))^42 < 1.2e-5 for both together. False alarms in all:
    < 1e-4 per run (asserted below from the same numbers). A training whose alt-text chance were pinned to 1 fails
    ``tiny-alt0`` (share 1) and ``tiny`` (128 alt draws)."""
    chance = ABLATION[model]
    summary = ablation["summaries"][model]
    ts = summary["text_sources"]
    recipe = tiny_recipe(model)
    per_epoch, n = draws_expected(recipe)
    assert summary["alt_text_chance"] == chance and recipe["alt_text_chance"] == chance
    # exact totals: every trained sample's text was drawn and counted once, per epoch too (stock loader)
    assert ts["draws"] == n == SAMPLES_SEEN and ts["ranks"] == [0]
    assert sorted(ts["per_epoch"], key=int) == [str(e) for e in range(1, EPOCHS + 1)]
    assert [sum(c.values()) for c in ts["per_epoch"].values()] == [per_epoch] * EPOCHS
    assert sum(ts["total"].values()) == n
    assert set(ts["total"]) <= set(text_sampler.candidate_sources(ablation["candidates"])) - {"none", "kg"}
    alt = ts["total"].get("alt", 0)
    assert ts["alt_share"] == alt / n
    lo, hi, tail = binomial_band(n, 0.5, ALPHA)
    assert (lo, hi) == (42, 86) and tail < 6e-5  # the numbers of the docstring
    p_src = kg_source_probabilities(ablation["candidates"])
    miss = sum((1 - p_src[s]) ** (n - hi) for s in ("original_query", "entity_synonym"))
    assert tail + miss < ALPHA, (tail, miss, p_src)
    if chance == 0.0:
        assert alt == 0 and ts["alt_share"] == 0.0
    elif chance == 1.0:
        assert ts["total"] == {"alt": n} and ts["alt_share"] == 1.0
    else:
        assert lo <= alt <= hi, ts
    if chance < 1.0:
        assert ts["total"]["original_query"] > 0 and ts["total"]["entity_synonym"] > 0, ts
        assert sum(v for k, v in ts["total"].items() if text_sampler.is_kg_source(k)) == n - alt
    # the summary is the rank file's content
    rank0 = json.loads((ablation["base"] / model / "openclip" / "run" / "text_sources_rank0.json").read_text())
    assert rank0["per_epoch"] == ts["per_epoch"] and rank0["alt_text_chance"] == chance


def test_resumed_training_keeps_finished_epochs_and_recounts_the_killed_one(ablation, tmp_path):
    """A kill during epoch 2, then the rule's rerun (``--resume latest``): epoch 1's counts come from the first
    attempt's file, epoch 2's from the rerun (the killed attempt's partial count, a stand-in 999 here, is gone)."""
    model = "tiny"
    root = tmp_path / model
    shutil.copytree(ablation["base"] / model / "openclip", root / "openclip")
    run_dir = root / "openclip" / "run"
    (run_dir / "checkpoints" / "epoch_2.pt").unlink()
    shutil.copy(run_dir / "checkpoints" / "epoch_1.pt", run_dir / "checkpoints" / "epoch_latest.pt")
    first = ablation["summaries"][model]["text_sources"]
    killed = json.loads((run_dir / "text_sources_rank0.json").read_text())
    killed["per_epoch"]["2"] = {"alt": 999}
    (run_dir / "text_sources_rank0.json").write_text(json.dumps(killed))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        summary = train_tiny(model, ablation["shards"], ablation["candidates"], root)
    ts = summary["text_sources"]
    per_epoch, n = draws_expected(tiny_recipe(model))
    assert summary["epochs"] == EPOCHS
    assert ts["per_epoch"]["1"] == first["per_epoch"]["1"]
    assert sum(ts["per_epoch"]["2"].values()) == per_epoch and ts["per_epoch"]["2"].get("alt") != 999
    assert ts["draws"] == n
