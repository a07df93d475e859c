#!/usr/bin/env bash
# A short fuzzing run of every target (default 20 s each), starting from the committed corpus
# and regression inputs; fails on any crash, panic, hang or out-of-memory. CI runs this.
# Usage: fuzz/run-smoke.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")"
. ./common.sh
seconds=${1:-20}
echo "fuzz smoke: building the targets (cargo fuzz build ${FUZZ_FLAGS[*]})"
cargo fuzz build "${FUZZ_FLAGS[@]}"
logs=$(mktemp -d)
failed=()
for target in $(cargo fuzz list); do
  log="$logs/$target.log"
  if run_target "$target" "$log" -max_total_time="$seconds"; then
    read -r runs speed < <(final_stats "$log")
    echo "fuzz smoke: $target ${seconds}s: $runs executions, $speed exec/s, no crash"
  else
    report_failure "$target" "$log"
    failed+=("$target")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz smoke: FAILED: ${failed[*]}"
  exit 1
fi
rm -rf "$logs"
