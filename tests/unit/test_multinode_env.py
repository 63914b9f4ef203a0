"""Unit tests for scripts/lib/train/multinode_env.py (torchrun flags from a Slurm task environment)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.train import multinode_env as me

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def as_dict(args):
    """["--a", "1", "--b", "x"] -> {"a": "1", "b": "x"}"""
    assert len(args) % 2 == 0
    return {k.lstrip("-"): v for k, v in zip(args[::2], args[1::2])}


@pytest.mark.parametrize(
    "spec, hosts",
    [
        ("node1", ["node1"]),
        ("gpu[01-03,07]", ["gpu01", "gpu02", "gpu03", "gpu07"]),
        ("gpu[8-11]", ["gpu8", "gpu9", "gpu10", "gpu11"]),
        ("gpu[098-101]", ["gpu098", "gpu099", "gpu100", "gpu101"]),
        ("a[1-2],b,c[5]", ["a1", "a2", "b", "c5"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("node-[1-2]-ib", ["node-1-ib", "node-2-ib"]),
        (" x1 , x2 ", ["x1", "x2"]),
    ],
)
def test_expand_nodelist(spec, hosts):
    assert me.expand_nodelist(spec) == hosts


@pytest.mark.parametrize("spec", ["", "gpu[01-03", "gpu01-03]", "gpu[3-1]", "gpu[a-b]", "gpu[[1]]"])
def test_expand_nodelist_rejects(spec):
    with pytest.raises(me.MultinodeEnvError):
        me.expand_nodelist(spec)


def srun_env(node_id, **extra):
    """What srun --ntasks-per-node=1 on a 3-node job gives task `node_id`."""
    env = {
        "SLURM_JOB_ID": "123456",
        "SLURM_JOB_NODELIST": "gpu[01-02,07]",
        "SLURM_STEP_NODELIST": "gpu[01-02,07]",
        "SLURM_JOB_NUM_NODES": "3",
        "SLURM_STEP_NUM_NODES": "3",
        "SLURM_NTASKS": "3",
        "SLURM_NODEID": str(node_id),
        "SLURM_PROCID": str(node_id),
        "SLURMD_NODENAME": ["gpu01", "gpu02", "gpu07"][node_id],
    }
    env.update(extra)
    return env


def test_every_node_agrees_on_master_and_gets_its_rank():
    got = [as_dict(me.torchrun_args(srun_env(i), 8)) for i in range(3)]
    assert [g["node-rank"] for g in got] == ["0", "1", "2"]
    for g in got:
        assert g["nnodes"] == "3" and g["nproc-per-node"] == "8"
        assert g["master-addr"] == "gpu01"
        assert g["master-port"] == str(me.PORT_BASE + 123456 % me.PORT_SPAN)
    assert me.torchrun_args(srun_env(0), 8)[:2] == ["--nnodes", "3"]


def test_scontrol_hostnames_take_precedence_over_parsing():
    args = as_dict(me.torchrun_args(srun_env(1), 4, hostnames=["gpu01", "gpu02", "gpu07"]))
    assert args["master-addr"] == "gpu01" and args["node-rank"] == "1"
    # a different (authoritative) order from scontrol decides the master
    args = as_dict(me.torchrun_args(srun_env(1), 4, hostnames=["gpu07", "gpu01", "gpu02"]))
    assert args["master-addr"] == "gpu07"


def test_rank_from_hostname_then_procid():
    env = srun_env(2)
    del env["SLURM_NODEID"]
    assert as_dict(me.torchrun_args(env, 1))["node-rank"] == "2"  # SLURMD_NODENAME position
    del env["SLURMD_NODENAME"]
    assert as_dict(me.torchrun_args(env, 1))["node-rank"] == "2"  # SLURM_PROCID, one task per node
    env["SLURM_NTASKS"] = "6"  # two tasks per node: PROCID is not a node rank
    with pytest.raises(me.MultinodeEnvError, match="ntasks-per-node=1"):
        me.torchrun_args(env, 1)
    del env["SLURM_PROCID"]
    with pytest.raises(me.MultinodeEnvError, match="SLURM_NODEID"):
        me.torchrun_args(env, 1)


def test_fallbacks_to_job_level_vars_and_slurm_nodelist():
    env = {"SLURM_JOBID": "42", "SLURM_NODELIST": "n[1-2]", "SLURM_NNODES": "2", "SLURM_NODEID": "1"}
    args = as_dict(me.torchrun_args(env, 2))
    assert args == {"nnodes": "2", "node-rank": "1", "nproc-per-node": "2", "master-addr": "n1",
                    "master-port": str(me.PORT_BASE + 42)}
    env.pop("SLURM_NNODES")  # node count from the list itself
    assert as_dict(me.torchrun_args(env, 2))["nnodes"] == "2"


def test_explicit_master_addr_and_port_win():
    args = as_dict(me.torchrun_args(srun_env(0, MASTER_ADDR="10.0.0.5", MASTER_PORT="29500"), 8))
    assert args["master-addr"] == "10.0.0.5" and args["master-port"] == "29500"


def test_ports_differ_between_jobs_and_stay_in_range():
    ports = {me.master_port({"SLURM_JOB_ID": str(j)}) for j in range(1000, 1100)}
    assert len(ports) == 100
    assert all(me.PORT_BASE <= p < me.PORT_BASE + me.PORT_SPAN for p in ports)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"SLURM_STEP_NUM_NODES": "4"}, "node list has 3 hosts"),
        ({"SLURM_NODEID": "3"}, "outside 0..2"),
        ({"SLURM_NODEID": "x"}, "SLURM_NODEID='x' is not an integer"),
        ({"MASTER_PORT": "70000"}, "not a TCP port"),
    ],
)
def test_inconsistent_env_is_named(change, match):
    with pytest.raises(me.MultinodeEnvError, match=match):
        me.torchrun_args(srun_env(0, **change), 8)


def test_missing_env_is_named():
    with pytest.raises(me.MultinodeEnvError, match="SLURM_STEP_NODELIST"):
        me.torchrun_args({"SLURM_JOB_ID": "1", "SLURM_NODEID": "0"}, 8)
    env = srun_env(0)
    del env["SLURM_JOB_ID"]
    with pytest.raises(me.MultinodeEnvError, match="SLURM_JOB_ID"):
        me.torchrun_args(env, 8)
    for bad in (0, -1, "8", True):
        with pytest.raises(me.MultinodeEnvError, match="gpus_per_node"):
            me.torchrun_args(srun_env(0), bad)


def test_cli_prints_one_arg_per_line_and_fails_clearly():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "MASTER_"))}
    ok = subprocess.run([sys.executable, str(SCRIPTS / "lib" / "train" / "multinode_env.py"), "--gpus-per-node", "2",
                         "--hostnames", "h1\nh2\nh3\n"], env={**env, **srun_env(1)}, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert as_dict(ok.stdout.splitlines()) == {"nnodes": "3", "node-rank": "1", "nproc-per-node": "2",
                                               "master-addr": "h1", "master-port": "18456"}
    bad = subprocess.run([sys.executable, str(SCRIPTS / "lib" / "train" / "multinode_env.py"), "--gpus-per-node", "2"],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "multinode_env:" in bad.stderr and "SLURM_" in bad.stderr


def test_launcher_execs_torchrun_with_derived_args(tmp_path):
    """The shell launcher passes the derived flags and the user's args to `python -m torch.distributed.run`."""
    # a fake python records its argv when called with -m, delegates to the real one otherwise
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = "-m" ]; then printf "%s\\n" "$@" > {tmp_path}/argv; exit 0; fi\n'
                    f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    script = tmp_path / "train.py"
    script.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "MASTER_"))}
    env.update(srun_env(2), ENTITYNET_PYTHON=str(fake), PATH="/usr/bin:/bin")  # no scontrol needed
    r = subprocess.run(["bash", str(SCRIPTS / "launch_multinode.sh"), "8", str(script), "--epochs", "2"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[:2] == ["-m", "torch.distributed.run"]
    assert as_dict(argv[2:12]) == {"nnodes": "3", "node-rank": "2", "nproc-per-node": "8",
                                   "master-addr": "gpu01", "master-port": str(me.PORT_BASE + 123456 % me.PORT_SPAN)}
    assert argv[12:] == [str(script), "--", "--epochs", "2"]  # "--": torchrun never reads the script flags
    bad = subprocess.run(["bash", str(SCRIPTS / "launch_multinode.sh"), "0", str(script)], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "gpus_per_node" in bad.stderr
