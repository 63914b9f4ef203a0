"""Every launcher's full command line, for the GPU recipes and their ablations, through torch's own
``torch.distributed.run`` argument parser: the training flags must reach ``train_openclip.py`` unchanged.

The bug this guards (found on the first real launch): torchrun's parser accepts abbreviations and scans every
``--flag`` of the whole command line, so open_clip_train's ``--logs`` was refused as ambiguous with torchrun's
``--logs-specs``/``--logs_specs`` before the script started ("ambiguous option: --logs could match ..."). Without
the ``--`` separator that ``launch.launcher`` and ``scripts/launch_multinode.sh`` now put after the script, every
case below fails with that error (checked on the code before the fix).
"""
import os
import subprocess
import sys

import pytest
import yaml

from lib.train import launch
from lib.train import train_openclip
from lib.common import workflow_config as wc
from conftest import REPO

CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())
GPU_RECIPES = [m for m, r in CONFIG["models"].items() if int(r.get("gpus", 0)) > 1]
MODELS = [m for base in GPU_RECIPES for m in (base, f"{base}-alt0", f"{base}-alt100")]


def torchrun_parse(argv: list[str]):
    """``python -m torch.distributed.run <argv>`` as torch parses it (argparse exits 2 on an error)."""
    from torch.distributed.run import get_args_parser

    return get_args_parser().parse_args(argv)


def script_argv(model: str, gpus: int, nodes: int = 1) -> list[str]:
    rec = dict(wc.model_recipe(CONFIG, model), nodes=nodes)
    return launch.build_train_args(rec, "results/entitynet/shards/train/{00000..03299}.tar",
                                  "results/entitynet/shards/val/00000.tar", 5000,
                                  f"results/entitynet/{model}/openclip", "results/entitynet/text_candidates.parquet",
                                  gpus)


def test_gpu_recipes_exist():
    assert {"vitb32", "vitb16"} <= set(GPU_RECIPES), GPU_RECIPES


@pytest.mark.parametrize("model", MODELS)
def test_single_node_torchrun_passes_every_flag(model):
    gpus = int(CONFIG["models"][model.split("-")[0]]["gpus"])
    args = script_argv(model, gpus)
    assert "--logs" in args  # the flag that collided
    cmd = launch.launcher(gpus, 1) + args
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    parsed = torchrun_parse(cmd[3:])
    assert parsed.standalone and parsed.nproc_per_node == str(gpus)
    assert parsed.training_script.endswith("train_openclip.py")
    assert train_openclip.script_args(parsed.training_script_args) == args


@pytest.mark.parametrize("model", MODELS)
def test_multinode_launcher_passes_every_flag(model, tmp_path):
    """scripts/launch_multinode.sh (one copy per node under srun) with a python that records the torchrun argv."""
    gpus = int(CONFIG["models"][model.split("-")[0]]["gpus"])
    args = script_argv(model, gpus, nodes=2)
    cmd = launch.launcher(gpus, 2) + args
    assert cmd[0] == "srun" and cmd[4].endswith("launch_multinode.sh")
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = "-m" ]; then printf "%s\\n" "$@" > {tmp_path}/argv; exit 0; fi\n'
                    f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "MASTER_"))}
    env.update(SLURM_JOB_ID="42", SLURM_STEP_NODELIST="gpu[01-02]", SLURM_STEP_NUM_NODES="2", SLURM_NODEID="1",
               ENTITYNET_PYTHON=str(fake), PATH="/usr/bin:/bin")
    r = subprocess.run(["bash", *cmd[4:]], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[:2] == ["-m", "torch.distributed.run"]
    parsed = torchrun_parse(argv[2:])
    assert (parsed.nnodes, parsed.node_rank, parsed.nproc_per_node) == ("2", 1, str(gpus))
    assert parsed.training_script.endswith("train_openclip.py")
    assert train_openclip.script_args(parsed.training_script_args) == args


def test_separator_is_what_makes_it_parse():
    """The same command without the separator is refused by torch's parser (so the test above can fail)."""
    args = script_argv("vitb32", 8)
    cmd = [a for a in launch.launcher(8, 1) if a != launch.SCRIPT_ARGS_SEPARATOR] + args
    with pytest.raises(SystemExit):
        torchrun_parse(cmd[3:])


def test_script_args_drops_only_a_leading_separator():
    assert train_openclip.script_args(["--", "--logs", "x"]) == ["--logs", "x"]
    assert train_openclip.script_args(["--logs", "x", "--", "y"]) == ["--logs", "x", "--", "y"]
    assert train_openclip.script_args([]) == []


def test_training_process_ends_when_its_launcher_is_killed(tmp_path):
    """torchrun puts each worker in a session of its own: kill -9 of the launcher must not leave it training on.
    A stand-in launcher starts a worker that runs ``exit_with_launcher`` and then sleeps; the launcher is SIGKILLed
    and the worker must be gone within a few of its 0.2-s checks (waited for up to 60 s, so load cannot fail it)."""
    import signal
    import time

    worker = tmp_path / "worker.py"
    worker.write_text("import sys, time\nsys.path.insert(0, sys.argv[1])\nfrom lib.train import train_openclip\n"
                      "assert train_openclip.exit_with_launcher(0.2)\nprint('ready', flush=True)\ntime.sleep(600)\n")
    launcher = tmp_path / "launcher.py"
    launcher.write_text(
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, {str(worker)!r}, {str(REPO / 'scripts')!r}], start_new_session=True,"
        f" stdout=open({str(tmp_path / 'out')!r}, 'w'))\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(p.pid))\ntime.sleep(600)\n")
    env = dict(os.environ, TORCHELASTIC_RUN_ID="test")
    proc = subprocess.Popen([sys.executable, str(launcher)], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "ready" not in ((tmp_path / "out").read_text()
                                                          if (tmp_path / "out").exists() else ""):
        time.sleep(0.1)
    pid = int((tmp_path / "pid").read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as fh:  # a zombie waiting for init to reap it is gone too
            if fh.read().split(") ", 1)[1].startswith("Z"):
                break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the worker outlived its launcher")
