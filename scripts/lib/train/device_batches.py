"""The hook of the fast data paths into open_clip_train 3.3.0: an iterable the upstream train loop consumes like
its dataloader (:class:`DeviceBatches`).

``train_one_epoch`` only touches ``data['train'].dataloader`` through ``num_batches``, ``num_samples`` and iteration,
then does ``images.to(device=device, dtype=input_dtype, non_blocking=True)``. :class:`DeviceBatches` is an iterable
with those two attributes that yields ``(images, texts)`` already **on the device, normalised, float32**, so that
``.to`` is a no-op (``input_dtype`` is None for fp32/amp/amp_bf16; a cast for pure_bf16/pure_fp16, as upstream).
No upstream function is patched beyond the existing ``open_clip_train.main.get_data`` replacement. It is stable for
the exact 3.3.0 pin: ``main`` (4.x) yields dict batches and would need a different wrapper.

CUDA streams: device work runs on a side stream in a prefetch thread (``prefetch`` batches ahead, overlapping the
training step); the consumer's stream waits on an event and ``record_stream`` keeps the caching allocator from
recycling the tensors early. The side stream is synchronised before each ``decode_jpeg``
(:class:`lib.train.device_steps.GpuDevice`): torchvision's CUDA decoder allocates outputs on the caller's stream but
writes them from a private stream without waiting on the caller's queued work (pytorch/vision PR #9606, torchcodec
PR #1634); with nothing queued on the caller's stream the hazard is absent.
"""

import queue
import threading
import time
from typing import Any, Callable, Iterable

import torch

_END = object()


class DeviceBatches:
    """Wrap a (Web)DataLoader so iteration yields ``prepare(batch, device)``: device-resident, normalised batches.

    Keeps ``num_batches``/``num_samples`` (all ``open_clip_train`` 3.3.0 reads besides iteration). On CUDA the
    device work runs ``prefetch`` batches ahead in a thread on its own stream; on CPU it runs inline.
    """

    def __init__(self, loader: Iterable, prepare: Callable[[Any, torch.device], tuple], device: str | torch.device,
                 prefetch: int = 2, monitor: Any = None):
        self.loader = loader
        self.prepare = prepare
        self.device = torch.device(device)
        self.prefetch = max(0, int(prefetch))
        # monitor.observe(seconds waited on the loader, seconds of the whole cycle) per batch, monitor.epoch_end()
        self.monitor = monitor
        self.num_batches = getattr(loader, "num_batches", None)
        self.num_samples = getattr(loader, "num_samples", None)

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("wrapped loader has no num_batches")
        return self.num_batches

    def _timed(self, it):
        """Iterate ``it``, reporting per batch the time blocked in ``next`` and the time since the previous batch
        (``(0, 0)`` for the first batch)."""
        last = None
        while True:
            start = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            got = time.perf_counter()
            if last is None:  # the first wait is the workers' start-up, not a steady-state signal: counted, not timed
                self.monitor.observe(0.0, 0.0)
            else:
                self.monitor.observe(got - start, got - last)
            last = got
            yield batch

    def __iter__(self):
        it = iter(self.loader)  # worker processes start here, in the caller's thread
        if self.monitor is not None:
            it = self._timed(it)
        if self.device.type != "cuda":
            for batch in it:
                yield self.prepare(batch, self.device)
        else:
            stream = torch.cuda.Stream(self.device)
            if self.prefetch == 0:
                for batch in it:
                    yield self._consume(self._produce(batch, stream))
            else:
                yield from self._threaded(it, stream)
        if self.monitor is not None:
            self.monitor.epoch_end()

    def _produce(self, batch, stream):
        with torch.cuda.stream(stream):
            out = self.prepare(batch, self.device)
            event = torch.cuda.Event()
            event.record(stream)
        return out, event

    def _consume(self, item):
        out, event = item
        current = torch.cuda.current_stream(self.device)
        current.wait_event(event)
        for t in out:
            t.record_stream(current)
        return out

    def _threaded(self, it, stream):
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def producer():
            try:
                torch.cuda.set_device(self.device)
                for batch in it:
                    if stop.is_set() or not put(self._produce(batch, stream)):
                        return
                put(_END)
            except BaseException as exc:  # surfaced in the consumer
                put(exc)

        thread = threading.Thread(target=producer, name="entitynet-device-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield self._consume(item)
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    q.get(timeout=0.1)
                except queue.Empty:
                    pass
            thread.join()
