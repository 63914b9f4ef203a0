"""Dedup + decontamination through the rule path: the ``dedup_decontaminate`` entry on img2dataset-shaped chunk
folders (a ``retry/`` pass included) with planted near-duplicates (re-encoded, resized, brightened copies of real
photos) and planted eval copies, then ``build_shards`` (full and LivingThings-style subset) on its outputs; plus the
DAG wiring (subsets reuse their source's dedup, rule-built eval roots are inputs, bad eval set names refused).
"""
import io
import json
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image, ImageEnhance
from snakemake.iocontainers import Namedlist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workflow_helpers import REPO, job_counts, make_workdir, snakemake  # noqa: E402

import build_shards  # noqa: E402
import dataset_card  # noqa: E402
import dedup_decontaminate  # noqa: E402

PHOTOS = REPO / "resources/demo/photos"
P1, P2, E1 = "erase__resource/giraffe.webp", "explore_farm_animals__animals/horse.webp", \
    "categorization__tools/hammer6.webp"
OTHERS = ["explore_farm_animals__animals/cat.webp", "categorization__tools/plier2.webp",
          "categorization__others/chair.webp"]


def load(rel: str, scale: float = 1.0) -> Image.Image:
    im = Image.open(PHOTOS / rel).convert("RGB")
    w, h = im.size
    r = min(1.0, 512 / min(w, h)) * scale
    return im.resize((round(w * r), round(h * r)), Image.Resampling.LANCZOS)


def jpeg(im: Image.Image, q: int = 95) -> bytes:
    b = io.BytesIO()
    im.save(b, "JPEG", quality=q)
    return b.getvalue()


def write_pass(folder: Path, samples: list[tuple[str, bytes | None]]) -> None:
    """One img2dataset webdataset pass: ``00000.tar`` (successes), ``00000.parquet`` (every row), stats."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    with tarfile.open(folder / "00000.tar", "w") as tf:
        for i, (uid, data) in enumerate(samples):
            key = f"00000{i:04d}"
            rows.append({"uid": uid, "url": f"http://img.test/{uid}.jpg", "key": key,
                         "status": "success" if data else "failed_to_download",
                         "error_message": None if data else "HTTP Error 404: Not Found"})
            if data:
                for name, payload in ((f"{key}.jpg", data), (f"{key}.json", json.dumps({"uid": uid}).encode()),
                                      (f"{key}.txt", b"")):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tf.addfile(info, io.BytesIO(payload))
    pd.DataFrame(rows).to_parquet(folder / "00000.parquet")
    n_ok = sum(1 for _, d in samples if d)
    (folder / "00000_stats.json").write_text(json.dumps({"count": len(samples), "successes": n_ok}))


class Job:
    """The ``snakemake`` object a rule's ``script:`` sees (input, output, params, log, threads, wildcards)."""

    def __init__(self, inp: dict, outp: dict, params: dict):
        self.input, self.output = Namedlist(fromdict=inp), Namedlist(fromdict=outp)
        self.params, self.log = Namedlist(fromdict=params), Namedlist(fromdict={})
        self.threads, self.wildcards = 1, Namedlist(fromdict={"dataset": "planted"})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("dedup_rule")
    c0, c1 = root / "download/chunk_00000", root / "download/chunk_00001"
    p1, p2, e1 = load(P1), load(P2), load(E1)
    write_pass(c0, [("p1-orig", jpeg(p1)), ("p2-orig", jpeg(p2)), ("p2-first-url-failed", None),
                    ("e1-bright", jpeg(ImageEnhance.Brightness(e1).enhance(1.08), 90)),
                    ("other-0", jpeg(load(OTHERS[0]))), ("gone", None)])
    # the retry pass of chunk 0 recovered a half-size copy of P2 (keys repeat those of the first pass)
    write_pass(c0 / "retry", [("p2-first-url-failed", jpeg(p2.resize((p2.width // 2, p2.height // 2))))])
    write_pass(c1, [("p1-q70", jpeg(p1, 70)), ("e1-copy", jpeg(e1, 80)), ("other-1", jpeg(load(OTHERS[1]))),
                    ("other-2", jpeg(load(OTHERS[2])))])
    evalset = root / "eval/heldout/val/hammer"
    evalset.mkdir(parents=True)
    e1.save(evalset / "hammer6.png")
    uids = ["p1-orig", "p2-orig", "p2-first-url-failed", "e1-bright", "other-0", "gone", "p1-q70", "e1-copy",
            "other-1", "other-2", "never-downloaded"]
    living = {"p1-q70", "other-0"}              # P1's original was found by a world query only
    urls = pd.DataFrame({
        "uid": uids, "url": [f"http://img.test/{u}.jpg" for u in uids],
        "urls": [[f"http://img.test/{u}.jpg"] for u in uids],
        "query_ids": [[f"q-{u}"] for u in uids], "alt_texts": [[f"alt {u}"] for u in uids],
        "page_urls": [[] for _ in uids], "qids": [["Q1"] for _ in uids], "kinds": [["wd-noun-world"] for _ in uids],
        "backends": [["pool"] for _ in uids], "is_living": [u in living for u in uids],
        "licence": None, "width": None, "height": None})
    urls.to_parquet(root / "urls.parquet")
    queries = pd.DataFrame({"query_id": [f"q-{u}" for u in uids], "text": uids, "kind": "wd-noun-world"})
    queries.to_parquet(root / "queries.parquet")
    chunks = [str(c0), str(c1)]
    dd = {k: str(root / "dedup" / f"{k}.parquet") for k in ("keep", "removed", "drop", "eval_hashes")}
    dd |= {"counts": str(root / "dedup/counts.json"), "urls": str(root / "urls_dedup.parquet")}
    dedup_decontaminate.main(Job({"chunks": chunks, "urls": str(root / "urls.parquet")}, dd, {
        "eval_sets": {"heldout": str(root / "eval/heldout"), "absent": str(root / "eval/not_downloaded")},
        "hamming_threshold": 4, "decontam_threshold": 8, "representative": "largest", "skipped": ["imagenet1k"]}))
    shards = {}
    for name, subset in (("full", None), ("full_again", None), ("living", "living")):
        out = {"shards_dir": str(root / name / "shards"), "status": str(root / name / "status.parquet"),
               "summary": str(root / name / "summary.json"), "index": str(root / name / "index.parquet")}
        build_shards.main(Job({"chunks": chunks, "urls": dd["urls"], "drop": dd["drop"],
                               "queries": str(root / "queries.parquet")}, out,
                              {"val_size": 0, "samples_per_shard": 100, "seed": 0, "subset": subset}))
        shards[name] = root / name
    return {"root": root, "dd": dd, "shards": shards}


def shard_samples(folder: Path) -> dict[str, dict]:
    out = {}
    for tar in sorted((folder / "shards/train").glob("*.tar")):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".json"):
                    meta = json.loads(tf.extractfile(m).read())
                    out[meta["uid"]] = meta
    return out


def test_counts_and_drop_list(built):
    counts = json.loads(Path(built["dd"]["counts"]).read_text())
    assert counts["n_download_dirs"] == 3                       # chunk 0, its retry/, chunk 1
    assert counts["n_images"] == 9 and counts["n_corrupt"] == 0
    assert counts["eval_sets_missing"] == ["absent"]
    assert counts["eval_set_status"] == {"heldout": "ok", "absent": "missing", "imagenet1k": "skipped"}
    assert counts["eval_sets_skipped"] == ["imagenet1k"]
    assert counts["contaminated_total"] == {"heldout": 2} and counts["n_contaminated"] == 2
    assert counts["n_duplicates_dropped"] == 2
    drop = pd.read_parquet(built["dd"]["drop"])
    assert dict(zip(drop["uid"], drop["reason"])) == {
        "e1-copy": "eval_contamination", "e1-bright": "eval_contamination",
        "p2-first-url-failed": "duplicate",      # the smaller, retried copy of P2
        "p1-q70": "duplicate"}                   # same size as P1's original: the first (chunk 0) is kept


def test_shards_hold_one_merged_image_per_group_and_no_eval_copy(built):
    samples = shard_samples(built["shards"]["full"])
    p1_rep = "p1-orig"
    assert set(samples) == {p1_rep, "p2-orig", "other-0", "other-1", "other-2"}
    assert sorted(samples[p1_rep]["query_ids"]) == ["q-p1-orig", "q-p1-q70"]     # the paper's merge
    assert sorted(samples[p1_rep]["alt_texts"]) == ["alt p1-orig", "alt p1-q70"]
    assert samples[p1_rep]["is_living"] is True                              # any living query
    assert sorted(samples["p2-orig"]["query_ids"]) == ["q-p2-first-url-failed", "q-p2-orig"]
    summary = json.loads((built["shards"]["full"] / "summary.json").read_text())
    assert summary["skipped"]["dropped"] == 4 and summary["n_train"] == 5
    assert summary["download"] == {"rows": 10, "successes": 9, "recovered_by_retry": 1}
    index = pd.read_parquet(built["shards"]["full"] / "index.parquet")
    assert set(index["uid"]) == set(samples) and set(index["split"]) == {"train"}


def test_living_subset_uses_the_merged_rows(built):
    living = shard_samples(built["shards"]["living"])
    assert set(living) == {"p1-orig", "other-0"}      # p1-orig itself was found by a world query only
    summary = json.loads((built["shards"]["living"] / "summary.json").read_text())
    assert summary["skipped"]["subset"] == 3


def test_shards_are_byte_identical_between_runs(built):
    a, b = built["shards"]["full"] / "shards/train", built["shards"]["full_again"] / "shards/train"
    names = sorted(p.name for p in a.glob("*.tar"))
    assert names and names == sorted(p.name for p in b.glob("*.tar"))
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes()


# --------------------------------------------------------------------------------------------- DAG wiring


@pytest.fixture()
def wd(tmp_path):
    w = make_workdir(tmp_path / "wd")
    (w / "subset.yaml").write_text(yaml.safe_dump({"datasets": {"demoliving": {
        "subset_of": "demo", "subset": "living", "eval_suite": "demo",
        "description": "living subset of the demo"}}}))
    return w


def test_subset_reuses_source_dedup_and_eval_root_is_built_first(wd):
    r = snakemake(wd, "-n", "--cores", "1", "results/demoliving/card/card.md", "results/demo/card/card.md",
                  "--configfile", str(wd / "config/config.yaml"), str(wd / "subset.yaml"), timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    counts = job_counts(r.stdout)
    assert counts["dedup_decontaminate"] == 1 and counts["download"] == 1
    assert counts["build_shards"] == 2 and counts["dataset_card"] == 2 and counts["build_demo_evalset"] == 1
    assert "results/demo/dedup/drop.parquet" in r.stdout and "results/demoliving/dedup" not in r.stdout
    assert "results/demoliving/download/" not in r.stdout


def test_prepared_benchmarks_are_dedup_inputs_and_skipped_ones_listed(wd):
    """A dataset's eval sets that prepare_benchmark builds are inputs of its dedup job (a new or re-prepared root
    reruns decontamination); one in evaluation.skip is neither prepared nor an input."""
    (wd / "evalsets.yaml").write_text("datasets: {demo: {dedup: {eval_sets: [demo_heldout, cub200, imagenet1k]}}}\n"
                                      "evaluation: {skip: [imagenet1k]}\n")
    r = snakemake(wd, "-n", "--cores", "1", "-p", "results/demo/dedup/counts.json", "--configfile",
                  str(wd / "config/config.yaml"), str(wd / "evalsets.yaml"), timeout=180)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert job_counts(r.stdout)["prepare_benchmark"] == 1 and "output: data/benchmarks/cub200" in r.stdout
    dedup_job = r.stdout[r.stdout.index("rule dedup_decontaminate:"):]
    inputs = dedup_job[dedup_job.index("input:"):dedup_job.index("output:")]
    assert "data/benchmarks/cub200" in inputs and "imagenet1k" not in inputs


def test_unknown_eval_set_is_refused_before_any_job(wd):
    (wd / "bad.yaml").write_text("datasets: {demo: {dedup: {eval_sets: [demo_heldout, nosuchbench]}}}")
    r = snakemake(wd, "-n", "--cores", "1", "results/demo/card/card.md",
                  "--configfile", str(wd / "config/config.yaml"), str(wd / "bad.yaml"), timeout=180)
    assert r.returncode != 0 and "nosuchbench" in r.stdout + r.stderr
    assert "Job stats" not in r.stdout
