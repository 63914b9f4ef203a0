"""Write the final webdataset shards: ``NNNNN.tar`` of a fixed number of samples, plus ``sizes.json``.

Each sample is ``<uid>.jpg`` (the stored bytes), ``<uid>.json`` (provenance) and ``<uid>.txt`` (its caption), written
by ``webdataset.ShardWriter``/``TarWriter`` (webdataset 0.2.x) with fixed member metadata (``mtime=0``, mode 0644,
uid/gid 0, empty user/group names, PAX format: the tar headers ``tarfile.TarInfo`` gives by default), so a rerun on
the same inputs writes byte-identical tars (tests/integration/test_reproducible.py). TarWriter writes a sample's
members in sorted extension order (``jpg, json, txt``); readers group members by key, so the order is immaterial.

What this module adds to webdataset's writer: a shard is written under a hidden temporary name and renamed to
``NNNNN.tar`` only once complete (a crash never leaves a half shard under a final name), shards roll by sample
count only (not by size), no shard is opened before the first sample (an empty split writes no tar), and the
per-shard sample counts go to ``sizes.json`` (open_clip's ``--train-num-samples`` source).

:func:`tar_writer` gives the same writer and member metadata to every other tar the workflow writes (the evaluation
roots of ``prepare_benchmark`` and ``build_demo_evalset``, the synthetic shards of tests and benchmarks).
"""

import json
import math
from pathlib import Path

import webdataset as wds

from _helpers import write_json

TAR_OPTIONS = {"user": "", "group": "", "mode": 0o644, "mtime": 0, "format": "PAX_FORMAT", "encoder": False}
_TMP_PREFIX, _TMP_SUFFIX = ".", ".tmp"


def tar_writer(path) -> wds.TarWriter:
    """A ``webdataset.TarWriter`` on ``path`` with the fixed member metadata of :data:`TAR_OPTIONS` (equal samples give
    byte-identical tars). ``write({"__key__": key, ext: bytes, ...})`` adds one sample; use it as a context manager."""
    return wds.TarWriter(str(path), **TAR_OPTIONS)  # a str: TarWriter takes anything else for an open stream


class ShardWriter:
    """Streams samples into ``NNNNN.tar`` files of ``per_shard`` samples (each written to a temp name, then renamed);
    :meth:`close` writes ``sizes.json``."""

    def __init__(self, out_dir: Path, per_shard: int):
        if per_shard < 1:
            raise ValueError(f"samples_per_shard must be >= 1, got {per_shard}")
        self.out_dir, self.per_shard = Path(out_dir), int(per_shard)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.sizes: dict[str, int] = {}
        self._wds: wds.ShardWriter | None = None

    @staticmethod
    def _final_name(tmp_path: str) -> str:
        return Path(tmp_path).name[len(_TMP_PREFIX):-len(_TMP_SUFFIX)]

    def _publish(self, tmp_path: str) -> None:
        """webdataset's ``post`` hook, called once a shard is closed: rename it and record its sample count."""
        name = self._final_name(tmp_path)
        Path(tmp_path).replace(self.out_dir / name)
        self.sizes[name] = self._wds.count

    def write(self, uid: str, jpg: bytes, meta: dict, text: str) -> str:
        """Add one sample; returns the name of the shard it went to."""
        if self._wds is None:
            pattern = str(self.out_dir).replace("%", "%%") + f"/{_TMP_PREFIX}%05d.tar{_TMP_SUFFIX}"
            self._wds = wds.ShardWriter(pattern, maxcount=self.per_shard, maxsize=math.inf, post=self._publish,
                                        verbose=0, **TAR_OPTIONS)
        self._wds.write({"__key__": uid, "jpg": jpg, "txt": text.encode(),
                         "json": json.dumps(meta, ensure_ascii=False).encode()})
        return self._final_name(self._wds.fname)

    def close(self) -> dict[str, int]:
        if self._wds is not None:
            self._wds.close()
            self._wds = None
        write_json(self.sizes, self.out_dir / "sizes.json")
        return self.sizes
