#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a bounded time: the CI smoke run and the
# longer runs by hand use this same script (docs/fuzzing.md).
#
#   fuzz/run.sh [SECONDS] [TARGET...]      default: 60 s, every target
#
# Environment:
#   NUDGE_FUZZ_JOBS       targets run at once (default: the number of CPUs)
#   NUDGE_FUZZ_SANITIZER  cargo fuzz's -s (default: none; `address` for ASan)
#   NUDGE_FUZZ_RSS_MB     libFuzzer -rss_limit_mb (default 2048)
#   NUDGE_FUZZ_TIMEOUT_S  libFuzzer -timeout per input (default 10)
#   NUDGE_FUZZ_TOOLCHAIN  nightly or stable (default: nightly when installed)
#
# A nightly toolchain is used when installed; otherwise stable with RUSTC_BOOTSTRAP=1
# (cargo fuzz needs unstable compiler flags). Inputs found by a run are kept in
# fuzz/work/<target> (not committed); the seeds in fuzz/corpus/<target> are only read.
# A crash is written to fuzz/artifacts/<target>/ and makes the script fail.
set -euo pipefail
cd "$(dirname "$0")"
# Instrumented release builds stay in fuzz/target, apart from the workspace's.
unset CARGO_TARGET_DIR

ALL_TARGETS=(query_parse json_record api_json http_api log_frame log_recovery snapshot_decode)
seconds="${1:-60}"
if [ $# -gt 0 ]; then shift; fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=("${ALL_TARGETS[@]}"); fi
jobs="${NUDGE_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}"
sanitizer="${NUDGE_FUZZ_SANITIZER:-none}"
rss_mb="${NUDGE_FUZZ_RSS_MB:-2048}"
timeout_s="${NUDGE_FUZZ_TIMEOUT_S:-10}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
channel="${NUDGE_FUZZ_TOOLCHAIN:-}"
if [ -z "$channel" ]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then channel=nightly; else channel=stable; fi
fi
if [ "$channel" = nightly ]; then
  toolchain=+nightly
else
  toolchain=+stable
  export RUSTC_BOOTSTRAP=1
fi
echo "fuzz: cargo $toolchain fuzz, sanitizer $sanitizer, ${seconds}s per target, $jobs at a time"

started=$(date +%s)
cargo "$toolchain" fuzz build -s "$sanitizer"
echo "fuzz: built in $(($(date +%s) - started)) s"

mkdir -p work/logs
run_one() {
  local target="$1" dict=()
  if [ -f "dictionaries/$target.dict" ]; then dict=("-dict=dictionaries/$target.dict"); fi
  mkdir -p "work/$target" "artifacts/$target"
  local status=0
  cargo "$toolchain" fuzz run -s "$sanitizer" "$target" "work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout="$timeout_s" \
    -print_final_stats=1 "${dict[@]}" >"work/logs/$target.log" 2>&1 || status=$?
  # Scratch directories of the targets (libFuzzer exits without running destructors).
  rm -rf /dev/shm/nudge-fuzz-"$target"-* "${TMPDIR:-/tmp}"/nudge-fuzz-"$target"-*
  # `wait PID` cannot be trusted for jobs that `jobs` already reported: keep the status.
  echo "$status" >"work/logs/$target.status"
}

failed=()
for target in "${targets[@]}"; do
  rm -f "work/logs/$target.status"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  run_one "$target" &
done
wait
for target in "${targets[@]}"; do
  if [ "$(cat "work/logs/$target.status" 2>/dev/null)" = 0 ]; then
    status=ok
  else
    status=FAILED
    failed+=("$target")
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "work/logs/$target.log" | grep -o '[0-9]*$' || true)
  corpus=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "work/logs/$target.log" | tail -1 | grep -o 'corp: [^ ]*' || true)
  echo "fuzz: $target: $status, ${runs:-?} runs, ${corpus:-corp: ?}, $(find "work/$target" -type f | wc -l) inputs in work/$target"
done
echo "fuzz: done in $(($(date +%s) - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
  for target in "${failed[@]}"; do
    echo "fuzz: $target failed; the end of work/logs/$target.log:" >&2
    tail -40 "work/logs/$target.log" >&2
  done
  exit 1
fi
