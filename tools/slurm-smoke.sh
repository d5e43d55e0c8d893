#!/usr/bin/env bash
# Runs examples/slurm/explain-array.sbatch on a one-node Slurm cluster started on this machine
# and checks that its shards, merged, are exactly a single-process run.
#
#   tools/slurm-smoke.sh [ELUCIDATE]      (default: $ELUCIDATE, else .build/release/elucidate,
#                                          else .build/debug/elucidate)
#
# It installs Debian's slurm-wlm and munge when missing (apt, through sudo when not root),
# starts a private munged (its own key and socket) and slurmctld + slurmd on localhost with a
# minimal slurm.conf in a temporary folder — no systemd, nothing in /etc changed — submits
# the example as a 3-task array over Resources/images with the built-in model, waits for it,
# requeues one finished task (as pre-emption would) and checks that --resume rewrites nothing,
# runs `elucidate index merge`, explains the same images in one process into another folder,
# and compares the two indexes' inputs and outputs and every .npy byte for byte. A trap
# cancels the job and stops the daemons whatever happens. Root in a container is fine.
#
# Environment: SLURM_SMOKE_METHOD (saliency), SLURM_SMOKE_TIMEOUT (seconds for the array, 300),
# SLURM_SMOKE_PORT (slurmctld's port, 36817; slurmd takes the next one),
# SLURM_SMOKE_KEEP=1 keeps the temporary folder (it is always kept on failure).
# Prints "slurm-smoke: passed ..." and exits 0, or one line "slurm-smoke: FAILED: ..." and 1.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

method=${SLURM_SMOKE_METHOD:-saliency}
timeout=${SLURM_SMOKE_TIMEOUT:-300}
port=${SLURM_SMOKE_PORT:-36817}
tasks=3
started=$SECONDS
work=""

fail() {
    echo "slurm-smoke: FAILED: $*${work:+ (logs in $work/log)}" >&2
    exit 1
}
note() { echo "slurm-smoke: $*"; }

elucidate=${1:-${ELUCIDATE:-}}
if [ -z "$elucidate" ]; then
    for candidate in .build/release/elucidate .build/debug/elucidate; do
        if [ -x "$candidate" ]; then elucidate=$candidate; break; fi
    done
fi
[ -n "$elucidate" ] || fail "no elucidate binary: build one (swift build) or pass its path"
[ -x "$elucidate" ] || fail "$elucidate is not an executable"
elucidate=$(cd "$(dirname "$elucidate")" && pwd)/$(basename "$elucidate")

# --- packages --------------------------------------------------------------------------------
packages=(slurm-wlm munge)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    note "installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq || fail "apt-get update failed"
    # The packages' own services are not started: policy-rc.d in a container, or stopped
    # below by nothing of ours — this script uses only private daemons.
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        fail "apt-get install ${missing[*]} failed"
fi
for tool in munged mungekey munge slurmctld slurmd sbatch squeue sinfo scontrol scancel; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || fail "$tool not found after installing ${packages[*]}"
done
export PATH=$PATH:/usr/sbin

# --- the cluster -----------------------------------------------------------------------------
# munged insists that everyone may traverse its socket's folder, so the folder is 0755 (the key
# inside stays 0600). The daemons run as the current user; as root the jobs run as root.
work=$(mktemp -d /tmp/elucidate-slurm-smoke.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/munge" "$work/state" "$work/spool" "$work/log"
munged_pid="" slurmctld_pid="" slurmd_pid="" job=""

# Stops what this script started, in reverse order, each by its own process ID; keeps the
# temporary folder on failure (or with SLURM_SMOKE_KEEP=1) for its logs.
teardown() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$job" ]; then
        # Cancel and wait for the tasks to end, so that slurmd, not this trap, stops them.
        scancel "$job" 2>/dev/null || true
        for _ in $(seq 30); do
            [ -z "$(squeue --noheader --jobs="$job" --format=%i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    local pid
    for pid in $slurmd_pid $slurmctld_pid $munged_pid; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $slurmd_pid $slurmctld_pid $munged_pid; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ "$status" -eq 0 ] && [ "${SLURM_SMOKE_KEEP:-0}" != 1 ]; then
        rm -rf "$work"
    fi
    exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mungekey --create --keyfile="$work/munge/munge.key" || fail "mungekey could not create a key"
socket=$work/munge/munge.socket
munged --foreground --socket="$socket" --key-file="$work/munge/munge.key" \
    --log-file="$work/log/munged.log" --pid-file="$work/munge/munged.pid" \
    --seed-file="$work/munge/munged.seed" >>"$work/log/munged.log" 2>&1 &
munged_pid=$!
for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done
munge --socket="$socket" --no-input | unmunge --socket="$socket" >/dev/null 2>&1 ||
    fail "munged did not start"

user=$(id -un)
memory=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
cpus=$(nproc)
export SLURM_CONF=$work/slurm.conf
cat >"$SLURM_CONF" <<EOF
# A one-node cluster on localhost for tools/slurm-smoke.sh; everything in $work.
ClusterName=elucidate-smoke
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
# No cgroups (none to be had in a container): plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to scontrol long enough to read their exit codes.
MinJobAge=600
MailProg=/bin/true
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=smoke Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -D -c -f "$SLURM_CONF" >>"$work/log/slurmctld.out" 2>&1 &
slurmctld_pid=$!
slurmd -D -N localhost -f "$SLURM_CONF" >>"$work/log/slurmd.out" 2>&1 &
slurmd_pid=$!

state=""
for _ in $(seq 60); do
    kill -0 "$slurmctld_pid" 2>/dev/null || fail "slurmctld exited: $(tail -n 1 "$work/log/slurmctld.log" 2>/dev/null)"
    kill -0 "$slurmd_pid" 2>/dev/null || fail "slurmd exited: $(tail -n 1 "$work/log/slurmd.log" 2>/dev/null)"
    state=$(sinfo --noheader --nodes=localhost --format=%t 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 1
done
[ "$state" = idle ] || fail "the node did not become idle in 60 s (sinfo: ${state:-no answer})"
note "one-node cluster up ($cpus CPUs, ${memory} MB) in $((SECONDS - started)) s"

# --- the array ------------------------------------------------------------------------------
# The example as it is, driven by its environment variables; sbatch's options override its
# header so the tasks fit this machine (one thread each, so the single-process run below
# computes with the same thread count).
# A copy of Resources/images in the temporary folder, given by the relative path "images" to
# both runs (from that folder), so that the two indexes name the inputs alike and no path has
# a space for EXPLAIN_INPUTS to split.
cp -R "$repo/Resources/images" "$work/images"
job=$(cd "$work" && ELUCIDATE=$elucidate EXPLAIN_METHOD=$method EXPLAIN_MODEL=fashion-mnist-resnet \
    EXPLAIN_INPUTS=images EXPLAIN_OUT_DIR=array EXPLAIN_OPTIONS="" \
    sbatch --parsable --array=0-$((tasks - 1)) --cpus-per-task=1 --mem=1G --time=00:10:00 \
        --chdir="$work" --output="$work/log/task-%A_%a.out" \
        "$repo/examples/slurm/explain-array.sbatch") || fail "sbatch refused the example"
job=${job%%;*}
note "submitted job array $job ($tasks tasks, $method over Resources/images)"

deadline=$((SECONDS + timeout))
while [ -n "$(squeue --noheader --jobs="$job" --format=%i 2>/dev/null)" ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the array did not finish in $timeout s: $(squeue --noheader --jobs="$job" --format='%i %T %R' | tr '\n' ';')"
    sleep 1
done
# Every task's end state and exit code, from the controller (no accounting database here).
states=$(scontrol --oneliner show job "$job" | sed -nE 's/.*JobState=([A-Z_]+).* ExitCode=([0-9:]+).*/\1 \2/p')
[ "$(grep -c . <<<"$states")" -eq "$tasks" ] || fail "scontrol reports $(grep -c . <<<"$states") tasks of $tasks: $states"
if grep -qv "^COMPLETED 0:0$" <<<"$states"; then
    fail "array tasks did not all complete: $(tr '\n' ';' <<<"$states") — $(cat "$work"/log/task-*.out | tail -n 3 | tr '\n' ' ')"
fi
note "array done in $((SECONDS - started)) s"

# Pre-emption puts a task back in the queue and runs the same command again: requeue task 1,
# now complete, and check that --resume finds its shard done (rewrites no file; the merge
# below would refuse inputs the index lists twice).
touch "$work/requeued"
scontrol requeue "${job}_1" || fail "scontrol requeue ${job}_1 was refused"
# Slurm holds a requeued job back for a couple of minutes (its begin time); start it now.
scontrol update JobId="${job}_1" StartTime=now || fail "scontrol could not start the requeued task now"
deadline=$((SECONDS + timeout))
until scontrol --oneliner show job "${job}_1" | grep -q "JobState=COMPLETED .*Restarts=1 "; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the requeued task did not finish in $timeout s: $(scontrol --oneliner show job "${job}_1" | grep -oE "JobState=[A-Z_]+ Reason=[^ ]+")"
    sleep 1
done
rewritten=$(find "$work/array" -name '*.npy' -newer "$work/requeued")
[ -z "$rewritten" ] || fail "the requeued task with --resume rewrote $(tr '\n' ' ' <<<"$rewritten")"
note "requeued task 1 resumed with nothing left to do in $((SECONDS - started)) s"

# --- merge and compare -----------------------------------------------------------------------
"$elucidate" index merge "$work/array" >"$work/log/merge.out" 2>&1 ||
    fail "elucidate index merge failed: $(tail -n 1 "$work/log/merge.out")"
[ -s "$work/array/index.jsonl" ] || fail "the merge wrote no $work/array/index.jsonl"
note "index merge: $(head -n 1 "$work/log/merge.out")"

(cd "$work" && "$elucidate" explain "$method" --model fashion-mnist-resnet --threads 1 images \
    --out-dir single) >"$work/log/single.out" 2>&1 ||
    fail "the single-process run failed: $(tail -n 1 "$work/log/single.out")"

# Each index as sorted "input<TAB>output" lines.
pairs() {
    python3 -c '
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
for row in sorted(rows, key=lambda r: r["input"]):
    print(row["input"] + "\t" + str(row.get("output")))
' "$1" || fail "$1 is not JSON lines with an input field"
}
merged=$(pairs "$work/array/index.jsonl")
single=$(pairs "$work/single/index.jsonl")
[ "$merged" = "$single" ] ||
    fail "the merged index and the single-process index differ: $(diff <(echo "$merged") <(echo "$single") | grep '^[<>]' | head -n 3 | tr '\n' ' ')"
count=$(grep -c . <<<"$merged")
expected=$(find "$work/images" -type f -name '*.png' | wc -l)
[ "$count" -eq "$expected" ] || fail "the index lists $count inputs, Resources/images holds $expected"

arrays=$(cd "$work/array" && find . -name '*.npy' | sort)
singles=$(cd "$work/single" && find . -name '*.npy' | sort)
[ "$arrays" = "$singles" ] || fail "the array and the single run wrote different .npy files"
[ -n "$arrays" ] || fail "no .npy files were written"
while IFS= read -r file; do
    cmp -s "$work/array/$file" "$work/single/$file" || fail "$file differs between the array and the single run"
done <<<"$arrays"

note "passed: $tasks-task array of $method over $count images merged, index and all $(grep -c . <<<"$arrays") .npy files identical to a single-process run, in $((SECONDS - started)) s"
