"""Benchmark of rule prepare_benchmark's library (scripts/lib/eval/benchmark_roots.py): local preparation
throughput of each source type.

    .venv/bin/python perf/bench_prepare_benchmark.py             # 1,000 images per source, ~1 min on 2 shared cores
    .venv/bin/python perf/bench_prepare_benchmark.py --n 300

Synthetic photos (noise-textured 400x300 JPEGs, ~40-60 kB like a benchmark image) are served by the Hugging Face
Hub stand-in of the tests (hf_hub: snapshot, sha256 verification against the listing, copy, recount) or written as a
CUB-style .tgz, an XM3600-style captions.zip + images.tgz, an iNat-2021-style val.json.tar.gz + val.tar.gz and an ImageFolder
tree (local). The figures are the
**local** work per image (no wide-area network: the real download time is size / bandwidth on top). Each run checks
the count it prepared, so a fast but wrong preparation cannot pass unnoticed. Prints one line per source and an
estimate for each paper benchmark at the measured rate of its source type.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from lib.eval import benchmark_roots as pb  # noqa: E402
from hf_hub_standin import HubStandin  # noqa: E402

# paper benchmark -> (source type, images), as in config/config.yaml
PAPER = {"imagenet1k": ("local", 50000), "imagenetv2": ("hf_hub", 10000), "imagenet-r": ("hf_hub", 30000),
         "imagenet_sketch": ("hf_hub", 50889), "imagenet-a": ("hf_hub", 7500), "objectnet": ("hf_hub", 18574),
         "inat2021": ("inat2021", 100000), "cub200": ("cub200", 5794), "rare_species": ("local", 11983),
         "mscoco_captions": ("hf_hub", 5000), "flickr30k": ("hf_hub", 1000), "xm3600": ("xm3600", 3600)}


def photo(i: int, rng) -> bytes:
    arr = (rng.random((300, 400, 3)) * 64 + np.array([(37 * i) % 192, (91 * i) % 192, (13 * i) % 192])).astype("uint8")
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "JPEG", quality=90)
    return b.getvalue()


def add(t: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))


def timed(name, n, fn):
    t0 = time.perf_counter()
    m = fn()
    dt = time.perf_counter() - t0
    assert m["counts"]["images"] == n, (name, m["counts"])
    mb = sum(os.path.getsize(p) for p in Path(m["_dest"]).rglob("*") if p.is_file()) / 1e6
    print(f"{name:8s} {n:6d} images  {dt:7.2f} s  {n / dt:8.1f} images/s  {mb / dt:7.1f} MB/s written", flush=True)
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    n = ap.parse_args().n
    rng = np.random.default_rng(0)
    imgs = [photo(i, rng) for i in range(n)]
    print(f"{n} synthetic JPEGs, mean {np.mean([len(b) for b in imgs]) / 1e3:.1f} kB")
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cls = "zeroshot_classification"

        def run(name, bench):
            dest = tmp / "data/benchmarks" / name
            m = pb.prepare(name, bench, dest)
            m["_dest"] = dest
            return m

        # hf_hub: a clip-benchmark style repo on the stand-in
        src = tmp / "src_wds"
        pb.write_wds(src, [(f"s{i:07d}", "jpg", b, i % 100) for i, b in enumerate(imgs)],
                     [f"c{i}" for i in range(100)], per_shard=500)
        files = {str(p.relative_to(src)): p.read_bytes() for p in src.rglob("*") if p.is_file()}
        with HubStandin() as hub:
            os.environ["HF_ENDPOINT"] = hub.url
            os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
            hub.add_repo("clip-benchmark/wds_bench", files)
            rates["hf_hub"] = timed("hf_hub", n, lambda: run("hubbench", {
                "task": cls, "dataset": "wds/bench", "expected": {"images": n},
                "source": {"type": "hf_hub", "repo": "clip-benchmark/wds_bench"}}))
        # cub200: the archive layout
        arc = tmp / "CUB_200_2011.tgz"
        with tarfile.open(arc, "w:gz") as t:
            meta = {"images.txt": [], "train_test_split.txt": [], "image_class_labels.txt": [],
                    "classes.txt": [f"{c + 1} {c + 1:03d}.Bird_{c}" for c in range(200)]}
            for i, b in enumerate(imgs, 1):
                rel = f"{(i % 200) + 1:03d}.Bird_{i % 200}/img_{i}.jpg"
                meta["images.txt"].append(f"{i} {rel}")
                meta["train_test_split.txt"].append(f"{i} 0")
                meta["image_class_labels.txt"].append(f"{i} {(i % 200) + 1}")
                add(t, f"CUB_200_2011/images/{rel}", b)
            for name, lines in meta.items():
                add(t, f"CUB_200_2011/{name}", ("\n".join(lines) + "\n").encode())
        rates["cub200"] = timed("cub200", n, lambda: run("cub200", {
            "task": cls, "dataset": "wds/cub200", "expected": {"images": n},
            "source": {"type": "cub200", "url": arc.as_uri()}}))
        # xm3600
        cap, imgs_tgz = tmp / "captions.zip", tmp / "images.tgz"
        with zipfile.ZipFile(cap, "w") as z:
            z.writestr("captions.jsonl", "".join(json.dumps({"image/key": f"{i:016x}", "en": {"caption": [f"c{i}"]}})
                                                 + "\n" for i in range(n)))
        with tarfile.open(imgs_tgz, "w:gz") as t:
            for i, b in enumerate(imgs):
                add(t, f"{i:016x}.jpg", b)
        rates["xm3600"] = timed("xm3600", n, lambda: run("xm3600", {
            "task": "zeroshot_retrieval", "dataset": "crossmodal3600", "expected": {"images": n},
            "source": {"type": "xm3600", "captions_url": cap.as_uri(), "images_url": imgs_tgz.as_uri()}}))
        # inat2021: val.json.tar.gz + val.tar.gz
        ann, val = tmp / "val.json.tar.gz", tmp / "val.tar.gz"
        meta = {"images": [], "annotations": [], "categories": [{"id": c, "name": f"Genus species{c}",
                                                                 "common_name": f"c{c}"} for c in range(100)]}
        with tarfile.open(val, "w:gz") as t:
            for i, b in enumerate(imgs):
                fn = f"val/{i % 100:05d}_Animalia_Genus_species{i % 100}/{i:08x}.jpg"
                meta["images"].append({"id": i, "file_name": fn})
                meta["annotations"].append({"id": i, "image_id": i, "category_id": i % 100})
                add(t, fn, b)
        with tarfile.open(ann, "w:gz") as t:
            add(t, "val.json", json.dumps(meta).encode())
        rates["inat2021"] = timed("inat2021", n, lambda: run("inat2021", {
            "task": cls, "dataset": "wds/inat2021", "expected": {"images": n, "classes": 100},
            "source": {"type": "inat2021", "annotations_url": ann.as_uri(), "images_url": val.as_uri()}}))
        # local ImageFolder tree (ImageNet-style)
        tree = tmp / "val"
        for i, b in enumerate(imgs):
            d = tree / f"n{i % 100:08d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"img_{i}.JPEG").write_bytes(b)
        rates["local"] = timed("local", n, lambda: run("localbench", {
            "task": cls, "dataset": "wds/x", "expected": {"images": n},
            "source": {"type": "local", "local_path": str(tree)}}))
        shutil.rmtree(tmp / "data", ignore_errors=True)
    print("\nestimated local preparation time per paper benchmark at these rates (download time not included):")
    for name, (kind, images) in PAPER.items():
        print(f"  {name:16s} {kind:7s} {images:7d} images  ~{images / rates[kind] / 60:6.1f} min")


if __name__ == "__main__":
    main()
