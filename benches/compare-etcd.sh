#!/usr/bin/env bash
# Throughput and latency of opsdeck against etcd 3.4, same machine, same load tool (wrk),
# same shape: 3 members on 127.0.0.1, 100-byte values over 10,000 keys, fsync on.
#
# Usage: benches/compare-etcd.sh [ROUNDS] [SECONDS]     (default 3 rounds of 20 s runs)
# Needs: target/release/opsdeck, Debian wrk etcd-server etcd-client, ../shared/bench.
# Each round runs, for etcd then opsdeck, a fresh cluster: PUT at 64 and 256 connections
# and a linearizable read at 64. Prints wrk's summary line per run; copy them into
# BENCHMARKS.md with this command line. Only processes this script started are stopped.
set -euo pipefail
rounds=${1:-3}
secs=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
work=$(mktemp -d /tmp/compare.XXXX)
dev_pid=""
cleanup() {
  bash "$shared/etcd-cluster.sh" stop "$work/etcd" >/dev/null 2>&1 || true
  [[ -n $dev_pid ]] && kill -TERM "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

load() { # label url script mode conns
  printf '%-8s %-6s c=%-4s ' "$1" "$4" "$5"
  wrk -t2 -c"$5" -d"${secs}s" --latency -s "$3" "$2" -- "$4" 10000 100 | tail -1
}

for r in $(seq 1 "$rounds"); do
  echo "== round $r"
  rm -rf "$work/etcd"
  bash "$shared/etcd-cluster.sh" start "$work/etcd" >/dev/null
  leader=$(bash "$shared/etcd-cluster.sh" leader "$work/etcd" | awk '{print $2}')
  load etcd "$leader" "$shared/wrk-put.lua" put 64
  load etcd "$leader" "$shared/wrk-put.lua" put 256
  load etcd "$leader" "$shared/wrk-put.lua" range 64
  bash "$shared/etcd-cluster.sh" stop "$work/etcd" >/dev/null

  rm -rf "$work/dev"
  "$root/target/release/opsdeck" dev --headless --dir "$work/dev" --base-port "${BASE_PORT:-7400}" >"$work/dev.out" 2>&1 &
  dev_pid=$!
  for _ in $(seq 1 300); do [[ -f $work/dev/cluster.toml ]] && break; sleep 0.1; done
  lhttp=$(curl -s "http://127.0.0.1:$(( ${BASE_PORT:-7400} + 101 ))/cluster/leader" | python3 -c 'import json,sys; print(json.load(sys.stdin)["http"])')
  export OPSDECK_KEY=${OPSDECK_KEY:-$(cat "$work/dev/admin.key" 2>/dev/null || true)}
  load opsdeck "http://$lhttp" "$shared/wrk-opsdeck.lua" put 64
  load opsdeck "http://$lhttp" "$shared/wrk-opsdeck.lua" put 256
  load opsdeck "http://$lhttp" "$shared/wrk-opsdeck.lua" get 64
  kill -TERM "$dev_pid"; wait "$dev_pid" || true; dev_pid=""
done
