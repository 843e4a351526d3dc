#!/usr/bin/env bash
# The whole test suite: starts a real Kafka broker and a real S3 server (scripts/services.sh),
# runs every test including the real-service ones, stops the services, and exits non-zero
# on any failure. Usage: scripts/test.sh [extra cargo test args]
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
export EGX_SERVICES_SCRIPT="$services"

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test (including the real-service tests)"
cargo test --workspace --locked "$@" -- --include-ignored
