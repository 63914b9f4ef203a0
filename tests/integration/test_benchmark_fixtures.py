"""The paper's 12 benchmarks, in miniature and in their real on-disk formats, through the real evaluation path.

``tests/benchmark_fixtures.py`` writes each benchmark root from the demo photos; here every root is (1) byte-identical
across calls, (2) read by clip_benchmark's own loader with the expected numbers of images, classes and captions, and
(3) evaluated by ``lib.eval.suite_evaluation.evaluate`` (every prompt variant through ``clip_benchmark_wrapped.py``,
exactly as the ``evaluate`` rule runs it) on a tiny randomly initialised open_clip model, with stand-ins for wget,
curl, gdown, kaggle and unzip on PATH and an unreachable HTTP proxy, so that any download attempt is recorded or
fails. The benchmark dicts are those of ``config.yaml``'s ``benchmarks:`` section with the fixture roots.
"""
import hashlib
import json
import math
import os
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
for _p in (REPO / "scripts", REPO / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from benchmark_fixtures import BENCHMARKS, expected_counts, write_benchmark_fixtures  # noqa: E402

pytestmark = [pytest.mark.slow]

PHOTOS = REPO / "resources" / "demo" / "photos"
ARCH = "EntityNet-tiny-ctx32"
DOWNLOADERS = ("wget", "curl", "gdown", "kaggle", "unzip")


def suite(roots: dict[str, Path]) -> dict[str, dict]:
    """config.yaml's ``benchmarks:`` entries for the paper suite, on the fixture roots: every prompt variant of the
    real config (32 clip_benchmark jobs, run by lib.eval.suite_evaluation in one process)."""
    def cls(name, dataset, **extra):
        return {"task": "zeroshot_classification", "dataset": dataset, "root": str(roots[name]),
                "template_variants": ["openai", "none"], **extra}

    def ret(name, dataset):
        return {"task": "zeroshot_retrieval", "dataset": dataset, "root": str(roots[name])}

    inat, rare = roots["inat2021"], roots["rare_species"]
    return {
        "imagenet1k": cls("imagenet1k", "wds/imagenet1k"),
        "imagenetv2": cls("imagenetv2", "wds/imagenetv2"),
        "imagenet-r": cls("imagenet-r", "wds/imagenet-r"),
        "imagenet_sketch": cls("imagenet_sketch", "wds/imagenet_sketch"),
        "imagenet-a": cls("imagenet-a", "wds/imagenet-a"),
        "objectnet": cls("objectnet", "wds/objectnet"),
        "inat2021": cls("inat2021", "wds/inat2021", classname_variants={
            "latin": str(inat / "classnames_latin.txt"), "common": str(inat / "classnames_common.txt")}),
        "cub200": cls("cub200", "wds/cub200", resize_variants={"squash": ["none"]}),
        "rare_species": cls("rare_species", "wds/rare_species", classname_variants={
            s: str(rare / f"classnames_{s}.txt") for s in ("sci", "com", "tax", "scicom", "taxcom")}),
        "mscoco_captions": ret("mscoco_captions", "wds/mscoco_captions"),
        "flickr30k": ret("flickr30k", "wds/flickr30k"),
        "xm3600": ret("xm3600", "crossmodal3600"),
    }


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import open_clip
    import torch
    from safetensors.torch import save_file

    from lib.train.train_openclip import register_model_configs

    register_model_configs()
    torch.manual_seed(0)
    model = open_clip.create_model(ARCH)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_fixtures_are_deterministic(tmp_path):
    a = write_benchmark_fixtures(tmp_path / "a", PHOTOS)
    b = write_benchmark_fixtures(tmp_path / "b", PHOTOS)
    assert list(a) == BENCHMARKS and len(BENCHMARKS) == 12
    for name in BENCHMARKS:
        da, db = digests(a[name]), digests(b[name])
        assert da and da == db, name
    again = write_benchmark_fixtures(tmp_path / "a", PHOTOS, names=["imagenet1k", "xm3600"])
    assert {n: digests(r) for n, r in again.items()} == {n: digests(a[n]) for n in again}
    for name in BENCHMARKS:
        for shard in sorted(a[name].glob("test/*.tar")):
            with tarfile.open(shard) as tf:
                members = tf.getmembers()
            assert all(m.mtime == 0 and m.uid == m.gid == 0 and not m.uname and not m.gname for m in members)
            keys = [m.name.split(".", 1)[0] for m in members]
            assert keys == sorted(keys), name  # each sample's files adjacent, samples in order
    with pytest.raises(ValueError):
        write_benchmark_fixtures(tmp_path / "c", PHOTOS, names=["imagenet-o"])


def test_loaders_read_every_fixture(tmp_path):
    """clip_benchmark's own dataset builders (in process) read each fixture with the expected counts."""
    from clip_benchmark.datasets.builder import build_dataset

    roots = write_benchmark_fixtures(tmp_path, PHOTOS)
    for name, bench in suite(roots).items():
        want = expected_counts(name)
        ds = build_dataset(bench["dataset"], root=bench["root"], transform=lambda im: im.size, split="test",
                           task=bench["task"], download=False)
        samples = list(ds)
        assert len(samples) == want["images"], name
        assert all(w > 0 and h > 0 for (w, h), _ in samples), name
        if bench["task"] == "zeroshot_classification":
            assert len(ds.classes) == want["classes"] >= 5 and ds.templates, name
            labels = {int(y) for _, y in samples}
            assert labels == set(range(want["classes"])), name  # every class has an image, labels in range
            for variant in Path(bench["root"]).glob("classnames_*.txt"):
                names = variant.read_text().splitlines()
                assert len(names) == want["classes"] and all(names), variant.name
        else:
            assert sum(len(texts) for _, texts in samples) == want["texts"], name
            assert all(t.strip() for _, texts in samples for t in texts), name
    assert sorted(p.name for p in roots["rare_species"].glob("classnames_*.txt")) == [
        f"classnames_{s}.txt" for s in ("com", "sci", "scicom", "tax", "taxcom")]
    assert sorted(p.name for p in roots["inat2021"].glob("classnames_*.txt")) == [
        "classnames_common.txt", "classnames_latin.txt"]


def test_evaluate_all_twelve(tmp_path, tiny_model, monkeypatch):
    from lib.common import workflow_config as wc
    from lib.eval import suite_evaluation as evaluate

    roots = write_benchmark_fixtures(tmp_path / "benchmarks", PHOTOS)
    # any download attempt: a logged stand-in command, or a refused connection through the proxy
    stubs, calls = tmp_path / "bin", tmp_path / "download_calls.log"
    stubs.mkdir()
    for cmd in DOWNLOADERS:
        (stubs / cmd).write_text(f'#!/bin/sh\necho "{cmd} $*" >> "{calls}"\nexit 1\n')
        (stubs / cmd).chmod(0o755)
    monkeypatch.setenv("PATH", f"{stubs}{os.pathsep}{os.environ['PATH']}")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")

    benches = suite(roots)
    schema_eval = wc.fill_defaults({"evaluation": {}}, wc.load_schema())["evaluation"]  # what the rule passes
    assert sum(len(evaluate.variants(b)) for b in benches.values()) == 32
    out = tmp_path / "eval"
    df = evaluate.evaluate("fixtures", "tiny", ARCH, str(tiny_model), benches, str(out), samples_seen=0,
                           fail_on_missing=True, batch_size=4, text_context=schema_eval["mac_text_context"],
                           mac_count=schema_eval["mac_count"])

    assert not calls.exists(), calls.read_text()
    assert list(df.columns) == list(evaluate.EVAL_COLUMNS)
    assert set(df["benchmark"]) == set(BENCHMARKS) and (df["status"] == "ok").all()
    for name, bench in benches.items():
        rows = df[df["benchmark"] == name].set_index("metric")
        assert list(rows.index) == evaluate.METRICS[bench["task"]], name
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in rows["value"]), (name, rows["value"].tolist())
        n_variants = len(evaluate.variants(bench))
        assert (rows["n_variants"] == n_variants).all(), name
        assert len(list(out.glob(f"{name}__*.json"))) == n_variants, name
        want = expected_counts(name)
        for v in evaluate.variants(bench):
            result = json.loads((out / f"{name}__{v['name']}.json").read_text())
            assert result["dataset"] == bench["dataset"] and result["task"] == bench["task"]
            m = result["metrics"]
            # each metric is a count over the expected number of samples
            if bench["task"] == "zeroshot_classification":
                on_grid = {"acc1": want["images"], "acc5": want["images"]}
            else:  # image retrieval: one hit or miss per caption; text retrieval: one per image
                on_grid = {"image_retrieval_recall@1": want["texts"], "image_retrieval_recall@5": want["texts"],
                           "text_retrieval_recall@1": want["images"], "text_retrieval_recall@5": want["images"]}
            for metric, n in on_grid.items():
                assert abs(m[metric] * n - round(m[metric] * n)) < 1e-4, (name, v["name"], metric, m[metric])
    # clip_benchmark's crossmodal3600 loader indexes the canonical layout on first use, inside the root
    index = json.loads((roots["xm3600"] / "crossmodal3600_captions-en.json").read_text())
    assert len(index["image_paths"]) == len(index["annotations"]) == expected_counts("xm3600")["images"]
