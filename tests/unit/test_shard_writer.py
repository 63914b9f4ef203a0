"""scripts/lib/data/shard_writer.py: webdataset's writer with fixed tar headers, atomic shards and sizes.json."""
import json
import tarfile

import pytest

from lib.data.shard_writer import ShardWriter


def write(out, n, per_shard):
    w = ShardWriter(out, per_shard)
    names = [w.write(f"{i:032x}", b"\xff\xd8jpg%d" % i, {"uid": f"{i:032x}", "text": "é"}, f"caption {i}")
             for i in range(n)]
    return names, w.close()


def test_rolls_by_count_renames_and_writes_sizes(tmp_path):
    names, sizes = write(tmp_path, 5, 2)
    assert names == ["00000.tar", "00000.tar", "00001.tar", "00001.tar", "00002.tar"]
    assert sizes == {"00000.tar": 2, "00001.tar": 2, "00002.tar": 1}
    assert json.loads((tmp_path / "sizes.json").read_text()) == sizes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.tar", "00001.tar", "00002.tar", "sizes.json"]
    with tarfile.open(tmp_path / "00002.tar") as tf:
        members = tf.getmembers()
        key = f"{4:032x}"
        assert [m.name for m in members] == [f"{key}.jpg", f"{key}.json", f"{key}.txt"]
        assert {(m.mtime, m.mode, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0o644, 0, 0, "", "")}
        assert json.loads(tf.extractfile(f"{key}.json").read()) == {"uid": key, "text": "é"}
        assert tf.extractfile(f"{key}.txt").read() == b"caption 4"


def test_reruns_are_byte_identical_and_an_empty_split_has_no_tar(tmp_path):
    write(tmp_path / "a", 3, 2)
    write(tmp_path / "b", 3, 2)
    for name in ("00000.tar", "00001.tar"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert write(tmp_path / "empty", 0, 2) == ([], {})
    assert [p.name for p in (tmp_path / "empty").iterdir()] == ["sizes.json"]


def test_per_shard_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="samples_per_shard"):
        ShardWriter(tmp_path, 0)
