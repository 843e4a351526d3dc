#!/usr/bin/env bash
# The whole test suite: starts a real Kafka broker and a real S3 server (scripts/services.sh),
# runs every test including the real-service ones, stops the services, and exits non-zero
# on any failure, then prints the reliability report (one row per scenario of
# tests/reliability/). Usage: scripts/test.sh [extra cargo test args]
# EGX_RELIABILITY=full runs the long reliability variant (scripts/reliability.sh does).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

services="$repo/scripts/services.sh"
started_here=0
cleanup() {
  if [ "$started_here" = 1 ] && [ "${EGX_KEEP_SERVICES:-0}" != 1 ]; then
    "$services" stop || true
  fi
}
trap cleanup EXIT

if ! "$services" status >/dev/null 2>&1; then
  started_here=1
fi
"$services" start

export EGX_TEST_KAFKA="127.0.0.1:${KAFKA_PORT:-9092}"
export EGX_TEST_S3="http://127.0.0.1:${S3_PORT:-9000}"
cache="${EGX_CACHE_DIR:-$repo/.cache}"
# The S3 server's binary, for tests that run (and stop) a private instance.
export EGX_VERSITYGW="$cache/bin/versitygw"

# A plain Python Kafka client (kafka-python from PyPI) for the interoperability tests.
py="$cache/py"
kafka_python="kafka-python==3.0.12"
if [ ! -x "$py/bin/python" ] || ! "$py/bin/python" -c "import kafka" 2>/dev/null; then
  echo "== installing $kafka_python into $py"
  python3 -m venv "$py"
  "$py/bin/pip" install --quiet --disable-pip-version-check "$kafka_python"
fi
export EGX_PYTHON="$py/bin/python"

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Each reliability scenario writes its report row here.
export EGX_REPORT_DIR="$repo/target/reliability"
rm -rf "$EGX_REPORT_DIR"

echo "== cargo test (including the real-service tests)"
log="$(mktemp)"
status=0
cargo test --workspace --locked "$@" -- --include-ignored 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary, the last often a
# doc-test binary with 0 tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, g }' "$log"
rm -f "$log"

if compgen -G "$EGX_REPORT_DIR/*.tsv" >/dev/null; then
  variant=short
  [ "${EGX_RELIABILITY:-}" = full ] && variant=full
  table="$EGX_REPORT_DIR/report.txt"
  {
    echo "reliability report ($variant variant, $(date -u +%Y-%m-%d)):"
    { printf 'scenario\tmessages\tobjects\tlost\textra keys\twrong bytes\ttime to recover\tpeak memory\tnotes\n'
      cat "$EGX_REPORT_DIR"/*.tsv | cut -f2-; } | column -t -s "$(printf '\t')"
  } >"$table"
  cat "$table"
fi
exit "$status"
