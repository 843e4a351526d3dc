#!/usr/bin/env bash
# The whole test suite: starts a real Kafka broker and a real S3 server (scripts/services.sh),
# plus a secured broker (SASL_SSL, SCRAM-SHA-512 and PLAIN, ACLs, private CA) and an HTTPS
# S3 server (same CA), runs every test including the real-service ones, stops the services,
# and exits non-zero on any failure, then prints the reliability report (one row per
# scenario of tests/reliability/). Usage: scripts/test.sh [extra cargo test args]
# EGX_RELIABILITY=full runs the long reliability variant (scripts/reliability.sh does).
#
# Environment the tests get:
#   EGX_TEST_KAFKA, EGX_TEST_S3          the plain broker and S3 server
#   EGX_VERSITYGW, EGX_PYTHON            the S3 server binary, a Python with kafka-python
#   from run/secure/credentials.env (written by scripts/services.sh at each start, secret):
#   EGX_TEST_SECURE_KAFKA                SASL_SSL bootstrap of the secured broker
#   EGX_TEST_CA, EGX_TEST_OTHER_CA       PEM of the private CA, of an unrelated CA
#   EGX_TEST_SCRAM_USER/_PASSWORD        SCRAM-SHA-512, topics+groups secure-*
#   EGX_TEST_PLAIN_USER/_PASSWORD        PLAIN, topics+groups secure-*
#   EGX_TEST_READONLY_USER/_PASSWORD     SCRAM-SHA-512, read-only on secure-*
#   EGX_TEST_NOGROUP_USER/_PASSWORD      SCRAM-SHA-512, topics secure-*, no group rights
#   EGX_TEST_S3_TLS                      the HTTPS S3 endpoint
#   EGX_TEST_S3_TLS_ACCESS_KEY/_SECRET_KEY  its root keys
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

services="$repo/scripts/services.sh"
# Only the services this run starts are stopped at the end (others may be someone else's).
started_here=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if [ "${EGX_KEEP_SERVICES:-0}" != 1 ]; then
    for svc in "${started_here[@]}"; do
      "$services" stop "$svc" || true
    done
  fi
}
trap cleanup EXIT

for svc in kafka s3 kafka-secure s3-tls; do
  if ! "$services" status "$svc" >/dev/null 2>&1; then
    started_here+=("$svc")
  fi
done
"$services" start

export EGX_TEST_KAFKA="127.0.0.1:${KAFKA_PORT:-9092}"
export EGX_TEST_S3="http://127.0.0.1:${S3_PORT:-9000}"
cache="${EGX_CACHE_DIR:-$repo/.cache}"
# The S3 server's binary, for tests that run (and stop) a private instance.
export EGX_VERSITYGW="$cache/bin/versitygw"
# The secured services: endpoints, CA files and fresh credentials (exports, see above).
# shellcheck source=/dev/null
. "${EGX_SERVICES_DIR:-$cache}/run/secure/credentials.env"

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

echo "== cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

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
