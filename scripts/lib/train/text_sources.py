"""What the text mix drew, counted by source: the evidence behind the alt-text ablation.

Runs inside training (``train_openclip.py`` under torchrun): the dataloader workers add each drawn text's source
(``alt``, the KG text's source list, ``none``) to a shared-memory table (:class:`TextSourceCounts`); the training
process snapshots it per epoch and writes ``<logs>/<name>/text_sources_rank<R>.json`` (:class:`TextSourceLog`,
through :class:`SourceCountingLoader`'s epoch hook); ``launch.py`` sums the ranks' files with
:func:`summarize_sources` into ``train_summary.json``.
"""
import json
import logging
import os
from pathlib import Path

class TextSourceCounts:
    """How many texts of each source the text step drew, counted where they are drawn.

    One shared-memory ``int64`` tensor ``[slots, len(names)]``; a drawing process adds to its own row (the dataloader
    worker id; row 0 in the training process itself with ``--workers 0``), so no two processes write one cell and no
    lock is needed. Forked workers inherit the shared mapping; spawned workers get the tensor through torch's
    pickling of shared tensors (the same storage, not a copy), as :class:`lib.train.cpu_share.CpuShare` does. A
    source not in ``names`` is counted as ``other``.
    """

    OTHER = "other"

    def __init__(self, names, slots: int = 1):
        names = list(dict.fromkeys(list(names) + [self.OTHER]))
        self.names = names
        self._index = {n: i for i, n in enumerate(names)}
        import torch

        self.counts = torch.zeros((max(1, int(slots)), len(names)), dtype=torch.int64).share_memory_()
        self._view = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_view"] = None  # a numpy view is per process; the tensor itself pickles as shared memory
        return state

    def add(self, source: str, n: int = 1) -> None:
        """Drawing side: ``n`` more texts of ``source``, in this process's row."""
        view = self._view
        if view is None:
            import torch.utils.data as tud

            info = tud.get_worker_info()
            slot = (info.id if info is not None else 0) % self.counts.shape[0]
            view = self._view = self.counts[slot].numpy()  # shares the tensor's memory
        j = self._index.get(source)
        view[self._index[self.OTHER] if j is None else j] += n

    def totals(self):
        """The counts summed over the rows (a numpy int64 vector aligned with ``names``)."""
        return self.counts.sum(dim=0).numpy().copy()


class TextSourceLog:
    """The training process's side of :class:`TextSourceCounts`: per-epoch snapshots, written to a JSON file.

    :meth:`begin_epoch` (the epoch's data starts) and :meth:`snapshot` (its data ended, or training returned)
    attribute the draws since the previous snapshot to the current epoch (1-based, as the checkpoints
    ``epoch_<N>.pt``). The total is exact: every text drawn is counted once, and in this pipeline every text drawn
    is trained on (text step after the image step, :func:`eager_batched`). The per-epoch split is approximate by
    contract: here workers draw only inside an epoch's iteration (``with_epoch`` bounds it; persistent workers wait
    between epochs), so it comes out exact, but a loader that prefetched across an epoch boundary would move those
    draws to the neighbouring epoch.

    ``path`` is rewritten atomically at each snapshot, merged with what an earlier attempt wrote: its epochs up to
    ``start_epoch`` (those in the checkpoint this attempt resumed from) are kept, later ones (an epoch the earlier
    attempt did not finish, now retrained) are replaced by this attempt's counts.
    """

    def __init__(self, counts: TextSourceCounts, path: str | os.PathLike | None, start_epoch: int = 0,
                 rank: int = 0, world_size: int = 1, alt_text_chance: float | None = None):
        import numpy as np

        self.counts = counts
        self.path = Path(path) if path else None
        self.start_epoch = int(start_epoch)
        self.meta = {"rank": int(rank), "world_size": int(world_size), "alt_text_chance": alt_text_chance}
        self._base = np.zeros(len(counts.names), dtype=np.int64)
        self._epoch: int | None = None
        self.per_epoch: dict[int, dict[str, int]] = {}
        self.earlier = self._read_earlier()

    def _read_earlier(self) -> dict[int, dict[str, int]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            old = json.loads(self.path.read_text()).get("per_epoch", {})
            return {int(k): {s: int(n) for s, n in v.items()} for k, v in old.items() if int(k) <= self.start_epoch}
        except (ValueError, AttributeError, TypeError) as exc:  # a damaged file is not worth failing a run over
            logging.getLogger("entitynet").warning("ignoring unreadable %s: %s", self.path, exc)
            return {}

    def begin_epoch(self, epoch: int) -> None:
        """The data of 0-based ``epoch`` starts: earlier draws (none, normally) go to the previous epoch."""
        self.snapshot()
        self._epoch = int(epoch) + 1

    def snapshot(self) -> dict:
        """Attribute the draws since the last snapshot to the current epoch, write the file, return its content."""
        now = self.counts.totals()
        delta, self._base = now - self._base, now
        if delta.any():
            epoch = self._epoch if self._epoch is not None else self.start_epoch + 1
            row = self.per_epoch.setdefault(epoch, {})
            for name, n in zip(self.counts.names, delta.tolist()):
                if n:
                    row[name] = row.get(name, 0) + int(n)
        return self.write()

    def content(self) -> dict:
        merged = {**{e: c for e, c in self.earlier.items() if e not in self.per_epoch}, **self.per_epoch}
        per_epoch = {str(e): dict(sorted(merged[e].items())) for e in sorted(merged)}
        return {**self.meta, **summarize_sources(per_epoch)}

    def write(self) -> dict:
        out = self.content()
        if self.path is not None:
            from _helpers import write_json

            write_json(out, self.path)
        return out


def summarize_sources(per_epoch: dict[str, dict[str, int]]) -> dict:
    """``{"per_epoch", "total", "draws", "alt_share"}`` from per-epoch source counts (``alt_share`` None without
    draws)."""
    total: dict[str, int] = {}
    for counts in per_epoch.values():
        for name, n in counts.items():
            total[name] = total.get(name, 0) + int(n)
    draws = sum(total.values())
    return {"per_epoch": per_epoch, "total": dict(sorted(total.items())), "draws": draws,
            "alt_share": total.get("alt", 0) / draws if draws else None}


class SourceCountingLoader:
    """The training loader with an epoch hook: :meth:`TextSourceLog.begin_epoch` when an epoch's iteration starts,
    :meth:`TextSourceLog.snapshot` when its data is exhausted (before upstream saves that epoch's checkpoint, so a
    checkpoint never exists without its epoch's counts on disk). Everything else is the wrapped loader's."""

    def __init__(self, loader, log: TextSourceLog, shared_epoch):
        self.loader = loader
        self.log = log
        self.shared_epoch = shared_epoch
        self.num_batches = loader.num_batches
        self.num_samples = loader.num_samples

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name):
        if name == "loader":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self):
        self.log.begin_epoch(self.shared_epoch.get_value())
        yield from self.loader
        self.log.snapshot()


def text_sources_path(args) -> Path | None:
    """``<logs>/<name>/text_sources_rank<R>.json``, or None when upstream keeps no logs (``--logs none``)."""
    logs = getattr(args, "logs", None)
    if not logs or str(logs).lower() == "none" or not getattr(args, "name", None):
        return None
    return Path(logs) / args.name / f"text_sources_rank{int(getattr(args, 'rank', 0))}.json"
