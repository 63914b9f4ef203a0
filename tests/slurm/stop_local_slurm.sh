#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/start_local_slurm.sh: signal only the PIDs it recorded (SIGTERM, then
# SIGKILL after a grace period), then delete pid files whose process is gone (a stale /run/slurmctld.pid makes
# `apt-get purge slurmctld` fail). Idempotent: safe to call when nothing runs. Leaves the packages installed.
#
# It also removes the /etc/slurm/slurm.conf that start_local_slurm.sh wrote (start writes it afresh): with a config
# naming an unreachable controller, every Slurm client call waits ~9 s before failing, and
# snakemake-executor-plugin-slurm runs `scontrol show config` while building Snakemake's command line, so EVERY
# `snakemake` invocation on the host (dry runs included) would start 9 s slower. Without a config it fails at once.
set -uo pipefail

DIR="${ENTITYNET_SLURM_DIR:-/tmp/entitynet-slurm}"
log() { echo "stop_local_slurm: $*" >&2; }

# is <pid> alive and still the program <name> (guards against PID reuse)?
is_ours() { [[ -d /proc/$1 ]] && grep -q "$2" "/proc/$1/cmdline" 2>/dev/null; }

# slurmd first (it reports to slurmctld), munged last (both slurm daemons need it to shut down cleanly)
shopt -s nullglob
for f in "$DIR"/slurmd.pid "$DIR"/slurmd-*.pid "$DIR"/slurmctld.pid "$DIR"/munged.pid; do
  [[ $f == *.daemon.pid ]] && continue
  name=$(basename "$f" .pid); name=${name%%-*}  # slurmd-localhost -> slurmd
  [[ -s $f ]] || { rm -f "$f"; continue; }
  pid=$(cat "$f")
  if [[ $pid =~ ^[0-9]+$ ]] && is_ours "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do is_ours "$pid" "$name" || break; sleep 0.1; done
    if is_ours "$pid" "$name"; then log "$name ($pid) ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null; fi
    log "stopped $(basename "$f" .pid) ($pid)"
  fi
  rm -f "$f"
done

# stale pid files written by the daemons themselves (ours, and the Debian default locations)
for f in "$DIR"/*.daemon.pid /run/slurmctld.pid /run/slurmd.pid /run/munge/munged.pid; do
  [[ -e $f ]] || continue
  pid=$(cat "$f" 2>/dev/null)
  if [[ $pid =~ ^[0-9]+$ ]] && [[ -d /proc/$pid ]]; then
    continue  # still alive: not ours to remove (we only kill recorded PIDs)
  fi
  rm -f "$f" && log "removed stale $f"
done

CONF=/etc/slurm/slurm.conf
MARKER="# written by entitynet tests/slurm/start_local_slurm.sh"
if [[ -e $CONF ]] && head -1 "$CONF" | grep -qF "$MARKER"; then
  if [[ -s $DIR/slurmctld.pid ]] && is_ours "$(cat "$DIR/slurmctld.pid")" slurmctld; then
    log "slurmctld still running; keeping $CONF"
  else
    rm -f "$CONF" && log "removed $CONF (written by start_local_slurm.sh)"
  fi
fi
exit 0
