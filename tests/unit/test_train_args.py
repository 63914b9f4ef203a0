"""The paper's recipe -> open_clip_train flags; launchers; ablation names."""
import os

import pytest
import yaml

from lib.train import launch
from lib.common import workflow_config as wc
from conftest import REPO

CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())


def flag(args, name):
    return args[args.index(name) + 1]


def test_vitb32_recipe_matches_paper():
    r = wc.model_recipe(CONFIG, "vitb32")
    args = launch.build_train_args(r, "s/{00000..02047}.tar", None, 0, "logs", "cands.parquet", gpus=8)
    assert flag(args, "--batch-size") == "1024" and flag(args, "--epochs") == "18"
    assert flag(args, "--train-num-samples") == "32700000"  # 588.6M samples seen / 18 epochs
    assert flag(args, "--warmup") == "7984"  # 2 x ceil(32.7M / 8192): docs/PAPER_NOTES.md §12
    assert (flag(args, "--lr"), flag(args, "--beta2"), flag(args, "--eps"), flag(args, "--wd")) == (
        "0.0005", "0.98", "1e-08", "0.2")
    assert flag(args, "--precision") == "amp_bf16" and "--local-loss" in args and "--gather-with-grad" in args
    assert "ratio=(0.9, 1.111)" in args and "scale=(0.4, 1.0)" in args and "use_timm=True" in args
    assert flag(args, "--model") == "ViT-B-32-ctx32" and flag(args, "--resume") == "latest"
    assert flag(args, "--entitynet-alt-text-chance") == "0.5" and "--device" not in args
    assert flag(args, "--entitynet-data-path") == "hybrid" and flag(args, "--entitynet-cpu-share") == "auto"


def test_multinode_world_size_counts_nodes():
    r = dict(wc.model_recipe(CONFIG, "vitb32"), nodes=2, gpus=4)
    args = launch.build_train_args(r, "s.tar", None, 0, "logs", None, gpus=4)
    assert flag(args, "--warmup") == str(2 * -(-32_700_000 // (1024 * 8)))  # global batch = 1024 x 4 x 2
    cmd = launch.launcher(4, 2)
    assert cmd[:4] == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1"] and cmd[5] == "4"
    assert launch.launcher(4, 1)[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert launch.launcher(0, 1)[-1].endswith("train_openclip.py")


def test_ablation_names():
    assert wc.model_recipe(CONFIG, "vitb32-alt0")["alt_text_chance"] == 0.0
    assert wc.model_recipe(CONFIG, "vitb32-alt100")["alt_text_chance"] == 1.0
    assert wc.model_recipe(CONFIG, "tiny")["alt_text_chance"] == 0.5
    for bad in ("vitb32-alt101", "gpt5", "vitb32-alt", "VITB32"):
        with pytest.raises(wc.ConfigError):
            wc.model_recipe(CONFIG, bad)


def test_tiny_runs_on_cpu():
    args = launch.build_train_args(wc.model_recipe(CONFIG, "tiny"), "s.tar", "v.tar", 4, "logs", None, gpus=0)
    assert flag(args, "--device") == "cpu" and flag(args, "--val-num-samples") == "4"
    assert "--local-loss" not in args


def test_deterministic_switch():
    """models.<name>.deterministic reaches the wrapper, which turns on torch's switches and fixes the hybrid share."""
    import torch

    from lib.train import train_openclip

    rec = dict(wc.model_recipe(CONFIG, "vitb32"), deterministic=True)
    args = launch.build_train_args(rec, "s.tar", None, 0, "logs", None, gpus=8)
    ours, rest = train_openclip.split_args(args)
    assert ours.entitynet_deterministic and "--entitynet-deterministic" not in rest
    assert "--entitynet-deterministic" not in launch.build_train_args(wc.model_recipe(CONFIG, "vitb32"), "s.tar", None,
                                                                     0, "logs", None, gpus=8)
    try:
        assert train_openclip.make_deterministic("auto") == 0.5
        assert train_openclip.make_deterministic(0.3) == 0.3
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.fixture
def torch_flags(monkeypatch):
    """Restores torch's global determinism flags and CUBLAS_WORKSPACE_CONFIG after the test."""
    import torch

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    yield torch
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]


def test_deterministic_flags(torch_flags):
    """Every switch the README names: deterministic algorithms (warn only), cuDNN deterministic without benchmark
    (set to the opposite first), the cuBLAS workspace; a workspace the user chose is kept."""
    from lib.train import train_openclip

    torch = torch_flags
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
    train_openclip.make_deterministic("auto")
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":16:8"
    train_openclip.make_deterministic("auto")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.parametrize("deterministic", [True, False])
def test_deterministic_survives_upstream_main(torch_flags, monkeypatch, deterministic):
    """open_clip_train's main turns cudnn.benchmark on and cudnn.deterministic off when CUDA is available, after our
    switches ran and before its first random_seed (read from its source, so an upstream change shows here). The
    wrapper's main, given --entitynet-deterministic, has them off/on again when upstream seeds; without the flag,
    upstream's settings stand. Upstream's main is replaced by those lines (this machine has no CUDA)."""
    import inspect

    import open_clip_train.main as upstream_main

    from lib.train import train_openclip

    torch = torch_flags
    src = inspect.getsource(upstream_main.main)
    assert src.index("torch.backends.cudnn.benchmark = True") < src.index("random_seed(")
    seen = {}

    def fake_main(args):  # what upstream's main does on a CUDA machine, in this order
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
        upstream_main.random_seed(0, 0)
        seen.update(benchmark=torch.backends.cudnn.benchmark, deterministic=torch.backends.cudnn.deterministic)

    monkeypatch.setattr(upstream_main, "main", fake_main)
    monkeypatch.setattr(upstream_main, "random_seed", upstream_main.random_seed)  # restored after the test
    monkeypatch.setattr(upstream_main, "get_data", upstream_main.get_data)
    monkeypatch.setattr(train_openclip, "allow_cpu_ddp", lambda: None)  # a global torch patch, not needed here
    flags = ["--entitynet-deterministic"] if deterministic else []
    assert train_openclip.main(["--", *flags, "--model", "ViT-mini-32-ctx32"]) == 0
    assert seen == {"benchmark": not deterministic, "deterministic": deterministic}
