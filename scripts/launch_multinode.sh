#!/usr/bin/env bash
# Multi-node torchrun launcher: run ONCE PER NODE inside a Slurm allocation,
#
#   srun --nodes=$N --ntasks=$N --ntasks-per-node=1 scripts/launch_multinode.sh <gpus_per_node> <script.py> [args...]
#
# Each copy derives --nnodes / --node-rank / --master-addr / --master-port from its SLURM_* environment
# (scripts/lib/train/multinode_env.py; MASTER_ADDR / MASTER_PORT in the environment win) and then execs
#
#   $PYTHON -m torch.distributed.run --nnodes N --node-rank R --nproc-per-node G --master-addr A --master-port P \
#       <script.py> -- [args...]
#
# The "--" ends torchrun's options, so no training flag is ever read as one of torchrun's (its parser accepts
# abbreviations: "--logs" would be refused as ambiguous); scripts/lib/train/train_openclip.py drops it again.
#
# PYTHON: $ENTITYNET_PYTHON if set, else python3 (else python) from PATH; it must have torch installed.
set -euo pipefail

usage() { echo "usage: $0 <gpus_per_node> <train_script.py> [args...]" >&2; exit 2; }
(($# >= 2)) || usage
gpus_per_node=$1; script=$2; shift 2
[[ $gpus_per_node =~ ^[1-9][0-9]*$ ]] || { echo "launch_multinode: gpus_per_node must be a positive integer, got '$gpus_per_node'" >&2; exit 2; }
[[ -f $script ]] || { echo "launch_multinode: training script not found: $script" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${ENTITYNET_PYTHON:-$(command -v python3 || command -v python || true)}
[[ -n $PYTHON ]] || { echo "launch_multinode: no python found (set ENTITYNET_PYTHON)" >&2; exit 2; }

# the step's hosts in Slurm order; scontrol is authoritative, multinode_env.py parses the compact form otherwise
nodelist=${SLURM_STEP_NODELIST:-${SLURM_JOB_NODELIST:-${SLURM_NODELIST:-}}}
hosts=""
if [[ -n $nodelist ]] && command -v scontrol >/dev/null; then
  hosts=$(scontrol show hostnames "$nodelist" 2>/dev/null || true)
fi

out=$("$PYTHON" "$here/lib/train/multinode_env.py" --gpus-per-node "$gpus_per_node" --hostnames "$hosts") || exit $?
mapfile -t targs <<<"$out"
echo "launch_multinode: $(hostname -s): torchrun ${targs[*]}" >&2
exec "$PYTHON" -m torch.distributed.run "${targs[@]}" "$script" -- "$@"
