#!/usr/bin/env bash
# A node's memory against the data it holds: a fresh `opsdeck dev --headless` cluster,
# SIZE_MIB of 64 KiB values written by `opsdeck bench`'s prefill, then every node's peak and
# current RSS (VmHWM / VmRSS), anonymous vs file-backed, and its data dir on disk.
#
# Usage: benches/node-rss.sh                    (needs target/release/opsdeck, or the one
#                                               under $CARGO_TARGET_DIR, or $OPSDECK_BIN)
#   SIZE_MIB=512 NODES=1 benches/node-rss.sh    one node, no replication
#   DEV_ARGS="--snapshot-every 500 --keep-logs 100" benches/node-rss.sh
# Other knobs reach the nodes through the environment, e.g. MALLOC_ARENA_MAX=2.
# Everything runs under one temp dir, removed at the end, as are the processes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${OPSDECK_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/opsdeck}
size_mib=${SIZE_MIB:-256}
work=$(mktemp -d /tmp/opsdeck-rss-bench.XXXX)
dev_pid=
cleanup() {
  [[ -n $dev_pid ]] && kill -TERM "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
c=(--cluster "$work/c")
# shellcheck disable=SC2086 # DEV_ARGS is a list of flags
"$bin" dev --headless --nodes "${NODES:-3}" ${DEV_ARGS:-} --dir "$work/c" \
  --base-port "${BASE_PORT:-21300}" >"$work/dev.out" 2>&1 &
dev_pid=$!
for _ in $(seq 1 300); do "$bin" status "${c[@]}" >/dev/null 2>&1 && break; sleep 0.1; done
node_pids() { awk '$1=="pid"{print $3}' "$work/c/cluster.toml"; }

keys=$(( size_mib * 16 ))
t0=$(date +%s%3N)
"$bin" bench "${c[@]}" --clients 16 --keys "$keys" --value-size 65536 --reads 1 --duration 1s >/dev/null
echo "prefill: $keys keys x 64 KiB = $size_mib MiB in $(( $(date +%s%3N) - t0 )) ms"
sleep 5  # let flushes and snapshots settle before reading the figures
for p in $(node_pids); do
  awk -v p="$p" '/^VmHWM/{h=int($2/1024)} /^VmRSS/{r=int($2/1024)} /^RssAnon/{a=int($2/1024)}
    /^RssFile/{f=int($2/1024)} END{printf "pid %s: peak %d MiB, now %d MiB (anonymous %d, file %d)\n", p, h, r, a, f}' \
    "/proc/$p/status"
done
du -sm "$work"/c/n*/ | sed 's/^/data dir MiB: /'
