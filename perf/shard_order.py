"""How often each training shard is read: our resampled shard order vs the authors' per-epoch shuffle.

    .venv/bin/python perf/shard_order.py                   # the paper's recipe: 32.7M samples in 10,000-sample
                                                           # shards, 8 GPUs x 8 workers, 18 epochs, batch 1024/GPU
    .venv/bin/python perf/shard_order.py --samples 1e6 --epochs 4

Training passes open_clip's ``--dataset-resampled`` (``lib/train/launch.py``): every dataloader worker draws shards
*with replacement* from the full shard list (``open_clip_train.data.ResampledShards2``, deterministic: reseeded from
the worker seed and the epoch) and reads each drawn shard from its start until the worker has produced its
``num_worker_batches`` batches (``with_epoch``), the epoch being ``samples_seen / epochs`` samples. The authors read
every shard exactly once per epoch: the shard list is shuffled per epoch with a fixed seed (``detshuffle2``) and
split across nodes and workers (``split_by_node``, ``split_by_worker``). This script drives the real
``ResampledShards2`` class with the recipe's worker count and per-worker sample budget and prints, per epoch and
over the whole run, how many shards are never read, read once, or read several times (the authors' scheme: every
shard once per epoch, by construction). Shard reads are counted from the shard's start; a worker's last shard of an
epoch is read only partly and counts as read.
"""
import argparse
import math
import statistics
import sys
from collections import Counter


def worker_budget(samples: float, epochs: int, batch: int, world: int, workers: int) -> int:
    """Samples one dataloader worker yields per epoch (scripts/lib/train/train_openclip.py's with_epoch arithmetic)."""
    per_epoch = math.ceil(samples / epochs)
    num_batches = math.ceil(per_epoch / (batch * world))
    return math.ceil(num_batches / workers) * batch


def simulate(n_shards: int, shard_size: int, budget: int, world: int, workers: int, epochs: int, seed: int):
    from open_clip_train.data import ResampledShards2

    urls = [f"shard-{i:06d}.tar" for i in range(n_shards)]
    per_shard_reads = [0] * n_shards
    epoch_stats = []
    shards_per_worker = math.ceil(budget / shard_size)
    for epoch in range(epochs):
        reads = [0] * n_shards
        for rank in range(world):
            for w in range(workers):
                # Training leaves worker_seed unset, so the class seeds from pytorch_worker_seed(epoch) =
                # torch worker seed (the loader's base seed, drawn per rank, + worker id) + epoch x workers, then
                # adds nothing. The class adds `epoch` to a given worker_seed, hence the (workers - 1) here.
                base = (seed + 1) * 7_919_000_003 + rank * 1_000_003  # a distinct base seed per rank
                worker_seed = base + w + epoch * (workers - 1)
                rs = ResampledShards2(urls, deterministic=True, worker_seed=lambda s=worker_seed: s, epoch=epoch)
                it = iter(rs)
                for _ in range(shards_per_worker):
                    reads[int(next(it)["url"][6:12])] += 1
        for i, r in enumerate(reads):
            per_shard_reads[i] += r
        c = Counter(min(r, 3) for r in reads)
        epoch_stats.append({"never": c[0] / n_shards, "once": c[1] / n_shards, "twice": c[2] / n_shards,
                            "3+": c[3] / n_shards, "reads": sum(reads)})
    return epoch_stats, per_shard_reads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=float, default=32.7e6, help="training samples in the dataset")
    ap.add_argument("--epochs", type=int, default=18)
    ap.add_argument("--shard-size", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=1024, help="per process")
    ap.add_argument("--world", type=int, default=8, help="training processes (GPUs x nodes)")
    ap.add_argument("--workers", type=int, default=8, help="dataloader workers per process")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n_shards = math.ceil(args.samples / args.shard_size)
    samples_seen = args.samples * args.epochs  # the recipe's budget: one dataset's worth per epoch
    budget = worker_budget(samples_seen, args.epochs, args.batch, args.world, args.workers)
    stats, reads = simulate(n_shards, args.shard_size, budget, args.world, args.workers, args.epochs, args.seed)
    print(f"{n_shards} shards of {args.shard_size}, {args.world} x {args.workers} workers, {budget} samples per "
          f"worker and epoch ({math.ceil(budget / args.shard_size)} shard starts), {args.epochs} epochs")
    mean = {k: statistics.mean(s[k] for s in stats) for k in ("never", "once", "twice", "3+")}
    print(f"resampled (ours), per epoch, share of shards read: never {mean['never']:.1%}, once {mean['once']:.1%}, "
          f"twice {mean['twice']:.1%}, 3+ times {mean['3+']:.1%} (mean over epochs; shard starts per epoch "
          f"{stats[0]['reads']} for {n_shards} shards)")
    print(f"resampled (ours), whole run: reads per shard min {min(reads)}, max {max(reads)}, mean "
          f"{statistics.mean(reads):.2f}, sd {statistics.pstdev(reads):.2f}; never read in the run: "
          f"{sum(r == 0 for r in reads)}")
    print(f"per-epoch shuffle (authors): every shard read once per epoch, {args.epochs} times in the run (sd 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
