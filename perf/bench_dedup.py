"""Benchmark of scripts/lib/data/image_dedup.py, image_hash.py and hamming_index.py: grouping and decontamination at
1M hashes, hashing throughput per core.

    .venv/bin/python perf/bench_dedup.py                 # everything, ~1-2 min on 2 shared cores
    .venv/bin/python perf/bench_dedup.py --n 200000      # smaller
    .venv/bin/python perf/bench_dedup.py --only hashing

Each memory measurement runs in a fresh child interpreter (``--child``), so ``ru_maxrss`` is that workload's own
peak: "base" is the RSS after building the input frame (the kernel's peak mark is then reset through
``/proc/self/clear_refs``), "peak" the high-water mark during the call, "delta" their difference (what the
algorithm added on top of its input). ``tracemalloc`` peaks (Python + numpy allocations during the call) are taken
in a second, separate call because tracing slows the call down. Synthetic hashes are uniform random 64-bit values
with planted near-duplicates (copies with 1..t flipped bits) and exact-byte duplicates (same sha256); recall of
the planted pairs is checked, so a fast but wrong result cannot pass unnoticed.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from lib.common.workflow_config import dataset_config  # noqa: E402
from lib.data import image_dedup as dd  # noqa: E402
from lib.data import image_hash as ih  # noqa: E402

#: the 107 real demo photos (WebP, public domain / CC0), see resources/demo/README.md
PHOTOS = REPO / "resources" / "demo" / "photos"


def rss_mib() -> float:
    """Peak RSS (MiB) since the last :func:`reset_peak` (VmHWM), else since start (ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> float:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux ``clear_refs`` 5); return the current RSS."""
    import gc
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return current_rss_mib()


def flip_bits(h: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip k[i] distinct random bits of h[i]."""
    out = h.copy()
    for i in range(int(k.max()) if len(k) else 0):
        sel = k > i
        # distinct bits: draw a permutation prefix per row
        bits = np.argsort(rng.random((int(sel.sum()), 64)), axis=1)[:, i].astype(np.uint64)
        out[sel] ^= np.uint64(1) << bits
    return out


def synthetic(n: int, t: int, seed: int = 0, near_frac: float = 0.02, exact_frac: float = 0.01):
    """n rows: random hashes + near copies (1..t bits) of random bases + exact copies (same sha256 and pHash)."""
    rng = np.random.default_rng(seed)
    n_near = int(n * near_frac)
    n_exact = int(n * exact_frac)
    n_base = n - n_near - n_exact
    h = rng.integers(0, 2**63, n_base, dtype=np.int64).view(np.uint64) * np.uint64(2) \
        + rng.integers(0, 2, n_base).astype(np.uint64)
    sha = np.array([f"{x:016x}" * 4 for x in rng.integers(0, 2**62, n_base)], dtype=object)
    src_near = rng.integers(0, n_base, n_near)
    near = flip_bits(h[src_near], rng.integers(1, t + 1, n_near), rng) if t > 0 else h[src_near]
    sha_near = np.array([f"{x:016x}" * 4 for x in rng.integers(2**62, 2**63, n_near)], dtype=object)
    src_exact = rng.integers(0, n_base, n_exact)
    df = pd.DataFrame({
        "key": pd.array([f"{i:09d}" for i in range(n)], dtype="string"),
        "sha256": pd.array(np.concatenate([sha, sha_near, sha[src_exact]]), dtype="string"),
        "phash": np.concatenate([h, near, h[src_exact]]),
    })
    planted = np.concatenate([np.stack([np.arange(n_base, n_base + n_near), src_near], 1),
                              np.stack([np.arange(n_base + n_near, n), src_exact], 1)])
    return df, planted


def child_groups(n: int, t: int, trace: bool) -> dict:
    df, planted = synthetic(n, t)
    base = reset_peak()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    g = dd.find_duplicate_groups(df, t)
    dt = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    gv = g.to_numpy()
    recall = float(np.mean(gv[planted[:, 0]] == gv[planted[:, 1]]))
    sizes = np.bincount(gv)
    # rows grouped although not planted (random collisions within t, or chains through them)
    expected_grouped = len(np.unique(planted))
    grouped = int((sizes[gv] > 1).sum())
    return {"n": n, "t": t, "seconds": dt, "rss_base_mib": base,
            "rss_peak_mib": rss_mib(), "traced_peak_mib": traced, "recall": recall, "groups": int(len(sizes)),
            "grouped_rows": grouped, "planted_rows": expected_grouped}


def child_decontam(n: int, n_eval: int, t: int, trace: bool) -> dict:
    rng = np.random.default_rng(1)
    train, _ = synthetic(n, t)
    ev = rng.integers(0, 2**63, n_eval, dtype=np.int64).view(np.uint64) * np.uint64(2)
    n_plant = 1000
    idx = rng.choice(n_eval, n_plant, replace=False)
    rows = rng.choice(n, n_plant, replace=False)
    ph = train["phash"].to_numpy().copy()
    ph[rows] = flip_bits(ev[idx], rng.integers(0, t + 1, n_plant), rng)
    train["phash"] = ph
    evals = {"evalA": pd.DataFrame({"key": [f"e{i}" for i in range(n_eval // 2)], "phash": ev[: n_eval // 2]}),
             "evalB": pd.DataFrame({"key": [f"e{i}" for i in range(n_eval // 2, n_eval)], "phash": ev[n_eval // 2:]})}
    base = reset_peak()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    removed, counts = dd.decontaminate(train, evals, t)
    dt = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    found = set(removed.index.tolist())
    recall = float(np.mean([r in found for r in rows]))
    return {"n": n, "n_eval": n_eval, "t": t, "seconds": dt, "rss_base_mib": base, "rss_peak_mib": rss_mib(),
            "traced_peak_mib": traced, "recall": recall, "removed": int(len(found)), "planted": n_plant,
            "counts": counts}


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def jpeg_corpus(short_side: int) -> list[bytes]:
    from PIL import Image
    datas = []
    for f in sorted(PHOTOS.glob("*/*.webp")):
        im = Image.open(f).convert("RGB")
        w, h = im.size
        s = short_side / min(w, h)
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
        b = io.BytesIO()
        im.save(b, "JPEG", quality=95)
        datas.append(b.getvalue())
    return datas


def bench_hashing(reps: int) -> list[dict]:
    """Images/s on one core: our hasher vs imagehash (full decode + phash + dhash) on the same bytes."""
    import hashlib

    import imagehash
    from PIL import Image

    def ours(data):
        return ih.hash_image_bytes(data)

    def ref(data):
        hashlib.sha256(data).hexdigest()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return imagehash.phash(im), imagehash.dhash(im)

    rows = []
    for short in (256, 512):
        datas = jpeg_corpus(short)
        kb = np.mean([len(x) for x in datas]) / 1024
        for name, fn in (("lib.data.image_hash.hash_image_bytes", ours), ("imagehash phash+dhash (full decode)", ref)):
            fn(datas[0])
            t0 = time.perf_counter()
            for _ in range(reps):
                for x in datas:
                    fn(x)
            dt = time.perf_counter() - t0
            rows.append({"jpeg": f"q95 short side {short} ({kb:.0f} KiB)", "method": name,
                         "img_per_s_1core": len(datas) * reps / dt})
    return rows


def bench_robustness(thresholds=(2, 4, 6, 8, 10)) -> tuple[list[dict], dict]:
    """Share of edited copies within t of their original (107 photos, stored at short side <= 512, JPEG q95), and
    the pHash distances between the 107 distinct photos (false merges at each t)."""
    from PIL import Image, ImageEnhance

    def enc(im, q=95, fmt="JPEG"):
        b = io.BytesIO()
        im.save(b, fmt, **({"quality": q} if fmt == "JPEG" else {}))
        return b.getvalue()

    def crop(im, f):
        w, h = im.size
        return im.crop((int(w * f), int(h * f), w - int(w * f), h - int(h * f)))

    edits = {
        "re-encoded JPEG q70": lambda im: enc(im, 70),
        "resized 50 %": lambda im: enc(im.resize((im.size[0] // 2, im.size[1] // 2), Image.Resampling.LANCZOS)),
        "PNG (lossless)": lambda im: enc(im, fmt="PNG"),
        "brightness +10 %": lambda im: enc(ImageEnhance.Brightness(im).enhance(1.1)),
        "brightness +20 %": lambda im: enc(ImageEnhance.Brightness(im).enhance(1.2)),
        "crop 1 % per side": lambda im: enc(crop(im, 0.01)),
        "crop 1 % + brightness +10 %, q85": lambda im: enc(ImageEnhance.Brightness(crop(im, 0.01)).enhance(1.1), 85),
        "crop 2 % per side": lambda im: enc(crop(im, 0.02)),
        "crop 5 % per side": lambda im: enc(crop(im, 0.05)),
    }
    dist = {k: [] for k in edits}
    base = []
    for f in sorted(PHOTOS.glob("*/*.webp")):
        im = Image.open(f).convert("RGB")
        w, h = im.size
        r = min(1.0, 512 / min(w, h))
        if r < 1:
            im = im.resize((round(w * r), round(h * r)), Image.Resampling.LANCZOS)
        o = ih.hash_image_bytes(enc(im))[1]
        base.append(o)
        for k, fn in edits.items():
            dist[k].append(bin(o ^ ih.hash_image_bytes(fn(im))[1]).count("1"))
    rows = [{"edit": k, "max": int(max(v)), **{f"<= {t}": float(np.mean(np.array(v) <= t)) for t in thresholds}}
            for k, v in dist.items()]
    h = np.array(base, dtype=np.uint64)
    pair = np.bitwise_count(h[:, None] ^ h[None, :])[np.triu_indices(len(h), 1)]
    fp = {"n_photos": len(h), "n_pairs": int(len(pair)), "min_distance": int(pair.min()),
          **{f"pairs <= {t}": int((pair <= t).sum()) for t in (*thresholds, 12, 14)}}
    return rows, fp


def bench_tar(processes: int) -> dict:
    """End-to-end hash_webdataset_shards on 4 tars x 214 512-px JPEGs (stream read + hash + frame)."""
    import tarfile
    import tempfile
    datas = jpeg_corpus(512) * 2
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for s in range(4):
            p = Path(tmp) / f"{s:05d}.tar"
            with tarfile.open(p, "w") as tf:
                for i, x in enumerate(datas):
                    info = tarfile.TarInfo(f"{s:05d}{i:04d}.jpg")
                    info.size = len(x)
                    tf.addfile(info, io.BytesIO(x))
            paths.append(p)
        t0 = time.perf_counter()
        df = ih.hash_webdataset_shards(paths, processes=processes)
        dt = time.perf_counter() - t0
    return {"processes": processes, "images": len(df), "seconds": dt, "img_per_s": len(df) / dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--n-eval", type=int, default=100_000)
    ap.add_argument("--t", type=int, default=dataset_config({"datasets": {"x": {}}}, "x")["dedup"]["hamming_threshold"],
                    help="Hamming threshold (default: the schema's dedup.hamming_threshold)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=["groups", "decontam", "hashing", "robustness"], default=None)
    ap.add_argument("--child", nargs="*", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        kind, *rest = a.child
        if kind == "groups":
            res = child_groups(int(rest[0]), int(rest[1]), rest[2] == "1")
        else:
            res = child_decontam(int(rest[0]), int(rest[1]), int(rest[2]), rest[3] == "1")
        print(json.dumps(res))
        return
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"cpus {os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}")
    if a.only in (None, "groups"):
        print(f"\n## find_duplicate_groups, n={a.n:,}, t={a.t} (2% near copies, 1% exact copies)")
        r = run_child(["groups", str(a.n), str(a.t), "0"])
        rt = run_child(["groups", str(a.n), str(a.t), "1"])
        print("| n | t | seconds | RSS base MiB | RSS peak MiB | RSS delta MiB | tracemalloc peak MiB | recall "
              "| groups | grouped rows (planted) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        print(f"| {r['n']:,} | {r['t']} | {r['seconds']:.1f} | {r['rss_base_mib']:.0f} | {r['rss_peak_mib']:.0f} "
              f"| {r['rss_peak_mib'] - r['rss_base_mib']:.0f} | {rt['traced_peak_mib']:.0f} | {r['recall']:.4f} "
              f"| {r['groups']:,} | {r['grouped_rows']:,} ({r['planted_rows']:,}) |")
    if a.only in (None, "decontam"):
        print(f"\n## decontaminate, train n={a.n:,} vs eval {a.n_eval:,} (2 sets), t={a.t}, 1000 planted copies")
        r = run_child(["decontam", str(a.n), str(a.n_eval), str(a.t), "0"])
        rt = run_child(["decontam", str(a.n), str(a.n_eval), str(a.t), "1"])
        print("| n train | n eval | seconds | RSS base MiB | RSS peak MiB | RSS delta MiB | tracemalloc peak MiB "
              "| recall | removed |")
        print("|---|---|---|---|---|---|---|---|---|")
        print(f"| {r['n']:,} | {r['n_eval']:,} | {r['seconds']:.1f} | {r['rss_base_mib']:.0f} "
              f"| {r['rss_peak_mib']:.0f} | {r['rss_peak_mib'] - r['rss_base_mib']:.0f} "
              f"| {rt['traced_peak_mib']:.0f} | {r['recall']:.4f} | {r['removed']} |")
    if a.only in (None, "robustness"):
        rows, fp = bench_robustness()
        ts = [k for k in rows[0] if k.startswith("<=")]
        print("\n## robustness: share of edited copies within t of the original (107 photos, 512 px q95)")
        print("| edit | max distance | " + " | ".join(f"t {k}" for k in ts) + " |")
        print("|---|---|" + "---|" * len(ts))
        for r in rows:
            print(f"| {r['edit']} | {r['max']} | " + " | ".join(f"{r[k]:.2f}" for k in ts) + " |")
        print(f"\ndistinct photos: {fp['n_pairs']} pairs, min pHash distance {fp['min_distance']}; pairs within t: "
              + ", ".join(f"{k.split()[-1]}: {v}" for k, v in fp.items() if k.startswith("pairs <=")))
    if a.only in (None, "hashing"):
        print(f"\n## hashing throughput, one core, {a.reps} passes over the 107 photos re-encoded as JPEG q95")
        print("| source | method | images/s (1 core) |")
        print("|---|---|---|")
        for row in bench_hashing(a.reps):
            print(f"| {row['jpeg']} | {row['method']} | {row['img_per_s_1core']:.0f} |")
        print("\n## hash_webdataset_shards end to end (4 tars x 214 JPEGs, 512 px q95)")
        print("| processes | images | seconds | images/s |")
        print("|---|---|---|---|")
        for p in (1, 2):
            r = bench_tar(p)
            print(f"| {r['processes']} | {r['images']} | {r['seconds']:.2f} | {r['img_per_s']:.0f} |")


if __name__ == "__main__":
    main()
