# Shared by run-smoke.sh and run-long.sh: how each target is run. Sourced, not executed.
# cargo-fuzz builds with `--sanitizer none`, which works on the stable toolchain (the targets
# are safe Rust; AddressSanitizer would need nightly flags, see README.md).

FUZZ_FLAGS=(--sanitizer none)

# libFuzzer options per target: a time limit per input (a hang is a failure) and, where the
# code has buffers or limits that only longer inputs reach, a larger maximum input length.
target_options() {
  local opts=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  case "$1" in
    mllp_decode | dicom_scan) opts+=(-max_len=12000) ;;
    dicom_command) opts+=(-max_len=8192) ;;
    # A stored value may declare up to 64 MiB; an unbounded allocation would pass 512 MiB.
    value_decode) opts+=(-max_len=16384 -rss_limit_mb=512) ;;
  esac
  printf '%s\n' "${opts[@]}"
}

# Seed directories of a target: the committed corpus and the committed regression inputs.
seed_dirs() {
  local dirs=("corpus/$1")
  if [ -d "regressions/$1" ]; then dirs+=("regressions/$1"); fi
  printf '%s\n' "${dirs[@]}"
}

# Runs target $1 with the extra libFuzzer options in $3..., logging to $2. New inputs go to a
# scratch directory so that the committed corpus stays as it is. Returns libFuzzer's status.
run_target() {
  local target=$1 log=$2
  shift 2
  local scratch
  scratch=$(mktemp -d)
  local seeds opts status=0
  mapfile -t seeds < <(seed_dirs "$target")
  mapfile -t opts < <(target_options "$target")
  cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" "$scratch" "${seeds[@]}" -- "${opts[@]}" "$@" >"$log" 2>&1 || status=$?
  rm -rf "$scratch"
  return "$status"
}

# "executions exec/s" from a libFuzzer log written with -print_final_stats=1.
final_stats() {
  local runs speed
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$1" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$1" | tail -n 1)
  echo "${runs:-?} ${speed:-?}"
}

# What a failed run left: the end of its log (the panic message and stack) and the input.
report_failure() {
  local target=$1 log=$2
  echo "---- $target failed; end of its log ($log):"
  tail -n 40 "$log"
  echo "---- crashing inputs are under fuzz/artifacts/$target/; once fixed, commit the input under"
  echo "     fuzz/regressions/$target/ and add a unit test next to the parser's tests"
}
