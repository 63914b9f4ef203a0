"""Rule prepare_benchmark's script against a Hugging Face Hub **stand-in** (tests/hf_hub_standin.py, real unpatched
huggingface_hub client via HF_ENDPOINT) and tiny fixture archives in each non-Hub format; fault cases leave no root.
One prepared root is consumed by the real clip_benchmark evaluation of a tiny open_clip model that open_clip itself
loads from the stand-in by ``hf-hub:`` (the baseline path)."""
import hashlib
import io
import json
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from lib.eval import baselines  # noqa: E402
from lib.eval import benchmark_roots as pb  # noqa: E402
from lib.eval import suite_evaluation as ev  # noqa: E402
from lib.common import workflow_config as wc  # noqa: E402
from hf_hub_standin import HubStandin, point_client_at  # noqa: E402
from http_testserver import HttpTestServer, Reply  # noqa: E402

CLS = "zeroshot_classification"
#: the evaluation options of a config that sets none: the schema's defaults (what the rules pass, resolved)
EVAL = wc.fill_defaults({"evaluation": {}}, wc.load_schema())["evaluation"]
MACS = dict(text_context=EVAL["mac_text_context"], mac_count=EVAL["mac_count"])


def jpeg(i: int, fmt="JPEG") -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (40, 32), ((37 * i) % 256, (91 * i) % 256, (13 * i) % 256)).save(b, fmt)
    return b.getvalue()


def wds_repo_files(tmp_path: Path, n=7, classes=5) -> dict[str, bytes]:
    root = tmp_path / "wds_src"
    pb.write_wds(root, [(f"s{i:07d}", "webp", jpeg(i, "WEBP"), i % classes) for i in range(n)],
                 [f"class {c}" for c in range(classes)], ["a photo of a {c}."])
    files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    files["train/0.tar"] = b"not wanted"  # a train split on the Hub is not fetched
    files["train/nshards.txt"] = b"1\n"
    return files


def hub_bench(expected=None):
    return {"task": CLS, "dataset": "wds/tiny", "root": "data/benchmarks/tiny",
            "source": {"type": "hf_hub", "repo": "clip-benchmark/wds_tiny", "revision": "main", "licence": "MIT"},
            "expected": expected or {"images": 7, "classes": 5}}


@pytest.fixture()
def hub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # never the user's cache (nor a previous test's)
    with HubStandin() as h:
        point_client_at(monkeypatch, h.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield h


def no_partial(dest: Path):
    assert not dest.exists()
    assert not list(dest.parent.glob(f".{dest.name}*")), list(dest.parent.iterdir())


def test_hub_snapshot_prepared_with_manifest(tmp_path, hub):
    files = wds_repo_files(tmp_path)
    commit = hub.add_repo("clip-benchmark/wds_tiny", files)
    dest = tmp_path / "data/benchmarks/tiny"
    m = pb.prepare("tiny", hub_bench(), dest)
    assert m["source"] == {"type": "hf_hub", "repo": "clip-benchmark/wds_tiny", "revision": "main", "commit": commit}
    assert m["counts"] == {"images": 7, "classes": 5, "shards": 1} and m["licence"] == "MIT"
    assert json.loads((dest / "manifest.json").read_text()) == m
    assert sorted(m["files"]) == ["classnames.txt", "test/0.tar", "test/nshards.txt",
                                  "zeroshot_classification_templates.txt"]
    assert m["files"]["test/0.tar"] == pb.sha256_file(dest / "test/0.tar")
    assert m["bytes"] == sum(len(b) for p, b in files.items() if not p.startswith("train/"))
    assert (dest / "test/0.tar").read_bytes() == files["test/0.tar"]
    assert not any("train/" in r.raw_path for r in hub.requests)
    no_partial(tmp_path / "data/benchmarks/nothing")  # and nothing but the root and the Hub cache was left
    assert sorted(p.name for p in dest.parent.iterdir()) == [".hf_cache", "tiny"]


@pytest.mark.parametrize("fault,needle", [("truncate", "download of clip-benchmark/wds_tiny@main failed"),
                                          ("corrupt", "checksum mismatch for clip-benchmark/wds_tiny@")])
def test_hub_faults_leave_no_root(tmp_path, hub, fault, needle):
    hub.add_repo("clip-benchmark/wds_tiny", wds_repo_files(tmp_path))
    hub.add_fault("test/0.tar", fault, times=20)  # every retry of the client fails too
    dest = tmp_path / "data/benchmarks/tiny"
    with pytest.raises(pb.PrepareError, match=needle):
        pb.prepare("tiny", hub_bench(), dest)
    no_partial(dest)
    hub.faults.clear()
    m = pb.prepare("tiny", hub_bench(), dest)  # the next attempt downloads a good copy (bad blob not reused)
    assert m["counts"]["images"] == 7


def test_one_broken_body_is_retried_by_the_client(tmp_path, hub):
    hub.add_repo("clip-benchmark/wds_tiny", wds_repo_files(tmp_path))
    hub.add_fault("test/0.tar", "truncate", times=1)
    m = pb.prepare("tiny", hub_bench(), tmp_path / "data/benchmarks/tiny")
    assert m["counts"]["images"] == 7 and not hub.faults["test/0.tar"]


def test_count_mismatch_is_an_error(tmp_path, hub):
    hub.add_repo("clip-benchmark/wds_tiny", wds_repo_files(tmp_path))
    dest = tmp_path / "data/benchmarks/tiny"
    with pytest.raises(pb.PrepareError, match=r"count mismatch \(images: 7 found, 8 expected; benchmarks.tiny"):
        pb.prepare("tiny", hub_bench({"images": 8, "classes": 5}), dest)
    no_partial(dest)


def cub_archive(path: Path, truncate=False) -> Path:
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
    images, split, labels, blobs = [], [], [], {}
    for i in range(1, 10):
        c = (i - 1) % 3
        rel = f"{classes[c]}/{classes[c].split('.')[1]}_{i:04d}.jpg"
        images.append(f"{i} {rel}")
        split.append(f"{i} {int(i % 3 != 0)}")  # ids 3, 6, 9 are test
        labels.append(f"{i} {c + 1}")
        blobs[f"CUB_200_2011/images/{rel}"] = jpeg(i)
    meta = {"images.txt": images, "train_test_split.txt": split, "image_class_labels.txt": labels,
            "classes.txt": [f"{k + 1} {c}" for k, c in enumerate(classes)]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, lines in meta.items():
            blobs[f"CUB_200_2011/{name}"] = ("\n".join(lines) + "\n").encode()
        for name, data in sorted(blobs.items()):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    data = buf.getvalue()
    path.write_bytes(data[: len(data) // 2] if truncate else data)
    return path


def test_cub200_archive_test_split(tmp_path):
    arc = cub_archive(tmp_path / "CUB_200_2011.tgz")
    bench = {"task": CLS, "dataset": "wds/cub200",
             "source": {"type": "cub200", "url": arc.as_uri(), "sha256": pb.sha256_file(arc),
                        "templates": ["a photo of a {c}, a type of bird."]},
             "expected": {"images": 3, "classes": 3}}
    dest = tmp_path / "data/benchmarks/cub200"
    m = pb.prepare("cub200", bench, dest)
    assert m["counts"]["images"] == 3 and m["source"]["archive_sha256"] == pb.sha256_file(arc)
    assert (dest / "classnames.txt").read_text().splitlines() == ["Black footed Albatross", "Laysan Albatross",
                                                                    "Sooty Albatross"]
    assert (dest / "classnames_raw.txt").read_text().splitlines()[0] == "001.Black_footed_Albatross"
    with tarfile.open(dest / "test/0.tar") as t:
        cls = {m.name: t.extractfile(m).read() for m in t if m.name.endswith(".cls")}
    assert cls == {"s0000003.cls": b"2", "s0000006.cls": b"2", "s0000009.cls": b"2"}  # ids 3, 6, 9: class 3


def test_cub200_bad_archive_and_checksum(tmp_path):
    arc = cub_archive(tmp_path / "CUB_200_2011.tgz", truncate=True)
    bench = {"task": CLS, "dataset": "wds/cub200", "source": {"type": "cub200", "url": arc.as_uri()}}
    dest = tmp_path / "data/benchmarks/cub200"
    with pytest.raises(pb.PrepareError, match="is not a complete CUB_200_2011.tgz"):
        pb.prepare("cub200", bench, dest)
    no_partial(dest)
    bench["source"]["sha256"] = "0" * 64
    with pytest.raises(pb.PrepareError, match="checksum mismatch"):
        pb.prepare("cub200", bench, dest, cache=tmp_path / "fresh_cache")
    no_partial(dest)


def test_truncated_http_archive(tmp_path, hub, monkeypatch):
    """A body shorter than its Content-Length (served by the stand-in's resolve route), on every try, is refused
    after the bounded number of tries and leaves nothing behind."""
    monkeypatch.setattr(pb, "DOWNLOAD_BACKOFF_S", (0.01, 0.02))
    arc = cub_archive(tmp_path / "CUB_200_2011.tgz")
    hub.add_repo("caltech/cub", {"CUB_200_2011.tgz": arc.read_bytes()}, repo_type="model")
    hub.add_fault("CUB_200_2011.tgz", "truncate", times=pb.DOWNLOAD_TRIES)
    bench = {"task": CLS, "dataset": "wds/cub200",
             "source": {"type": "cub200", "url": f"{hub.url}/caltech/cub/resolve/main/CUB_200_2011.tgz"}}
    dest = tmp_path / "data/benchmarks/cub200"
    with pytest.raises(pb.PrepareError, match=f"truncated.*giving up after {pb.DOWNLOAD_TRIES} tries"):
        pb.prepare("cub200", bench, dest)
    no_partial(dest)
    assert not list((tmp_path / "data/benchmarks/.cache").rglob("*.tgz*"))
    assert not hub.faults["CUB_200_2011.tgz"]  # every try was made, none more


class ArchiveServer(HttpTestServer):
    """Serves one archive at ``/archive.tgz`` (the fault vocabulary of the shared test-server base)."""

    def __init__(self, data: bytes):
        super().__init__()
        self.data = data

    def reply(self, req):
        return Reply(200, self.data, {"Content-Type": "application/gzip"}) if req.path == "/archive.tgz" \
            else Reply(404, {"error": "not found"})


@pytest.mark.parametrize("fault", [dict(kind="status", status=503, retry_after="0"), dict(kind="status", status=429),
                                   dict(kind="cut"), dict(kind="reset")], ids=["503-retry-after", "429", "cut", "reset"])
def test_archive_download_retries_transient_faults(tmp_path, monkeypatch, fault):
    """One transient fault costs one more request, and the archive arrives whole (its sha256 checked)."""
    monkeypatch.setattr(pb, "DOWNLOAD_BACKOFF_S", (0.01, 0.02))
    data = cub_archive(tmp_path / "CUB_200_2011.tgz").read_bytes()
    with ArchiveServer(data) as srv:
        srv.add_fault(**fault)
        got = pb.download(srv.url + "/archive.tgz", tmp_path / "cache/a.tgz", hashlib.sha256(data).hexdigest())
        assert srv.request_count("/archive.tgz") == 2
    assert got.read_bytes() == data and not list(got.parent.glob("*.part"))


def test_archive_download_does_not_retry_a_404(tmp_path):
    with ArchiveServer(b"x") as srv:
        with pytest.raises(pb.PrepareError, match="HTTP 404"):
            pb.download(srv.url + "/missing.tgz", tmp_path / "cache/a.tgz")
        assert srv.request_count() == 1
    assert not list((tmp_path / "cache").iterdir())


def xm_sources(tmp_path: Path) -> tuple[Path, Path]:
    recs = [{"image/key": f"{i:016x}", "image/locale": "en",
             "en": {"caption": [f"a picture number {i}", "second"], "caption/tokenized": [],
                    "caption/tokenized/lowercase": []},
             "de": {"caption": [f"Bild {i}"]}} for i in range(6)]
    recs[5].pop("en")  # no English caption: not part of the English benchmark
    cap = tmp_path / "captions.zip"
    with zipfile.ZipFile(cap, "w") as z:
        z.writestr("captions.jsonl", "".join(json.dumps(r) + "\n" for r in recs))
    img = tmp_path / "images.tgz"
    with tarfile.open(img, "w:gz") as t:
        for i in range(6):
            data = jpeg(i)
            ti = tarfile.TarInfo(f"{i:016x}.jpg")
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return cap, img


def test_xm3600_english(tmp_path):
    cap, img = xm_sources(tmp_path)
    bench = {"task": "zeroshot_retrieval", "dataset": "crossmodal3600",
             "source": {"type": "xm3600", "captions_url": cap.as_uri(), "images_url": img.as_uri()},
             "expected": {"images": 5}}
    dest = tmp_path / "data/benchmarks/xm3600"
    m = pb.prepare("xm3600", bench, dest)
    assert m["counts"] == {"images": 5, "captions_lines": 5}
    assert len(list((dest / "xm3600/images").glob("*.jpg"))) == 5
    from clip_benchmark.datasets.crossmodal3600 import create_annotation_file

    create_annotation_file(str(dest), "en")  # clip_benchmark's own loader reads the root
    ann = json.loads((dest / "crossmodal3600_captions-en.json").read_text())
    assert ann["annotations"][0] == "a picture number 0" and len(ann["image_paths"]) == 5


def inat_sources(tmp_path: Path) -> tuple[Path, Path]:
    """val.json.tar.gz + val.tar.gz in iNat 2021's layout: 3 species, 2 images each (class folders of the taxonomy)."""
    cats = [{"id": 0, "name": "Lumbricus terrestris", "common_name": "Common Earthworm"},
            {"id": 1, "name": "Coris julis", "common_name": "Mediterranean Rainbow Wrasse"},
            {"id": 2, "name": "Atherina hepsetus", "common_name": "Sand Smelt"}]
    images, annotations, blobs = [], [], {}
    for i in range(6):
        c = cats[i % 3]
        folder = f"val/{c['id']:05d}_Animalia_X_Y_Z_{c['name'].replace(' ', '_')}"
        images.append({"id": 100 + i, "file_name": f"{folder}/{i:04x}.jpg"})
        annotations.append({"id": i, "image_id": 100 + i, "category_id": c["id"]})
        blobs[f"{folder}/{i:04x}.jpg"] = jpeg(i)
    ann, img = tmp_path / "val.json.tar.gz", tmp_path / "val.tar.gz"
    with tarfile.open(ann, "w:gz") as t:
        data = json.dumps({"images": images, "annotations": annotations, "categories": cats}).encode()
        ti = tarfile.TarInfo("val.json")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    with tarfile.open(img, "w:gz") as t:
        for name, data in blobs.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return ann, img


def test_inat2021_val_with_latin_and_common_names(tmp_path):
    ann, img = inat_sources(tmp_path)
    bench = {"task": CLS, "dataset": "wds/inat2021",
             "source": {"type": "inat2021", "annotations_url": ann.as_uri(), "images_url": img.as_uri()},
             "classname_variants": {"latin": "data/benchmarks/inat2021/classnames_latin.txt",
                                    "common": "data/benchmarks/inat2021/classnames_common.txt"},
             "expected": {"images": 6, "classes": 3}}
    dest = tmp_path / "data/benchmarks/inat2021"
    m = pb.prepare("inat2021", bench, dest)
    assert m["counts"] == {"images": 6, "classes": 3, "shards": 1}
    assert (dest / "classnames_common.txt").read_text().splitlines()[1] == "Mediterranean Rainbow Wrasse"
    assert (dest / "classnames.txt").read_text() == (dest / "classnames_latin.txt").read_text()
    with tarfile.open(dest / "test/0.tar") as t:
        cls = {m.name: t.extractfile(m).read() for m in t if m.name.endswith(".cls")}
    assert cls == {f"s{100 + i:07d}.cls": str(i % 3).encode() for i in range(6)}
    with pytest.raises(pb.PrepareError, match="class-name variant 'vernacular' .* is not in the source"):
        pb.prepare("inat2021", {**bench, "classname_variants": {"vernacular": "x/classnames_vernacular.txt"}},
                   tmp_path / "v/inat2021")
    no_partial(tmp_path / "v/inat2021")
    bench["expected"]["classes"] = 4
    with pytest.raises(pb.PrepareError, match="count mismatch"):
        pb.prepare("inat2021", bench, tmp_path / "again/inat2021")
    no_partial(tmp_path / "again/inat2021")


def test_local_imagefolder_and_archive(tmp_path):
    tree = tmp_path / "val"
    for c, wnid in enumerate(["n01", "n02", "n03"]):
        (tree / wnid).mkdir(parents=True)
        for k in range(2):
            (tree / wnid / f"img{k}.JPEG").write_bytes(jpeg(c * 2 + k))
    bench = {"task": CLS, "dataset": "wds/mini",
             "source": {"type": "local", "local_path": str(tree), "classnames": ["fish", "bird", "cat"]},
             "expected": {"images": 6, "classes": 3}}
    dest = tmp_path / "data/benchmarks/mini"
    m = pb.prepare("mini", bench, dest)
    assert m["source"]["format"].startswith("ImageFolder") and m["counts"]["images"] == 6
    assert (dest / "classnames.txt").read_text().split("\n")[:3] == ["fish", "bird", "cat"]
    arc = tmp_path / "mini.tar"  # a tar of an already converted root
    with tarfile.open(arc, "w") as t:
        t.add(dest, arcname="mini")
    dest2 = tmp_path / "other/data/benchmarks/mini"
    m2 = pb.prepare("mini", {**bench, "source": {"type": "local", "local_path": str(arc)}}, dest2)
    assert m2["counts"] == m["counts"] and (dest2 / "test/0.tar").read_bytes() == (dest / "test/0.tar").read_bytes()


def test_imagenet_without_local_path_names_key_and_site(tmp_path):
    bench = {"task": CLS, "dataset": "wds/imagenet1k", "source": {"type": "local", "local_path": None}}
    dest = tmp_path / "data/benchmarks/imagenet1k"
    with pytest.raises(pb.PrepareError) as e:
        pb.prepare("imagenet1k", bench, dest)
    assert "benchmarks.imagenet1k.source.local_path" in str(e.value)
    assert "https://image-net.org/download.php" in str(e.value) and "evaluation.skip" in str(e.value)
    no_partial(dest)


def test_plan_time_check(tmp_path):
    cfg = {"benchmarks": {
        "imagenet1k": {"task": CLS, "dataset": "wds/imagenet1k", "root": "data/benchmarks/imagenet1k",
                       "source": {"type": "local", "local_path": None}},
        "cub200": {"task": CLS, "dataset": "wds/cub200", "root": "data/benchmarks/cub200",
                   "source": {"type": "cub200", "url": "https://example.invalid/CUB_200_2011.tgz"}},
        "handmade": {"task": CLS, "dataset": "wds/x", "root": "elsewhere/x"}},
        "evaluation": {"skip": []}}
    with pytest.raises(wc.ConfigError) as e:
        wc.benchmark_inputs(cfg, ["imagenet1k", "cub200"], base=tmp_path)
    assert "imagenet1k" in str(e.value) and "benchmarks.imagenet1k.source.local_path" in str(e.value)
    assert "cub200" not in str(e.value)
    with pytest.raises(wc.ConfigError, match="benchmark handmade: root 'elsewhere/x' does not exist"):
        wc.benchmark_inputs(cfg, ["handmade"], base=tmp_path)
    cfg["evaluation"]["skip"] = ["imagenet1k"]
    assert wc.benchmark_inputs(cfg, ["imagenet1k", "cub200"], base=tmp_path) == ["data/benchmarks/cub200"]
    cfg["evaluation"]["skip"] = []
    (tmp_path / "data/benchmarks/imagenet1k").mkdir(parents=True)  # prepared before: still an input, no error
    assert wc.benchmark_inputs(cfg, ["imagenet1k"], base=tmp_path) == ["data/benchmarks/imagenet1k"]


def test_nothing_evaluated_is_an_error(tmp_path):
    suite = {"a": {"task": CLS, "dataset": "wds/a", "root": str(tmp_path / "none_a")},
             "b": {"task": CLS, "dataset": "wds/b", "root": str(tmp_path / "none_b")}}
    with pytest.raises(FileNotFoundError, match="nothing evaluated"):
        ev.evaluate("d", "m", "x", "w", suite, str(tmp_path / "out"), 0, False, 8, skip=["a"], **MACS)
    df = ev.evaluate("d", "m", "x", "w", suite, str(tmp_path / "out"), 0, False, 8, skip=["a", "b"], **MACS)
    assert list(df["status"]) == ["skipped", "skipped"]


def test_baseline_tags():
    assert baselines.clip_benchmark_model("ViT-B-16", "hf-hub:imageomics/bioclip") == \
        ("hf-hub:imageomics/bioclip",) * 2
    assert baselines.clip_benchmark_model("ViT-B-32", "openai") == ("ViT-B-32", "openai")
    bioclip = "hf-hub:imageomics/bioclip"
    assert baselines.parse_baseline_tag(f"ViT-B-16__{bioclip}") == ("ViT-B-16", bioclip)


def tiny_hub_model() -> dict[str, bytes]:
    """A tiny open_clip model in the Hub's open_clip layout: open_clip_config.json + open_clip_model.safetensors."""
    import open_clip
    import torch
    from safetensors.torch import save

    from lib.train.train_openclip import register_model_configs

    register_model_configs()
    cfg = open_clip.get_model_config("EntityNet-tiny-ctx32")
    torch.manual_seed(0)
    model = open_clip.create_model("EntityNet-tiny-ctx32")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    return {"open_clip_config.json": json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}).encode(),
            "open_clip_model.safetensors": save(state)}


def test_prepared_root_evaluated_by_clip_benchmark_with_hf_hub_baseline(tmp_path, hub):
    """The baseline path end to end: a root prepared from the stand-in Hub, a tiny model that open_clip loads by
    hf-hub: from the same stand-in, the real clip_benchmark in its own process (suite_evaluation.run_jobs)."""
    hub.add_repo("clip-benchmark/wds_tiny", wds_repo_files(tmp_path, n=10, classes=5))
    hub.add_repo("entitynet-test/tiny-clip", tiny_hub_model(), repo_type="model")
    dest = tmp_path / "data/benchmarks/tiny"
    pb.prepare("tiny", hub_bench({"images": 10, "classes": 5}), dest)
    suite = {"tiny": {"task": CLS, "dataset": "wds/tiny", "root": str(dest), "template_variants": ["none"]}}
    model_arg, pretrained_arg = baselines.clip_benchmark_model("EntityNet-tiny-ctx32",
                                                               "hf-hub:entitynet-test/tiny-clip")
    df = ev.evaluate("baselines", "EntityNet-tiny-ctx32__hf-hub:entitynet-test/tiny-clip", model_arg,
                     pretrained_arg, suite, str(tmp_path / "eval"), 0, True, 4, macs_arch="EntityNet-tiny-ctx32",
                     **MACS)
    assert set(df["status"]) == {"ok"} and set(df["metric"]) == {"acc1", "acc5", "mean_per_class_recall"}
    acc1 = float(df.loc[df.metric == "acc1", "value"].iloc[0])
    assert 0.0 <= acc1 <= 1.0
    got = [r.raw_path for r in hub.requests if r.method == "GET"]
    assert any(p.endswith("/entitynet-test/tiny-clip/resolve/main/open_clip_model.safetensors") for p in got), got


def test_rule_prepares_a_root_by_target_name(tmp_path):
    """Through Snakemake: `snakemake data/benchmarks/cub200` runs prepare_benchmark on the configured source; a
    count mismatch fails the job and leaves no root (the error is in the job's log)."""
    from workflow_helpers import make_workdir, snakemake

    wd = make_workdir(tmp_path / "wd")
    arc = cub_archive(tmp_path / "CUB_200_2011.tgz")
    for expected, ok in (({"images": 4, "classes": 3}, False), ({"images": 3, "classes": 3}, True)):
        (wd / "cub.yaml").write_text(json.dumps({"benchmarks": {"cub200": {
            "source": {"type": "cub200", "url": arc.as_uri()}, "expected": expected}}}))
        r = snakemake(wd, "data/benchmarks/cub200", "--cores", "1", "--configfile", str(wd / "config/config.yaml"),
                      str(wd / "cub.yaml"), timeout=300)
        if not ok:
            assert r.returncode != 0, r.stdout[-2000:]
            assert "count mismatch (images: 3 found, 4 expected" in (wd / "logs/benchmarks/cub200.log").read_text()
            no_partial(wd / "data/benchmarks/cub200")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    m = json.loads((wd / "data/benchmarks/cub200/manifest.json").read_text())
    assert m["counts"] == {"images": 3, "classes": 3, "shards": 1} and m["source"]["url"] == arc.as_uri()
    assert m["licence"].startswith("Caltech-UCSD Birds")  # the repository config's source keys, merged


RARE_HEADER = ["rarespecies_id", "eol_content_id", "eol_page_id", "kingdom", "phylum", "class", "order", "family",
               "genus", "species", "sciName", "common", "file_name"]  # the dataset card's columns + imagefolder's
RARE_TAXA = [("Animalia", "Chordata", "Reptilia", "Testudines", "Geoemydidae", "Pangshura", "sylhetensis",
              "Assam Roofed Turtle"),
             ("Animalia", "Mollusca", "Bivalvia", "Unionida", "Unionidae", "Cyclonaias", "tuberculata",
              "purple wartyback"),
             ("Animalia", "Chordata", "Amphibia", "Caudata", "Cryptobranchidae", "Andrias", "japonicus",
              "Japanese Giant Salamander")]


def rare_species_repo(per_class=(2, 1, 3), drop_column=None) -> tuple[dict[str, bytes], list[tuple]]:
    """A miniature imageomics/rare-species: metadata.csv + dataset/<kingdom-..-species>/<content>_<page>_eol...jpg,
    rows in a shuffled (not file-name) order; also [(file_name, taxa)] of every image."""
    import csv as _csv

    files, rows, n = {}, [], 0
    for taxa, k in zip(RARE_TAXA, per_class):
        folder = "-".join(taxa[:7])
        for j in range(k):
            n += 1
            fname = f"dataset/{folder}/{1000 + n}_{77 + RARE_TAXA.index(taxa)}_eol-full-size-copy.jpg"
            files[fname] = jpeg(n)
            rows.append([f"id-{n}", 1000 + n, 77, *taxa[:7], f"{taxa[5]} {taxa[6]}", taxa[7], fname])
    rows = rows[::-1]
    header = [c for c in RARE_HEADER if c != drop_column]
    buf = io.StringIO()
    w = _csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([v for c, v in zip(RARE_HEADER, r) if c != drop_column])
    files["metadata.csv"] = buf.getvalue().encode()
    files["metadata/licenses.csv"] = b"rarespecies_id,md5\n"  # not fetched
    files["visuals/phyla_ToL_tree.png"] = jpeg(0, "PNG")  # not fetched
    return files, [(r[-1], tuple(r[3:10])) for r in rows]


def rare_bench(expected=None, revision="main"):
    return {"task": CLS, "dataset": "wds/rare_species", "root": "data/benchmarks/rare_species",
            "classname_variants": {s: f"data/benchmarks/rare_species/classnames_{s}.txt"
                                   for s in ("sci", "com", "tax", "scicom", "taxcom")},
            "source": {"type": "rare_species", "repo": "imageomics/rare-species", "revision": revision,
                       "templates": ["a photo of {c}."]},
            "expected": expected or {"images": 6, "classes": 3}}


def test_rare_species_repo_to_wds_with_five_name_styles(tmp_path, hub):
    files, images = rare_species_repo()
    commit = hub.add_repo("imageomics/rare-species", files)
    dest = tmp_path / "data/benchmarks/rare_species"
    m = pb.prepare("rare_species", rare_bench(revision=commit), dest)
    assert m["source"] == {"type": "rare_species", "repo": "imageomics/rare-species", "revision": commit,
                           "commit": commit}
    assert m["counts"] == {"images": 6, "classes": 3, "shards": 1}
    lines = {s: (dest / f"classnames_{s}.txt").read_text().splitlines() for s in ("sci", "com", "tax", "scicom",
                                                                                 "taxcom")}
    # classes: the sorted kingdom..species tuples (Amphibia < Reptilia within Chordata < Mollusca)
    assert lines["sci"] == ["Andrias japonicus", "Pangshura sylhetensis", "Cyclonaias tuberculata"]
    assert (dest / "classnames.txt").read_text().splitlines() == lines["sci"]
    assert lines["com"] == ["Japanese Giant Salamander", "Assam Roofed Turtle", "purple wartyback"]
    assert lines["tax"][2] == "Animalia Mollusca Bivalvia Unionida Unionidae Cyclonaias tuberculata"
    assert lines["scicom"][0] == "Andrias japonicus with common name Japanese Giant Salamander"
    assert lines["taxcom"][1] == ("Animalia Chordata Reptilia Testudines Geoemydidae Pangshura sylhetensis with "
                                  "common name Assam Roofed Turtle")
    assert (dest / "zeroshot_classification_templates.txt").read_text() == "a photo of {c}.\n"
    # every image once, with its own bytes and its class's label, in file-name order
    with tarfile.open(dest / "test/0.tar") as t:
        got = {m.name: t.extractfile(m).read() for m in t}
    by_name = dict(images)
    order = sorted(by_name)
    for i, fname in enumerate(order):
        assert got[f"s{i:07d}.jpg"] == files[fname]
        want = [" ".join(x[:7]) for x in sorted(t[:7] for t in RARE_TAXA)].index(" ".join(by_name[fname]))
        assert got[f"s{i:07d}.cls"] == str(want).encode()
    assert not any("metadata/" in p or "visuals/" in p for p in (r.raw_path for r in hub.requests) if "/resolve/" in p)


def test_rare_species_wrong_columns_or_counts_leave_no_root(tmp_path, hub):
    dest = tmp_path / "data/benchmarks/rare_species"
    files, _ = rare_species_repo(drop_column="sciName")
    hub.add_repo("imageomics/rare-species", files)
    with pytest.raises(pb.PrepareError, match=r"lacks the columns \['sciName'\]"):
        pb.prepare("rare_species", rare_bench(), dest)
    no_partial(dest)
    files, _ = rare_species_repo()
    hub.add_repo("imageomics/rare-species", files)
    with pytest.raises(pb.PrepareError, match="images: 6 found, 11983 expected"):
        pb.prepare("rare_species", rare_bench({"images": 11983, "classes": 400}), dest)
    no_partial(dest)
    files["metadata.csv"] += b"x,1,2,Animalia,Chordata,Aves,A,B,C,d,C d,bird,dataset/missing/1.jpg\n"
    hub.add_repo("imageomics/rare-species", files)
    with pytest.raises(pb.PrepareError, match="not in the repository, e.g. dataset/missing/1.jpg"):
        pb.prepare("rare_species", rare_bench(), dest)
    no_partial(dest)
