#!/usr/bin/env bash
# Fuzzes the two decoders that read untrusted bytes, each for a bounded time:
#   record_decode  MarketRecord::decode (every Kafka payload) and the key it renders
#   frame_decode   the TradingView frame decoder and the payload reader behind it
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   scripts/fuzz.sh                 # 60 s per target (the bounded run)
#   scripts/fuzz.sh 3600            # the longer run: an hour per target
#   scripts/fuzz.sh 600 frame_decode
# Environment: FUZZ_SANITIZER (default none: the code is safe Rust, panics are what is
# looked for; `address` also checks the C dependencies), FUZZ_JOBS (parallel workers per
# target, default 1), FUZZ_REQUIRE=1 (fail instead of skipping when the tools are missing).
#
# Needs cargo-fuzz and a nightly toolchain; without them it says how to install them and
# exits 0 (CI does not install nightly). The first build compiles every dependency with
# coverage instrumentation and takes several minutes. Findings land in
# fuzz/artifacts/<target>/; reproduce one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# The growing corpus is kept in fuzz/corpus/<target>/ (ignored by git); fuzz/seeds/<target>/
# holds the committed seed inputs.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

seconds="${1:-60}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(record_decode frame_decode)
case "$seconds" in
  '' | *[!0-9]*) echo "fuzz.sh: SECONDS_PER_TARGET must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac

missing=()
cargo +nightly --version >/dev/null 2>&1 || missing+=("a nightly toolchain:  rustup toolchain install nightly")
cargo fuzz --version >/dev/null 2>&1 || missing+=("cargo-fuzz:           cargo install cargo-fuzz --locked")
if [ "${#missing[@]}" -gt 0 ]; then
  echo "fuzz.sh: skipped: fuzzing needs"
  printf '  %s\n' "${missing[@]}"
  echo "The property tests (cargo test -p egx-actors proptests) cover the same decoders on stable."
  [ "${FUZZ_REQUIRE:-0}" = 1 ] && exit 1
  exit 0
fi

sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"
declare -A dict=([record_decode]="$repo/fuzz/record.dict" [frame_decode]="$repo/fuzz/frame.dict")
parallel=()
# libFuzzer's -jobs sends each worker's output to a log file: only ask for it when wanted.
[ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
status=0
for target in "${targets[@]}"; do
  if [ -z "${dict[$target]:-}" ]; then
    echo "fuzz.sh: unknown target '$target' (known: ${!dict[*]})" >&2
    exit 2
  fi
  corpus="$repo/fuzz/corpus/$target"
  mkdir -p "$corpus"
  echo "== fuzzing $target for ${seconds}s (sanitizer $sanitizer, $jobs job(s))"
  # The first corpus directory is written to; the seeds are only read.
  if ! cargo +nightly fuzz run --fuzz-dir "$repo/fuzz" --sanitizer "$sanitizer" "$target" \
      "$corpus" "$repo/fuzz/seeds/$target" -- \
      -max_total_time="$seconds" -dict="${dict[$target]}" "${parallel[@]}" -print_final_stats=1; then
    echo "fuzz.sh: $target FAILED: see fuzz/artifacts/$target/" >&2
    status=1
  fi
done
exit "$status"
