#!/usr/bin/env bash
# The ledger at scale (issue 14): a dev cluster holding SIZE_MIB of data (default 2048) taken
# through every operation that reads or writes all of it, with each node's memory and the
# write latency clients see while it runs.
#
# Usage: benches/backup-restore.sh            (needs target/release/opsdeck, or the one
#                                            under $CARGO_TARGET_DIR, or $OPSDECK_BIN)
#   SIZE_MIB=256 benches/backup-restore.sh    a smaller run
# Phases: start `opsdeck dev --headless`; prefill SIZE_MIB with 64 KiB values (opsdeck bench's
# prefill, which --reads triggers); tar -czf node 1's data dir while it is SIGSTOPped (the
# seed runbook's backup, for comparison); a 20 s write bench alone (the baseline); then, each
# with the same bench running beside it (16 writers of 100-byte values under their own key
# prefix, so they leave the prefill's values as they are; stopped by SIGTERM when the phase
# ends): a snapshot on every node (`compact`), `backup`, `restore`, `add-node --spawn` of a
# 4th node (its catch-up is a snapshot install of all the data), `compact --defrag` (every
# node rewritten offline in turn). `verify-backup` reads only the file, so it runs alone.
# After each phase it prints every node's peak RSS during that phase (VmHWM, reset before the
# phase through /proc/PID/clear_refs; a node restarted by the defrag counts from its start)
# and its RSS at the end of it (VmRSS), and the client's own peak RSS where it does the work
# (verify-backup, and the defrag's offline rewrite) when /usr/bin/time is there.
# Everything runs under one temp dir, removed at the end, as are the processes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${OPSDECK_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/opsdeck}
size_mib=${SIZE_MIB:-2048}
work=$(mktemp -d /tmp/opsdeck-backup-bench.XXXX)
dev_pid=
load_pid=
cleanup() {
  [[ -n $load_pid ]] && kill -TERM "$load_pid" 2>/dev/null || true
  [[ -n $dev_pid ]] && kill -TERM "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
now_ms() { date +%s%3N; }
t_start=$(now_ms)
# Runs a command and, if GNU time is there, prints its own peak RSS on stderr (so it is
# shown whatever the command's output is piped to).
peak_of() {
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f "%M" -o "$work/time.out" "$@"
    echo "  peak RSS of the client ($2): $(( $(tail -1 "$work/time.out") / 1024 )) MiB" >&2
  else
    "$@"
  fi
}
c=(--cluster "$work/c")

"$bin" dev --headless --dir "$work/c" --base-port "${BASE_PORT:-19300}" >"$work/dev.out" 2>&1 &
dev_pid=$!
for _ in $(seq 1 300); do "$bin" status "${c[@]}" >/dev/null 2>&1 && break; sleep 0.1; done
"$bin" status "${c[@]}" >/dev/null 2>&1 || { echo "the dev cluster did not start:"; cat "$work/dev.out"; exit 1; }

# "ID PID" of every node cluster.toml records (a [[node]] table gives its id before its pid).
node_pids() { awk '$1=="id"{id=$3} $1=="pid"{print id, $3}' "$work/c/cluster.toml"; }
rss_reset() {
  node_pids | while read -r _ p; do echo 5 > "/proc/$p/clear_refs" 2>/dev/null || true; done
}
rss_report() {
  local line="  RSS after $1 (peak / now, MiB):" id p hwm rss
  while read -r id p; do
    hwm=$(awk '/^VmHWM/{print int($2/1024)}' "/proc/$p/status" 2>/dev/null || echo "?")
    rss=$(awk '/^VmRSS/{print int($2/1024)}' "/proc/$p/status" 2>/dev/null || echo "?")
    line+=" node $id ${hwm} / ${rss};"
  done < <(node_pids)
  echo "$line"
}

keys=$(( size_mib * 16 ))   # 64 KiB values
echo "prefill: $keys keys x 64 KiB = $size_mib MiB"
rss_reset
t0=$(now_ms)
"$bin" bench "${c[@]}" --timeout 60s --clients 16 --keys "$keys" --value-size 65536 --reads 1 --duration 1s >/dev/null
echo "prefill took $(( $(now_ms) - t0 )) ms"
rss_report prefill
"$bin" status "${c[@]}" --json | python3 -c '
import json,sys
for n in json.load(sys.stdin)["nodes"]:
    print("node %s: %s keys, %.0f MiB of data" % (n["id"], n["storage_keys"], n["storage_bytes"]/2**20))'

pid1=$(node_pids | awk '$1==1{print $2}')
kill -STOP "$pid1"
t0=$(now_ms)
tar -czf "$work/n1.tar.gz" -C "$work/c" n1
tar_ms=$(( $(now_ms) - t0 ))
kill -CONT "$pid1"
du_n1=$(du -sm "$work/c/n1" | cut -f1)
tgz=$(du -sm "$work/n1.tar.gz" | cut -f1)
echo "tar -czf of node 1's data dir (${du_n1} MiB, paused): ${tar_ms} ms, ${tgz} MiB archive, $(( du_n1 * 1000 / (tar_ms > 0 ? tar_ms : 1) )) MiB/s"
"$bin" status "${c[@]}" >/dev/null

# Writes under their own key prefix: the prefill's values stay as they are.
load=(bench "${c[@]}" --prefix load/ --clients 16 --keys 1000 --value-size 100)
# The same bench beside a phase: started before it, stopped (SIGTERM: it prints the figures
# so far) when the phase ends.
load_start() {
  "$bin" "${load[@]}" --duration 2h >"$work/load.out" 2>&1 &
  load_pid=$!
  sleep 2   # its first writes before the phase begins
}
load_stop() {
  kill -TERM "$load_pid"
  wait "$load_pid" || true
  load_pid=
  echo "  writes while $1 ran:"
  sed 's/^/    /' "$work/load.out"
}
echo "writes alone:"
"$bin" "${load[@]}" --duration 20s | sed 's/^/  /'

rss_reset
load_start
t0=$(now_ms)
"$bin" compact "${c[@]}" >/dev/null
echo "compact (a snapshot on every node): $(( $(now_ms) - t0 )) ms"
load_stop "the snapshots"
rss_report snapshot

rss_reset
load_start
t0=$(now_ms)
"$bin" backup "${c[@]}" --out "$work/b.odb" --json >"$work/backup.json"
backup_ms=$(( $(now_ms) - t0 ))
payload=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["payload_bytes"])' "$work/backup.json")
echo "backup: $(( payload / 1048576 )) MiB payload in ${backup_ms} ms (incl. the snapshot): $(( payload / 1048576 * 1000 / backup_ms )) MiB/s"
load_stop "the backup"
rss_report backup

t0=$(now_ms)
peak_of "$bin" verify-backup "$work/b.odb" >/dev/null
verify_ms=$(( $(now_ms) - t0 ))
echo "verify-backup: ${verify_ms} ms, $(( payload / 1048576 * 1000 / verify_ms )) MiB/s"

rss_reset
load_start
t0=$(now_ms)
"$bin" restore "$work/b.odb" --yes "${c[@]}" --timeout 60s --json >"$work/restore.json"
restore_ms=$(( $(now_ms) - t0 ))
commit_ms=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("commit_ms", "?"))' "$work/restore.json")
echo "restore: ${restore_ms} ms, $(( payload / 1048576 * 1000 / restore_ms )) MiB/s (through the Raft log, on all 3 nodes); its commit took ${commit_ms} ms"
load_stop "the restore"
rss_report restore

# The log purged first, so the new node's catch-up is a snapshot install of all the data
# (not a replay of the restore's chunks).
"$bin" compact "${c[@]}" >/dev/null
rss_reset
load_start
t0=$(now_ms)
"$bin" add-node --spawn "${c[@]}" --json >"$work/add.json"
add_ms=$(( $(now_ms) - t0 ))
load_stop "node 4 caught up"
held=$("$bin" status "${c[@]}" --json | python3 -c '
import json,sys
print(max(n["storage_bytes"] for n in json.load(sys.stdin)["nodes"] if n["id"] == 4) // 2**20)')
du_n4=$(du -sm "$work/c/n4" | cut -f1)
echo "add-node of node 4 (a snapshot install): ${add_ms} ms to a voter; it holds ${held} MiB of data (${du_n4} MiB data dir): $(( held * 1000 / (add_ms > 0 ? add_ms : 1) )) MiB/s of data"
rss_report add-node

rss_reset
load_start
t0=$(now_ms)
peak_of "$bin" compact --defrag "${c[@]}" --timeout-rejoin 10m | tail -n 8 | sed 's/^/  /'
echo "compact --defrag (4 nodes in turn): $(( $(now_ms) - t0 )) ms"
load_stop "the defrag"
rss_report defrag
echo "the whole run: $(( ($(now_ms) - t_start) / 1000 )) s"
