"""The ``hybrid`` data path's share of JPEGs that the CPU workers crop themselves (the rest go to nvJPEG), with the
controller that moves it by the loader's backlog (:class:`CpuShare`)."""

import logging

import torch

log = logging.getLogger("entitynet.fast_data")


class CpuShare:
    """The share of JPEG samples that the CPU workers crop themselves in the ``hybrid`` path (the rest go to nvJPEG).

    State lives in shared-memory tensors, so dataloader workers (forked, or spawned: torch's reductions pass shared
    tensors to spawned processes) read the share the main process sets, and count the samples they prepare
    (:meth:`count`, one slot per worker, so no two processes write the same slot).

    With ``adaptive``, the main process calls :meth:`observe` once per consumed batch (seconds waited on the loader,
    seconds of the whole cycle). Every ``window`` batches it looks at the **loader's backlog**, the batches prepared
    by the workers but not yet consumed (samples counted minus batches consumed × ``batch_size``), and at the wait:

    - the training loop waited > ``wait_high`` of the window, or the backlog is below ``low_mark`` × its largest
      value seen and still falling → the workers cannot keep up: share − ``step_down``;
    - the backlog is at least ``high_mark`` × its largest value seen (the loader's prefetch buffer is full, so the
      workers idle) → they have spare time: share + ``step_up``;
    - otherwise the share holds.

    A change of the share changes the workers' speed at once, but the backlog absorbs it for a while; reading the
    backlog rather than only the waits is what stops the share from creeping up while the buffer silently drains
    and then starving the GPU. The share settles where the workers are about saturated, which leaves the GPU the
    least decode work without making it wait. Without ``batch_size`` only the waits are used (``wait_low`` for up).
    """

    SLOTS = 256

    def __init__(self, initial: float = 0.5, adaptive: bool = True, batch_size: int | None = None, window: int = 8,
                 wait_high: float = 0.02, wait_low: float = 0.005, high_mark: float = 0.75, low_mark: float = 0.35,
                 step_up: float = 0.02, step_down: float = 0.05):
        if not 0.0 <= float(initial) <= 1.0:
            raise ValueError(f"cpu share must be within 0..1, got {initial!r}")
        self._value = torch.full((1,), float(initial), dtype=torch.float64).share_memory_()
        self._prepared = torch.zeros(self.SLOTS, dtype=torch.int64).share_memory_()
        self.adaptive = bool(adaptive)
        self.batch_size = int(batch_size) if batch_size else None
        self.window, self.wait_high, self.wait_low = int(window), float(wait_high), float(wait_low)
        self.high_mark, self.low_mark = float(high_mark), float(low_mark)
        self.step_up, self.step_down = float(step_up), float(step_down)
        self._wait = self._total = 0.0
        self._count = self._consumed = 0
        self._backlog_prev: float | None = None
        self.backlog_max = 0.0
        self._logged = float(initial)
        self.history: list[tuple[float, float | None, float]] = []  # per window: (wait share, backlog, share after)
        self._epoch = [0, 0.0, 0.0, 0.0]  # batches, sum of shares, seconds waited, seconds in all

    @property
    def value(self) -> float:
        return float(self._value[0])

    def set(self, value: float) -> None:
        self._value[0] = min(1.0, max(0.0, float(value)))

    def count(self, n: int = 1) -> None:
        """Worker side: ``n`` more samples prepared (slot = the dataloader worker id)."""
        import torch.utils.data as tud

        info = tud.get_worker_info()
        self._prepared[(info.id if info is not None else 0) % len(self._prepared)] += n

    def backlog(self) -> float | None:
        """Batches prepared by the workers and not yet consumed (None without ``batch_size``)."""
        if self.batch_size is None:
            return None
        return (int(self._prepared.sum()) - self._consumed * self.batch_size) / self.batch_size

    def observe(self, wait_s: float, total_s: float) -> None:
        """One consumed batch: seconds spent waiting on the loader, seconds of the whole cycle (wait included)."""
        self._consumed += 1
        ep = self._epoch
        ep[0] += 1
        ep[1] += self.value
        ep[2] += max(0.0, wait_s)
        ep[3] += max(wait_s, total_s)
        if not self.adaptive:
            return
        self._wait += max(0.0, wait_s)
        self._total += max(wait_s, total_s, 0.0)
        self._count += 1
        if self._count < self.window:
            return
        frac = self._wait / self._total if self._total > 0 else 0.0
        backlog = self.backlog()
        if backlog is None:
            if frac > self.wait_high:
                self.set(self.value - self.step_down)
            elif frac < self.wait_low:
                self.set(self.value + self.step_up)
        else:
            self.backlog_max = max(self.backlog_max, backlog)
            falling = self._backlog_prev is not None and backlog < self._backlog_prev
            if frac > self.wait_high or (falling and backlog < self.low_mark * self.backlog_max):
                self.set(self.value - self.step_down)
            elif self.backlog_max >= 1 and backlog >= self.high_mark * self.backlog_max:
                self.set(self.value + self.step_up)
            self._backlog_prev = backlog
        self.history.append((frac, backlog, self.value))
        del self.history[:-1000]
        if abs(self.value - self._logged) >= 0.1 - 1e-9:
            log.info("hybrid data path: cpu share now %.2f (loader wait %.1f%% of the last %d batches, backlog %s)",
                     self.value, 100 * frac, self._count, "?" if backlog is None else f"{backlog:.1f} batches")
            self._logged = self.value
        self._wait = self._total = 0.0
        self._count = 0

    def epoch_end(self) -> dict:
        """Log and return the epoch's figures (the benchmark reads this line), then start the next epoch's."""
        n, share_sum, waited, total = self._epoch
        out = {"cpu_share": self.value, "mean_cpu_share": share_sum / n if n else self.value, "batches": n,
               "loader_wait_share": waited / total if total > 0 else 0.0}
        log.info("hybrid data path: cpu share %.3f at the end of the epoch (mean %.3f over %d batches, loader "
                 "wait %.1f%%)", out["cpu_share"], out["mean_cpu_share"], n, 100 * out["loader_wait_share"])
        self._epoch = [0, 0.0, 0.0, 0.0]
        return out
