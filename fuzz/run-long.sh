#!/usr/bin/env bash
# The long fuzzing budget: every target for a number of executions (default 10 million),
# starting from the committed corpus and regression inputs. Prints executions, exec/s and
# crashes per target; exits non-zero if any target crashed.
# Usage: fuzz/run-long.sh [RUNS_PER_TARGET] [TARGET...]   (all targets by default)
set -euo pipefail
cd "$(dirname "$0")"
. ./common.sh
runs=${1:-10000000}
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then mapfile -t targets < <(cargo fuzz list); fi
cargo fuzz build "${FUZZ_FLAGS[@]}"
logs=$(mktemp -d)
echo "fuzz long: $runs executions per target; logs in $logs"
printf '%-16s %12s %10s %8s %8s\n' target executions exec/s crashes seconds
failed=0
for target in "${targets[@]}"; do
  log="$logs/$target.log"
  start=$SECONDS
  crashes=0
  run_target "$target" "$log" -runs="$runs" || crashes=1
  read -r done speed < <(final_stats "$log")
  printf '%-16s %12s %10s %8s %8s\n' "$target" "$done" "$speed" "$crashes" "$((SECONDS - start))"
  if [ "$crashes" -ne 0 ]; then
    report_failure "$target" "$log"
    failed=1
  fi
done
exit "$failed"
