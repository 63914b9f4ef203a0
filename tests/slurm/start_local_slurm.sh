#!/usr/bin/env bash
# Start a real single-node Slurm (Debian 12 slurm-wlm 22.05 + munge) on this host, loopback only, for the
# integration test tests/integration/test_slurm.py. Needs root; works without systemd (every daemon is started by
# hand under setsid, output to files, PID recorded). Idempotent: a cluster that is already up is left alone.
#
#   tests/slurm/start_local_slurm.sh        # install if needed, configure, start, wait for an idle node
#   tests/slurm/stop_local_slurm.sh         # stop exactly the daemons recorded here
#
# State, logs and PID files live in $ENTITYNET_SLURM_DIR (default /tmp/entitynet-slurm). The cluster config goes to
# /etc/slurm/slurm.conf (jobs' nested srun calls lose SLURM_CONF, so the standard path is needed); a slurm.conf that
# this script did not write is never overwritten.
#
# Nodes: ENTITYNET_SLURM_NODES=1 (default) runs one slurmd for this host; =2 adds a second slurmd on the same host
# named "localhost" (own port and spool dir), so multi-node jobs (srun across 2 nodes, torchrun rendezvous) can be
# tested on one machine. Both nodes advertise the host's CPUs (overcommitted; fine for tests).
# Partitions: "main" (default) and "net", each with every node (lets a test check per-rule partition overrides).
# No slurmdbd: sacct does not work, so clients must query job status with squeue (MinJobAge=300 keeps finished
# jobs visible to it).
set -euo pipefail

DIR="${ENTITYNET_SLURM_DIR:-/tmp/entitynet-slurm}"
CONF=/etc/slurm/slurm.conf
MARKER="# written by entitynet tests/slurm/start_local_slurm.sh"
WAIT_S="${ENTITYNET_SLURM_WAIT_S:-60}"
NODES="${ENTITYNET_SLURM_NODES:-1}"
MIN_MEM_MB="${ENTITYNET_SLURM_MIN_MEM_MB:-16384}"  # advertised memory floor, so rules' --mem fits on small hosts
PACKAGES=(munge slurmctld slurmd slurm-client)

die() { echo "start_local_slurm: ERROR: $*" >&2; exit 1; }
log() { echo "start_local_slurm: $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, starts munged/slurmctld/slurmd)"
[[ $NODES == 1 || $NODES == 2 ]] || die "ENTITYNET_SLURM_NODES must be 1 or 2, got '$NODES'"
host=$(hostname -s)
node_names=("$host")
if ((NODES == 2)); then
  [[ $host != localhost ]] || die "ENTITYNET_SLURM_NODES=2 needs a host name other than 'localhost' (second node's name)"
  node_names+=(localhost)
fi

# A PID file of ours (<pidname>.pid) names a live process of program <prog> (guards against PID reuse).
alive() {  # alive <pidname> [prog]
  local f="$DIR/$1.pid" pid
  [[ -s $f ]] || return 1
  pid=$(cat "$f")
  [[ -d /proc/$pid ]] || return 1
  grep -q "${2:-$1}" "/proc/$pid/cmdline" 2>/dev/null
}
slurmd_pidname() { [[ $1 == "$host" ]] && echo slurmd || echo "slurmd-$1"; }
all_slurmd_alive() { local n; for n in "${node_names[@]}"; do alive "$(slurmd_pidname "$n")" slurmd || return 1; done; }
# every configured node is up (idle or running jobs)
node_idle() {  # (sinfo -N lists a node once per partition)
  local states up total
  states=$(sinfo -h -N -o '%N %T' 2>/dev/null | sort -u) || return 1
  up=$(grep -Ec ' (idle|mixed|allocated|completing)$' <<<"$states" || true)
  total=$(awk 'NF {print $1}' <<<"$states" | sort -u | wc -l)
  [[ $up -eq $NODES && $total -eq $NODES ]]
}

# ---- 1. packages --------------------------------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand"
  log "installing ${missing[*]} (apt-get, --no-install-recommends)"
  export DEBIAN_FRONTEND=noninteractive
  # package scripts try to start the services; without systemd that fails, so forbid it while installing
  policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"/tmp/entitynet-slurm-apt.log" 2>&1 || rc=$?
  ((policy_added)) && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || { tail -20 /tmp/entitynet-slurm-apt.log >&2; die "apt-get install ${missing[*]} failed (rc=$rc), log: /tmp/entitynet-slurm-apt.log"; }
fi
for b in munged munge unmunge slurmctld slurmd sinfo sbatch squeue scontrol; do
  command -v "$b" >/dev/null || die "$b not on PATH after installing ${PACKAGES[*]}"
done

mkdir -p "$DIR"/{state,log}
chmod 755 "$DIR"

# ---- 2. already running? ------------------------------------------------------------------------------------------
if alive slurmctld && all_slurmd_alive && node_idle; then
  log "already running with $NODES node(s) (pids: munged=$(cat "$DIR/munged.pid" 2>/dev/null || echo '?') slurmctld=$(cat "$DIR/slurmctld.pid"))"
  sinfo
  exit 0
fi
if alive slurmctld || alive slurmd; then  # ours, but not in the requested shape: restart cleanly
  log "restarting the cluster started earlier (requested $NODES node(s))"
  bash "$(dirname "${BASH_SOURCE[0]}")/stop_local_slurm.sh"
fi

# ---- 3. munge -----------------------------------------------------------------------------------------------------
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [[ ! -s /etc/munge/munge.key ]]; then
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; fi
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
  rm -f /run/munge/munged.pid  # stale after a crash; munged refuses to start on it
  setsid setpriv --reuid=munge --regid=munge --init-groups munged --foreground \
    >"$DIR/log/munged.out" 2>&1 </dev/null &
  echo $! >"$DIR/munged.pid"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
  munge -n | unmunge >/dev/null 2>&1 || { tail "$DIR/log/munged.out" >&2; die "munged did not come up (log: $DIR/log/munged.out)"; }
fi

# ---- 4. slurm.conf ------------------------------------------------------------------------------------------------
if [[ -e $CONF ]] && ! head -1 "$CONF" | grep -qF "$MARKER"; then
  die "$CONF exists and was not written by this script; refusing to overwrite a real site's config"
fi
# hardware line as slurmd detects it; RealMemory at 90 % of it, at least MIN_MEM_MB (SlurmdParameters=
# config_overrides keeps a node whose configured memory exceeds the detected one from going INVAL; jobs are not
# memory-limited here: no cgroups)
hw=$(slurmd -C | head -1)
[[ $hw == NodeName=* ]] || die "unexpected 'slurmd -C' output: $hw"
mem=$(sed -E 's/.*RealMemory=([0-9]+).*/\1/' <<<"$hw")
mem=$((mem * 9 / 10)); ((mem >= MIN_MEM_MB)) || mem=$MIN_MEM_MB  # config_overrides below lets it exceed the detected
hw=$(sed -E "s/^NodeName=[^ ]+ //; s/RealMemory=[0-9]+/RealMemory=$mem/; s/ UpTime=.*//" <<<"$hw")
node_lines=""
port=6818
for n in "${node_names[@]}"; do
  node_lines+="NodeName=$n NodeAddr=127.0.0.1 Port=$port $hw State=UNKNOWN"$'\n'
  port=$((port + 1))
done
nodes_csv=$(IFS=,; echo "${node_names[*]}")
mkdir -p /etc/slurm
tmp=$(mktemp "$CONF.XXXXXX")
cat >"$tmp" <<EOF
$MARKER
ClusterName=entitynet-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool-%n
SlurmctldPidFile=$DIR/slurmctld.daemon.pid
SlurmdPidFile=$DIR/slurmd-%n.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
MailProg=/bin/true
${node_lines}PartitionName=main Nodes=$nodes_csv Default=YES MaxTime=INFINITE State=UP
PartitionName=net Nodes=$nodes_csv Default=NO MaxTime=INFINITE State=UP
EOF
chmod 644 "$tmp" && mv -f "$tmp" "$CONF"

# ---- 5. daemons ---------------------------------------------------------------------------------------------------
start() {  # start <pidname> <command...>: foreground daemon under setsid, output to a file, PID recorded
  local name=$1; shift
  if alive "$name" "$1"; then log "$name already running (pid $(cat "$DIR/$name.pid"))"; return; fi
  setsid "$@" >"$DIR/log/$name.out" 2>&1 </dev/null &
  echo $! >"$DIR/$name.pid"
}
start slurmctld slurmctld -D -i
for n in "${node_names[@]}"; do
  mkdir -p "$DIR/spool-$n"
  start "$(slurmd_pidname "$n")" slurmd -D -N "$n"
done
deadline=$((SECONDS + WAIT_S))
until node_idle; do
  if ((SECONDS >= deadline)); then
    {
      echo "start_local_slurm: ERROR: node did not become idle within ${WAIT_S}s"
      sinfo -N -l 2>&1 || true
      for f in slurmctld.log slurmctld.out $(cd "$DIR/log" && ls slurmd* 2>/dev/null); do
        echo "--- $DIR/log/$f"; tail -15 "$DIR/log/$f" 2>/dev/null || true
      done
    } >&2
    exit 1
  fi
  alive slurmctld || { tail -20 "$DIR/log/slurmctld.out" "$DIR/log/slurmctld.log" >&2 2>/dev/null || true; die "slurmctld exited (logs in $DIR/log)"; }
  for n in "${node_names[@]}"; do
    p=$(slurmd_pidname "$n")
    alive "$p" slurmd || { tail -20 "$DIR/log/$p.out" "$DIR/log/slurmd-$n.log" >&2 2>/dev/null || true; die "slurmd for node $n exited (logs in $DIR/log)"; }
  done
  # a restarted slurmctld may still hold a node DOWN from a previous run
  for n in $(sinfo -h -N -o '%N %T' 2>/dev/null | awk '$2 ~ /^(down|drain)/ {print $1}'); do
    scontrol update NodeName="$n" State=RESUME >/dev/null 2>&1 || true
  done
  sleep 0.5
done
log "up with $NODES node(s): munged=$(cat "$DIR/munged.pid" 2>/dev/null || echo 'pre-existing') slurmctld=$(cat "$DIR/slurmctld.pid") slurmd=$(for n in "${node_names[@]}"; do printf '%s ' "$(cat "$DIR/$(slurmd_pidname "$n").pid")"; done)"
sinfo
