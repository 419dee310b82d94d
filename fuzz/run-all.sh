#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, one after the other, at nice 19.
# New corpus inputs go to fuzz/corpus/<target> (not committed), crashes to
# fuzz/artifacts/<target>/, each run's libFuzzer output to fuzz/artifacts/logs/<target>.log.
#
#   fuzz/run-all.sh [SECONDS [TARGET...]]      (default: 600 s, every target)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); stable Rust works with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-600}
shift $(( $# > 0 ? 1 : 0 ))
ONLY=("$@")
export RUSTC_BOOTSTRAP=1

# target:max_len
TARGETS=(text_inputs:16384 backup_file:8192 wire_decode:8192 node_api:8192)

nice -n 19 cargo fuzz build -s none
mkdir -p artifacts/logs
status=0
for entry in "${TARGETS[@]}"; do
  t=${entry%%:*}
  len=${entry##*:}
  if [ ${#ONLY[@]} -gt 0 ] && [[ ! " ${ONLY[*]} " == *" $t "* ]]; then continue; fi
  mkdir -p "corpus/$t"
  dict=()
  if [ -f "dicts/$t.dict" ]; then dict=(-dict="dicts/$t.dict"); fi
  echo "== $t for ${SECS}s"
  if ! nice -n 19 cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$SECS" -timeout=30 -rss_limit_mb=4096 -max_len="$len" \
      "${dict[@]}" -print_final_stats=1 2>&1 | tee "artifacts/logs/$t.log"; then
    echo "== $t FAILED: see fuzz/artifacts/$t/ and artifacts/logs/$t.log"
    status=1
  fi
  # The targets keep their temp files (node data dir, backup file) under /dev/shm.
  rm -rf /dev/shm/opsdeck-fuzz-* 2>/dev/null || true
done
exit $status
