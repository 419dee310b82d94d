#!/usr/bin/env bash
# Backup and restore throughput on a dev cluster holding SIZE_MIB of data (default 1024),
# beside `tar -czf` of one node's paused data dir (the seed runbook's backup), and the
# write latency clients see with and without a backup running.
#
# Usage: benches/backup-restore.sh            (needs target/release/opsdeck, or the one
#                                            under $CARGO_TARGET_DIR, or $OPSDECK_BIN)
#   SIZE_MIB=256 benches/backup-restore.sh    a smaller run
# Steps: start `opsdeck dev --headless`; prefill SIZE_MIB with 64 KiB values (opsdeck bench's
# prefill, which --reads triggers); tar -czf node 1's data dir while it is SIGSTOPped; a 20 s write bench alone
# (baseline); the same bench with `opsdeck backup` started 2 s in; verify-backup; restore.
# After each phase it prints every node's peak RSS during that phase (VmHWM, reset before the
# phase through /proc/PID/clear_refs) and its RSS at the end of it (VmRSS).
# Everything runs under one temp dir, removed at the end, as are the processes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${OPSDECK_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/opsdeck}
size_mib=${SIZE_MIB:-1024}
work=$(mktemp -d /tmp/opsdeck-backup-bench.XXXX)
dev_pid=
cleanup() {
  [[ -n $dev_pid ]] && kill -TERM "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
now_ms() { date +%s%3N; }
c=(--cluster "$work/c")

"$bin" dev --headless --dir "$work/c" --base-port "${BASE_PORT:-19300}" >"$work/dev.out" 2>&1 &
dev_pid=$!
for _ in $(seq 1 300); do "$bin" status "${c[@]}" >/dev/null 2>&1 && break; sleep 0.1; done

node_pids() { awk '$1=="pid"{print $3}' "$work/c/cluster.toml"; }
rss_reset() { for p in $(node_pids); do echo 5 > "/proc/$p/clear_refs" 2>/dev/null || true; done; }
rss_report() {
  local line="  RSS after $1 (peak / now, MiB):"
  for p in $(node_pids); do
    local hwm rss
    hwm=$(awk '/^VmHWM/{print int($2/1024)}' "/proc/$p/status" 2>/dev/null || echo "?")
    rss=$(awk '/^VmRSS/{print int($2/1024)}' "/proc/$p/status" 2>/dev/null || echo "?")
    line+=" pid $p ${hwm} / ${rss};"
  done
  echo "$line"
}

keys=$(( size_mib * 16 ))   # 64 KiB values
echo "prefill: $keys keys x 64 KiB = $size_mib MiB"
rss_reset
t0=$(now_ms)
"$bin" bench "${c[@]}" --clients 16 --keys "$keys" --value-size 65536 --reads 1 --duration 1s >/dev/null
echo "prefill took $(( $(now_ms) - t0 )) ms"
rss_report prefill
"$bin" status "${c[@]}" --json | python3 -c '
import json,sys
for n in json.load(sys.stdin)["nodes"]:
    print("node %s: %s keys, %.0f MiB of data" % (n["id"], n["storage_keys"], n["storage_bytes"]/2**20))'

pid1=$(awk '$1=="id"&&$3==1{f=1} f&&$1=="pid"{print $3; exit}' "$work/c/cluster.toml")
kill -STOP "$pid1"
t0=$(now_ms)
tar -czf "$work/n1.tar.gz" -C "$work/c" n1
tar_ms=$(( $(now_ms) - t0 ))
kill -CONT "$pid1"
du_n1=$(du -sm "$work/c/n1" | cut -f1)
tgz=$(du -sm "$work/n1.tar.gz" | cut -f1)
echo "tar -czf of node 1's data dir (${du_n1} MiB, paused): ${tar_ms} ms, ${tgz} MiB archive, $(( du_n1 * 1000 / (tar_ms > 0 ? tar_ms : 1) )) MiB/s"
"$bin" status "${c[@]}" >/dev/null

bench() { "$bin" bench "${c[@]}" --clients 16 --keys 1000 --value-size 100 --duration 20s; }
echo "writes alone:"
bench | sed 's/^/  /'
rss_reset
t0=$(now_ms)
"$bin" compact "${c[@]}" >/dev/null
echo "compact (a snapshot on every node): $(( $(now_ms) - t0 )) ms"
rss_report snapshot
echo "writes while a backup runs (started 2 s in):"
rss_reset
bench >"$work/bench.out" &
bench_pid=$!
sleep 2
t0=$(now_ms)
"$bin" backup "${c[@]}" --out "$work/b.odb" --json >"$work/backup.json"
backup_ms=$(( $(now_ms) - t0 ))
wait "$bench_pid"
sed 's/^/  /' "$work/bench.out"
payload=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["payload_bytes"])' "$work/backup.json")
echo "backup: $(( payload / 1048576 )) MiB payload in ${backup_ms} ms (incl. the snapshot): $(( payload / 1048576 * 1000 / backup_ms )) MiB/s"
rss_report backup

t0=$(now_ms)
"$bin" verify-backup "$work/b.odb" >/dev/null
verify_ms=$(( $(now_ms) - t0 ))
echo "verify-backup: ${verify_ms} ms, $(( payload / 1048576 * 1000 / verify_ms )) MiB/s"

rss_reset
t0=$(now_ms)
"$bin" restore "$work/b.odb" --yes "${c[@]}" --timeout 60s --json >"$work/restore.json"
restore_ms=$(( $(now_ms) - t0 ))
commit_ms=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("commit_ms", "?"))' "$work/restore.json")
echo "restore: ${restore_ms} ms, $(( payload / 1048576 * 1000 / restore_ms )) MiB/s (through the Raft log, on all 3 nodes); its commit took ${commit_ms} ms"
rss_report restore
