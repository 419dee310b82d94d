#!/usr/bin/env bash
# Write unavailability after kill -9 of the leader: the time from the kill until a write
# through a surviving member succeeds, measured the same way for opsdeck and etcd 3.4.
#
# Usage: benches/failover.sh opsdeck|etcd [ROUNDS]     (default 10 rounds)
#   opsdeck: needs target/release/opsdeck (cargo build --release)
#   etcd:    needs Debian etcd-server etcd-client and ../shared/bench/etcd-cluster.sh
# Each round: find the leader, kill -9 it, then PUT through the survivors (curl, 250 ms
# per attempt, no pause between attempts) until one returns 200; restart the killed member
# and wait until it is healthy again. Prints one line per round and the median.
# Only processes this script started are stopped.
set -euo pipefail
target=${1:?usage: failover.sh opsdeck|etcd [ROUNDS]}
rounds=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
work=$(mktemp -d /tmp/failover.XXXX)
now_ms() { date +%s%3N; }

declare -A pid
declare -A http
nodes=(1 2 3)

opsdeck_start() {
  local bin=$root/target/release/opsdeck
  "$bin" dev --headless --keep --dir "$work/dev" --base-port "${BASE_PORT:-7400}" >"$work/dev.out" 2>&1 &
  local dev=$!
  for _ in $(seq 1 300); do [[ -f $work/dev/cluster.toml ]] && break; sleep 0.1; done
  kill -TERM "$dev"; wait "$dev" || true
  for n in "${nodes[@]}"; do
    pid[$n]=$(awk -v id="$n" '$1=="id"&&$3==id{f=1} f&&$1=="pid"{print $3; exit}' "$work/dev/cluster.toml")
    http[$n]=$(awk -v id="$n" '$1=="id"&&$3==id{f=1} f&&$1=="http"{gsub(/"/,"",$3); print $3; exit}' "$work/dev/cluster.toml")
  done
}
opsdeck_leader() {
  for n in "${nodes[@]}"; do
    curl -s --max-time 0.5 "http://${http[$n]}/cluster/leader" 2>/dev/null |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null && return 0
  done
  return 1
}
opsdeck_put() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 0.25 -X PUT --data x "http://${http[$1]}/kv/probe/$2") == 200 ]]; }
opsdeck_kill() { kill -9 "${pid[$1]}"; }
opsdeck_restart() {
  local n=$1 grpc data
  grpc=$(awk -v id="$n" '$1=="id"&&$3==id{f=1} f&&$1=="grpc"{gsub(/"/,"",$3); print $3; exit}' "$work/dev/cluster.toml")
  data=$(awk -v id="$n" '$1=="id"&&$3==id{f=1} f&&$1=="data"{gsub(/"/,"",$3); print $3; exit}' "$work/dev/cluster.toml")
  "$root/target/release/opsdeck" node --id "$n" --grpc "$grpc" --http "${http[$n]}" --data "$data" >>"$work/dev/n$n.log" 2>&1 &
  pid[$n]=$!
  disown "${pid[$n]}"   # killed -9 in a later round; no job-control noise
  for _ in $(seq 1 200); do curl -sf --max-time 0.5 "http://${http[$n]}/health" >/dev/null && return 0; sleep 0.05; done
  echo "node $n did not come back" >&2; return 1
}
opsdeck_stop() {
  for n in "${nodes[@]}"; do kill -TERM "${pid[$n]}" 2>/dev/null || true; done
  for n in "${nodes[@]}"; do
    for _ in $(seq 1 100); do kill -0 "${pid[$n]}" 2>/dev/null || break; sleep 0.05; done
  done
}

etcd_start() { bash "$shared/etcd-cluster.sh" start "$work/etcd" >/dev/null; for n in "${nodes[@]}"; do http[$n]=127.0.0.1:$((23790 + n)); done; }
etcd_leader() { bash "$shared/etcd-cluster.sh" leader "$work/etcd" | awk '{print $1}'; }
etcd_put() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 0.25 -X POST \
    -d "{\"key\":\"$(printf 'probe/%s' "$2" | base64)\",\"value\":\"eA==\"}" "http://${http[$1]}/v3/kv/put") == 200 ]]
}
etcd_kill() { bash "$shared/etcd-cluster.sh" kill1 "$work/etcd" "$1" >/dev/null; }
etcd_restart() { bash "$shared/etcd-cluster.sh" restart1 "$work/etcd" "$1" >/dev/null; }
etcd_stop() { bash "$shared/etcd-cluster.sh" stop "$work/etcd" >/dev/null; }

trap '${target}_stop; rm -rf "$work"' EXIT
"${target}_start"
results=()
for r in $(seq 1 "$rounds"); do
  leader=$("${target}_leader")
  survivors=(); for n in "${nodes[@]}"; do [[ $n != "$leader" ]] && survivors+=("$n"); done
  sleep 1   # let the cluster settle: every follower has heard from this leader
  "${target}_kill" "$leader"
  t0=$(now_ms); i=0
  until "${target}_put" "${survivors[$((i % 2))]}" "$r-$i"; do i=$((i + 1)); done
  ms=$(( $(now_ms) - t0 ))
  results+=("$ms")
  echo "round $r: killed leader $leader, writes resumed after $ms ms ($i failed attempts)"
  "${target}_restart" "$leader"
done
printf '%s\n' "${results[@]}" | sort -n | awk -v t="$target" '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%s: median %d ms, min %d ms, max %d ms over %d rounds\n", t, m, a[1], a[NR], NR}'
