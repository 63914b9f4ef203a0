"""Synthetic webdataset shards of photo-like JPEGs with the shard contract (tests and the perf benchmarks)."""

import io

import numpy as np


def synthetic_image(height: int, width: int, rng: np.random.Generator):
    """A photo-like RGB PIL image: smooth multi-scale colour fields plus fine texture (JPEG q95 ≈ 2 bits/pixel)."""
    from PIL import Image

    acc = np.zeros((height, width, 3), dtype=np.float32)
    for cell, amp in ((128, 90.0), (32, 45.0), (8, 22.0), (2, 9.0)):
        gh, gw = max(2, height // cell + 2), max(2, width // cell + 2)
        grid = rng.normal(0.0, 1.0, (gh, gw, 3)).astype(np.float32)
        layer = np.stack([np.asarray(Image.fromarray(grid[..., c], mode="F").resize((width, height),
                                                                                    Image.Resampling.BICUBIC))
                          for c in range(3)], axis=-1)
        acc += amp * layer
    acc += 128.0
    return Image.fromarray(np.clip(acc, 0, 255).astype(np.uint8), mode="RGB")


def write_synthetic_shard(path, shard_index: int, per_shard: int, short_side: int, seed: int = 0,
                          n_queries: int = 20, quality: int = 95, max_aspect: float = 1.5) -> list[int]:
    """One webdataset shard of synthetic JPEGs (see :func:`write_synthetic_shards`); returns the JPEG sizes."""
    import json

    from _helpers import atomic_path
    from lib.data.shard_writer import tar_writer

    rng = np.random.default_rng([seed, shard_index])
    nbytes = []
    with atomic_path(path) as tmp:
        with tar_writer(tmp) as tar:
            for k in range(per_shard):
                long_side = int(round(short_side * rng.uniform(1.0, max_aspect)))
                h, w = (short_side, long_side) if rng.random() < 0.7 else (long_side, short_side)
                buf = io.BytesIO()
                synthetic_image(h, w, rng).save(buf, format="JPEG", quality=quality)
                q = [f"synth-noun-{int(rng.integers(n_queries))}"]
                alts = [f"synthetic photo {shard_index}-{k}"] if rng.random() < 0.8 else []
                key = f"{shard_index:05d}{k:06d}"
                meta = {"uid": key, "url": f"http://synthetic/{shard_index}/{k}.jpg", "query_ids": q,
                        "alt_texts": alts, "qids": [], "is_living": False, "licence": None}
                tar.write({"__key__": key, "jpg": buf.getvalue(), "txt": (alts[0] if alts else q[0]).encode(),
                           "json": json.dumps(meta).encode()})
                nbytes.append(len(buf.getvalue()))
    return nbytes


def _write_shard_star(a):
    return write_synthetic_shard(*a)


def write_synthetic_shards(out_dir, n_shards: int, per_shard: int, short_side: int, seed: int = 0,
                           n_queries: int = 20, quality: int = 95, max_aspect: float = 1.5,
                           processes: int = 1) -> dict:
    """Write ``{00000..}.tar`` webdataset shards of synthetic JPEGs (short side ``short_side``, random orientation and
    aspect in [1, ``max_aspect``], JPEG ``quality``) with ``.txt`` and ``.json`` (``uid, url, query_ids, alt_texts,
    qids, is_living, licence``: the shard contract), plus ``sizes.json`` and ``text_candidates.parquet`` (text-mix
    input for the synthetic ``query_ids``). Returns ``{"spec", "num_samples", "candidates", "mean_jpeg_bytes"}``.
    Each file is written atomically; ``processes > 1`` writes shards in parallel.
    """
    import json
    from pathlib import Path

    import pandas as pd
    from lib.train import text_sampler

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out / f"{s:05d}.tar", s, per_shard, short_side, seed, n_queries, quality, max_aspect)
            for s in range(n_shards)]
    if processes > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(processes, n_shards)) as pool:
            sizes = pool.map(_write_shard_star, jobs)
    else:
        sizes = [_write_shard_star(j) for j in jobs]
    from _helpers import write_json

    write_json({f"{s:05d}.tar": per_shard for s in range(n_shards)}, out / "sizes.json")
    cand = pd.DataFrame({"query_id": [f"synth-noun-{q}" for q in range(n_queries)],
                         "texts": [[f"a photo of thing {q}", f"thing {q}", f"object number {q}"]
                                   for q in range(n_queries)],
                         "weights": [[0.5, 0.3, 0.2]] * n_queries})
    text_sampler.save_candidates(cand, out / "text_candidates.parquet")
    spec = str(out / ("00000.tar" if n_shards == 1 else f"{{00000..{n_shards - 1:05d}}}.tar"))
    return {"spec": spec, "num_samples": n_shards * per_shard, "candidates": str(out / "text_candidates.parquet"),
            "mean_jpeg_bytes": float(np.mean([b for sz in sizes for b in sz]))}
