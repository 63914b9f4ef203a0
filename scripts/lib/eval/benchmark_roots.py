"""Preparation of one evaluation benchmark root from its configured source (rule ``prepare_benchmark``).

``data/benchmarks/{benchmark}/`` is written in the layout clip_benchmark 1.6.2 reads, plus ``manifest.json``
(source, pinned/resolved revision, sha256 of every file, image/class counts). Sources
(``benchmarks.<name>.source.type``):

* ``hf_hub``: a clip-benchmark webdataset repository (``clip-benchmark/wds_<name>``) fetched with
  ``huggingface_hub.snapshot_download`` at ``source.revision`` into ``source.cache_dir`` (the Hub cache layout).
  Every file is checked against the Hub's own listing before it is used: LFS files by their sha256, the others by
  their git blob id. ``HF_ENDPOINT`` selects the Hub (as for every huggingface_hub client).
* ``cub200``: ``CUB_200_2011.tgz`` as Caltech distributes it (``source.url``, optional ``source.sha256``); the
  test split (``train_test_split.txt`` 0) becomes webdataset shards; class names from ``classes.txt``
  (``001.Black_footed_Albatross`` -> ``Black footed Albatross``), the raw folder names kept as the ``raw`` variant.
* ``xm3600``: Crossmodal-3600 as Google distributes it (``source.captions_url``: a zip or the ``captions.jsonl``
  itself; ``source.images_url``: a tar(.gz) of ``<image/key>.jpg``), written as ``xm3600/captions.jsonl`` and
  ``xm3600/images/`` (clip_benchmark's ``crossmodal3600`` loader). Only images with English captions count.
* ``inat2021``: the iNaturalist 2021 validation set as distributed (``source.images_url``: ``val.tar.gz``;
  ``source.annotations_url``: ``val.json`` or ``val.json.tar.gz``); Latin and common class names from its categories.
* ``rare_species``: the Rare Species dataset repository on the Hub (``source.repo``, e.g. ``imageomics/rare-species``
  at ``source.revision``): ``metadata.csv`` (one row per image: ``file_name`` relative to the repository, the seven
  ranks ``kingdom`` .. ``species`` with ``species`` the epithet, ``sciName``, ``common``) and the images it names,
  fetched and verified as for ``hf_hub``. Every image is test data; one class per distinct kingdom..species, in
  sorted order; the class-name styles ``classnames_{sci,com,tax,scicom,taxcom}.txt`` (``classnames.txt`` = sci).
* ``local``: a user-supplied folder or tar archive (``source.local_path``) that is already a clip_benchmark
  webdataset root, or (ImageNet-1k) an ImageFolder validation tree ``<wnid>/<image>`` whose class names are
  OpenAI's ImageNet names in sorted-wnid order. ImageNet's licence forbids redistribution: it is only ever local.

Counts are recounted from what was written (tar members, jsonl lines) and compared with
``benchmarks.<name>.expected`` (``images``, ``classes``); any mismatch is an error. The root is built in a temporary
sibling folder and renamed into place only when complete: a failed preparation leaves no root behind.
"""

import csv
import fnmatch
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from lib.common.http_retry import RETRYABLE_STATUS, parse_retry_after, retry_wait
from lib.data.shard_writer import tar_writer
from lib.eval.benchmarks import local_missing_message

log = logging.getLogger("entitynet.benchmark_roots")

SOURCES = ("hf_hub", "cub200", "xm3600", "inat2021", "rare_species", "local")
IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")
DOWNLOAD_TRIES = 4  # attempts at one archive download (the first one included)
DOWNLOAD_BACKOFF_S = (5.0, 120.0)  # base and cap of the backoff between them, in seconds
MAX_RETRY_AFTER_S = 600.0  # a longer Retry-After is cut to this
HF_PATTERNS = ["test/*", "classnames*.txt", "zeroshot_classification_templates.txt", "dataset_type.txt"]  # no train split


class PrepareError(RuntimeError):
    """A benchmark could not be prepared (the message names the benchmark and what to do)."""


# ---------------------------------------------------------------- helpers

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_blob_id(path: Path) -> str:
    """The git object id of a file (what the Hub lists as ``oid`` for a non-LFS file)."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class TransientDownloadError(OSError):
    """One attempt at a download failed in a way worth another (connection, timeout, 408/429/5xx, a body that broke
    off or is shorter than its Content-Length); ``retry_after`` is the server's ``Retry-After`` in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _fetch_once(url: str, part: Path) -> None:
    """One attempt: ``url`` into ``part``; :class:`TransientDownloadError` for what a retry may cure,
    :class:`PrepareError` for what it cannot (404, 403, a bad URL)."""
    try:
        with urllib.request.urlopen(url, timeout=120) as r, open(part, "wb") as f:
            expected, n = r.headers.get("Content-Length"), 0
            try:
                while block := r.read(1 << 20):
                    f.write(block)
                    n += len(block)
            except (OSError, http.client.HTTPException) as e:  # IncompleteRead, reset, timeout mid-body
                raise TransientDownloadError(f"download of {url} broke off after {n} bytes: {e!r}") from e
    except urllib.error.HTTPError as e:
        if e.code in RETRYABLE_STATUS:
            raise TransientDownloadError(f"download of {url}: HTTP {e.code}",
                                         parse_retry_after(e.headers.get("Retry-After"))) from e
        raise PrepareError(f"download of {url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        raise TransientDownloadError(f"download of {url} failed: {getattr(e, 'reason', e)!r}") from e
    if expected is not None and n != int(expected):
        raise TransientDownloadError(f"download of {url} truncated: {n} of {expected} bytes")


def download(url: str, dest: Path, sha256: str | None = None, tries: int | None = None) -> Path:
    """Fetch ``url`` (http(s) or file:) to ``dest`` (kept as a cache; reused when its sha256 matches).

    Transient failures are retried, ``tries`` attempts in all (default :data:`DOWNLOAD_TRIES`), waiting as every
    HTTP client of the workflow does (:func:`lib.common.http_retry.retry_wait`: the server's ``Retry-After``, else
    exponential backoff with jitter, :data:`DOWNLOAD_BACKOFF_S`). A body still short after the last try, a sha256
    mismatch or a non-retryable status is an error and leaves no file."""
    tries = DOWNLOAD_TRIES if tries is None else tries
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    part = dest.with_name(dest.name + ".part")
    for attempt in range(tries):
        try:
            _fetch_once(url, part)
            break
        except TransientDownloadError as e:
            part.unlink(missing_ok=True)
            if attempt + 1 >= tries:
                raise PrepareError(f"{e} (giving up after {tries} tries)") from e
            base_s, max_s = DOWNLOAD_BACKOFF_S
            wait = retry_wait(attempt, e.retry_after, base_s, max_s, max_retry_after_s=MAX_RETRY_AFTER_S)
            log.warning("%s; try %d of %d in %.1f s", e, attempt + 2, tries, wait)
            time.sleep(wait)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    if sha256 is not None and (got := sha256_file(part)) != sha256:
        part.unlink()
        raise PrepareError(f"checksum mismatch for {url}: sha256 {got}, expected {sha256}")
    os.replace(part, dest)
    return dest


def write_wds(root: Path, samples, classnames: list[str] | None, templates: list[str] | None = None,
              per_shard: int = 10000) -> None:
    """Write ``samples`` (``(key, ext, image bytes, label int | captions list)``) as ``root/test/{i}.tar`` with
    ``nshards.txt``, and ``classnames.txt``/templates (classification) or ``dataset_type.txt`` (retrieval)."""
    test = root / "test"
    test.mkdir(parents=True, exist_ok=True)
    shard, n, tar = 0, 0, None
    for key, ext, data, target in samples:
        if tar is None or n == per_shard:
            if tar is not None:
                tar.close()
                shard += 1
            tar, n = tar_writer(test / f"{shard}.tar"), 0
        label = (str(target) if isinstance(target, int) else "\n".join(target)).encode()
        tar.write({"__key__": key, ext: data, "cls" if isinstance(target, int) else "txt": label})
        n += 1
    if tar is None:
        raise PrepareError(f"{root.name}: no samples to write")
    tar.close()
    (test / "nshards.txt").write_text(f"{shard + 1}\n")
    if classnames is None:
        (root / "dataset_type.txt").write_text("retrieval\n")
    else:
        (root / "classnames.txt").write_text("\n".join(classnames) + "\n")
        if templates:
            (root / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")


# ---------------------------------------------------------------- counting

def count_root(root: Path, dataset: str) -> dict:
    """Images (and classes) in a prepared root, recounted from the files: wds tar members or xm3600 jsonl."""
    root = Path(root)
    if dataset == "crossmodal3600":
        lines = (root / "xm3600" / "captions.jsonl").read_text(encoding="utf-8").splitlines()
        keys = [json.loads(x)["image/key"] for x in lines if x.strip()]
        present = [k for k in keys if (root / "xm3600" / "images" / f"{k}.jpg").exists()]
        return {"images": len(present), "captions_lines": len(keys)}
    nshards = int((root / "test" / "nshards.txt").read_text())
    keys = set()
    for i in range(nshards):
        shard = root / "test" / f"{i}.tar"
        if not shard.exists():
            raise PrepareError(f"{root}: test/nshards.txt says {nshards} shards, {shard.name} is missing")
        with tarfile.open(shard) as t:
            keys |= {(i, m.name.rsplit(".", 1)[0]) for m in t if m.isfile() and
                     m.name.rsplit(".", 1)[-1].lower() in IMAGE_EXTS}
    out = {"images": len(keys), "shards": nshards}
    cls = root / "classnames.txt"
    if cls.exists():
        out["classes"] = len([x for x in cls.read_text().splitlines() if x.strip()])
    return out


def check_counts(name: str, counts: dict, expected: dict | None) -> None:
    bad = {k: (counts.get(k), v) for k, v in (expected or {}).items() if counts.get(k) != v}
    if bad:
        rows = ", ".join(f"{k}: {got} found, {want} expected" for k, (got, want) in sorted(bad.items()))
        raise PrepareError(f"benchmark {name}: count mismatch ({rows}; benchmarks.{name}.expected); the source is "
                           "incomplete or not the pinned version")


# ---------------------------------------------------------------- sources

def hub_snapshot(name: str, src: dict, default_patterns: list[str]) -> tuple[Path, list[str], dict]:
    """Snapshot of a Hub dataset repo (``source.allow_patterns`` or ``default_patterns``), every fetched file verified
    against the Hub's listing. Returns (snapshot folder, the verified paths, manifest info)."""
    from huggingface_hub import HfApi, snapshot_download

    repo, revision = src["repo"], src.get("revision", "main")
    cache = Path(src.get("cache_dir") or "data/benchmarks/.hf_cache")
    patterns = src.get("allow_patterns") or default_patterns
    try:
        endpoint = os.environ.get("HF_ENDPOINT") or None  # read now, not at huggingface_hub's import
        snap = Path(snapshot_download(repo, repo_type="dataset", revision=revision, cache_dir=str(cache),
                                      endpoint=endpoint, allow_patterns=patterns))
        listing = {f.path: f for f in HfApi(endpoint=endpoint).list_repo_tree(repo, repo_type="dataset", revision=snap.name,
                                                               recursive=True) if hasattr(f, "blob_id")}
    except PrepareError:
        raise
    except Exception as e:
        raise PrepareError(f"benchmark {name}: download of {repo}@{revision} failed: {type(e).__name__}: {e}") from e
    listing = {p: e for p, e in listing.items() if any(fnmatch.fnmatch(p, pat) for pat in patterns)}
    for rel, entry in sorted(listing.items()):
        f = snap / rel
        if entry.lfs is not None:
            ok = f.exists() and sha256_file(f) == entry.lfs.sha256
        else:
            ok = f.exists() and git_blob_id(f) == entry.blob_id
        if not ok:
            if f.exists():
                blob = f.resolve()
                f.unlink()
                blob.unlink(missing_ok=True)  # a bad blob must not be reused by the next attempt
            raise PrepareError(f"benchmark {name}: checksum mismatch for {repo}@{snap.name}:{rel} (Hub listing "
                               f"{'sha256 ' + entry.lfs.sha256 if entry.lfs else 'blob ' + entry.blob_id})")
    return snap, sorted(listing), {"repo": repo, "revision": revision, "commit": snap.name}


def from_hf_hub(name: str, src: dict, tmp: Path) -> dict:
    """Snapshot of a clip-benchmark webdataset repo, every file verified against the Hub's listing, copied in."""
    snap, paths, info = hub_snapshot(name, src, HF_PATTERNS)
    for rel in paths:
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(snap / rel, dest)
    return info


RARE_SPECIES_PATTERNS = ["metadata.csv", "dataset/*/*.jpg"]
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
RARE_SPECIES_COLUMNS = ("file_name", *RANKS, "sciName", "common")


def rare_species_classes(rows: list[dict]) -> tuple[list[tuple], dict[tuple, dict[str, str]]]:
    """Classes of Rare Species ``metadata.csv`` rows: the sorted distinct kingdom..species tuples, and per class its
    five name styles (sci: ``sciName``; com: ``common``; tax: the seven ranks joined by spaces; scicom / taxcom:
    ``"<sci|tax> with common name <com>"``). A class whose rows disagree on ``sciName`` is an error."""
    names: dict[tuple, dict[str, str]] = {}
    for row in rows:
        taxa = tuple(row[r].strip() for r in RANKS)
        sci, com = row["sciName"].strip(), row["common"].strip() or row["sciName"].strip()
        seen = names.setdefault(taxa, {"sci": sci, "com": com, "tax": " ".join(taxa)})
        if seen["sci"] != sci:
            raise ValueError(f"class {' '.join(taxa)!r} has two scientific names: {seen['sci']!r}, {sci!r}")
    for n in names.values():
        n["scicom"] = f"{n['sci']} with common name {n['com']}"
        n["taxcom"] = f"{n['tax']} with common name {n['com']}"
    return sorted(names), names


def from_rare_species(name: str, src: dict, tmp: Path) -> dict:
    """The Rare Species repository (``metadata.csv`` + ``dataset/<taxa>/<image>.jpg``) as a wds root with the five
    class-name styles; every image is one test sample (rows in ``file_name`` order)."""
    snap, paths, info = hub_snapshot(name, src, RARE_SPECIES_PATTERNS)
    try:
        with open(snap / "metadata.csv", newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in RARE_SPECIES_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"metadata.csv lacks the columns {missing} (has {reader.fieldnames})")
            rows = sorted(reader, key=lambda r: r["file_name"])
        order, names = rare_species_classes(rows)
        label = {taxa: i for i, taxa in enumerate(order)}
        fetched = set(paths)
        absent = [r["file_name"] for r in rows if r["file_name"] not in fetched]
        if absent:
            raise ValueError(f"{len(absent)} images named in metadata.csv are not in the repository, e.g. {absent[0]}")

        def samples():
            for i, row in enumerate(rows):
                yield (f"s{i:07d}", "jpg", (snap / row["file_name"]).read_bytes(),
                       label[tuple(row[r].strip() for r in RANKS)])

        write_wds(tmp, samples(), [names[t]["sci"] for t in order], src.get("templates"))
    except (KeyError, ValueError, OSError, csv.Error) as e:
        raise PrepareError(f"benchmark {name}: {info['repo']}@{info['commit']} is not a Rare Species repository as "
                           f"expected ({type(e).__name__}: {e})") from e
    for style in ("sci", "com", "tax", "scicom", "taxcom"):
        (tmp / f"classnames_{style}.txt").write_text("".join(names[t][style] + "\n" for t in order))
    return info


def _clean_cub(folder: str) -> str:
    return folder.split(".", 1)[-1].replace("_", " ")


def from_cub200(name: str, src: dict, tmp: Path, cache: Path) -> dict:
    """CUB-200-2011's test split (``train_test_split.txt`` 0) from the distributed ``CUB_200_2011.tgz``."""
    archive = download(src["url"], cache / "CUB_200_2011.tgz", src.get("sha256"))
    try:
        with tarfile.open(archive) as t:
            def text(member):
                return t.extractfile(f"CUB_200_2011/{member}").read().decode().split("\n")

            def table(member):
                return dict(x.split(" ", 1) for x in text(member) if x.strip())

            images, split, labels = table("images.txt"), table("train_test_split.txt"), table(
                "image_class_labels.txt")
            classes = sorted(table("classes.txt").items(), key=lambda kv: int(kv[0]))
            raw = [folder for _, folder in classes]

            def samples():
                for image_id in sorted((i for i, s in split.items() if s.strip() == "0"), key=int):
                    data = t.extractfile(f"CUB_200_2011/images/{images[image_id].strip()}").read()
                    yield f"s{int(image_id):07d}", "jpg", data, int(labels[image_id]) - 1

            write_wds(tmp, samples(), [_clean_cub(f) for f in raw], src.get("templates"))
    except (KeyError, tarfile.TarError, EOFError, OSError) as e:
        raise PrepareError(f"benchmark {name}: {archive} is not a complete CUB_200_2011.tgz ({e})") from e
    (tmp / "classnames_raw.txt").write_text("\n".join(raw) + "\n")
    return {"url": src["url"], "archive_sha256": sha256_file(archive)}


def from_xm3600(name: str, src: dict, tmp: Path, cache: Path) -> dict:
    """Crossmodal-3600: captions.jsonl (plain or in a zip) and the images archive, English captions only."""
    cap = download(src["captions_url"], cache / Path(src["captions_url"]).name, (src.get("sha256") or {}).get(
        "captions"))
    img = download(src["images_url"], cache / Path(src["images_url"]).name, (src.get("sha256") or {}).get("images"))
    out = tmp / "xm3600"
    (out / "images").mkdir(parents=True)
    try:
        if zipfile.is_zipfile(cap):
            with zipfile.ZipFile(cap) as z:
                member = next(m for m in z.namelist() if m.endswith("captions.jsonl"))
                lines = z.read(member).decode("utf-8").splitlines()
        else:
            lines = cap.read_text(encoding="utf-8").splitlines()
        records = [json.loads(x) for x in lines if x.strip()]
        english = [r for r in records if (r.get("en") or {}).get("caption")]
        keys = {r["image/key"] for r in english}
        with tarfile.open(img) as t:
            for m in t:
                stem = Path(m.name).stem
                if m.isfile() and stem in keys and m.name.lower().endswith(".jpg"):
                    (out / "images" / f"{stem}.jpg").write_bytes(t.extractfile(m).read())
    except (StopIteration, KeyError, ValueError, tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise PrepareError(f"benchmark {name}: Crossmodal-3600 sources unreadable ({type(e).__name__}: {e})") from e
    (out / "captions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in english),
                                        encoding="utf-8")
    return {"captions_url": src["captions_url"], "images_url": src["images_url"],
            "captions_sha256": sha256_file(cap), "images_sha256": sha256_file(img)}


def _json_member(path: Path) -> dict:
    """A JSON file, plain or as the single ``.json`` member of a tar(.gz) archive."""
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            member = next(m for m in t if m.isfile() and m.name.endswith(".json"))
            return json.loads(t.extractfile(member).read())
    return json.loads(Path(path).read_text())


def from_inat2021(name: str, src: dict, tmp: Path, cache: Path) -> dict:
    """iNaturalist 2021 validation as distributed: ``val.json`` (COCO style: ``images``, ``annotations``,
    ``categories`` with ``name`` and ``common_name``; plain or in ``val.json.tar.gz``) and ``val.tar.gz``. Labels are
    the category ids; class names the Latin ``name`` (``classnames.txt``, ``classnames_latin.txt``) and the
    ``common_name`` (``classnames_common.txt``)."""
    sha = src.get("sha256") or {}
    ann = download(src["annotations_url"], cache / Path(src["annotations_url"]).name, sha.get("annotations"))
    img = download(src["images_url"], cache / Path(src["images_url"]).name, sha.get("images"))
    try:
        meta = _json_member(ann)
        cats = sorted(meta["categories"], key=lambda c: int(c["id"]))
        if [int(c["id"]) for c in cats] != list(range(len(cats))):
            raise ValueError("category ids are not 0..n-1")
        label_of = {a["image_id"]: int(a["category_id"]) for a in meta["annotations"]}
        by_file = {im["file_name"].lstrip("./"): (int(im["id"]), label_of[im["id"]]) for im in meta["images"]}
        latin = [c["name"] for c in cats]
        common = [c.get("common_name") or c["name"] for c in cats]
        with tarfile.open(img) as t:
            def samples():
                for m in t:
                    hit = by_file.get(m.name.lstrip("./")) if m.isfile() else None
                    if hit:
                        yield f"s{hit[0]:07d}", "jpg", t.extractfile(m).read(), hit[1]

            write_wds(tmp, samples(), latin, src.get("templates"))
    except (StopIteration, KeyError, ValueError, tarfile.TarError, EOFError, OSError) as e:
        raise PrepareError(f"benchmark {name}: iNaturalist 2021 sources unreadable ({type(e).__name__}: {e})") from e
    (tmp / "classnames_latin.txt").write_text("\n".join(latin) + "\n")
    (tmp / "classnames_common.txt").write_text("\n".join(common) + "\n")
    return {"annotations_url": src["annotations_url"], "images_url": src["images_url"],
            "annotations_sha256": sha256_file(ann), "images_sha256": sha256_file(img)}


def imagenet_classnames() -> list[str]:
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return list(IMAGENET_CLASSNAMES)


def from_local(name: str, src: dict, tmp: Path, missing_hint: str = "") -> dict:
    """A user-supplied clip_benchmark root (folder or tar archive), or an ImageFolder tree ``<wnid>/<image>``."""
    path = src.get("local_path")
    if not path or not Path(path).exists():
        raise PrepareError(local_missing_message(name, src, path))
    path = Path(path)
    if path.is_file():
        with tarfile.open(path) as t:
            t.extractall(tmp / ".unpacked", filter="data")
        tops = [p for p in (tmp / ".unpacked").iterdir()]
        base = tops[0] if len(tops) == 1 and tops[0].is_dir() and not (tmp / ".unpacked" / "test").exists() \
            else tmp / ".unpacked"
    else:
        base = path
    if (base / "test" / "nshards.txt").exists():
        for f in sorted(base.rglob("*")):
            if f.is_file():
                dest = tmp / f.relative_to(base)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
        kind = "clip_benchmark webdataset root"
    else:
        wnids = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
        names = imagenet_classnames() if len(wnids) == 1000 else src.get("classnames") or wnids
        if len(names) != len(wnids):
            raise PrepareError(f"benchmark {name}: {path} has {len(wnids)} class folders, {len(names)} class names")

        def samples():
            n = 0
            for label, wnid in enumerate(wnids):
                for f in sorted((base / wnid).iterdir()):
                    ext = f.suffix.lower().lstrip(".")
                    if f.is_file() and ext in IMAGE_EXTS:
                        yield f"s{n:07d}", "jpg" if ext == "jpeg" else ext, f.read_bytes(), label
                        n += 1

        write_wds(tmp, samples(), names, src.get("templates"))
        kind = "ImageFolder tree (sorted class folders)"
    shutil.rmtree(tmp / ".unpacked", ignore_errors=True)
    return {"local_path": str(path), "format": kind}


# ---------------------------------------------------------------- driver

def prepare(name: str, bench: dict, dest: str | os.PathLike, cache: str | os.PathLike | None = None) -> dict:
    """Build ``dest`` for benchmark ``name`` from ``bench['source']``; return the manifest. Atomic: the root appears
    only complete and checked (counts against ``bench['expected']``)."""
    src = dict(bench.get("source") or {})
    kind = src.get("type")
    if kind not in SOURCES:
        raise PrepareError(f"benchmarks.{name}.source.type: {kind!r} is not one of {SOURCES}")
    dest = Path(dest)
    cache = Path(cache) if cache else dest.parent / ".cache" / name
    tmp = dest.parent / f".{dest.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if kind in ("hf_hub", "rare_species"):
            src.setdefault("cache_dir", str(dest.parent / ".hf_cache"))
            info = (from_hf_hub if kind == "hf_hub" else from_rare_species)(name, src, tmp)
        elif kind == "cub200":
            info = from_cub200(name, src, tmp, cache)
        elif kind == "xm3600":
            info = from_xm3600(name, src, tmp, cache)
        elif kind == "inat2021":
            info = from_inat2021(name, src, tmp, cache)
        else:
            info = from_local(name, src, tmp)
        for variant, path in (bench.get("classname_variants") or {}).items():
            rel = Path(path).name
            if not (tmp / rel).exists():
                raise PrepareError(f"benchmark {name}: class-name variant {variant!r} ({rel}) is not in the source")
        counts = count_root(tmp, bench.get("dataset", ""))
        check_counts(name, counts, bench.get("expected"))
        paths = [p for p in sorted(tmp.rglob("*")) if p.is_file()]
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in paths}
        manifest = {"benchmark": name, "source": {"type": kind, **info}, "licence": src.get("licence"),
                    "counts": counts, "files": files, "bytes": sum(p.stat().st_size for p in paths),
                    "dataset": bench.get("dataset"), "task": bench.get("task")}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("benchmark %s prepared at %s: %s", name, dest, counts)
    return manifest

