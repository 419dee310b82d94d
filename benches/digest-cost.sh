#!/usr/bin/env bash
# What the state digest costs writes: `opsdeck bench` on a fresh 3-node dev cluster with the
# digest off (OPSDECK_DIGEST=off, a measuring switch: the nodes keep no digest) and on,
# alternating, ROUNDS times each, in one run; prints writes/s and p99 per run and the
# medians. Needs target/release/opsdeck (cargo build --release; or OPSDECK_BIN).
#
# Usage: benches/digest-cost.sh [ROUNDS] [SECONDS] [CLIENTS]   (default 3 rounds, 15 s, 64)
#   KEYS=200000 benches/digest-cost.sh ...   writes spread over more keys (default: bench's)
# Only processes this script started are stopped.
set -euo pipefail
rounds=${1:-3}
secs=${2:-15}
clients=${3:-64}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${OPSDECK_BIN:-$root/target/release/opsdeck}
work=$(mktemp -d /tmp/digest-cost.XXXX)
pids=()

stop_cluster() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  done
  pids=()
}
trap 'stop_cluster; rm -rf "$work"' EXIT

# start_cluster DIR MODE: a fresh dev cluster whose nodes inherit OPSDECK_DIGEST=MODE.
start_cluster() {
  local dir=$1 mode=$2
  OPSDECK_DIGEST=$mode "$bin" dev --headless --keep --dir "$dir" --base-port "${BASE_PORT:-7600}" >"$dir.out" 2>&1 &
  local dev=$!
  for _ in $(seq 1 300); do [[ -f $dir/cluster.toml ]] && break; sleep 0.1; done
  kill -TERM "$dev"; wait "$dev" || true
  mapfile -t pids < <(awk '$1=="pid"{print $3}' "$dir/cluster.toml")
}

declare -A ops p99
for r in $(seq 1 "$rounds"); do
  for mode in off on; do
    dir=$work/$mode-$r
    start_cluster "$dir" "$mode"
    out=$("$bin" bench --cluster "$dir" --clients "$clients" --duration "${secs}s" ${KEYS:+--keys "$KEYS"} --json)
    ops[$mode-$r]=$(python3 -c 'import json,sys; print(int(json.load(sys.stdin)["writes"]["ops_per_sec"]))' <<<"$out")
    p99[$mode-$r]=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["writes"]["p99_ms"])' <<<"$out")
    echo "round $r digest $mode: ${ops[$mode-$r]} writes/s, p99 ${p99[$mode-$r]} ms"
    stop_cluster
  done
done
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
off=$(for r in $(seq 1 "$rounds"); do echo "${ops[off-$r]}"; done | median)
on=$(for r in $(seq 1 "$rounds"); do echo "${ops[on-$r]}"; done | median)
python3 -c "off,on=$off,$on; print(f'median writes/s: digest off {off:,.0f}, on {on:,.0f}: {100*(off-on)/off:+.1f} % fewer with the digest')"
