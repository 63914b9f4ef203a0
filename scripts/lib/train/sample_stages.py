"""The picklable per-sample stages of the training pipeline that come after upstream's shard stages
(``train_openclip._sample_stages`` puts them together): the sample filter, the text steps (the paper's text mix, or
upstream's ``.txt``) and batching without look-ahead.

They run in dataloader workers, so each is a class or a ``functools.partial`` of a module function (spawned workers
unpickle them by module path).
"""
import json
import random

from lib.train.text_sources import TextSourceCounts


def _eager_batched(data, batchsize: int, collation_fn=None):
    """Full batches of ``batchsize`` (a last partial one is dropped), each yielded as soon as it is complete.

    ``webdataset.batched`` yields a batch only when the sample after it arrives, so every epoch (``with_epoch``)
    would draw one sample per worker that is never trained on; this step never pulls a sample it does not use."""
    if collation_fn is None:
        from webdataset.filters import default_collation_fn as collation_fn
    batch = []
    for sample in data:
        batch.append(sample)
        if len(batch) == batchsize:
            yield collation_fn(batch)
            batch = []


def eager_batched(batchsize: int, collation_fn=None):
    """Pipeline stage of :func:`_eager_batched` (picklable: a ``functools.partial`` of a module function)."""
    import functools

    return functools.partial(_eager_batched, batchsize=int(batchsize), collation_fn=collation_fn)


class HasTextAndImage:
    """Picklable sample filter: the text key (``json`` for the text mix, else ``txt``) and one image key."""

    def __init__(self, text_key: str):
        self.text_key = text_key

    def __call__(self, sample: dict) -> bool:
        return self.text_key in sample and any(k in sample for k in ("jpg", "png", "jpeg", "webp"))


class MixedText:
    """Picklable per-sample text step: decode the sample's json, draw one text, count its source, tokenize it."""

    def __init__(self, candidates_path: str, alt_text_chance: float, seed: int, tokenizer,
                 counts: TextSourceCounts | None = None):
        self.candidates_path = candidates_path
        self.alt_text_chance = alt_text_chance
        self.seed = seed
        self.tokenizer = tokenizer
        self.counts = counts
        self._sampler = None
        self._rng = None

    def _init(self):
        from lib.train import text_sampler

        self._sampler = text_sampler.load_sampler(self.candidates_path, self.alt_text_chance, self.seed)
        import torch.utils.data as tud

        info = tud.get_worker_info()
        wid = info.id if info is not None else 0
        # deterministic per (seed, worker); os.getpid() would make text draws differ between runs
        self._rng = random.Random(f"{self.seed}-{wid}")

    def __call__(self, sample: dict) -> dict:
        if self._sampler is None:
            self._init()
        meta = sample["json"]
        if isinstance(meta, (bytes, bytearray)):
            meta = json.loads(meta)
        text, source = self._sampler.sample_for_json(meta, self._rng)
        if self.counts is not None:
            self.counts.add(source)
        sample["text"] = self.tokenizer(text)[0]
        return sample


class PlainText:
    """Picklable per-sample text step without the text mix: tokenize the sample's ``.txt`` (as upstream does)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, sample: dict) -> dict:
        text = sample["text"]
        if isinstance(text, (bytes, bytearray)):
            text = text.decode("utf-8")
        sample["text"] = self.tokenizer(text)[0]
        return sample
