"""scripts/_helpers.py: atomic writes."""

import os
import stat

import pytest

import _helpers


def test_atomic_path_gives_the_umask_mode_not_mkstemps(tmp_path):
    target = tmp_path / "out" / "table.json"
    _helpers.write_json({"a": 1}, target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_helpers._UMASK
    assert _helpers._UMASK == (lambda m: (os.umask(m), m)[1])(os.umask(0o022))  # read correctly at import
    assert list(target.parent.iterdir()) == [target]  # no temp file left


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "table.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with _helpers.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
