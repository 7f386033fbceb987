#!/bin/bash
# A private one-node Slurm cluster for tests: its own munged, slurmctld and
# slurmd, everything (key, sockets, state, spool, pid and log files) inside DIR,
# on free non-default ports, no systemd and no file outside DIR touched.
#
#   tests/slurm_cluster.sh start DIR   create DIR, start the daemons, wait until the
#                                      node is idle and a trivial batch job has
#                                      completed; exit 0, or print the logs' tails to
#                                      stderr, stop what was started and exit 1
#   tests/slurm_cluster.sh stop DIR    cancel the cluster's jobs, stop slurmd,
#                                      slurmctld and munged by their pid files
#                                      (SIGTERM, then SIGKILL); safe to call twice,
#                                      after a failed start, or on a missing DIR
#   tests/slurm_cluster.sh status DIR  exit 0 if all three daemons are alive
#
# After start, DIR/env holds `export SLURM_CONF=DIR/slurm.conf`: source it (or set
# SLURM_CONF yourself) and sbatch/squeue/scontrol/scancel/sinfo talk to this
# cluster, authenticating through DIR/munge.sock (AuthInfo in slurm.conf). Jobs
# run as the user who runs this script (root in CI). No accounting: sacct fails.
#
# Environment (all optional):
#   SLURM_CLUSTER_CPUS         CPUs the node claims (default: nproc); more than the
#                              machine has is allowed (SlurmdParameters=config_overrides)
#   SLURM_CLUSTER_MIN_JOB_AGE  seconds a finished job stays visible to squeue and
#                              scontrol (MinJobAge, default 30)
#   SLURM_CLUSTER_TIMEOUT      seconds start waits for the cluster (default 30)
#   SLURM_CLUSTER_KEEP=1       after a failed start, leave the daemons running
set -u

PROG=${0##*/}
usage() { echo "usage: $PROG start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
CMD=$1
DIR=$2
[ -n "$DIR" ] || usage

log() { echo "$PROG: $*" >&2; }

# ---- helpers -----------------------------------------------------------------

# alive PIDFILE NAME: the pid in PIDFILE is a live process called NAME (a stale
# pid file whose number was reused by another program does not count)
alive() {
  local pid comm
  [ -s "$1" ] || return 1
  read -r pid 2>/dev/null <"$1" || return 1
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  read -r comm 2>/dev/null <"/proc/$pid/comm" || return 1
  [ "$comm" = "$2" ] || return 1
  # a zombie is not alive
  ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

# port_used PORT: some TCP socket (any state) has local port PORT
port_used() {
  local hex
  hex=$(printf ':%04X ' "$1")
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '{print $2" "}' | grep -qF "$hex"
}

# two free ports from 16817 on, starting at a random even offset so that
# concurrent clusters (make -j check) rarely pick the same pair
pick_ports() {
  local p n=0
  p=$((16817 + (RANDOM % 500) * 2))
  while [ $n -lt 1000 ]; do
    [ $p -gt 17999 ] && p=16817
    if ! port_used $p && ! port_used $((p + 1)); then
      CTLD_PORT=$p
      SLURMD_PORT=$((p + 1))
      return 0
    fi
    p=$((p + 2)); n=$((n + 1))
  done
  return 1
}

tails() {
  local f
  for f in "$DIR/slurmctld.log" "$DIR/slurmd.log" "$DIR/munged.log"; do
    [ -f "$f" ] || continue
    echo "==== tail -n 40 $f ====" >&2
    tail -n 40 "$f" >&2
  done
}

fail() {
  log "start failed: $*"
  tails
  if [ "${SLURM_CLUSTER_KEEP:-0}" != 1 ]; then
    stop_cluster >/dev/null 2>&1
  fi
  exit 1
}

# wait_for SECONDS COMMAND...: run COMMAND every 0.2 s until it succeeds
wait_for() {
  local end=$((SECONDS + $1))
  shift
  while :; do
    "$@" && return 0
    [ $SECONDS -ge $end ] && return 1
    sleep 0.2
  done
}

# kill_pidfile PIDFILE NAME: SIGTERM, up to 10 s, then SIGKILL
kill_pidfile() {
  local pid i
  if alive "$1" "$2"; then
    read -r pid <"$1"
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do
      alive "$1" "$2" || break
      sleep 0.2
    done
    if alive "$1" "$2"; then
      log "$2 (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null
      sleep 0.2
    fi
  fi
  rm -f "$1"
}

# the slurmstepd processes of this cluster: slurmd starts them with
# SLURM_CONF=DIR/slurm.conf in their environment
cluster_stepds() {
  local e pid comm
  for e in /proc/[0-9]*/environ; do
    pid=${e#/proc/}; pid=${pid%/environ}
    read -r comm 2>/dev/null <"/proc/$pid/comm" || continue
    [ "$comm" = slurmstepd ] || continue
    { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qxF "SLURM_CONF=$DIR/slurm.conf" && echo "$pid"
  done
}

# descendants PID...: the pids of all processes below the given ones
descendants() {
  awk -v roots="$*" '
    { pp[$1] = $2 }
    END {
      n = split(roots, r, " "); for (i = 1; i <= n; i++) mark[r[i]] = 1
      do { added = 0
        for (p in pp) if (!(p in mark) && (pp[p] in mark)) { mark[p] = 1; added = 1; print p }
      } while (added)
    }' < <(for s in /proc/[0-9]*/stat; do
             # pid (comm) state ppid ...: comm may hold spaces, cut after the last ")"
             line=$(cat "$s" 2>/dev/null) || continue
             rest=${line##*) }
             set -- $rest
             echo "${line%% *} $2"
           done)
}

# ---- stop ----------------------------------------------------------------------

stop_cluster() {
  local i left stepds
  [ -d "$DIR" ] || return 0
  export SLURM_CONF="$DIR/slurm.conf"
  # jobs first, while slurmctld and slurmd can still end them (slurmstepd outlives
  # slurmd by design)
  if [ -f "$SLURM_CONF" ] && alive "$DIR/slurmctld.pid" slurmctld && alive "$DIR/slurmd.pid" slurmd; then
    if [ -n "$(timeout 10 squeue -h -t R,CG,S,PD -o %i 2>/dev/null)" ]; then
      timeout 10 scancel -u "$(id -un)" >/dev/null 2>&1
      for i in $(seq 50); do
        left=$(timeout 10 squeue -h -t R,CG,S -o %i 2>/dev/null) || break
        [ -z "$left" ] && break
        sleep 0.2
      done
    fi
  fi
  kill_pidfile "$DIR/slurmd.pid" slurmd
  kill_pidfile "$DIR/slurmctld.pid" slurmctld
  # stragglers: steps whose job could not be cancelled, and what they started
  stepds=$(cluster_stepds)
  if [ -n "$stepds" ]; then
    log "killing leftover slurmstepd $(echo $stepds) and their processes"
    # shellcheck disable=SC2046,SC2086 # lists of pids
    kill -KILL $stepds $(descendants $stepds) 2>/dev/null
  fi
  kill_pidfile "$DIR/munged.pid" munged
  return 0
}

# ---- start ---------------------------------------------------------------------

start_cluster() {
  local cpus mem margin node user uid munge_force="" jid state i
  for b in munged slurmctld slurmd sbatch squeue scontrol sinfo; do
    command -v "$b" >/dev/null 2>&1 || { log "$b not found (apt-get install munge slurmctld slurmd slurm-client)"; exit 1; }
  done
  mkdir -p "$DIR" || exit 1
  DIR=$(cd "$DIR" && pwd -P) || exit 1
  if alive "$DIR/slurmctld.pid" slurmctld || alive "$DIR/slurmd.pid" slurmd || alive "$DIR/munged.pid" munged; then
    log "a cluster is already running in $DIR"
    exit 1
  fi
  # munged wants every directory above its socket searchable by all (but not
  # writable by others unless sticky); 0711 lets nobody else list DIR
  chmod 0711 "$DIR" || exit 1
  mkdir -p "$DIR/state" "$DIR/spool" || exit 1
  chmod 0700 "$DIR/state" "$DIR/spool"
  rm -f "$DIR"/*.log "$DIR/munge.sock" "$DIR/munge.sock.lock"

  # ---- munge ----
  rm -f "$DIR/munge.key"
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --bits=1024 --keyfile="$DIR/munge.key" 2>"$DIR/mungekey.log" ||
      fail "mungekey: $(cat "$DIR/mungekey.log")"
  else
    (umask 077 && dd if=/dev/urandom of="$DIR/munge.key" bs=128 count=1 2>/dev/null) || fail "cannot write $DIR/munge.key"
  fi
  chmod 0400 "$DIR/munge.key"
  set -- --socket="$DIR/munge.sock" --key-file="$DIR/munge.key" --pid-file="$DIR/munged.pid" \
    --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed"
  if ! munged "$@" 2>"$DIR/munged.err"; then
    # a directory above DIR not searchable by all (say a 0700 home): --force turns
    # munged's permission errors into warnings
    log "munged refused to start ($(cat "$DIR/munged.err")); retrying with --force"
    munged --force "$@" 2>"$DIR/munged.err" || fail "munged: $(cat "$DIR/munged.err")"
    munge_force=" (--force)"
  fi
  munge_ok() { munge -S "$DIR/munge.sock" -n 2>/dev/null | unmunge -S "$DIR/munge.sock" >/dev/null 2>&1; }
  wait_for 10 munge_ok || fail "munged does not answer on $DIR/munge.sock$munge_force"

  # ---- slurm.conf ----
  # slurmd names itself after the short host name; -N says it explicitly and the
  # addresses are 127.0.0.1 so that nothing depends on DNS or /etc/hosts
  node=$(hostname -s 2>/dev/null)
  [ -n "$node" ] || node=localhost
  user=$(id -un)
  uid=$(id -u)
  cpus=${SLURM_CLUSTER_CPUS:-$(nproc)}
  mem=$(free -m | awk '/^Mem:/ {print $2}')
  # keep a margin (slurmd drains a node that has less memory than configured)
  margin=$((mem / 10)); [ $margin -gt 1024 ] && margin=1024
  mem=$((mem - margin)); [ $mem -lt 256 ] && mem=256
  pick_ports || fail "no two free TCP ports in 16817-17999"
  cat >"$DIR/slurm.conf" <<EOF
# generated by tests/slurm_cluster.sh: a private one-node test cluster
ClusterName=ckptdtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$DIR/munge.sock
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$DIR/plugstack.conf
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default a job would be given all of the node's memory, one job at a time
DefMemPerCPU=100
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1,batch_sched_delay=0
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=${SLURM_CLUSTER_MIN_JOB_AGE:-30}
KillWait=5
InactiveLimit=0
Waittime=0
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$DIR/plugstack.conf"
  printf 'export SLURM_CONF=%q\n' "$DIR/slurm.conf" >"$DIR/env"
  export SLURM_CONF="$DIR/slurm.conf"

  # ---- daemons ----
  # both fork into the background and write their pid files
  slurmctld -f "$SLURM_CONF" 2>"$DIR/slurmctld.err" || fail "slurmctld: $(cat "$DIR/slurmctld.err")"
  slurmd -f "$SLURM_CONF" -N "$node" 2>"$DIR/slurmd.err" ||
    fail "slurmd: $(cat "$DIR/slurmd.err")"

  local timeout=${SLURM_CLUSTER_TIMEOUT:-30} end
  end=$((SECONDS + timeout))
  node_idle() { [ "$(sinfo -h -N -n "$node" -o %T 2>/dev/null)" = idle ]; }
  wait_for "$timeout" node_idle ||
    fail "node $node not idle after ${timeout}s: $(sinfo -N 2>&1 | tail -n +2) $(scontrol show node "$node" 2>&1 | grep -E 'State|Reason')"
  jid=$(cd "$DIR" && sbatch --parsable -J slurm_cluster_smoke -o /dev/null -e /dev/null --wrap true 2>&1) ||
    fail "sbatch: $jid"
  jid=${jid%%;*}
  job_done() {
    state=$(scontrol show job "$jid" 2>/dev/null | grep -o 'JobState=[A-Z_]*')
    state=${state#JobState=}
    case $state in PENDING | CONFIGURING | RUNNING | COMPLETING | '') return 1 ;; esac
  }
  i=$((end - SECONDS)); [ $i -lt 5 ] && i=5
  wait_for $i job_done || fail "smoke job $jid not finished: $(scontrol show job "$jid" 2>&1 | grep -E 'JobState|Reason')"
  [ "$state" = COMPLETED ] || fail "smoke job $jid ended $state: $(scontrol show job "$jid" 2>&1 | grep -E 'JobState|Reason')"
  echo "slurm cluster up in $DIR: node $node ($cpus CPUs, ${mem}M), slurmctld port $CTLD_PORT, slurmd port $SLURMD_PORT, as $user (uid $uid)$munge_force; . $DIR/env"
  return 0
}

case $CMD in
start) start_cluster ;;
stop)
  if [ -d "$DIR" ]; then DIR=$(cd "$DIR" && pwd -P); fi
  stop_cluster
  ;;
status)
  [ -d "$DIR" ] || exit 1
  DIR=$(cd "$DIR" && pwd -P)
  alive "$DIR/munged.pid" munged && alive "$DIR/slurmctld.pid" slurmctld && alive "$DIR/slurmd.pid" slurmd
  ;;
*) usage ;;
esac
