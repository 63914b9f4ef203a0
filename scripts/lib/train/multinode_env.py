"""torchrun arguments for one node of a multi-node Slurm job (used by ``scripts/launch_multinode.sh``).

The launcher runs once per node (``srun --ntasks-per-node=1 scripts/launch_multinode.sh <gpus_per_node> ...``);
each copy turns the Slurm environment of its task into the static-rendezvous flags of
``python -m torch.distributed.run``:

- ``--nnodes``: nodes of the step (``SLURM_STEP_NUM_NODES``; else ``SLURM_JOB_NUM_NODES``/``SLURM_NNODES``; else the
  number of hostnames);
- ``--node-rank``: ``SLURM_NODEID`` (relative node index); else this host's (``SLURMD_NODENAME``) position in the
  node list; else ``SLURM_PROCID`` when there is exactly one task per node;
- ``--master-addr``: ``MASTER_ADDR`` if set, else the first host of the node list (``scontrol show hostnames`` of
  ``SLURM_STEP_NODELIST``/``SLURM_JOB_NODELIST``/``SLURM_NODELIST``; the compact form, e.g. ``gpu[01-03,07]``, is
  expanded here when ``scontrol`` is unavailable);
- ``--master-port``: ``MASTER_PORT`` if set, else derived from the job id (every node computes the same one, and
  concurrent jobs on a node get different ones).

Everything here is pure (an env mapping and a host list in, a list of strings out) so it is unit-tested without
Slurm. The command line prints the arguments one per line for the shell launcher::

    python scripts/lib/train/multinode_env.py --gpus-per-node 8 [--hostnames "$(scontrol show hostnames "$NODELIST")"]
"""

import argparse
import itertools
import os
import re
import sys
from collections.abc import Mapping, Sequence

PORT_BASE = 15000  # first port used for derived master ports
PORT_SPAN = 20000  # derived ports lie in [PORT_BASE, PORT_BASE + PORT_SPAN)
NODELIST_VARS = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
NNODES_VARS = ("SLURM_STEP_NUM_NODES", "SLURM_JOB_NUM_NODES", "SLURM_NNODES")


class MultinodeEnvError(ValueError):
    """The Slurm environment does not describe a usable multi-node launch."""


def _split_top_level(spec: str) -> list[str]:
    """Split a hostlist on the commas that are not inside brackets."""
    parts, depth, cur = [], 0, []
    for ch in spec:
        if ch == "[":
            depth += 1
            if depth > 1:
                raise MultinodeEnvError(f"nested '[' in node list {spec!r}")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise MultinodeEnvError(f"unbalanced ']' in node list {spec!r}")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise MultinodeEnvError(f"unbalanced '[' in node list {spec!r}")
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _expand_range(body: str, spec: str) -> list[str]:
    """``01-03,07`` -> ``['01', '02', '03', '07']`` (zero padding of the lower bound is kept)."""
    out = []
    for item in body.split(","):
        item = item.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m:
            raise MultinodeEnvError(f"bad range {item!r} in node list {spec!r}")
        lo, hi = m.group(1), m.group(2)
        if hi is None:
            out.append(lo)
            continue
        if int(hi) < int(lo):
            raise MultinodeEnvError(f"descending range {item!r} in node list {spec!r}")
        width = len(lo) if lo.startswith("0") else 0
        out.extend(str(i).zfill(width) for i in range(int(lo), int(hi) + 1))
    return out


def expand_nodelist(spec: str) -> list[str]:
    """Expand a Slurm compact host list, in Slurm's order.

    >>> expand_nodelist("gpu[01-03,07],login1")
    ['gpu01', 'gpu02', 'gpu03', 'gpu07', 'login1']
    >>> expand_nodelist("r[1-2]n[1-2]")
    ['r1n1', 'r1n2', 'r2n1', 'r2n2']
    """
    if not spec or not spec.strip():
        raise MultinodeEnvError("empty node list")
    hosts: list[str] = []
    for entry in _split_top_level(spec):
        pieces = re.split(r"(\[[^\]]*\])", entry)
        choices = [
            _expand_range(p[1:-1], spec) if p.startswith("[") else [p] for p in pieces if p != ""
        ]
        hosts.extend("".join(c) for c in itertools.product(*choices))
    return hosts


def _first(env: Mapping[str, str], names: Sequence[str]) -> tuple[str, str] | None:
    for n in names:
        v = env.get(n, "").strip()
        if v:
            return n, v
    return None


def _int_var(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise MultinodeEnvError(f"{name}={value!r} is not an integer") from None


def master_port(env: Mapping[str, str]) -> int:
    """``MASTER_PORT`` if set, else ``PORT_BASE + job_id % PORT_SPAN`` (same value on every node of the job)."""
    if env.get("MASTER_PORT", "").strip():
        port = _int_var("MASTER_PORT", env["MASTER_PORT"].strip())
        if not 1 <= port <= 65535:
            raise MultinodeEnvError(f"MASTER_PORT={port} is not a TCP port")
        return port
    job = _first(env, ("SLURM_JOB_ID", "SLURM_JOBID"))
    if job is None:
        raise MultinodeEnvError("neither MASTER_PORT nor SLURM_JOB_ID is set: not inside a Slurm job?")
    # array tasks have their own SLURM_JOB_ID, so concurrent array tasks get distinct ports
    return PORT_BASE + _int_var(job[0], job[1]) % PORT_SPAN


def node_hostnames(env: Mapping[str, str], hostnames: Sequence[str] | None = None) -> list[str]:
    """The step's hosts: ``hostnames`` (from ``scontrol show hostnames``) when given, else the node list expanded."""
    hosts = [h.strip() for h in (hostnames or []) if h and h.strip()]
    if hosts:
        return hosts
    found = _first(env, NODELIST_VARS)
    if found is None:
        raise MultinodeEnvError(f"no host list: none of {', '.join(NODELIST_VARS)} is set and no hostnames given")
    return expand_nodelist(found[1])


def torchrun_args(env: Mapping[str, str], gpus_per_node: int,
                  hostnames: Sequence[str] | None = None) -> list[str]:
    """Static-rendezvous flags of ``torch.distributed.run`` for the node this env belongs to.

    Args:
        env: the task's environment (``os.environ`` under ``srun --ntasks-per-node=1``).
        gpus_per_node: processes (GPUs) per node, ``--nproc-per-node``.
        hostnames: the step's hosts in Slurm order (``scontrol show hostnames``); parsed from the env if omitted.

    Returns:
        ``["--nnodes", N, "--node-rank", R, "--nproc-per-node", G, "--master-addr", A, "--master-port", P]``.

    Raises:
        MultinodeEnvError: naming the variable that is missing or inconsistent.
    """
    if isinstance(gpus_per_node, bool) or not isinstance(gpus_per_node, int) or gpus_per_node < 1:
        raise MultinodeEnvError(f"gpus_per_node must be a positive integer, got {gpus_per_node!r}")
    hosts = node_hostnames(env, hostnames)

    nn = _first(env, NNODES_VARS)
    nnodes = _int_var(*nn) if nn else len(hosts)
    if nnodes < 1:
        raise MultinodeEnvError(f"{nn[0]}={nnodes}: need at least one node")
    if nnodes != len(hosts):
        raise MultinodeEnvError(f"{nn[0] if nn else 'node count'}={nnodes} but the node list has {len(hosts)} "
                                f"hosts ({','.join(hosts)})")

    if env.get("SLURM_NODEID", "").strip():
        rank, source = _int_var("SLURM_NODEID", env["SLURM_NODEID"].strip()), "SLURM_NODEID"
    elif env.get("SLURMD_NODENAME", "").strip() in hosts:
        rank, source = hosts.index(env["SLURMD_NODENAME"].strip()), "SLURMD_NODENAME"
    elif env.get("SLURM_PROCID", "").strip():
        ntasks = env.get("SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS", "")).strip()
        if ntasks and _int_var("SLURM_NTASKS", ntasks) != nnodes:
            raise MultinodeEnvError(f"cannot tell the node rank: no SLURM_NODEID and {ntasks} tasks on {nnodes} "
                                    "nodes (run the launcher with srun --ntasks-per-node=1)")
        rank, source = _int_var("SLURM_PROCID", env["SLURM_PROCID"].strip()), "SLURM_PROCID"
    else:
        raise MultinodeEnvError("cannot tell the node rank: none of SLURM_NODEID, SLURMD_NODENAME, SLURM_PROCID "
                                "is set (run the launcher under srun --ntasks-per-node=1)")
    if not 0 <= rank < nnodes:
        raise MultinodeEnvError(f"{source} gives node rank {rank}, outside 0..{nnodes - 1}")

    addr = env.get("MASTER_ADDR", "").strip() or hosts[0]
    return ["--nnodes", str(nnodes), "--node-rank", str(rank), "--nproc-per-node", str(gpus_per_node),
            "--master-addr", addr, "--master-port", str(master_port(env))]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus-per-node", type=int, required=True)
    ap.add_argument("--hostnames", default="", help="whitespace-separated hosts (scontrol show hostnames output)")
    a = ap.parse_args(argv)
    try:
        args = torchrun_args(os.environ, a.gpus_per_node, a.hostnames.split())
    except MultinodeEnvError as e:
        print(f"multinode_env: {e}", file=sys.stderr)
        return 2
    print("\n".join(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
