"""The rehearsal's benchmark *sources*: the 12 benchmark fixtures (tests/benchmark_fixtures.py) as the places rule
``prepare_benchmark`` fetches the real benchmarks from, so that the rehearsal prepares them through the rule:

* **Hugging Face Hub** (``hf_hub``: imagenetv2, imagenet-r, imagenet_sketch, imagenet-a, objectnet, mscoco_captions,
  flickr30k): one tiny dataset repository per benchmark, named as in the config (``clip-benchmark/wds_<name>``),
  whose files are the fixture's webdataset root, served by the Hub stand-in (tests/hf_hub_standin.py) that the
  unpatched ``huggingface_hub`` client reaches through ``HF_ENDPOINT``;
* **distributed archives** served over HTTP on 127.0.0.1 (the photo host): ``CUB_200_2011.tgz`` (cub200: the
  ``CUB_200_2011/`` tables and ``images/<class folder>/<file>.jpg``, every image in the test split),
  ``val.json.tar.gz`` and ``val.tar.gz`` (inat2021: COCO-style ``images``/``annotations``/``categories`` with Latin
  ``name`` and ``common_name``), ``captions.jsonl`` and ``images.tgz`` (xm3600);
* **Rare Species' image-folder repository** (``rare_species``): ``metadata.csv`` (the real columns) and
  ``dataset/<kingdom-...-species>/<content id>_<page id>_eol-full-size-copy.jpg`` made from the fixture, on the Hub
  stand-in under the config's repository name;
* **local** (imagenet1k, only ever supplied by the user): the fixture's webdataset root as a folder,
  ``source.local_path`` relative to the working directory.

:func:`build_sources` returns the Hub repositories, the archives by URL path, and per benchmark the config overlay
(``source`` keys that differ from the config, ``expected`` counts of the fixture). The archives are byte-identical on
every call (fixed tar headers, gzip mtime 0), so a rerun plans nothing new.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import re
import tarfile
from pathlib import Path

from benchmark_fixtures import expected_counts, write_benchmark_fixtures

LOCAL = ("imagenet1k", "rare_species")


def _tar(members: list[tuple[str, bytes]], gz: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = len(data), 0, 0o644, 0, 0, "", ""
            t.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw


def _lines(path: Path) -> list[str]:
    return [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def wds_samples(root: Path) -> list[tuple[str, str, bytes, int]]:
    """``(key, image extension, image bytes, label)`` of a classification fixture's single shard, in tar order."""
    images, labels = {}, {}
    with tarfile.open(root / "test" / "0.tar") as t:
        for m in t:
            key, ext = m.name.rsplit(".", 1)
            data = t.extractfile(m).read()
            if ext == "cls":
                labels[key] = int(data)
            else:
                images[key] = (ext, data)
    return [(k, images[k][0], images[k][1], labels[k]) for k in images]


def cub_archive(root: Path) -> bytes:
    """``CUB_200_2011.tgz`` from the cub200 fixture: class folders ``NNN.Name_With_Underscores``, all images test."""
    classes = _lines(root / "classnames.txt")
    folders = [f"{i + 1:03d}.{c.replace(' ', '_')}" for i, c in enumerate(classes)]
    images, split, labels, blobs = [], [], [], []
    for i, (_, ext, data, label) in enumerate(wds_samples(root), start=1):
        rel = f"{folders[label]}/{folders[label].split('.', 1)[1]}_{i:04d}.{ext}"
        images.append(f"{i} {rel}")
        split.append(f"{i} 0")
        labels.append(f"{i} {label + 1}")
        blobs.append((f"CUB_200_2011/images/{rel}", data))
    tables = {"classes.txt": [f"{i + 1} {f}" for i, f in enumerate(folders)], "images.txt": images,
              "train_test_split.txt": split, "image_class_labels.txt": labels}
    meta = [(f"CUB_200_2011/{n}", ("\n".join(rows) + "\n").encode()) for n, rows in tables.items()]
    return _tar(meta + blobs, gz=True)


def inat_archives(root: Path) -> tuple[bytes, bytes]:
    """(``val.json.tar.gz``, ``val.tar.gz``) from the inat2021 fixture: category ids in label order."""
    latin, common = _lines(root / "classnames_latin.txt"), _lines(root / "classnames_common.txt")
    cats = [{"id": i, "name": n, "common_name": c, "supercategory": "Animalia"}
            for i, (n, c) in enumerate(zip(latin, common))]
    images, anns, blobs = [], [], []
    for i, (_, ext, data, label) in enumerate(wds_samples(root), start=1):
        fname = f"val/{label:05d}_{latin[label].replace(' ', '_')}/{i:08d}.{ext}"
        images.append({"id": i, "file_name": fname, "width": 0, "height": 0})
        anns.append({"id": i, "image_id": i, "category_id": label})
        blobs.append((fname, data))
    meta = json.dumps({"images": images, "annotations": anns, "categories": cats}, sort_keys=True).encode()
    return _tar([("val.json", meta)], gz=True), _tar(blobs, gz=True)


def xm3600_archives(root: Path) -> tuple[bytes, bytes]:
    """(``captions.jsonl``, ``images.tgz`` of ``<image/key>.jpg``) from the xm3600 fixture."""
    captions = (root / "xm3600" / "captions.jsonl").read_bytes()
    imgs = sorted((root / "xm3600" / "images").glob("*.jpg"))
    return captions, _tar([(p.name, p.read_bytes()) for p in imgs], gz=True)


RARE_SPECIES_HEADER = ["rarespecies_id", "eol_content_id", "eol_page_id", "kingdom", "phylum", "class", "order",
                       "family", "genus", "species", "sciName", "common", "file_name"]


def rare_species_repo(root: Path) -> dict[str, bytes]:
    """The rare_species fixture as the ``imageomics/rare-species`` repository: ``metadata.csv`` + the images. The
    seven ranks come from ``classnames_tax.txt`` (``species`` the epithet), ``sciName`` and ``common`` from
    ``classnames_sci.txt`` / ``classnames_com.txt``; the EOL ids are made up (content id = 1000 + image number, page
    id = 100 + label)."""
    tax, sci, com = (_lines(root / f"classnames_{s}.txt") for s in ("tax", "sci", "com"))
    files, buf = {}, io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RARE_SPECIES_HEADER)
    for i, (_, ext, data, label) in enumerate(wds_samples(root), start=1):
        ranks = tax[label].split(" ")
        assert len(ranks) == 7 and " ".join(ranks[5:]) == sci[label], (tax[label], sci[label])
        fname = f"dataset/{'-'.join(ranks)}/{1000 + i}_{100 + label}_eol-full-size-copy.{ext}"
        files[fname] = data
        w.writerow([f"rehearsal-{i:04d}", 1000 + i, 100 + label, *ranks, sci[label], com[label], fname])
    files["metadata.csv"] = buf.getvalue().encode()
    return files


def root_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def build_sources(staging: Path, photos_dir: Path, benchmarks: dict, names: list[str], host_url: str,
                  local_prefix: str) -> tuple[dict, dict, dict]:
    """Write the fixtures under ``staging`` and make every benchmark's source from them. Returns ``(hub_repos,
    archives, overlay)``: ``{repo: ({path: bytes}, commit)}`` for the Hub stand-in (commit: the config's pinned
    revision when it is a commit id, else None), ``{URL path: bytes}`` for the HTTP host at
    ``host_url``, and ``{benchmark: {"source": {...}, "expected": {...}}}`` (local paths as ``local_prefix/<name>``,
    relative to the working directory)."""
    roots = write_benchmark_fixtures(staging, photos_dir, names)
    hub, archives, overlay = {}, {}, {}
    for name in names:
        root, src = roots[name], benchmarks[name]["source"]
        kind = src["type"]
        url = f"/benchmark_sources/{name}"
        if kind in ("hf_hub", "rare_species"):
            pinned = src.get("revision", "main")
            hub[src["repo"]] = (root_files(root) if kind == "hf_hub" else rare_species_repo(root),
                                pinned if re.fullmatch(r"[0-9a-f]{40}", pinned) else None)
            source = {}
        elif kind == "cub200":
            archives[f"{url}/CUB_200_2011.tgz"] = cub_archive(root)
            source = {"url": f"{host_url}{url}/CUB_200_2011.tgz"}
        elif kind == "inat2021":
            ann, img = inat_archives(root)
            archives[f"{url}/val.json.tar.gz"], archives[f"{url}/val.tar.gz"] = ann, img
            source = {"annotations_url": f"{host_url}{url}/val.json.tar.gz", "images_url": f"{host_url}{url}/val.tar.gz"}
        elif kind == "xm3600":
            cap, img = xm3600_archives(root)
            archives[f"{url}/captions.jsonl"], archives[f"{url}/images.tgz"] = cap, img
            source = {"captions_url": f"{host_url}{url}/captions.jsonl", "images_url": f"{host_url}{url}/images.tgz"}
        elif kind == "local":
            source = {"local_path": f"{local_prefix}/{name}"}
        else:
            raise ValueError(f"benchmark {name}: no rehearsal source for type {kind!r}")
        want = expected_counts(name)
        expected = {k: want[k] for k in benchmarks[name].get("expected", {})}  # the keys the config checks
        overlay[name] = {"expected": expected, **({"source": source} if source else {})}
    return hub, archives, overlay
