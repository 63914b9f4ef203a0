"""Benchmark of scripts/lib/data/shard_resize.py (rule ``resize_shards``): 512-px shards -> a smaller stored short
side.

    .venv/bin/python perf/bench_resize_shards.py                       # 4 x 250 images, 512 -> 384, 1 and 2 procs
    .venv/bin/python perf/bench_resize_shards.py --sides 384 448 --processes 1 4 --shards 8 --per-shard 500

Steps:

1. ``generate``: ``--shards`` x ``--per-shard`` photo-like synthetic JPEGs with a 512-px short side (aspect 1–1.5,
   70 % landscape, q95: ``synthetic_shards.write_synthetic_shards``) as ``shards/train/NNNNN.tar`` + ``sizes.json`` (the
   ``build_shards`` layout).
2. ``per image`` (one process, in memory, no tar I/O): the time of :func:`shard_resize.resize_jpeg` split into
   OpenCV decode, ``INTER_AREA`` resize (albumentations ``SmallestMaxSize``, as img2dataset's resizer) and JPEG
   encode, over the first ``--sample`` images; and the decode rate of
   the source and of the resized JPEGs with OpenCV and with PIL (the stock training loader decodes with PIL): the
   saving the smaller storage buys at training time.
3. ``shards``: :func:`shard_resize.resize_shards` exactly as the rule calls it, per side and process count, into a
   fresh folder: wall time, CPU time (the process and its pool workers), images/s, images/s per process and per
   CPU-second, JPEG bytes in/out. Every output is checked (short side == target on every image of the summary's
   counts; member count per tar) so a fast but wrong run cannot pass.

The load average before and after is printed: on a shared machine, images per CPU-second is the robust figure.
Results: a table on stdout, then one JSON line per measurement.
"""

import argparse
import io
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from lib.data import shard_resize as rs  # noqa: E402


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _jpegs(tar_path: Path, limit: int) -> list[bytes]:
    import tarfile

    out = []
    with tarfile.open(tar_path) as tf:
        for m in tf:
            if m.name.endswith(".jpg"):
                out.append(tf.extractfile(m).read())
                if len(out) >= limit:
                    break
    return out


def per_image(jpegs: list[bytes], side: int, quality: int, repeat: int = 2) -> dict:
    """Per-image stage times (ms) of resize_jpeg on one core, and decode rates of source vs resized JPEGs."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks PyPI at import otherwise
    import albumentations as A
    import cv2
    import numpy as np
    from PIL import Image

    cv2.setNumThreads(1)
    shrink = A.SmallestMaxSize(max_size=side, interpolation=cv2.INTER_AREA, p=1.0)  # img2dataset's downscale
    t_dec = t_res = t_enc = 0.0
    resized = []
    for _ in range(repeat):
        resized = []
        for b in jpegs:
            t0 = time.perf_counter()
            img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED)
            t1 = time.perf_counter()
            small = shrink(image=img)["image"]
            t2 = time.perf_counter()
            ok, enc = cv2.imencode(".jpg", small, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
            t3 = time.perf_counter()
            resized.append(enc.tobytes())
            t_dec, t_res, t_enc = t_dec + t1 - t0, t_res + t2 - t1, t_enc + t3 - t2
    n = len(jpegs) * repeat
    rs.resize_jpeg(jpegs[0], side, quality)  # warm-up: the first call imports img2dataset and albumentations
    t0 = time.perf_counter()
    for _ in range(repeat):
        for b in jpegs:
            rs.resize_jpeg(b, side, quality)
    t_full = time.perf_counter() - t0

    def rate(blobs, fn) -> float:
        t = time.perf_counter()
        for _ in range(repeat):
            for b in blobs:
                fn(b)
        return len(blobs) * repeat / (time.perf_counter() - t)

    def cv_dec(b):
        return cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)

    def pil_dec(b):
        with Image.open(io.BytesIO(b)) as im:
            return im.convert("RGB")

    return {"side": side, "n": n, "decode_ms": 1e3 * t_dec / n, "resize_ms": 1e3 * t_res / n,
            "encode_ms": 1e3 * t_enc / n, "resize_jpeg_ms": 1e3 * t_full / n, "resize_jpeg_per_s": n / t_full,
            "bytes_ratio": sum(map(len, resized)) / sum(map(len, jpegs)),
            "cv2_decode_per_s_src": rate(jpegs, cv_dec), "cv2_decode_per_s_out": rate(resized, cv_dec),
            "pil_decode_per_s_src": rate(jpegs, pil_dec), "pil_decode_per_s_out": rate(resized, pil_dec)}


def run_shards(src: Path, out: Path, side: int, quality: int, processes: int) -> dict:
    import tarfile

    import cv2
    import numpy as np

    shutil.rmtree(out, ignore_errors=True)
    c0, t0 = _cpu(), time.perf_counter()
    summ = rs.resize_shards(src, out, side, quality, processes)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    tot = summ["total"]
    # check: every image short side == side (the synthetic source is 512 px), member counts preserved
    bad = 0
    for tar_path in sorted((out / "train").glob("*.tar")):
        with tarfile.open(tar_path) as tf:
            ms = tf.getmembers()
            with tarfile.open(src / "train" / tar_path.name) as sf:
                assert [m.name for m in ms] == [m.name for m in sf.getmembers()], tar_path
            for m in ms:
                if m.name.endswith(".jpg"):
                    img = cv2.imdecode(np.frombuffer(tf.extractfile(m).read(), np.uint8), cv2.IMREAD_UNCHANGED)
                    bad += img is None or min(img.shape[:2]) != min(side, 512)
    assert bad == 0, f"{bad} image(s) with a wrong short side"
    assert tot["unreadable"] == 0 and tot["resized"] + tot["kept"] == tot["jpegs"]
    n = tot["jpegs"]
    return {"side": side, "processes": processes, "images": n, "wall_s": wall, "cpu_s": cpu,
            "images_per_s": n / wall, "images_per_s_per_process": n / wall / processes,
            "images_per_cpu_s": n / cpu if cpu else None, "resized": tot["resized"], "kept": tot["kept"],
            "mean_jpeg_bytes_in": tot["mean_jpeg_bytes_in"], "mean_jpeg_bytes_out": tot["mean_jpeg_bytes_out"],
            "bytes_ratio": tot["bytes_ratio"], "tar_bytes_ratio": tot["tar_bytes_out"] / tot["tar_bytes_in"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--per-shard", type=int, default=250)
    ap.add_argument("--sides", type=int, nargs="+", default=[384])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quality", type=int, default=95)
    ap.add_argument("--sample", type=int, default=200, help="images for the per-image breakdown")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    a = ap.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING)
    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench_resize_"))
    load0 = os.getloadavg()
    try:
        from lib.train import synthetic_shards

        src = work / "shards"
        t0 = time.perf_counter()
        if not (src / "train" / "sizes.json").exists():
            synthetic_shards.write_synthetic_shards(src / "train", a.shards, a.per_shard, short_side=512,
                                                    quality=a.quality, processes=min(a.shards, os.cpu_count() or 1))
        gen_s = time.perf_counter() - t0
        sample = _jpegs(src / "train" / "00000.tar", a.sample)
        img_rows = [per_image(sample, s, a.quality) for s in a.sides]
        shard_rows = [run_shards(src, work / f"shards_s{s}", s, a.quality, p) for s in a.sides for p in a.processes]
    finally:
        if not a.keep and a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()

    print(f"machine: {os.cpu_count()} cores; load average {load0[0]:.2f} before, {load1[0]:.2f} after; "
          f"{a.shards} x {a.per_shard} synthetic 512-px JPEGs (q{a.quality}) generated in {gen_s:.1f} s")
    print("\nper image, one process, in memory (ms):")
    print("| side | decode | resize | encode | resize_jpeg | img/s | bytes out/in | cv2 decode img/s src -> out "
          "| PIL decode img/s src -> out |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in img_rows:
        print(f"| {r['side']} | {r['decode_ms']:.2f} | {r['resize_ms']:.2f} | {r['encode_ms']:.2f} | "
              f"{r['resize_jpeg_ms']:.2f} | {r['resize_jpeg_per_s']:.0f} | {r['bytes_ratio']:.3f} | "
              f"{r['cv2_decode_per_s_src']:.0f} -> {r['cv2_decode_per_s_out']:.0f} "
              f"(x{r['cv2_decode_per_s_out'] / r['cv2_decode_per_s_src']:.2f}) | "
              f"{r['pil_decode_per_s_src']:.0f} -> {r['pil_decode_per_s_out']:.0f} "
              f"(x{r['pil_decode_per_s_out'] / r['pil_decode_per_s_src']:.2f}) |")
    print("\nresize_shards (tars on disk, as the rule runs it):")
    print("| side | processes | images | wall s | img/s | img/s per process | img per CPU-s | "
          "mean JPEG bytes in -> out | bytes out/in | tar bytes out/in |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in shard_rows:
        print(f"| {r['side']} | {r['processes']} | {r['images']} | {r['wall_s']:.2f} | {r['images_per_s']:.0f} | "
              f"{r['images_per_s_per_process']:.0f} | {r['images_per_cpu_s']:.0f} | "
              f"{r['mean_jpeg_bytes_in']:.0f} -> {r['mean_jpeg_bytes_out']:.0f} | {r['bytes_ratio']:.3f} | "
              f"{r['tar_bytes_ratio']:.3f} |")
    print()
    for r in img_rows:
        print(json.dumps({"step": "per_image", **r}))
    for r in shard_rows:
        print(json.dumps({"step": "shards", **r}))
    print(json.dumps({"step": "machine", "cores": os.cpu_count(), "load_before": load0, "load_after": load1}))


if __name__ == "__main__":
    main()
