"""Tests of scripts/lib/data/image_dedup.py on real photos (the repository's 107 Public Domain / CC0 GCompris photos in
``resources/demo/photos``, one sub-folder per GCompris activity and group) and on synthetic hashes."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from lib.common.workflow_config import dataset_config
from lib.data import hamming_index as hx
from lib.data import image_dedup as dd
from lib.data import image_hash as ih

REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO / "resources" / "demo" / "photos"
ALL_PHOTOS = sorted(PHOTOS.glob("*/*.webp"))
PLANTED = ["erase__resource/giraffe.webp", "explore_farm_animals__animals/horse.webp",
           "explore_world_animals__animals/panda.webp", "categorization__tools/hammer6.webp",
           "categorization__fishes/fish10.webp", "categorization__others/chair.webp"]
EVAL_FOLDER = ["erase__resource/kingfisher.webp", "erase__resource/red_panda.webp",
               "explore_farm_animals__animals/owl.webp"]
EVAL_WDS = ["explore_world_animals__animals/moose.webp", "categorization__others/bucket.webp"]
OTHERS = ["explore_farm_animals__animals/cat.webp", "explore_world_animals__animals/bison.webp",
          "categorization__tools/plier2.webp", "categorization__fishes/fish3.webp", "clickgame__resource/sea1.webp",
          "categorization__others/pan.webp", "explore_farm_animals__animals/pig.webp"]
#: the dedup options of a dataset that sets none: the schema's defaults (what the rule passes, resolved)
DEDUP = dataset_config({"datasets": {"x": {}}}, "x")["dedup"]
T = DEDUP["hamming_threshold"]



def load(rel: str, short_side: int = 512) -> Image.Image:
    """A photo as it would be stored by the download (RGB, short side <= 512)."""
    im = Image.open(PHOTOS / rel).convert("RGB")
    w, h = im.size
    r = min(1.0, short_side / min(w, h))
    return im.resize((round(w * r), round(h * r)), Image.Resampling.LANCZOS) if r < 1 else im


def jpeg(im: Image.Image, q: int = 95) -> bytes:
    b = io.BytesIO()
    im.convert("RGB").save(b, "JPEG", quality=q)
    return b.getvalue()


def png(im: Image.Image) -> bytes:
    b = io.BytesIO()
    im.save(b, "PNG")
    return b.getvalue()


def variants(im: Image.Image) -> dict[str, bytes]:
    """Planted near-copies: re-encoded q70, resized 50 %, cropped 1 % per side + brightened 10 %."""
    w, h = im.size
    cropped = im.crop((w // 100, h // 100, w - w // 100, h - h // 100))
    return {"q70": jpeg(im, 70),
            "half": jpeg(im.resize((w // 2, h // 2), Image.Resampling.LANCZOS)),
            "crop_bright": jpeg(ImageEnhance.Brightness(cropped).enhance(1.1), 85),
            "bright": jpeg(ImageEnhance.Brightness(im).enhance(1.1))}


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def frame(hashes, keys=None, sha=None) -> pd.DataFrame:
    n = len(hashes)
    return pd.DataFrame({"key": keys or [f"k{i:03d}" for i in range(n)],
                         "sha256": sha or [f"s{i}" for i in range(n)],
                         "phash": np.asarray(hashes, dtype=np.uint64)})


def flip(h: int, bits) -> int:
    for b in bits:
        h ^= 1 << b
    return h


# ------------------------------------------------------------------------------------------------ hashing


def test_the_photo_set_is_the_manifested_107():
    """Every test below reads these photos; a missing or extra file fails here instead of thinning the tests."""
    manifest = pd.read_csv(PHOTOS / "manifest.tsv", sep="\t")
    assert len(ALL_PHOTOS) == 107
    assert [p.relative_to(PHOTOS).as_posix() for p in ALL_PHOTOS] == sorted(manifest["local_file"])
    assert set(PLANTED + EVAL_FOLDER + EVAL_WDS + OTHERS) <= set(manifest["local_file"])


def test_hashes_bit_identical_to_imagehash():
    for rel in ALL_PHOTOS[::9]:
        gray = Image.open(rel).convert("L")
        assert ih.phash_from_gray(gray) == int(str(imagehash.phash(gray)), 16), rel
        assert ih.dhash_from_gray(gray) == int(str(imagehash.dhash(gray)), 16), rel


def test_hash_image_bytes_png_equals_imagehash_of_decoded_image():
    data = png(load(PLANTED[0]))
    sha, ph, dh = ih.hash_image_bytes(data)
    gray = Image.open(io.BytesIO(data)).convert("L")
    assert sha == hashlib.sha256(data).hexdigest()
    assert ph == int(str(imagehash.phash(gray)), 16)
    assert dh == int(str(imagehash.dhash(gray)), 16)
    assert 0 <= ph < 2**64 and 0 <= dh < 2**64


def test_jpeg_draft_decode_stays_close_to_full_decode():
    for rel in PLANTED:
        data = jpeg(load(rel))
        full = ih.phash_from_gray(Image.open(io.BytesIO(data)).convert("L"))
        assert bin(ih.hash_image_bytes(data)[1] ^ full).count("1") <= 2, rel


def test_alpha_is_matted_on_white():
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgba.paste((200, 30, 30, 255), (8, 8, 40, 40))
    white = Image.new("RGB", (64, 64), (255, 255, 255))
    white.paste((200, 30, 30), (8, 8, 40, 40))
    assert ih.hash_image_bytes(png(rgba))[1:] == ih.hash_image_bytes(png(white))[1:]


@pytest.mark.parametrize("data", [b"", b"definitely not an image", b"\xff\xd8\xff\xe0" + b"\x00" * 50])
def test_corrupt_bytes_raise_clear_error(data):
    with pytest.raises(ih.CorruptImageError, match="cannot decode"):
        ih.hash_image_bytes(data)


def test_truncated_jpeg_raises_and_names_the_image():
    data = jpeg(load(PLANTED[1]))
    with pytest.raises(ih.CorruptImageError, match="shard0.tar:x.jpg"):
        ih.hash_image_full(data[: len(data) // 2], "shard0.tar:x.jpg")
    assert issubclass(ih.CorruptImageError, ValueError)


def test_hash_webdataset_shards_streams_tars_reads_uid_and_counts_corrupt(tmp_path):
    good = {f"{i:09d}": jpeg(load(rel)) for i, rel in enumerate(OTHERS[:3])}
    members = {}
    for k, v in good.items():
        members[f"{k}.jpg"] = v
        members[f"{k}.txt"] = b"caption"
        members[f"{k}.json"] = json.dumps({"uid": f"uid{k[-1]}", "url": "http://x"}).encode()
    members["000000009.jpg"] = b"<html>not found</html>"
    members["000000010.PNG"] = png(load(OTHERS[3]))
    t0 = write_tar(tmp_path / "00000.tar", members)
    t1 = write_tar(tmp_path / "00001.tar", {"000010000.webp": (PHOTOS / OTHERS[4]).read_bytes()})
    df = ih.hash_webdataset_shards([t0, t1])
    assert df["key"].tolist() == ["000000000", "000000001", "000000002", "000000010", "000010000"]
    assert df["shard"].astype(str).tolist() == [str(t0)] * 4 + [str(t1)]
    assert df["uid"].tolist() == ["uid0", "uid1", "uid2", None, None]
    assert df["phash"].dtype == np.uint64 and df["dhash"].dtype == np.uint64
    assert df["sha256"].tolist()[0] == hashlib.sha256(good["000000000"]).hexdigest()
    assert [c["key"] for c in df.attrs["corrupt"]] == ["000000009"]
    assert "000000009" in df.attrs["corrupt"][0]["error"]
    w, h = load(OTHERS[0]).size
    assert (df["width"].iloc[0], df["height"].iloc[0]) == (w, h)
    par = ih.hash_webdataset_shards([t0, t1], processes=2)
    pd.testing.assert_frame_equal(df, par)


def test_truncated_tar_raises_or_is_skipped(tmp_path):
    t0 = write_tar(tmp_path / "00000.tar", {f"{i:04d}.jpg": jpeg(load(OTHERS[i])) for i in range(3)})
    raw = t0.read_bytes()
    bad = tmp_path / "00001.tar"
    bad.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(ih.ShardReadError, match="00001.tar"):
        ih.hash_webdataset_shards([t0, bad])
    df = ih.hash_webdataset_shards([t0, bad], on_bad_shard="skip")
    assert len(df) == 3 and set(df["shard"].astype(str)) == {str(t0)}
    assert [b["shard"] for b in df.attrs["bad_shards"]] == [str(bad)]


def test_hash_eval_set_detects_folder_and_wds_layouts(tmp_path):
    folder = tmp_path / "folderset" / "val" / "00"
    folder.mkdir(parents=True)
    (folder / "a.JPEG").write_bytes(jpeg(load(EVAL_FOLDER[0])))
    (folder / "notes.txt").write_text("ignored")
    f = ih.hash_eval_set(tmp_path / "folderset")
    assert f["key"].tolist() == ["val/00/a.JPEG"]
    wds = tmp_path / "wdsset" / "test"
    wds.mkdir(parents=True)
    write_tar(wds / "0.tar", {"s0.webp": (PHOTOS / EVAL_WDS[0]).read_bytes(), "s0.cls": b"3"})
    w = ih.hash_eval_set(tmp_path / "wdsset")
    assert w["key"].tolist() == ["s0"] and w["shard"].astype(str).tolist() == [str(wds / "0.tar")]
    with pytest.raises(FileNotFoundError):
        ih.hash_eval_set(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no decodable image"):
        ih.hash_eval_set(tmp_path / "empty")


# -------------------------------------------------------------------------------------------------- dedup


@pytest.fixture(scope="module")
def planted_frame() -> tuple[pd.DataFrame, dict[str, str]]:
    """Originals of PLANTED + OTHERS plus 4 near-copies of each PLANTED photo; returns (hash frame, key->source)."""
    rows, source = [], {}
    for rel in PLANTED + OTHERS:
        im = load(rel)
        key = f"{Path(rel).stem}-orig"
        rows.append((key, jpeg(im)))
        source[key] = rel
        if rel in PLANTED:
            for name, data in variants(im).items():
                rows.append((f"{Path(rel).stem}-{name}", data))
                source[f"{Path(rel).stem}-{name}"] = rel
    rows.append(("giraffe-exactcopy", rows[0][1]))        # byte-identical copy
    source["giraffe-exactcopy"] = PLANTED[0]
    recs = []
    for key, data in rows:
        sha, ph, dh, w, h = ih.hash_image_full(data, key)
        recs.append({"key": key, "sha256": sha, "phash": ph, "dhash": dh, "width": w, "height": h})
    df = pd.DataFrame(recs)
    df["phash"] = df["phash"].astype(np.uint64)
    return df, source


def test_planted_near_duplicates_are_grouped_and_distinct_photos_are_not(planted_frame):
    df, source = planted_frame
    g = dd.find_duplicate_groups(df, T)
    by_source = pd.Series(g.to_numpy(), index=df["key"]).groupby(df["key"].map(source).to_numpy()).nunique()
    assert (by_source == 1).all(), by_source[by_source != 1]                 # every copy found
    assert g.nunique() == len(PLANTED) + len(OTHERS)                         # nothing else merged
    assert g.tolist()[0] == 0 and g.max() == g.nunique() - 1                 # dense ids, first row first


def test_strict_threshold_misses_the_harder_copies(planted_frame):
    """Guard against a grouping that merges regardless of distance: t=0 keeps only identical pHashes together."""
    df, source = planted_frame
    g0 = dd.find_duplicate_groups(df, 0)
    assert g0.nunique() > len(PLANTED) + len(OTHERS)
    key = pd.Series(g0.to_numpy(), index=df["key"])
    assert key["giraffe-exactcopy"] == key["giraffe-orig"]


def test_false_positive_rate_on_107_distinct_photos():
    recs = [ih.hash_image_full(p.read_bytes(), str(p)) for p in ALL_PHOTOS]
    df = pd.DataFrame({"key": [str(p) for p in ALL_PHOTOS], "sha256": [r[0] for r in recs],
                       "phash": np.array([r[1] for r in recs], dtype=np.uint64)})
    g = dd.find_duplicate_groups(df, T)                   # the configured default threshold
    assert g.nunique() == 107                             # 0 false merges among 5,671 pairs
    h = df["phash"].to_numpy()
    dist = np.bitwise_count(h[:, None] ^ h[None, :])[np.triu_indices(107, 1)]
    assert dist.min() > 2 * T                             # and a safety margin (measured min: 12)


def test_transitive_groups_exact_sha_and_singletons():
    a = 0x0123456789ABCDEF
    b = flip(a, [1, 20, 40])           # d(a,b)=3
    c = flip(b, [5, 30, 60])           # d(b,c)=3, d(a,c)=6 > 4: joined only through b
    far = a ^ 0xFFFF_FFFF_0000_0000
    other = 0x0F0F_0F0F_0F0F_0F0F
    df = frame([c, far, a, b, other, other ^ 0xFF00, a],
               sha=["s_c", "s_far", "s_a", "s_b", "s_x", "s_far", "s_a2"])
    g = dd.find_duplicate_groups(df, 4).tolist()
    assert g[0] == g[2] == g[3] == g[6]                 # c-b-a chain, plus identical pHash a
    assert g[1] == g[5]                                 # same sha256 although pHashes are 8+ bits apart
    assert g[4] != g[1] and len(set(g)) == 3
    assert g == [0, 1, 0, 0, 2, 1, 0]
    assert dd.find_duplicate_groups(df, 2).nunique() == 5   # a-b, b-c are 3 bits apart: no longer joined


def test_group_ids_follow_the_frame_index_and_accept_int64_hashes():
    h = np.array([5, 5 ^ 3, 0xFFFF_0000_0000_0005, 0xFFFF_0000_0000_0005], dtype=np.uint64)
    df = pd.DataFrame({"phash": h.view(np.int64), "sha256": ["a", "b", "c", "d"]}, index=[10, 11, 12, 13])
    g = dd.find_duplicate_groups(df, 2)
    assert list(g.index) == [10, 11, 12, 13] and g.tolist() == [0, 0, 1, 1] and g.name == "group_id"
    with pytest.raises(ValueError, match="missing hash"):
        dd.find_duplicate_groups(pd.DataFrame({"phash": [1.0, None]}), T)
    with pytest.raises(ValueError, match="hamming_threshold"):
        dd.find_duplicate_groups(df, 40)


def _brute_pairs(h: np.ndarray, t: int) -> set[tuple[int, int]]:
    d = np.bitwise_count(h[:, None] ^ h[None, :])
    i, j = np.nonzero(np.triu(d <= t, 1))
    return set(zip(i.tolist(), j.tolist()))


def _clustered_hashes(rng, n: int, n_centres: int, max_flip: int) -> np.ndarray:
    centres = rng.integers(0, 2**63, n_centres, dtype=np.int64).view(np.uint64) << np.uint64(1)
    out = centres[rng.integers(0, n_centres, n)].copy()
    for i in range(n):
        for b in rng.choice(64, rng.integers(0, max_flip + 1), replace=False):
            out[i] ^= np.uint64(1) << np.uint64(b)
    return np.unique(out)


@pytest.mark.parametrize("t", [1, 4, 6])
def test_band_search_equals_brute_force(t):
    rng = np.random.default_rng(t)
    h = _clustered_hashes(rng, 900, 60, t + 3)
    truth = _brute_pairs(h, t)
    assert len(truth) > 50
    for m in (None, t + 1, t + 3):
        got = set()
        for i, j, d in hx.iter_near_pairs(h, t, m):
            assert (np.bitwise_count(h[i] ^ h[j]) == d).all() and (d <= t).all()
            got |= set(zip(np.minimum(i, j).tolist(), np.maximum(i, j).tolist()))
        assert got == truth, (t, m)


def test_cross_search_equals_brute_force_with_small_chunks():
    rng = np.random.default_rng(7)
    h = _clustered_hashes(rng, 1200, 80, 7)
    q, e, t = h[:500], h[500:], 5
    truth = set(zip(*[x.tolist() for x in np.nonzero(np.bitwise_count(q[:, None] ^ e[None, :]) <= t)]))
    got = set()
    for qi, ei, d in hx.iter_cross_pairs(e, q, t, chunk_size=64, max_candidates=40):
        got |= set(zip(qi.tolist(), ei.tolist()))
    assert len(truth) > 50 and got == truth


def test_pigeonhole_masks_cover_all_bits():
    for m, t in [(5, 4), (6, 4), (9, 8), (1, 0)]:
        masks = hx.combo_masks(m, t)
        assert len(masks) == __import__("math").comb(m, m - t)
        assert all(bin(int(x)).count("1") >= (m - t) * (64 // m) for x in masks)
    assert sum(w for _, w in hx.band_layout(6)) == 64
    with pytest.raises(ValueError, match="pigeonhole"):
        hx.combo_masks(4, 4)


def test_union_find_equals_connected_components():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    rng = np.random.default_rng(3)
    for _ in range(10):
        n, e = 500, int(rng.integers(0, 700))
        a, b = rng.integers(0, n, e), rng.integers(0, n, e)
        uf = hx.UnionFind(n)
        for s in range(0, e, 97):
            uf.union(a[s:s + 97], b[s:s + 97])
        _, lab = connected_components(coo_matrix((np.ones(e), (a, b)), shape=(n, n)), directed=False)
        roots = uf.labels()
        assert len(set(zip(roots.tolist(), lab.tolist()))) == len(set(lab.tolist())) == len(set(roots.tolist()))
        for r in set(roots.tolist()):
            assert r == np.flatnonzero(roots == r).min()


# -------------------------------------------------------------------------------------------------- merge


def url_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "uid": ["u3", "u1", "u2", "u9"],
        "url": ["http://c", "http://a", "http://b", "http://z"],
        "urls": [["http://c"], ["http://a", "http://a2"], ["http://b"], ["http://z"]],
        "query_ids": [["q2", "q3"], ["q1"], ["q1", "q4"], ["q9"]],
        "alt_texts": [["rabbit", ""], ["Rabbit"], [None, "rabbit", "bunny"], []],
        "page_urls": [["p3"], ["p1"], ["p2"], ["p9"]],
        "qids": [["Q25851"], ["Q25851"], ["Q9"], ["Q1"]],
        "is_living": [False, True, False, False],
        "licence": [None, "cc0", None, None],
        "width": [800, 400, 800, 10],
        "height": [600, 300, 600, 10],
    })


def test_merge_duplicates_unions_lists_and_keeps_the_largest_first_by_key():
    df = url_rows()
    out = dd.merge_duplicates(df, np.array([0, 0, 0, 1]), representative="largest")
    assert len(out) == 2
    m = out.iloc[0]
    assert m["uid"] == "u2"                    # largest area 800x600, tie u2 < u3 by key
    assert m["url"] == "http://b" and m["licence"] is None
    assert m["query_ids"] == ["q1", "q4", "q2", "q3"]          # representative first, then u1, u3 (key order)
    assert m["alt_texts"] == ["rabbit", "bunny", "Rabbit"]     # distinct, no None, no empty strings
    assert m["urls"] == ["http://b", "http://a", "http://a2", "http://c"]
    assert m["page_urls"] == ["p2", "p1", "p3"] and m["qids"] == ["Q9", "Q25851"]
    assert bool(m["is_living"]) is True and m["n_merged"] == 3
    single = out.iloc[1]
    assert single["uid"] == "u9" and single["n_merged"] == 1 and single["query_ids"] == ["q9"]
    first = dd.merge_duplicates(df, np.array([0, 0, 0, 1]), representative="first").iloc[0]
    assert first["uid"] == "u1" and first["query_ids"] == ["q1", "q4", "q2", "q3"]
    assert first["url"] == "http://a" and first["licence"] == "cc0"


def test_merge_duplicates_mask_and_errors():
    df = url_rows()
    out = dd.merge_duplicates(df, [0, 0, 1, 2], representative=np.array([True, False, True, True]))
    assert out["uid"].tolist() == ["u3", "u2", "u9"] and out["query_ids"].iloc[0] == ["q2", "q3", "q1"]
    with pytest.raises(ValueError, match="exactly one"):
        dd.merge_duplicates(df, [0, 0, 1, 2], representative=np.array([True, True, True, True]))
    with pytest.raises(ValueError, match="entries"):
        dd.merge_duplicates(df, [0, 0], representative="largest")


# ---------------------------------------------------------------------------------------- decontamination


@pytest.fixture(scope="module")
def eval_and_train(tmp_path_factory):
    root = tmp_path_factory.mktemp("dd")
    folder = root / "eval" / "folderset" / "val"
    for i, rel in enumerate(EVAL_FOLDER):
        (folder / f"{i:02d}").mkdir(parents=True)
        load(rel).save(folder / f"{i:02d}" / f"{Path(rel).stem}.png")
    wds = root / "eval" / "wdsset" / "test"
    wds.mkdir(parents=True)
    write_tar(wds / "0.tar", {f"s{i}.jpg": jpeg(load(rel)) for i, rel in enumerate(EVAL_WDS)})
    (wds / "nshards.txt").write_text("1")
    # training chunk dirs: copies of 2 folder-eval and 1 wds-eval images, near-copies and exact copies of PLANTED
    members, planted = {}, {}
    k = 0

    def add(data: bytes, uid: str):
        nonlocal k
        key = f"{k:09d}"
        members[f"{key}.jpg"] = data
        members[f"{key}.json"] = json.dumps({"uid": uid}).encode()
        k += 1
        return key

    planted[add(variants(load(EVAL_FOLDER[0]))["q70"], "c0")] = ("folderset", "val/00/kingfisher.png")
    planted[add(variants(load(EVAL_FOLDER[1]))["half"], "c1")] = ("folderset", "val/01/red_panda.png")
    planted[add(jpeg(load(EVAL_WDS[1])), "c2")] = ("wdsset", "s1")
    for rel in PLANTED[:3] + OTHERS[:3]:
        im = load(rel)
        add(jpeg(im), f"o-{Path(rel).stem}")
        if rel in PLANTED:
            add(variants(im)["q70"], f"v-{Path(rel).stem}")
    chunk0, chunk1 = root / "download" / "chunk_0", root / "download" / "chunk_1"
    chunk0.mkdir(parents=True)
    chunk1.mkdir(parents=True)
    items = list(members.items())
    write_tar(chunk0 / "00000.tar", dict(items[:10]))
    write_tar(chunk1 / "00000.tar", dict(items[10:]))       # keys continue: no collision here by construction
    return root, planted


def test_decontaminate_finds_planted_copies_with_counts(eval_and_train):
    root, planted = eval_and_train
    train = ih.hash_webdataset_shards(sorted((root / "download").glob("chunk_*/*.tar")))
    evals = {"folderset": ih.hash_eval_set(root / "eval" / "folderset"),
             "wdsset": ih.hash_eval_set(root / "eval" / "wdsset"),
             "clean": ih.hash_eval_set(PHOTOS / "categorization__fishes")}   # none of the training photos
    removed, counts = dd.decontaminate(train, evals, 4)
    assert counts == {"folderset": 2, "wdsset": 1, "clean": 0}
    assert set(removed["key"]) == set(planted)
    for _, r in removed.iterrows():
        assert (r["eval_set"], r["eval_key"]) == planted[r["key"]]
        assert 0 <= r["distance"] <= 4
    assert removed.loc[removed["eval_set"] == "wdsset", "distance"].tolist() == [0]
    assert train.loc[removed.index, "key"].tolist() == removed["key"].tolist()
    none, zero = dd.decontaminate(train, {"clean": evals["clean"]}, 4)
    assert len(none) == 0 and zero == {"clean": 0}


def test_dedup_downloads_gives_keep_removed_counts_drop_and_merged_urls(eval_and_train):
    root, planted = eval_and_train
    uids = ["c0", "c1", "c2"] + [f"{p}-{Path(r).stem}" for r in PLANTED[:3] for p in ("o", "v")] + \
        [f"o-{Path(r).stem}" for r in OTHERS[:3]] + ["never-downloaded"]
    urls = pd.DataFrame({"uid": uids, "url": [f"http://{u}" for u in uids],
                         "query_ids": [[f"q-{u}"] for u in uids], "is_living": [u.startswith("v-") for u in uids],
                         "width": None, "height": None})
    res = dd.dedup_downloads(sorted(str(p) for p in (root / "download").glob("chunk_*")),
                             {"folderset": str(root / "eval" / "folderset"), "wdsset": str(root / "eval" / "wdsset")},
                             4, None, representative="largest", urls=urls)
    keep, removed, counts = res.keep, res.removed, res.counts
    assert {"key", "shard", "sha256", "phash", "group_id", "representative", "uid"} <= set(keep.columns)
    assert keep["phash"].dtype == np.uint64
    assert set(removed["uid"]) == {"c0", "c1", "c2"} and set(removed["reason"]) == {"eval_match"}
    assert counts["contaminated_total"] == {"folderset": 2, "wdsset": 1}
    assert counts["n_images"] == 12 and counts["n_contaminated"] == 3 and counts["n_kept"] == 9
    assert counts["n_representatives"] == 6 and counts["n_duplicates_dropped"] == 3
    assert keep.groupby("group_id")["representative"].sum().eq(1).all()
    pairs = keep.groupby("group_id")["uid"].apply(lambda s: sorted(s)).tolist()
    assert sorted(p for p in pairs if len(p) > 1) == sorted(
        [[f"o-{Path(r).stem}", f"v-{Path(r).stem}"] for r in PLANTED[:3]])
    drop = res.drop
    assert sorted(drop["reason"].value_counts().items()) == [("duplicate", 3), ("eval_contamination", 3)]
    kept_uids = set(keep.loc[keep["representative"], "uid"])
    assert not kept_uids & set(drop["uid"])
    merged = res.urls
    assert set(merged["uid"]) == kept_uids | {"never-downloaded"}
    giraffe = merged[merged["uid"].str.endswith("giraffe")].iloc[0]
    assert sorted(giraffe["query_ids"]) == ["q-o-giraffe", "q-v-giraffe"] and bool(giraffe["is_living"])
    assert giraffe["n_merged"] == 2
    assert set(res.eval_hashes["eval_set"]) == {"folderset", "wdsset"}


def test_group_members_of_a_contaminated_image_are_removed_too():
    e = 0xF0F0_1234_5678_9ABC
    near = flip(e, [0, 1, 2, 3])               # distance 4 to the eval image: direct match
    nearer_chain = flip(near, [10, 11])        # distance 6 to eval, 2 to `near`: same group
    clean = 0x0F0F_0000_FFFF_1111
    train = frame([near, nearer_chain, clean], keys=["a", "b", "c"])
    keep, removed, counts = dd.dedup_decontaminate(train, {"ev": frame([e], keys=["e0"])}, 4,
                                                  representative=DEDUP["representative"])
    assert keep["key"].tolist() == ["c"]
    assert removed[["key", "reason", "via_key", "distance"]].values.tolist() == [
        ["a", "eval_match", "a", 4], ["b", "duplicate_of_eval_match", "a", 4]]
    assert counts["contaminated_direct"] == {"ev": 1} and counts["contaminated_total"] == {"ev": 2}
