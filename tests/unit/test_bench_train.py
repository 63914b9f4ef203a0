"""The training-throughput benchmark's own logic (perf/bench_train_throughput.py): options, log parsing, table."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "perf"))
import bench_train_throughput as bench  # noqa: E402

# open_clip_train 3.3.0 log lines (a 16-sample batch, logged every step) and our hybrid summary line
LOG = """\
2026-11-27,08:20:46 | INFO | Train Epoch: 0 [ 16/160 (10%)] Data (t): 0.650 Batch (t): 1.007, 15.8822/s, 15.8822/s/gpu LR: 0.000250 Logit Scale: 14.286 Contrastive_loss: 2.9916 (2.9916) Loss: 2.9916 (2.9916)
2026-11-27,08:20:46 | INFO | Train Epoch: 0 [ 32/160 (20%)] Data (t): 0.100 Batch (t): 0.500, 32.0000/s, 32.0000/s/gpu LR: 0.000500 Logit Scale: 14.282 Contrastive_loss: 2.9556 (2.9736) Loss: 2.9556 (2.9736)
2026-11-27,08:20:47 | INFO | Train Epoch: 0 [ 64/160 (40%)] Data (t): 0.050 Batch (t): 0.250, 64.0000/s, 64.0000/s/gpu LR: 0.000500 Logit Scale: 14.275 Contrastive_loss: 2.5000 (2.7000) Loss: 2.5000 (2.7000)
2026-11-27,08:20:48 | INFO | hybrid data path: cpu share 0.420 at the end of the epoch (mean 0.455 over 3 batches, loader wait 1.0%)
"""


def test_parse_rates_drops_warmup_windows_and_weights_by_steps():
    r = bench.parse_rates(LOG, batch=16, world=1, skip_steps=1)
    # kept windows: step 2 (1 step of 0.5 s) and steps 3-4 (2 steps of 0.25 s): 48 samples in 1.0 s
    assert r["samples_per_s"] == pytest.approx(48.0) and r["measured_steps"] == 3
    assert r["data_wait_share"] == pytest.approx((0.1 + 2 * 0.05) / 1.0)
    assert r["final_loss"] == pytest.approx(2.5) and r["losses_finite"]
    with pytest.raises(RuntimeError, match="warm-up"):
        bench.parse_rates(LOG, batch=16, world=1, skip_steps=10)
    with pytest.raises(RuntimeError, match="no 'Train Epoch'"):
        bench.parse_rates("nothing here", batch=16, world=1, skip_steps=0)


def test_share_line_and_path_options():
    assert bench.SHARE.findall(LOG) == [("0.420", "0.455")]
    assert all(bench.valid_path(p) for p in ("upstream", "gpu", "hybrid", "hybrid:0", "hybrid:0.35", "hybrid:1"))
    assert not any(bench.valid_path(p) for p in ("fast", "gpu:0.5", "hybrid:1.5", "hybrid:x"))
    assert bench.label("hybrid") == "wrapper, text mix, `hybrid` (cpu share auto)"
    assert bench.label("hybrid:0.3") == "wrapper, text mix, `hybrid` (cpu share 0.3 fixed)"
    with pytest.raises(SystemExit):
        bench.parse_args(["--device", "cpu", "--paths", "upstream,fast"])
    a = bench.parse_args(["--device", "cuda"])
    assert (a.sizes, a.model, a.batch_size) == ("512,384,256", "ViT-B-32-ctx32", 512)


def test_e2e_command_passes_the_share(tmp_path):
    a = bench.parse_args(["--device", "cpu"])
    shards = {"spec": "x.tar", "candidates": "c.parquet"}
    cmd = bench.e2e_command(a, shards, "hybrid:0.25", tmp_path)
    assert cmd[cmd.index("--entitynet-data-path") + 1] == "hybrid"
    assert cmd[cmd.index("--entitynet-cpu-share") + 1] == "0.25"
    cmd = bench.e2e_command(a, shards, "hybrid", tmp_path)
    assert cmd[cmd.index("--entitynet-cpu-share") + 1] == "auto"
    cmd = bench.e2e_command(a, shards, "upstream", tmp_path)
    assert "--entitynet-text-candidates" not in cmd and cmd[cmd.index("--entitynet-data-path") + 1] == "stock"


def test_table_has_share_column():
    class A:
        model, batch_size, precision, device, workers = "m", 16, "fp32", "cpu", 1
        steps, skip_steps, torchcompile = 4, 1, False

    compute = {"samples_per_s": 96.0, "step_ms": 166.7}
    results = {(512, "gpu"): {"samples_per_s": 48.0, "data_wait_share": 0.2, "final_loss": 2.5},
               (512, "hybrid"): {"samples_per_s": 72.0, "data_wait_share": 0.05, "final_loss": 2.4,
                                 "cpu_share": 0.42, "mean_cpu_share": 0.455},
               (384, "lean"): {"error": "lean @ 384px failed (rc 1)"}}
    md = bench.table(A, compute, results, {512: {"mean_jpeg_bytes": 137e3}, 384: {"mean_jpeg_bytes": 80e3}})
    assert "| 512 px (137 KB) | wrapper, text mix, `gpu` | 48.0 | 50% | 20% |  | 2.500 |" in md
    assert "| 512 px (137 KB) | wrapper, text mix, `hybrid` (cpu share auto) | 72.0 | 75% | 5% | 0.42 (0.46) | 2.400 |" in md
    assert "| 384 px | wrapper, text mix, `lean` | failed: lean @ 384px failed (rc 1) |" in md
